//! Which sealed file holds a block of the root device: FIEMAP (FS_IOC_FIEMAP) on the sealed
//! regular files, asked only when dm-verity names a corrupted block. erofs answers FIEMAP for
//! its uncompressed files (physical offsets on its device, which is the verity device, whose
//! block N is byte N × 4096); a block in compressed data, in metadata (inodes, directories,
//! inline tails) or in no file maps to no path, and the report then names the block alone.
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::under;

/// One extent of a file: `length` bytes at file offset `logical` live at device byte
/// `physical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub length: u64,
}

const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const BATCH: usize = 64;

/// `struct fiemap` with room for [`BATCH`] `struct fiemap_extent`s (linux/fiemap.h).
#[repr(C)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [FiemapExtent; BATCH],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

/// The extents of `file` (empty for a file with no data on the device).
pub fn extents(file: &File) -> io::Result<Vec<Extent>> {
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        let mut fm = Fiemap {
            start,
            length: u64::MAX - start,
            flags: 0,
            mapped_extents: 0,
            extent_count: BATCH as u32,
            reserved: 0,
            extents: [FiemapExtent::default(); BATCH],
        };
        // SAFETY: `fm` is a valid, writable struct fiemap with `extent_count` extents of room,
        // which is all the kernel writes.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP, &mut fm as *mut Fiemap) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = &fm.extents[..(fm.mapped_extents as usize).min(BATCH)];
        out.extend(got.iter().map(|e| Extent {
            logical: e.logical,
            physical: e.physical,
            length: e.length,
        }));
        match got.last() {
            Some(l) if l.flags & FIEMAP_EXTENT_LAST == 0 => start = l.logical + l.length,
            _ => return Ok(out),
        }
    }
}

/// Whether any of `extents` covers device byte `at`.
pub fn covers(extents: &[Extent], at: u64) -> bool {
    extents
        .iter()
        .any(|e| e.physical <= at && at < e.physical.saturating_add(e.length))
}

/// The first of `files` (sealed paths below `root`) holding device byte `at`; `Err` says why
/// no file could be asked (FIEMAP unsupported by the filesystem).
pub fn file_holding(root: &Path, files: &[Vec<u8>], at: u64) -> Result<Option<Vec<u8>>, String> {
    let mut unsupported = 0usize;
    for rel in files {
        let Ok(f) = File::open(under(root, rel)) else {
            continue;
        };
        match extents(&f) {
            Ok(x) if covers(&x, at) => return Ok(Some(rel.clone())),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => unsupported += 1,
            Err(_) => {}
        }
    }
    if unsupported > 0 && unsupported == files.len() {
        return Err("the root's filesystem does not answer FIEMAP".into());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn covers_is_half_open() {
        let x = [Extent {
            logical: 0,
            physical: 8192,
            length: 4096,
        }];
        assert!(!covers(&x, 8191));
        assert!(covers(&x, 8192) && covers(&x, 12287));
        assert!(!covers(&x, 12288));
    }

    /// FIEMAP on a real file of the build tree's filesystem (tmpfs does not answer FIEMAP, so
    /// the file goes next to the test binary rather than in /tmp).
    #[test]
    fn a_real_file_is_found_by_its_physical_block() {
        let base = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir_in(base.parent().unwrap()).unwrap();
        let rel = b"/data.bin".to_vec();
        let mut f = File::create(under(dir.path(), &rel)).unwrap();
        f.write_all(&vec![7u8; 3 * 4096]).unwrap();
        f.sync_all().unwrap();
        drop(f);
        let f = File::open(under(dir.path(), &rel)).unwrap();
        match extents(&f) {
            Ok(x) => {
                assert!(!x.is_empty(), "a synced 12 KiB file has extents");
                let at = x[0].physical + 4096;
                let found = file_holding(dir.path(), &[b"/missing".to_vec(), rel.clone()], at);
                assert_eq!(found, Ok(Some(rel)));
                assert_eq!(file_holding(dir.path(), &[], at), Ok(None));
            }
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}"),
        }
    }
}

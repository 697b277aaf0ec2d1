//! Which device bytes hold a file: FS_IOC_FIEMAP (linux/fiemap.h). erofs answers it for its
//! uncompressed files, inline tails included, as byte offsets of the device it is mounted
//! from (the dm-verity device). Used to name the files behind blocks dm-verity rejected, at
//! boot (`init::content`) and at run time (`enforce::checks::blockmap`).
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One extent: `length` bytes at file offset `logical` live at device byte `physical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub length: u64,
}

const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const BATCH: usize = 64;

/// `struct fiemap` with room for [`BATCH`] `struct fiemap_extent`s.
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
        // SAFETY: `fm` is a valid, writable struct fiemap (repr(C)) with `extent_count`
        // extents of room, which is all the kernel writes; it lives across the call.
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
            Some(l) if l.flags & FIEMAP_EXTENT_LAST == 0 && got.len() == BATCH => {
                start = l.logical + l.length
            }
            _ => return Ok(out),
        }
    }
}

/// The extents of the regular file at `path` (never following a symlink, never blocking on
/// a FIFO).
pub fn extents_at(path: &Path) -> io::Result<Vec<Extent>> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    extents(&f)
}

/// Whether any extent overlaps device bytes `offset..offset + len`.
pub fn overlaps(extents: &[Extent], offset: u64, len: u64) -> bool {
    extents.iter().any(|e| {
        e.physical < offset.saturating_add(len) && offset < e.physical.saturating_add(e.length)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_half_open() {
        let e = [Extent {
            logical: 0,
            physical: 8192,
            length: 4096,
        }];
        assert!(overlaps(&e, 8192, 1));
        assert!(overlaps(&e, 4096, 4097));
        assert!(!overlaps(&e, 4096, 4096));
        assert!(!overlaps(&e, 12288, 4096));
        assert!(!overlaps(&e, 8191, 1));
        assert!(overlaps(&e, 8192, 1) && overlaps(&e, 12287, 1));
        assert!(!overlaps(&e, 12288, 1));
    }

    /// On a filesystem with FIEMAP (ext4, xfs, btrfs; not tmpfs) a written file has extents
    /// covering its size.
    #[test]
    fn a_written_file_has_extents_where_supported() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![1u8; 3 * 4096 + 10]).unwrap();
        File::open(&p).unwrap().sync_all().unwrap();
        match extents_at(&p) {
            Ok(e) => {
                let total: u64 = e.iter().map(|x| x.length).sum();
                assert!(total >= 3 * 4096 + 10, "{e:?}");
            }
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}"),
        }
        assert!(extents_at(&dir.path().join("absent")).is_err());
    }
}

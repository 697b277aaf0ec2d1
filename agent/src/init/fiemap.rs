//! Which sealed files hold given bytes of the root device: FS_IOC_FIEMAP (erofs reports its
//! extents, inline tails included, as byte offsets of the device it is mounted from). Used to
//! name the files behind blocks dm-verity rejected without reading every file again.
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One extent: `physical..physical + length` of the device holds the file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub length: u64,
}

const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const EXTENT_LAST: u32 = 0x1;
const BATCH: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

#[repr(C)]
struct Request {
    start: u64,
    length: u64,
    flags: u32,
    mapped: u32,
    count: u32,
    reserved: u32,
    extents: [RawExtent; BATCH],
}

/// Every extent of the regular file at `path` (never following a symlink).
pub fn extents(path: &Path) -> io::Result<Vec<Extent>> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    extents_of(&f)
}

fn extents_of(f: &File) -> io::Result<Vec<Extent>> {
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        let mut req = Request {
            start,
            length: u64::MAX - start,
            flags: 0,
            mapped: 0,
            count: BATCH as u32,
            reserved: 0,
            extents: [RawExtent::default(); BATCH],
        };
        // SAFETY: FS_IOC_FIEMAP reads and writes a `struct fiemap` followed by `count`
        // extents; `req` is laid out exactly so (repr(C)) and lives across the call.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_FIEMAP, &mut req as *mut Request) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let got = &req.extents[..(req.mapped as usize).min(BATCH)];
        let Some(last) = got.last() else {
            return Ok(out);
        };
        out.extend(got.iter().map(|e| Extent {
            logical: e.logical,
            physical: e.physical,
            length: e.length,
        }));
        if last.flags & EXTENT_LAST != 0 || got.len() < BATCH {
            return Ok(out);
        }
        start = last.logical + last.length;
    }
}

/// Whether any extent overlaps `offset..offset + len` of the device.
pub fn overlaps(extents: &[Extent], offset: u64, len: u64) -> bool {
    extents
        .iter()
        .any(|e| e.physical < offset + len && offset < e.physical + e.length)
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
    }

    /// On a filesystem with FIEMAP (ext4, xfs, btrfs; not tmpfs) a written file has extents
    /// covering its size.
    #[test]
    fn a_written_file_has_extents_where_supported() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![1u8; 3 * 4096 + 10]).unwrap();
        File::open(&p).unwrap().sync_all().unwrap();
        match extents(&p) {
            Ok(e) => {
                let total: u64 = e.iter().map(|x| x.length).sum();
                assert!(total >= 3 * 4096 + 10, "{e:?}");
            }
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP), "{e}"),
        }
        assert!(extents(&dir.path().join("absent")).is_err());
    }
}

//! Which sealed file holds a block of the root device: FIEMAP (FS_IOC_FIEMAP) on the sealed
//! regular files, asked only when dm-verity names a corrupted block. erofs answers FIEMAP for
//! its uncompressed files (physical offsets on its device, which is the verity device, whose
//! block N is byte N × 4096); a block in compressed data, in metadata (inodes, directories,
//! inline tails) or in no file maps to no path, and the report then names the block alone.
use std::fs::File;
use std::path::Path;

use super::under;
use crate::sys::fiemap::{extents, overlaps};

/// The first of `files` (sealed paths below `root`) holding device byte `at`; `Err` says why
/// no file could be asked (FIEMAP unsupported by the filesystem).
pub fn file_holding(root: &Path, files: &[Vec<u8>], at: u64) -> Result<Option<Vec<u8>>, String> {
    let mut unsupported = 0usize;
    for rel in files {
        let Ok(f) = File::open(under(root, rel)) else {
            continue;
        };
        match extents(&f) {
            Ok(x) if overlaps(&x, at, 1) => return Ok(Some(rel.clone())),
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

//! Freeing the initramfs before switch_root: everything on the initramfs' own filesystem is
//! deleted, without following symlinks and without entering other mounts (/sysroot and
//! whatever is mounted under it stay untouched).
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Delete everything below `root` that lives on the same filesystem as `root`; best effort
/// (an entry that cannot go is skipped, as util-linux switch_root does). Returns how many
/// entries were removed. Fails only when `root` itself cannot be read.
pub fn remove_same_fs(root: &Path) -> io::Result<usize> {
    let dev = fs::symlink_metadata(root)?.dev();
    let mut removed = 0;
    remove_children(root, dev, &mut removed)?;
    Ok(removed)
}

fn remove_children(dir: &Path, dev: u64, removed: &mut usize) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.dev() != dev {
            continue; // a mount point: not ours to delete
        }
        if meta.is_dir() {
            if remove_children(&path, dev, removed).is_ok() && fs::remove_dir(&path).is_ok() {
                *removed += 1;
            }
        } else if fs::remove_file(&path).is_ok() {
            *removed += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_files_dirs_and_links_without_following_links() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), b"keep me").unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("lib/modules/6.1")).unwrap();
        fs::write(r.join("lib/modules/6.1/dm-verity.ko"), b"elf").unwrap();
        fs::write(r.join("init"), b"elf").unwrap();
        std::os::unix::fs::symlink(outside.path(), r.join("escape")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", r.join("dangling")).unwrap();
        let n = remove_same_fs(r).unwrap();
        assert_eq!(
            n, 7,
            "lib, modules, 6.1, dm-verity.ko, init, escape, dangling"
        );
        assert_eq!(fs::read_dir(r).unwrap().count(), 0);
        assert_eq!(
            fs::read(outside.path().join("precious")).unwrap(),
            b"keep me"
        );
    }

    #[test]
    fn a_missing_root_is_an_error() {
        assert!(remove_same_fs(Path::new("/nonexistent/pyre-root")).is_err());
    }
}

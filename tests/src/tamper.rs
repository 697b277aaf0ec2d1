//! Broken copies of a good image, one way of breaking per scenario.
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cpio::{overlay_initrd, CpioError, Entry};
use crate::erofs::{file_extents, ErofsError};
use crate::image::Image;

#[derive(Debug, thiserror::Error)]
pub enum TamperError {
    #[error(transparent)]
    Erofs(#[from] ErofsError),
    #[error(transparent)]
    Cpio(#[from] CpioError),
    #[error("none of {0:?} is a non-empty regular file of the image")]
    NoCandidate(Vec<String>),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file} lies at byte {offset}, past the erofs data that ends at {data_end}")]
    OutsideData {
        file: String,
        offset: u64,
        data_end: u64,
    },
    #[error("no pyre binary to sign with: set PYRE_BIN or run `make static`")]
    NoPyre,
    #[error("`{command}` failed: {stderr}")]
    Pyre { command: String, stderr: String },
    #[error("re-signing gave the same signature as the build key's; is {key} the build key?")]
    SameSignature { key: PathBuf },
}

/// Files that every Debian-based pyre image carries, big enough to own data blocks, and only
/// read after pyre's verification (so the failure is pyre's, not the kernel's).
pub const TAMPER_CANDIDATES: &[&str] = &[
    "/usr/share/common-licenses/GPL-3",
    "/usr/lib/os-release",
    "/usr/bin/pyre",
];

/// A root image with one byte of one file changed.
#[derive(Debug, Clone)]
pub struct TamperedRoot {
    pub rootfs: PathBuf,
    /// The file of the image whose content changed.
    pub file: String,
    /// Byte offset of the change in rootfs.img and in the file.
    pub offset: u64,
    pub file_offset: u64,
    pub before: u8,
    pub after: u8,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TamperError {
    let path = path.to_path_buf();
    move |source| TamperError::Io { what, path, source }
}

/// Where one file's data lies in an image's rootfs.img.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileByte {
    /// The file of the image.
    pub file: String,
    /// Byte offset in rootfs.img (in the middle of the file's first extent).
    pub offset: u64,
    /// The same byte's offset in the file.
    pub file_offset: u64,
}

/// The first of `candidates` that exists in `image`'s rootfs.img as a non-empty regular
/// file, and a byte of its data (inside the erofs data, before the verity hash area).
pub fn locate(image: &Image, candidates: &[&str]) -> Result<FileByte, TamperError> {
    let mut found = None;
    for &c in candidates {
        match file_extents(&image.rootfs, c) {
            Ok(ext) if !ext.is_empty() => {
                found = Some((c, ext));
                break;
            }
            Ok(_) | Err(ErofsError::NotFound { .. }) | Err(ErofsError::WrongType { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let Some((file, extents)) = found else {
        return Err(TamperError::NoCandidate(
            candidates.iter().map(|s| s.to_string()).collect(),
        ));
    };
    let first = extents[0];
    let offset = first.physical + first.len / 2;
    if let Some(data_end) = image.hash_offset() {
        if offset >= data_end {
            return Err(TamperError::OutsideData {
                file: file.to_string(),
                offset,
                data_end,
            });
        }
    }
    Ok(FileByte {
        file: file.to_string(),
        offset,
        file_offset: first.logical + first.len / 2,
    })
}

/// Copy `image`'s rootfs.img to `dest` (its directory created).
pub fn copy_rootfs(image: &Image, dest: &Path) -> Result<(), TamperError> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }
    std::fs::copy(&image.rootfs, dest).map_err(io("copying rootfs to", dest))?;
    Ok(())
}

/// Copy `image`'s rootfs.img to `dest` and flip one byte in the middle of the first of
/// `candidates` that exists as a non-empty regular file.
pub fn tamper_root(
    image: &Image,
    candidates: &[&str],
    dest: &Path,
) -> Result<TamperedRoot, TamperError> {
    let at = locate(image, candidates)?;
    copy_rootfs(image, dest)?;
    let (before, after) = flip_byte(dest, at.offset)?;
    Ok(TamperedRoot {
        rootfs: dest.to_path_buf(),
        file: at.file,
        offset: at.offset,
        file_offset: at.file_offset,
        before,
        after,
    })
}

/// Invert the byte at `offset` of `path`; returns (before, after).
pub fn flip_byte(path: &Path, offset: u64) -> Result<(u8, u8), TamperError> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("opening", path))?;
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset)
        .map_err(io("reading", path))?;
    let after = !b[0];
    f.write_all_at(&[after], offset)
        .map_err(io("writing", path))?;
    f.sync_all().map_err(io("syncing", path))?;
    Ok((b[0], after))
}

fn run_pyre(pyre: &Path, args: &[&std::ffi::OsStr]) -> Result<(), TamperError> {
    let command = format!(
        "{} {}",
        pyre.display(),
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = Command::new(pyre)
        .args(args)
        .output()
        .map_err(io("running", pyre))?;
    if !out.status.success() {
        return Err(TamperError::Pyre {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// An initrd whose /etc/pyre/manifest.sig is the image's manifest signed by a freshly made
/// key that the initramfs does not trust. Work files go to `work`.
pub fn initrd_signed_by_other_key(
    image: &Image,
    pyre: Option<&Path>,
    work: &Path,
) -> Result<PathBuf, TamperError> {
    let pyre = pyre.ok_or(TamperError::NoPyre)?;
    std::fs::create_dir_all(work).map_err(io("creating", work))?;
    let key = work.join("other.key");
    for stale in [key.clone(), work.join("other.key.pub")] {
        let _ = std::fs::remove_file(stale);
    }
    run_pyre(pyre, &["keygen".as_ref(), "-o".as_ref(), key.as_os_str()])?;
    let manifest = work.join("manifest");
    std::fs::copy(&image.manifest, &manifest).map_err(io("copying manifest to", &manifest))?;
    run_pyre(
        pyre,
        &[
            "sign".as_ref(),
            manifest.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ],
    )?;
    let sig_path = work.join("manifest.sig");
    let sig = std::fs::read(&sig_path).map_err(io("reading", &sig_path))?;
    let original =
        std::fs::read(&image.manifest_sig).map_err(io("reading", &image.manifest_sig))?;
    if sig == original {
        return Err(TamperError::SameSignature { key });
    }
    let dest = work.join("initrd.img");
    overlay_initrd(
        &image.initrd,
        &dest,
        &[Entry::file("etc/pyre/manifest.sig", 0o644, sig)],
    )?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erofs::tests::{build_image, read_file};
    use crate::image::Cmdline;

    fn image_at(rootfs: &Path) -> Image {
        Image {
            dir: rootfs.parent().unwrap().into(),
            vmlinuz: "/none".into(),
            initrd: "/none".into(),
            rootfs: rootfs.into(),
            manifest: "/none".into(),
            manifest_sig: "/none".into(),
            cmdline: Cmdline::parse("ro"),
        }
    }

    #[test]
    fn changes_one_byte_of_the_chosen_file_only() {
        let (dir, rootfs, tree) = build_image();
        let image = image_at(&rootfs);
        let dest = dir.path().join("work/tampered.img");
        let t = tamper_root(&image, &["/missing", "/usr/lib", "/usr/lib/big.bin"], &dest).unwrap();
        assert_eq!(t.file, "/usr/lib/big.bin");
        assert_ne!(t.before, t.after);
        let orig = std::fs::read(&rootfs).unwrap();
        let new = std::fs::read(&dest).unwrap();
        let diffs: Vec<usize> = (0..orig.len()).filter(|&i| orig[i] != new[i]).collect();
        assert_eq!(diffs, [t.offset as usize]);
        let want = std::fs::read(tree.join("usr/lib/big.bin")).unwrap();
        let got = read_file(&dest, "/usr/lib/big.bin");
        let changed: Vec<usize> = (0..want.len()).filter(|&i| want[i] != got[i]).collect();
        assert_eq!(changed, [t.file_offset as usize]);
        // A small (inline) file works too.
        let t = tamper_root(&image, &["/usr/lib/os-release"], &dest).unwrap();
        let got = read_file(&dest, "/usr/lib/os-release");
        assert_ne!(got, b"NAME=\"Test\"\nID=test\n");
        assert_eq!(t.file, "/usr/lib/os-release");
    }

    #[test]
    fn refuses_when_no_candidate_or_outside_data() {
        let (dir, rootfs, _tree) = build_image();
        let mut image = image_at(&rootfs);
        let dest = dir.path().join("t.img");
        let e = tamper_root(&image, &["/nope", "/etc/empty"], &dest).unwrap_err();
        assert_eq!(
            e.to_string(),
            "none of [\"/nope\", \"/etc/empty\"] is a non-empty regular file of the image"
        );
        image.cmdline = Cmdline::parse("pyre.verity.hash-offset=4096");
        let e = tamper_root(&image, &["/usr/lib/big.bin"], &dest).unwrap_err();
        assert!(
            e.to_string()
                .contains("past the erofs data that ends at 4096"),
            "{e}"
        );
    }

    #[test]
    fn resigning_needs_a_pyre_binary() {
        let (dir, rootfs, _tree) = build_image();
        let e = initrd_signed_by_other_key(&image_at(&rootfs), None, dir.path()).unwrap_err();
        assert!(e.to_string().contains("make static"), "{e}");
    }
}

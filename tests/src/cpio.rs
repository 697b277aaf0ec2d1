//! Writing "newc" cpio archives, and overlaying files on an initramfs: the kernel unpacks
//! concatenated archives in order, so an archive appended to initrd.img replaces its files.
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("cpio name {0:?} is not relative or contains NUL")]
    BadName(String),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One archive member.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative path inside the archive, e.g. `etc/pyre/manifest.sig`.
    pub name: String,
    /// Full st_mode, type bits included (0o100644 for a file, 0o040755 for a directory).
    pub mode: u32,
    pub data: Vec<u8>,
}

impl Entry {
    pub fn file(name: &str, mode: u32, data: impl Into<Vec<u8>>) -> Entry {
        Entry {
            name: name.to_string(),
            mode: 0o100000 | (mode & 0o7777),
            data: data.into(),
        }
    }
    pub fn dir(name: &str, mode: u32) -> Entry {
        Entry {
            name: name.to_string(),
            mode: 0o040000 | (mode & 0o7777),
            data: Vec::new(),
        }
    }
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, size: usize, name: &str) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        size as u32,
        0, // devmajor
        0, // devminor
        0, // rdevmajor
        0, // rdevminor
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

/// A complete newc archive (with its TRAILER!!! entry) holding `entries` in order.
pub fn newc(entries: &[Entry]) -> Result<Vec<u8>, CpioError> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.name.is_empty() || e.name.starts_with('/') || e.name.contains('\0') {
            return Err(CpioError::BadName(e.name.clone()));
        }
        let nlink = if e.mode & 0o170000 == 0o040000 { 2 } else { 1 };
        header(&mut out, i as u32 + 1, e.mode, nlink, e.data.len(), &e.name);
        out.extend_from_slice(&e.data);
        pad4(&mut out);
    }
    header(&mut out, 0, 0, 1, 0, "TRAILER!!!");
    Ok(out)
}

/// Write a copy of `initrd` to `dest` followed by an archive of `entries`, so that the booted
/// initramfs sees `entries` in place of (or in addition to) its own files.
pub fn overlay_initrd(initrd: &Path, dest: &Path, entries: &[Entry]) -> Result<(), CpioError> {
    let io = |source| CpioError::Io {
        path: dest.to_path_buf(),
        source,
    };
    let extra = newc(entries)?;
    std::fs::copy(initrd, dest).map_err(io)?;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dest)
        .map_err(io)?;
    // Archives must start 4-byte aligned; the kernel skips zero padding between them.
    let len = f.metadata().map_err(io)?.len();
    let pad = (512 - len % 512) % 512;
    f.write_all(&vec![0u8; pad as usize]).map_err(io)?;
    f.write_all(&extra).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn have_cpio() -> bool {
        Command::new("cpio")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok()
    }

    /// GNU cpio reads our archive back: names, modes and contents.
    #[test]
    fn gnu_cpio_extracts_our_archive() {
        assert!(have_cpio(), "cpio is needed for this test (make deps)");
        let dir = tempfile::tempdir().unwrap();
        let archive = newc(&[
            Entry::dir("etc", 0o755),
            Entry::dir("etc/pyre", 0o755),
            Entry::file("etc/pyre/manifest.sig", 0o644, b"sig-bytes".to_vec()),
            Entry::file("etc/odd", 0o600, b"12345".to_vec()),
        ])
        .unwrap();
        assert_eq!(archive.len() % 4, 0);
        let mut child = Command::new("cpio")
            .args(["-i", "-d", "--quiet", "--no-absolute-filenames"])
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&archive).unwrap();
        assert!(child.wait().unwrap().success());
        let sig = dir.path().join("etc/pyre/manifest.sig");
        assert_eq!(std::fs::read(&sig).unwrap(), b"sig-bytes");
        assert_eq!(std::fs::read(dir.path().join("etc/odd")).unwrap(), b"12345");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("etc/odd"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// Like the kernel, `cpio -i` over the concatenation lets the later member win.
    #[test]
    fn overlay_replaces_a_file_of_the_first_archive() {
        assert!(have_cpio(), "cpio is needed for this test (make deps)");
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("initrd.img");
        std::fs::write(
            &base,
            newc(&[
                Entry::dir("etc", 0o755),
                Entry::file("etc/a", 0o644, b"old".to_vec()),
                Entry::file("etc/b", 0o644, b"keep".to_vec()),
            ])
            .unwrap(),
        )
        .unwrap();
        let over = dir.path().join("over.img");
        overlay_initrd(
            &base,
            &over,
            &[Entry::file("etc/a", 0o644, b"new!".to_vec())],
        )
        .unwrap();
        let out = dir.path().join("x");
        std::fs::create_dir(&out).unwrap();
        // GNU cpio stops at the first trailer; read each archive in turn like the kernel does.
        let bytes = std::fs::read(&over).unwrap();
        let first_len = std::fs::metadata(&base).unwrap().len() as usize;
        let second = bytes[first_len..].iter().position(|&b| b != 0).unwrap() + first_len;
        assert_eq!(second % 512, 0);
        for part in [&bytes[..first_len], &bytes[second..]] {
            let mut child = Command::new("cpio")
                .args(["-i", "-d", "-u", "--quiet"])
                .current_dir(&out)
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(part).unwrap();
            assert!(child.wait().unwrap().success());
        }
        assert_eq!(std::fs::read(out.join("etc/a")).unwrap(), b"new!");
        assert_eq!(std::fs::read(out.join("etc/b")).unwrap(), b"keep");
    }

    #[test]
    fn bad_names_are_refused() {
        let err = newc(&[Entry::file("/abs", 0o644, Vec::new())]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cpio name \"/abs\" is not relative or contains NUL"
        );
    }
}

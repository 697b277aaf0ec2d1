//! An initramfs that is not pyre's, for the fail-closed readiness scenarios: the image's own
//! initrd.img (its modules and modules.load) with /init replaced by `plain_init.c`, which
//! mounts the root without dm-verity or any check and starts systemd. What such a boot may
//! still do is up to pyre-verified.service (docs: systemd/README.md).
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cpio::{overlay_initrd, CpioError, Entry};
use crate::image::{Cmdline, Image};

/// The source of the stand-in /init.
pub const SOURCE: &str = include_str!("plain_init.c");

/// The prefix of plain_init.c's console lines.
pub const MARKER: &str = "plain-init: ";

#[derive(Debug, thiserror::Error)]
pub enum PlainError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`cc -static` of {source_path} failed (gcc and libc6-dev: make deps): {stderr}")]
    Compile {
        source_path: PathBuf,
        stderr: String,
    },
    #[error(transparent)]
    Cpio(#[from] CpioError),
}

/// Compile plain_init.c statically into `work` and write `work/initrd-plain.img`.
pub fn plain_initrd(image: &Image, work: &Path) -> Result<PathBuf, PlainError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| PlainError::Io { what, path, source }
    };
    std::fs::create_dir_all(work).map_err(io("creating", work))?;
    let src = work.join("plain_init.c");
    std::fs::write(&src, SOURCE).map_err(io("writing", &src))?;
    let bin = work.join("plain-init");
    let out = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()))
        .args(["-static", "-Os", "-Wall", "-Werror", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .map_err(io("running cc for", &src))?;
    if !out.status.success() {
        return Err(PlainError::Compile {
            source_path: src,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let init = std::fs::read(&bin).map_err(io("reading", &bin))?;
    let dest = work.join("initrd-plain.img");
    overlay_initrd(&image.initrd, &dest, &[Entry::file("init", 0o755, init)])?;
    Ok(dest)
}

/// The kernel command line of an image built by other tooling: the root device and `ro`, no
/// pyre parameters; plus systemd's own log on the console, because the live check ends after
/// the login prompt, when systemd no longer prints status lines there (seen with systemd 252),
/// and the scenarios read the unit's exit status and the target's job result from its log
/// (`systemd.log_target=console systemd.log_level=info systemd.show_status=false`: the log in
/// full, instead of the status lines).
pub fn plain_cmdline() -> Cmdline {
    Cmdline::parse("root=/dev/vda ro systemd.log_target=console systemd.log_level=info systemd.show_status=false")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stand_in_init_compiles_statically() {
        let dir = tempfile::tempdir().unwrap();
        let initrd = dir.path().join("initrd.img");
        std::fs::write(&initrd, crate::cpio::newc(&[]).unwrap()).unwrap();
        let image = Image {
            dir: dir.path().into(),
            vmlinuz: "/none".into(),
            initrd,
            rootfs: "/none".into(),
            manifest: "/none".into(),
            manifest_sig: "/none".into(),
            cmdline: Cmdline::parse("ro"),
        };
        let out = plain_initrd(&image, &dir.path().join("work")).unwrap();
        let bytes = std::fs::read(out).unwrap();
        assert!(bytes.windows(4).any(|w| w == b"init"));
        assert!(plain_cmdline().to_string().starts_with("root=/dev/vda ro "));
    }
}

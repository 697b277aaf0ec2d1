//! The real machine, over nix and libc.
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use super::dm::{self, DmReply, DmRequest};
use super::{
    Clock, Console, Devices, Files, Handover, Lifecycle, Modules, Mounts, MsFlags, Power, Shutdown,
    Stop,
};
use crate::sys::atomic;

fn nix_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// The real machine. Its mount, device and handover calls are only ever used by PID 1 (see
/// `cmd::init`, which refuses otherwise); `pyre boot` uses its clock, modules and [`Lifecycle`].
pub struct RealHost;

impl Mounts for RealHost {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data).map_err(nix_err)
    }
}

impl Files for RealHost {
    fn mkdir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        atomic::write(path, contents, atomic::Options::REPLACE)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

impl Devices for RealHost {
    fn mknod_block(&self, path: &Path, major: u32, minor: u32) -> io::Result<()> {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        let dev = makedev(major.into(), minor.into());
        mknod(path, SFlag::S_IFBLK, Mode::from_bits_truncate(0o600), dev).map_err(nix_err)
    }

    fn dm(&self, control: &Path, request: &DmRequest) -> io::Result<DmReply> {
        let invalid = |e: dm::DmError| io::Error::new(io::ErrorKind::InvalidInput, e);
        let mut buf = request.encode().map_err(invalid)?;
        dm_ioctl(control, request.cmd().request(), &mut buf)?;
        let reply = dm::decode(&buf).map_err(invalid)?;
        let status = match request {
            DmRequest::Status { .. } => reply.target.map(|t| (t.target_type, t.params)),
            _ => None,
        };
        Ok(DmReply {
            dev: reply.dev,
            status,
        })
    }
}

impl Modules for RealHost {
    fn finit_module(&self, path: &Path) -> io::Result<()> {
        // MODULE_INIT_COMPRESSED_FILE: let the kernel decompress .ko.xz/.ko.zst itself.
        const COMPRESSED: libc::c_int = 4;
        let name = path.to_string_lossy();
        let flags = if [".xz", ".zst", ".gz"].iter().any(|s| name.ends_with(s)) {
            COMPRESSED
        } else {
            0
        };
        let file = std::fs::File::open(path)?;
        // SAFETY: finit_module reads from a valid open fd and a NUL-terminated empty string.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                file.as_raw_fd(),
                c"".as_ptr(),
                flags,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Clock for RealHost {
    fn now(&self) -> Duration {
        use nix::time::{clock_gettime, ClockId};
        clock_gettime(ClockId::CLOCK_MONOTONIC)
            .map(Duration::from)
            .unwrap_or_default()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

impl Console for RealHost {
    fn attach_console(&self, console: &Path) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(console)?;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors; f stays open until the end.
            if unsafe { libc::dup2(f.as_raw_fd(), fd) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// On stderr (the console) and, best effort, in the kernel log, so the boot stages reach
    /// the log receivers once the daemon ships /dev/kmsg (before /dev is mounted, or when the
    /// kernel refuses, only the console has them).
    fn console(&self, line: &str) {
        let _ = io::stderr()
            .lock()
            .write_all(format!("{line}\n").as_bytes());
        if let Ok(mut kmsg) = std::fs::OpenOptions::new().write(true).open(KMSG) {
            for record in kmsg_records(line) {
                let _ = kmsg.write_all(record.as_bytes());
            }
        }
    }
}

/// The kernel log device `console` also writes to.
const KMSG: &str = "/dev/kmsg";

/// One `/dev/kmsg` write per line of `text` (each write is one record): level 6 (info),
/// prefixed `pyre init: ` unless it already names pyre, and cut to what the kernel keeps.
pub fn kmsg_records(text: &str) -> Vec<String> {
    const MAX: usize = 900;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut r = String::from("<6>");
            if !l.starts_with("pyre") {
                r.push_str("pyre init: ");
            }
            let mut end = l.len().min(MAX);
            while !l.is_char_boundary(end) {
                end -= 1;
            }
            r.push_str(&l[..end]);
            r.push('\n');
            r
        })
        .collect()
}

#[cfg(test)]
mod kmsg_tests {
    use super::kmsg_records;

    #[test]
    fn records() {
        assert_eq!(
            kmsg_records("pyre init: verify: ok (1.2s)"),
            ["<6>pyre init: verify: ok (1.2s)\n"]
        );
        assert_eq!(
            kmsg_records("stage a\n\n  b"),
            ["<6>pyre init: stage a\n", "<6>pyre init:   b\n"]
        );
        let long = "é".repeat(600);
        let r = &kmsg_records(&long)[0];
        assert!(
            r.len() <= 3 + 11 + 900 + 1 && r.ends_with("é\n"),
            "{}",
            r.len()
        );
    }
}

impl Power for RealHost {
    fn sync(&self) {
        nix::unistd::sync()
    }

    fn power_off(&self) -> io::Result<()> {
        use nix::sys::reboot::{reboot, RebootMode};
        match reboot(RebootMode::RB_POWER_OFF) {
            Ok(never) => match never {},
            Err(e) => Err(nix_err(e)),
        }
    }
}

/// How long `systemctl --no-block` may take to queue the job, and how long the orderly shutdown
/// then has to stop this process (systemd stops pyre-boot.service early in the shutdown)
/// before reboot(2) forces it.
pub const SHUTDOWN_FALLBACK: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(90));

impl Lifecycle for RealHost {
    fn shut_down(&self, how: Shutdown) -> io::Result<()> {
        let grace = SHUTDOWN_FALLBACK.1;
        match self.request_shutdown(how) {
            Ok(()) => {
                log::info!(
                    "{} queued with systemd; forcing it in {}s if this process is still running",
                    how.verb(),
                    grace.as_secs()
                );
                std::thread::sleep(grace);
                log::warn!(
                    "the orderly {} did not stop pyre boot: forcing it",
                    how.verb()
                );
            }
            Err(e) => log::warn!("systemctl {}: {e}; forcing it with reboot(2)", how.verb()),
        }
        self.sync();
        self.force_shutdown(how)
    }
}

impl Stop for RealHost {
    fn request_shutdown(&self, how: Shutdown) -> io::Result<()> {
        systemctl(how, SHUTDOWN_FALLBACK.0)
    }

    fn force_shutdown(&self, how: Shutdown) -> io::Result<()> {
        use nix::sys::reboot::{reboot, RebootMode};
        let mode = match how {
            Shutdown::PowerOff => RebootMode::RB_POWER_OFF,
            Shutdown::Reboot => RebootMode::RB_AUTOBOOT,
            Shutdown::Halt => RebootMode::RB_HALT_SYSTEM,
        };
        match reboot(mode) {
            Ok(never) => match never {},
            Err(e) => Err(nix_err(e)),
        }
    }
}

/// `systemctl --no-block VERB`, given `bound` to answer.
fn systemctl(how: Shutdown, bound: Duration) -> io::Result<()> {
    let mut child = std::process::Command::new("systemctl")
        .args(["--no-block", how.verb()])
        .stdin(std::process::Stdio::null())
        .spawn()?;
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return if status.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!("exited with {status}")))
            };
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "no answer within {}s",
                bound.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Handover for RealHost {
    fn clear_initramfs(&self, root: &Path) -> io::Result<()> {
        let kind = nix::sys::statfs::statfs(root)
            .map_err(nix_err)?
            .filesystem_type()
            .0;
        const RAMFS_MAGIC: i64 = 0x8584_58f6;
        if ![RAMFS_MAGIC, libc::TMPFS_MAGIC].contains(&kind) {
            return Err(io::Error::other(format!(
                "refusing to clear {}: not the initramfs (ramfs/tmpfs)",
                root.display()
            )));
        }
        super::rootfs::remove_same_fs(root).map(|_| ())
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        nix::unistd::chdir(path).map_err(nix_err)
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        nix::unistd::chroot(path).map_err(nix_err)
    }

    fn fork_child(&self, _what: &str, child: &mut dyn FnMut() -> i32) -> io::Result<u32> {
        // SAFETY: pyre init is single-threaded here (no walk runs before switch_root with the
        // default check), so the child may allocate and start threads; it never returns into
        // the parent's code: it exits with the closure's code.
        match unsafe { nix::unistd::fork() }.map_err(nix_err)? {
            nix::unistd::ForkResult::Parent { child } => Ok(child.as_raw() as u32),
            nix::unistd::ForkResult::Child => {
                let code = child();
                // SAFETY: ends the child without running the parent's exit handlers.
                unsafe { libc::_exit(code) }
            }
        }
    }

    fn execv(&self, path: &Path, args: &[String]) -> io::Result<()> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let bad = |_| io::Error::from_raw_os_error(libc::EINVAL);
        let prog = CString::new(path.as_os_str().as_bytes()).map_err(bad)?;
        let argv = args
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        match nix::unistd::execv(&prog, &argv) {
            Ok(never) => match never {},
            Err(e) => Err(nix_err(e)),
        }
    }
}

/// One device-mapper ioctl on the control node; the kernel's reply overwrites `buf`.
fn dm_ioctl(control: &Path, request: u64, buf: &mut [u8]) -> io::Result<()> {
    let ctl = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(control)?;
    // SAFETY: buf is a live, writable buffer whose first 312 bytes hold a dm_ioctl header
    // whose data_size is at most buf.len(), so the kernel reads and writes inside it.
    let rc = unsafe { libc::ioctl(ctl.as_raw_fd(), request as libc::Ioctl, buf.as_mut_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_host_writes_files_whole() {
        let dir = tempfile::tempdir().unwrap();
        let sig = dir.path().join("manifest.sig");
        RealHost
            .write_file(&dir.path().join("manifest"), b"m")
            .unwrap();
        RealHost.write_file(&sig, b"s").unwrap();
        assert_eq!(std::fs::read(&sig).unwrap(), b"s");
        assert_eq!(std::fs::read(dir.path().join("manifest")).unwrap(), b"m");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temp files left"
        );
    }

    #[test]
    fn real_host_reads_the_monotonic_clock() {
        let a = RealHost.now();
        let b = RealHost.now();
        assert!(a > Duration::ZERO && b >= a);
    }

    #[test]
    fn real_host_refuses_to_clear_a_disk_directory() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        std::fs::write(dir.path().join("keep"), b"x").unwrap();
        // The crate directory is on a disk filesystem, never ramfs/tmpfs.
        let err = RealHost.clear_initramfs(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not the initramfs"), "{err}");
        assert!(dir.path().join("keep").exists());
    }
}

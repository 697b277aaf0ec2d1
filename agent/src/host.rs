//! The narrow side-effect surface of `pyre init`: every call that changes the machine goes
//! through [`Host`], so the boot logic runs unchanged against [`RealHost`] (nix/libc, only
//! ever as PID 1 in a guest) and [`RecordingHost`] (unit tests: records each call, answers
//! from a script, fails on demand).
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use nix::mount::MsFlags;

/// Side effects needed to bring up the root and hand over to systemd.
pub trait Host {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// Create a directory and its parents; an existing directory is fine.
    fn mkdir_all(&self, path: &Path) -> io::Result<()>;
    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()>;
    /// Create a block device node (mode 0600).
    fn mknod_block(&self, path: &Path, major: u32, minor: u32) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    /// Load a kernel module from a file (finit_module(2)).
    fn finit_module(&self, path: &Path) -> io::Result<()>;
    /// One device-mapper ioctl on the control node; the kernel's reply overwrites `buf`.
    fn dm_ioctl(&self, control: &Path, request: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Point stdin, stdout and stderr at the console device.
    fn attach_console(&self, console: &Path) -> io::Result<()>;
    /// Print one line on the console.
    fn console(&self, line: &str);
    /// Monotonic clock (seconds since boot).
    fn now(&self) -> Duration;
    fn sleep(&self, d: Duration);
    /// Delete everything under `root` on root's own filesystem, leaving mount points alone.
    /// Refuses unless `root` is the initramfs (ramfs or tmpfs).
    fn clear_initramfs(&self, root: &Path) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    fn chroot(&self, path: &Path) -> io::Result<()>;
    /// Replace this process; returns only on failure.
    fn execv(&self, path: &Path, args: &[String]) -> io::Result<()>;
    fn sync(&self);
    fn power_off(&self) -> io::Result<()>;
}

fn nix_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// The real machine. Only ever used by PID 1 (see `cmd::init`, which refuses otherwise).
pub struct RealHost;

impl Host for RealHost {
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

    fn mkdir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        crate::sys::atomic::write(path, contents, crate::sys::atomic::Options::REPLACE)
    }

    fn mknod_block(&self, path: &Path, major: u32, minor: u32) -> io::Result<()> {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        let dev = makedev(major.into(), minor.into());
        mknod(path, SFlag::S_IFBLK, Mode::from_bits_truncate(0o600), dev).map_err(nix_err)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

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

    fn dm_ioctl(&self, control: &Path, request: u64, buf: &mut [u8]) -> io::Result<()> {
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

    fn console(&self, line: &str) {
        let _ = io::stderr()
            .lock()
            .write_all(format!("{line}\n").as_bytes());
    }

    fn now(&self) -> Duration {
        use nix::time::{clock_gettime, ClockId};
        clock_gettime(ClockId::CLOCK_MONOTONIC)
            .map(Duration::from)
            .unwrap_or_default()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }

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
        crate::init::rootfs::remove_same_fs(root).map(|_| ())
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        nix::unistd::chdir(path).map_err(nix_err)
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        nix::unistd::chroot(path).map_err(nix_err)
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

/// One recorded call of [`RecordingHost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Mount {
        source: Option<String>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Mkdir(PathBuf),
    WriteFile {
        path: PathBuf,
        contents: Vec<u8>,
    },
    Mknod {
        path: PathBuf,
        major: u32,
        minor: u32,
    },
    FinitModule(PathBuf),
    DmIoctl {
        control: PathBuf,
        request: u64,
        buf: Vec<u8>,
    },
    AttachConsole(PathBuf),
    ClearInitramfs(PathBuf),
    Chdir(PathBuf),
    Chroot(PathBuf),
    Execv {
        path: PathBuf,
        args: Vec<String>,
    },
    Sync,
    PowerOff,
}

type FailRule = Box<dyn Fn(&Op) -> Option<i32>>;

/// A host for unit tests: records every call in order, keeps a fake clock that `sleep`
/// advances, reports as existing only the paths it was told about (optionally from a given
/// time on), answers device-mapper ioctls with a fixed dev_t, and fails calls that a rule
/// matches with the rule's errno.
pub struct RecordingHost {
    ops: RefCell<Vec<Op>>,
    lines: RefCell<Vec<String>>,
    clock: Cell<Duration>,
    present: RefCell<HashSet<PathBuf>>,
    appearing: RefCell<Vec<(PathBuf, Duration)>>,
    rules: RefCell<Vec<FailRule>>,
    /// dev_t written into every successful device-mapper reply (huge_encode_dev form).
    pub dm_dev: Cell<u64>,
}

impl Default for RecordingHost {
    fn default() -> Self {
        RecordingHost {
            ops: RefCell::default(),
            lines: RefCell::default(),
            clock: Cell::new(Duration::from_secs(1)),
            present: RefCell::default(),
            appearing: RefCell::default(),
            rules: RefCell::default(),
            dm_dev: Cell::new(254 << 8),
        }
    }
}

impl RecordingHost {
    pub fn new() -> Self {
        Self::default()
    }
    /// `exists(path)` is true from now on.
    pub fn add_path(&self, path: impl Into<PathBuf>) {
        self.present.borrow_mut().insert(path.into());
    }
    /// `exists(path)` becomes true once the fake clock has advanced by `after`.
    pub fn add_path_after(&self, path: impl Into<PathBuf>, after: Duration) {
        self.appearing
            .borrow_mut()
            .push((path.into(), self.clock.get() + after));
    }
    /// Calls for which `rule` returns Some(errno) fail with that errno (after being recorded).
    pub fn fail_when(&self, rule: impl Fn(&Op) -> Option<i32> + 'static) {
        self.rules.borrow_mut().push(Box::new(rule));
    }
    pub fn ops(&self) -> Vec<Op> {
        self.ops.borrow().clone()
    }
    pub fn lines(&self) -> Vec<String> {
        self.lines.borrow().clone()
    }
    pub fn elapsed(&self) -> Duration {
        self.clock.get()
    }

    fn record(&self, op: Op) -> io::Result<()> {
        let errno = self.rules.borrow().iter().find_map(|r| r(&op));
        self.ops.borrow_mut().push(op);
        match errno {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(()),
        }
    }
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_string)
}

impl Host for RecordingHost {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        let target = target.to_path_buf();
        self.record(Op::Mount {
            source: owned(source),
            target,
            fstype: owned(fstype),
            flags,
            data: owned(data),
        })
    }
    fn mkdir_all(&self, path: &Path) -> io::Result<()> {
        self.record(Op::Mkdir(path.to_path_buf()))
    }
    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        self.record(Op::WriteFile {
            path: path.to_path_buf(),
            contents: contents.to_vec(),
        })
    }
    fn mknod_block(&self, path: &Path, major: u32, minor: u32) -> io::Result<()> {
        self.record(Op::Mknod {
            path: path.to_path_buf(),
            major,
            minor,
        })
    }
    fn exists(&self, path: &Path) -> bool {
        let now = self.clock.get();
        self.present.borrow().contains(path)
            || self
                .appearing
                .borrow()
                .iter()
                .any(|(p, t)| p == path && now >= *t)
    }
    fn finit_module(&self, path: &Path) -> io::Result<()> {
        self.record(Op::FinitModule(path.to_path_buf()))
    }
    fn dm_ioctl(&self, control: &Path, request: u64, buf: &mut [u8]) -> io::Result<()> {
        self.record(Op::DmIoctl {
            control: control.to_path_buf(),
            request,
            buf: buf.to_vec(),
        })?;
        let at = crate::init::dm::DM_DEV_OFFSET;
        buf[at..at + 8].copy_from_slice(&self.dm_dev.get().to_ne_bytes());
        Ok(())
    }
    fn attach_console(&self, console: &Path) -> io::Result<()> {
        self.record(Op::AttachConsole(console.to_path_buf()))
    }
    fn console(&self, line: &str) {
        self.lines.borrow_mut().push(line.to_string());
    }
    fn now(&self) -> Duration {
        self.clock.get()
    }
    fn sleep(&self, d: Duration) {
        self.clock.set(self.clock.get() + d);
    }
    fn clear_initramfs(&self, root: &Path) -> io::Result<()> {
        self.record(Op::ClearInitramfs(root.to_path_buf()))
    }
    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.record(Op::Chdir(path.to_path_buf()))
    }
    fn chroot(&self, path: &Path) -> io::Result<()> {
        self.record(Op::Chroot(path.to_path_buf()))
    }
    fn execv(&self, path: &Path, args: &[String]) -> io::Result<()> {
        self.record(Op::Execv {
            path: path.to_path_buf(),
            args: args.to_vec(),
        })
    }
    fn sync(&self) {
        let _ = self.record(Op::Sync);
    }
    fn power_off(&self) -> io::Result<()> {
        self.record(Op::PowerOff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_host_records_fails_and_keeps_time() {
        let h = RecordingHost::new();
        h.fail_when(|op| matches!(op, Op::Chroot(_)).then_some(libc::EPERM));
        h.add_path_after("/dev/vda", Duration::from_millis(50));
        assert!(!h.exists(Path::new("/dev/vda")));
        h.sleep(Duration::from_millis(50));
        assert!(h.exists(Path::new("/dev/vda")));
        h.chdir(Path::new("/a")).unwrap();
        let err = h.chroot(Path::new("/b")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        assert_eq!(
            h.ops(),
            vec![Op::Chdir("/a".into()), Op::Chroot("/b".into())]
        );
    }

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

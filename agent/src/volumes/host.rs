//! The side effects of the volume stage behind one narrow trait: reading block devices,
//! the mount table, creating mountpoints, mounting, running mkfs/grow tools, the clock and
//! block-device uevents. [`RealVolumeHost`] does them; tests use the recording fake.
use std::io::{self, Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use nix::mount::MsFlags;

/// A device opened for reading.
pub trait BlockRead: Read + Seek + Send {}
impl<T: Read + Seek + Send> BlockRead for T {}

/// What a command printed (stdout then stderr) and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit status; `None` when killed by a signal.
    pub status: Option<i32>,
    pub output: String,
}

pub trait VolumeHost: Sync {
    /// Open a block device read-only (probing never writes).
    fn open_read(&self, node: &Path) -> io::Result<Box<dyn BlockRead>>;
    /// Device number of the block device at `path`, following symlinks; an error when it
    /// is not a block device.
    fn block_devnum(&self, path: &Path) -> io::Result<(u32, u32)>;
    /// The mount table of the calling thread's mount namespace.
    fn mountinfo(&self) -> io::Result<Vec<u8>>;
    /// Create a directory and its parents; an existing directory is fine.
    fn mkdir_all(&self, path: &Path) -> io::Result<()>;
    /// The path with every symlink resolved.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
    fn mount(
        &self,
        source: &Path,
        target: &Path,
        fstype: &str,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// Run a program (from PATH) with stdin closed; collect its output.
    fn run(&self, program: &str, args: &[String]) -> io::Result<CommandOutput>;
    /// Monotonic clock.
    fn now(&self) -> Duration;
    /// Wait up to `timeout` for a block-device uevent; true if one came. Callers rescan
    /// either way, so a host without uevents simply polls.
    fn wait_uevent(&self, timeout: Duration) -> bool;
}

/// The running machine.
#[derive(Default)]
pub struct RealVolumeHost {
    /// NETLINK_KOBJECT_UEVENT socket, opened on first wait; `Err` once opening failed.
    uevents: Mutex<Option<Result<OwnedFd, ()>>>,
}

impl RealVolumeHost {
    pub fn new() -> Self {
        Self::default()
    }
}

fn uevent_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_KOBJECT_UEVENT,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_nl is valid; we set family and the kernel-events group.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_groups = 1;
    // SAFETY: addr is a live sockaddr_nl of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Read every queued uevent; true if one was about a block device.
fn drain_block_events(fd: &OwnedFd) -> bool {
    let mut any = false;
    let mut buf = vec![0u8; 8192];
    loop {
        // SAFETY: buf is a live writable buffer of the length passed.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return any;
        }
        let msg = &buf[..n as usize];
        any |= msg.split(|b| *b == 0).any(|f| f == b"SUBSYSTEM=block");
    }
}

impl VolumeHost for RealVolumeHost {
    fn open_read(&self, node: &Path) -> io::Result<Box<dyn BlockRead>> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(node)?;
        Ok(Box::new(f))
    }

    fn block_devnum(&self, path: &Path) -> io::Result<(u32, u32)> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = std::fs::metadata(path)?;
        if !m.file_type().is_block_device() {
            return Err(io::Error::from_raw_os_error(libc::ENOTBLK));
        }
        let rdev = m.rdev();
        Ok((libc::major(rdev), libc::minor(rdev)))
    }

    fn mountinfo(&self) -> io::Result<Vec<u8>> {
        std::fs::read("/proc/thread-self/mountinfo")
    }

    fn mkdir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }

    fn mount(
        &self,
        source: &Path,
        target: &Path,
        fstype: &str,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        nix::mount::mount(Some(source), target, Some(fstype), flags, data)
            .map_err(|e| io::Error::from_raw_os_error(e as i32))
    }

    fn run(&self, program: &str, args: &[String]) -> io::Result<CommandOutput> {
        let out = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()?;
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok(CommandOutput {
            status: out.status.code(),
            output,
        })
    }

    fn now(&self) -> Duration {
        use nix::time::{clock_gettime, ClockId};
        clock_gettime(ClockId::CLOCK_MONOTONIC)
            .map(Duration::from)
            .unwrap_or_default()
    }

    fn wait_uevent(&self, timeout: Duration) -> bool {
        let mut guard = self.uevents.lock().unwrap_or_else(|e| e.into_inner());
        let sock = guard.get_or_insert_with(|| {
            uevent_socket().map_err(|e| {
                log::debug!("no uevent socket ({e}); polling sysfs instead");
            })
        });
        let Ok(fd) = sock else {
            drop(guard);
            std::thread::sleep(timeout);
            return false;
        };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one live pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        rc > 0 && drain_block_events(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_host_waits_at_most_the_timeout() {
        let h = RealVolumeHost::new();
        let t0 = h.now();
        h.wait_uevent(Duration::from_millis(30));
        let took = h.now() - t0;
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn real_host_refuses_a_non_block_device() {
        let e = RealVolumeHost::new()
            .block_devnum(Path::new("/proc/thread-self/mountinfo"))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTBLK));
    }
}

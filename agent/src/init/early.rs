//! The content read, started early: with the default root check (`read`), `pyre init` forks a
//! child just before switch_root that reads the whole dm-verity device (as
//! [`super::device::read_device`] does) while systemd starts, and leaves what it found in
//! `/run/pyre/content-read.json`. pyre-content.service ([`super::content`]) takes that result
//! instead of reading the device again; when the child is gone without one (killed, failed to
//! start), it reads the device itself. Under emulation systemd's own start takes several
//! seconds with a core mostly idle: the read runs there, not beside the units readiness waits
//! for (docs/boot.md, "The root check's cost").
//!
//! The child keeps the initramfs as its root after switch_root, so it works on descriptors
//! opened before the fork: the device, and /run/pyre, which it writes the result into (a
//! temporary name, then renamed).
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::device::{self, open_device, DeviceRead};
use crate::host::{Clock, Host};

/// The result's file name in /run/pyre.
pub const RESULT: &str = "content-read.json";
const TMP: &str = ".content-read.json.tmp";
/// How often pyre-content.service looks for the result.
pub const POLL: Duration = Duration::from_millis(100);

/// What the early reader found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EarlyRead {
    /// Seconds since boot (CLOCK_MONOTONIC) when the read started, and how long it took.
    pub started_at: f64,
    pub seconds: f64,
    pub readers: usize,
    #[serde(flatten)]
    pub read: DeviceRead,
}

/// Fork the reader of `device`, its result to go to `run_pyre`. Its pid, or None (logged on
/// the console) when it could not start: pyre-content.service then reads the device itself.
pub fn start(host: &dyn Host, device: &Path, run_pyre: &Path, readers: usize) -> Option<u32> {
    let opened = open_device(device).and_then(|dev| {
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(run_pyre)?;
        Ok((dev, OwnedFd::from(dir)))
    });
    let (dev, dir) = match opened {
        Ok(fds) => fds,
        Err(e) => {
            host.console(&format!(
                "pyre init: content read not started early ({}: {}); pyre-content.service \
                 reads the device",
                device.display(),
                crate::sys::errno::errno_text(&e)
            ));
            return None;
        }
    };
    let started_at = host.now().as_secs_f64();
    let mut child = || {
        let t0 = Instant::now();
        let read = match device::read_file(&dev, readers) {
            Ok(r) => r,
            Err(_) => return 1,
        };
        let result = EarlyRead {
            started_at,
            seconds: t0.elapsed().as_secs_f64(),
            readers,
            read,
        };
        match write_result(&dir, &result) {
            Ok(()) => 0,
            Err(_) => 1,
        }
    };
    match host.fork_child("content-read", &mut child) {
        Ok(pid) => Some(pid),
        Err(e) => {
            host.console(&format!(
                "pyre init: content read not started early (fork: {}); pyre-content.service \
                 reads the device",
                crate::sys::errno::errno_text(&e)
            ));
            None
        }
    }
}

fn write_result(dir: &OwnedFd, result: &EarlyRead) -> io::Result<()> {
    use nix::fcntl::{openat, renameat, OFlag};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC;
    let dirfd = dir.as_raw_fd();
    let fd = openat(Some(dirfd), TMP, flags, Mode::from_bits_truncate(0o644))?;
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let mut f = unsafe { File::from_raw_fd(fd) };
    let mut bytes = serde_json::to_vec_pretty(result).map_err(io::Error::other)?;
    bytes.push(b'\n');
    f.write_all(&bytes)?;
    drop(f);
    renameat(Some(dirfd), TMP, Some(dirfd), RESULT)?;
    Ok(())
}

/// Wait for the early reader `pid`'s result in `run_pyre`: Some once it is there; None when
/// the reader is gone without one (`proc` is procfs, where a live reader has its directory).
/// A result that does not parse is an error.
pub fn wait(
    run_pyre: &Path,
    proc: &Path,
    pid: u32,
    clock: &dyn Clock,
) -> io::Result<Option<EarlyRead>> {
    let path = run_pyre.join(RESULT);
    loop {
        let alive = running(proc, pid);
        match std::fs::read(&path) {
            Ok(bytes) => {
                return serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if !alive {
            return Ok(None);
        }
        clock.sleep(POLL);
    }
}

/// `pid` exists and has not exited (a zombie has state `Z`).
fn running(proc: &Path, pid: u32) -> bool {
    std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::RecordingHost;

    fn result() -> EarlyRead {
        EarlyRead {
            started_at: 4.9,
            seconds: 7.5,
            readers: 2,
            read: DeviceRead {
                bytes: 264_306_688,
                rejected: vec![device::Rejected {
                    offset: 8192,
                    len: 4096,
                    error: "EIO (Input/output error)".into(),
                }],
            },
        }
    }

    #[test]
    fn the_result_is_written_through_the_directory_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let fd = OwnedFd::from(File::open(dir.path()).unwrap());
        write_result(&fd, &result()).unwrap();
        assert!(!dir.path().join(TMP).exists());
        let host = RecordingHost::new();
        // A pid that is not running: the result is there, so it is taken all the same.
        let got = wait(dir.path(), &dir.path().join("proc"), 1, &host).unwrap();
        assert_eq!(got, Some(result()));
        std::fs::write(dir.path().join(RESULT), b"{").unwrap();
        assert!(wait(dir.path(), &dir.path().join("proc"), 1, &host).is_err());
    }

    #[test]
    fn a_reader_gone_without_a_result_gives_none_and_a_live_one_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        let host = RecordingHost::new();
        assert_eq!(wait(dir.path(), &proc, 77, &host).unwrap(), None);
        std::fs::create_dir_all(proc.join("77")).unwrap();
        std::fs::write(proc.join("77/stat"), "77 (pyre) Z 1 77").unwrap();
        assert_eq!(
            wait(dir.path(), &proc, 77, &host).unwrap(),
            None,
            "a zombie"
        );
        std::fs::write(proc.join("77/stat"), "77 (pyre (x)) R 1 77").unwrap();
        assert!(running(&proc, 77));
        let (d, r) = (dir.path().to_path_buf(), result());
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            let fd = OwnedFd::from(File::open(&d).unwrap());
            write_result(&fd, &r).unwrap();
        });
        let got = wait(dir.path(), &proc, 77, &crate::host::RealHost).unwrap();
        writer.join().unwrap();
        assert_eq!(got, Some(result()));
    }

    #[test]
    fn the_reader_is_forked_with_the_device_and_directory_open() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("pyre-root");
        std::fs::write(&device, vec![0u8; 8192]).unwrap();
        let host = RecordingHost::new();
        assert_eq!(start(&host, &device, dir.path(), 1), Some(4242));
        assert_eq!(
            host.ops(),
            [crate::host::Op::ForkChild("content-read".into())]
        );
        let host = RecordingHost::new();
        assert_eq!(
            start(&host, &dir.path().join("absent"), dir.path(), 1),
            None
        );
        assert!(host.ops().is_empty());
        assert!(
            host.lines()[0].contains("not started early"),
            "{:?}",
            host.lines()
        );
    }
}

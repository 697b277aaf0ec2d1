//! The recording fake: one ordered list of typed [`Op`]s across every capability, so a test
//! asserts the exact sequence (mount, then mknod, then dm, …); failures injected by predicate;
//! a fake clock that `sleep` advances. `Sync` (one mutex), so threaded code can share it.
//! Compiled only for tests and with the `test-fake` feature.
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::dm::{DmReply, DmRequest};
use super::{Clock, Console, Devices, Files, Handover, Modules, Mounts, MsFlags, Power};

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
    Dm {
        control: PathBuf,
        request: DmRequest,
    },
    AttachConsole(PathBuf),
    ClearInitramfs(PathBuf),
    Chdir(PathBuf),
    Chroot(PathBuf),
    /// A child forked (not run: its work is tested on its own).
    ForkChild(String),
    Execv {
        path: PathBuf,
        args: Vec<String>,
    },
    Sync,
    PowerOff,
    /// [`super::Lifecycle::shut_down`]: recorded, never done.
    ShutDown(super::Shutdown),
    /// [`super::Stop::request_shutdown`]: recorded, never done.
    RequestShutdown(super::Shutdown),
    /// [`super::Stop::force_shutdown`]: recorded, never done.
    ForceShutdown(super::Shutdown),
}

type FailRule = Box<dyn Fn(&Op) -> Option<i32> + Send + Sync>;

#[derive(Default)]
struct State {
    ops: Vec<Op>,
    lines: Vec<String>,
    clock: Duration,
    present: HashSet<PathBuf>,
    appearing: Vec<(PathBuf, Duration)>,
    rules: Vec<FailRule>,
    /// The target type and status line of DM_TABLE_STATUS replies.
    dm_status: Option<(String, String)>,
}

/// A host for tests: records every call in order, keeps a fake clock that `sleep` advances,
/// reports as existing only the paths it was told about (optionally from a given time on),
/// answers device-mapper requests with a fixed dev_t (after checking they encode), and fails
/// calls that a rule matches with the rule's errno.
pub struct RecordingHost {
    state: Mutex<State>,
    /// dev_t of every successful device-mapper reply (huge_encode_dev form).
    dm_dev: AtomicU64,
}

impl Default for RecordingHost {
    fn default() -> Self {
        RecordingHost {
            state: Mutex::new(State {
                clock: Duration::from_secs(1),
                ..State::default()
            }),
            dm_dev: AtomicU64::new(254 << 8),
        }
    }
}

impl RecordingHost {
    pub fn new() -> Self {
        Self::default()
    }
    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock already failed; keep reading.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// The dev_t device-mapper replies carry from now on.
    pub fn set_dm_dev(&self, dev: u64) {
        self.dm_dev.store(dev, Ordering::Relaxed);
    }
    /// The `(target type, status line)` DM_TABLE_STATUS replies carry from now on.
    pub fn set_dm_status(&self, target_type: &str, status: &str) {
        self.state().dm_status = Some((target_type.into(), status.into()));
    }
    /// `exists(path)` is true from now on.
    pub fn add_path(&self, path: impl Into<PathBuf>) {
        self.state().present.insert(path.into());
    }
    /// `exists(path)` becomes true once the fake clock has advanced by `after`.
    pub fn add_path_after(&self, path: impl Into<PathBuf>, after: Duration) {
        let mut s = self.state();
        let at = s.clock + after;
        s.appearing.push((path.into(), at));
    }
    /// Calls for which `rule` returns Some(errno) fail with that errno (after being recorded).
    pub fn fail_when(&self, rule: impl Fn(&Op) -> Option<i32> + Send + Sync + 'static) {
        self.state().rules.push(Box::new(rule));
    }
    pub fn ops(&self) -> Vec<Op> {
        self.state().ops.clone()
    }
    pub fn lines(&self) -> Vec<String> {
        self.state().lines.clone()
    }
    pub fn elapsed(&self) -> Duration {
        self.state().clock
    }

    fn record(&self, op: Op) -> io::Result<()> {
        let mut s = self.state();
        let errno = s.rules.iter().find_map(|r| r(&op));
        s.ops.push(op);
        match errno {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(()),
        }
    }
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_string)
}

impl Mounts for RecordingHost {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.record(Op::Mount {
            source: owned(source),
            target: target.to_path_buf(),
            fstype: owned(fstype),
            flags,
            data: owned(data),
        })
    }
}

impl Files for RecordingHost {
    fn mkdir_all(&self, path: &Path) -> io::Result<()> {
        self.record(Op::Mkdir(path.to_path_buf()))
    }
    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        self.record(Op::WriteFile {
            path: path.to_path_buf(),
            contents: contents.to_vec(),
        })
    }
    fn exists(&self, path: &Path) -> bool {
        let s = self.state();
        s.present.contains(path) || s.appearing.iter().any(|(p, t)| p == path && s.clock >= *t)
    }
}

impl Devices for RecordingHost {
    fn mknod_block(&self, path: &Path, major: u32, minor: u32) -> io::Result<()> {
        self.record(Op::Mknod {
            path: path.to_path_buf(),
            major,
            minor,
        })
    }
    fn dm(&self, control: &Path, request: &DmRequest) -> io::Result<DmReply> {
        self.record(Op::Dm {
            control: control.to_path_buf(),
            request: request.clone(),
        })?;
        // What the kernel would refuse, the fake refuses too.
        request
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let status = match request {
            DmRequest::Status { .. } => self.state().dm_status.clone(),
            _ => None,
        };
        Ok(DmReply {
            dev: self.dm_dev.load(Ordering::Relaxed),
            status,
        })
    }
}

impl Modules for RecordingHost {
    fn finit_module(&self, path: &Path) -> io::Result<()> {
        self.record(Op::FinitModule(path.to_path_buf()))
    }
}

impl Clock for RecordingHost {
    fn now(&self) -> Duration {
        self.state().clock
    }
    fn sleep(&self, d: Duration) {
        self.state().clock += d;
    }
}

impl Console for RecordingHost {
    fn attach_console(&self, console: &Path) -> io::Result<()> {
        self.record(Op::AttachConsole(console.to_path_buf()))
    }
    fn console(&self, line: &str) {
        self.state().lines.push(line.to_string());
    }
}

impl Power for RecordingHost {
    fn sync(&self) {
        let _ = self.record(Op::Sync);
    }
    fn power_off(&self) -> io::Result<()> {
        self.record(Op::PowerOff)
    }
}

impl super::Lifecycle for RecordingHost {
    fn shut_down(&self, how: super::Shutdown) -> io::Result<()> {
        self.record(Op::ShutDown(how))
    }
}

impl super::Stop for RecordingHost {
    fn request_shutdown(&self, how: super::Shutdown) -> io::Result<()> {
        self.record(Op::RequestShutdown(how))
    }
    fn force_shutdown(&self, how: super::Shutdown) -> io::Result<()> {
        self.record(Op::ForceShutdown(how))
    }
}

impl Handover for RecordingHost {
    fn clear_initramfs(&self, root: &Path) -> io::Result<()> {
        self.record(Op::ClearInitramfs(root.to_path_buf()))
    }
    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.record(Op::Chdir(path.to_path_buf()))
    }
    fn chroot(&self, path: &Path) -> io::Result<()> {
        self.record(Op::Chroot(path.to_path_buf()))
    }
    fn fork_child(&self, what: &str, _child: &mut dyn FnMut() -> i32) -> io::Result<u32> {
        self.record(Op::ForkChild(what.to_string())).map(|()| 4242)
    }
    fn execv(&self, path: &Path, args: &[String]) -> io::Result<()> {
        self.record(Op::Execv {
            path: path.to_path_buf(),
            args: args.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;

    #[test]
    fn records_fails_and_keeps_time() {
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
    fn answers_device_mapper_with_its_dev_and_refuses_bad_names() {
        let h = RecordingHost::new();
        h.set_dm_dev((253 << 8) | 7);
        let ctl = Path::new("/dev/mapper/control");
        let reply = h.dm(ctl, &DmRequest::Create { name: "r".into() }).unwrap();
        assert_eq!(reply.major_minor(), (253, 7));
        let bad = DmRequest::Create { name: "a/b".into() };
        assert!(h.dm(ctl, &bad).is_err());
        assert_eq!(h.ops().len(), 2, "both recorded");
    }

    #[test]
    fn is_one_host_shared_across_threads() {
        fn sync_host<T: Host + Sync + Send>(_: &T) {}
        let h = RecordingHost::new();
        sync_host(&h);
        std::thread::scope(|s| {
            for i in 0..4 {
                let h = &h;
                s.spawn(move || h.mkdir_all(Path::new(&format!("/d{i}"))).unwrap());
            }
        });
        assert_eq!(h.ops().len(), 4);
    }
}

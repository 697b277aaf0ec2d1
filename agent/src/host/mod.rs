//! The side-effect surface: every call that changes the machine goes through one of the small
//! capability traits below, so the logic above them runs unchanged against [`RealHost`]
//! (nix/libc; the mutating calls only ever as PID 1 in a guest) and, in tests, against
//! `RecordingHost` (one ordered list of typed `Op`s, failures injected by
//! predicate, a fake clock).
//!
//! Each capability is its own trait; [`Host`] combines them (with a blanket impl) so that
//! `init` takes one `&dyn Host`. A new capability (block probing, processes, network) adds its
//! own small trait beside these, an implementation in `real.rs`, `Op`s in `recording.rs`, and
//! joins [`Host`] only if `init` needs it; code that needs two capabilities may also take
//! `&(impl Mounts + Clock)` instead of a whole host.
//!
//! The fake is compiled only for this crate's tests and with the non-default `test-fake`
//! feature (for integration tests that want it): release binaries do not contain it.
use std::io;
use std::path::Path;
use std::time::Duration;

pub use nix::mount::MsFlags;

pub mod dm;
mod real;
#[cfg(any(test, feature = "test-fake"))]
pub mod recording;
pub mod rootfs;

pub use dm::{DmReply, DmRequest};
pub use real::{RealHost, SHUTDOWN_FALLBACK};
#[cfg(any(test, feature = "test-fake"))]
pub use recording::{Op, RecordingHost};

/// mount(2).
pub trait Mounts {
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
}

/// Files and directories the logic creates or looks for.
pub trait Files {
    /// Create a directory and its parents; an existing directory is fine.
    fn mkdir_all(&self, path: &Path) -> io::Result<()>;
    /// Replace `path` atomically (see [`crate::sys::atomic`]).
    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
}

/// Device nodes and device-mapper.
pub trait Devices {
    /// Create a block device node (mode 0600).
    fn mknod_block(&self, path: &Path, major: u32, minor: u32) -> io::Result<()>;
    /// One device-mapper request on the control node (`/dev/mapper/control`).
    fn dm(&self, control: &Path, request: &DmRequest) -> io::Result<DmReply>;
}

/// Kernel modules.
pub trait Modules {
    /// Load a kernel module from a file (finit_module(2)); compressed modules are fine.
    fn finit_module(&self, path: &Path) -> io::Result<()>;
}

/// Time, so that deadlines and retries are tested without waiting.
pub trait Clock {
    /// Monotonic clock (time since boot).
    fn now(&self) -> Duration;
    fn sleep(&self, d: Duration);
}

/// The console.
pub trait Console {
    /// Point stdin, stdout and stderr at the console device.
    fn attach_console(&self, console: &Path) -> io::Result<()>;
    /// Print one line on the console.
    fn console(&self, line: &str);
}

/// Flushing and stopping the machine.
pub trait Power {
    fn sync(&self);
    /// Power off; on a real machine it does not return when it works.
    fn power_off(&self) -> io::Result<()>;
}

/// How a running system ends (after switch_root, under systemd): see [`Lifecycle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    PowerOff,
    Reboot,
    /// Stop without powering off: the console stays readable.
    Halt,
}

impl Shutdown {
    /// The systemctl verb (and the name in logs).
    pub fn verb(self) -> &'static str {
        match self {
            Shutdown::PowerOff => "poweroff",
            Shutdown::Reboot => "reboot",
            Shutdown::Halt => "halt",
        }
    }
}

/// Ending the running system when a boot-critical failure says so (`pyre boot`). The real one
/// asks the service manager for an orderly shutdown (`systemctl --no-block poweroff`, so logs
/// are flushed and volumes unmounted) and falls back to reboot(2) when that cannot be queued or
/// has not ended this process within a bound.
pub trait Lifecycle {
    /// Returns once the shutdown is under way (or on failure); the caller then exits.
    fn shut_down(&self, how: Shutdown) -> io::Result<()>;
}

/// Ending the running system in two steps, so the caller owns the bound between them
/// (`pyre daemon`'s response to drift: an orderly shutdown, then reboot(2) if this process is
/// still running when its `stop_bound` has passed). [`Lifecycle`] is the same two steps with
/// a fixed bound.
pub trait Stop {
    /// Queue an orderly shutdown with the service manager (`systemctl --no-block VERB`);
    /// returns once it is queued.
    fn request_shutdown(&self, how: Shutdown) -> io::Result<()>;
    /// reboot(2) now (the caller syncs first, see [`Power::sync`]); on a real machine it does
    /// not return when it works.
    fn force_shutdown(&self, how: Shutdown) -> io::Result<()>;
}

/// The last steps of PID 1 in the initramfs: leave it, free it, enter the new root.
pub trait Handover {
    /// Delete everything under `root` on root's own filesystem, leaving mount points alone.
    /// Refuses unless `root` is the initramfs (ramfs or tmpfs).
    fn clear_initramfs(&self, root: &Path) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    fn chroot(&self, path: &Path) -> io::Result<()>;
    /// Replace this process; returns only on failure.
    fn execv(&self, path: &Path, args: &[String]) -> io::Result<()>;
    /// Fork a child that runs `child` and exits with its code, outliving the exec of the new
    /// init; `what` names it. Returns the child's pid.
    fn fork_child(&self, what: &str, child: &mut dyn FnMut() -> i32) -> io::Result<u32>;
}

/// Every capability `pyre init` uses, as one value.
pub trait Host: Mounts + Files + Devices + Modules + Clock + Console + Power + Handover {}

impl<T> Host for T where
    T: Mounts + Files + Devices + Modules + Clock + Console + Power + Handover + ?Sized
{
}

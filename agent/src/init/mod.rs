//! `pyre init`: PID 1 in the initramfs. Mounts the pseudo-filesystems, loads the modules,
//! opens the root through dm-verity, mounts it read-only, verifies it against the signed
//! manifest and switch_roots into systemd; on any failure it says why on the console and
//! powers the machine off (or halts, with `pyre.debug`). See docs/boot.md.
//!
//! Every side effect goes through [`crate::host::Host`] and every path comes from
//! [`InitPaths`], so the whole sequence and its failure handling run in unit tests.
use std::path::{Path, PathBuf};

use crate::host::Host;
use crate::sys::errno::errno_text;

pub mod boot;
pub mod cmdline;
pub mod content;
pub mod device;
pub mod dm;
pub mod early;
pub mod modules;
pub mod ready;
pub mod record;
pub mod rootdev;
pub mod verify;

#[cfg(test)]
mod boot_failure_tests;
#[cfg(test)]
mod boot_tests;
#[cfg(test)]
mod rootdev_tests;

pub use boot::boot;

/// Name of the device-mapper device and of its node under /dev/mapper.
pub const DM_NAME: &str = crate::host::dm::VERITY_ROOT_NAME;
/// Most drift report lines printed on the (slow, serial) console.
pub const MAX_REPORT_LINES: usize = 200;

/// Every path `pyre init` touches. [`InitPaths::standard`] is the real layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitPaths {
    /// The initramfs root, freed at switch_root.
    pub rootfs: PathBuf,
    pub cmdline: PathBuf,
    pub proc: PathBuf,
    pub sys: PathBuf,
    pub dev: PathBuf,
    pub run: PathBuf,
    /// pyre's files in the initramfs: modules.load, manifest, manifest.sig, keys/*.pub.
    pub etc: PathBuf,
    /// Where the verified root is mounted before switch_root.
    pub sysroot: PathBuf,
    /// The program started in the new root.
    pub init: PathBuf,
}

impl InitPaths {
    pub fn standard() -> InitPaths {
        InitPaths {
            rootfs: "/".into(),
            cmdline: "/proc/cmdline".into(),
            proc: "/proc".into(),
            sys: "/sys".into(),
            dev: "/dev".into(),
            run: "/run".into(),
            etc: "/etc/pyre".into(),
            sysroot: "/sysroot".into(),
            init: "/sbin/init".into(),
        }
    }
    pub fn manifest(&self) -> PathBuf {
        self.etc.join("manifest")
    }
    pub fn signature(&self) -> PathBuf {
        self.etc.join("manifest.sig")
    }
    pub fn keys(&self) -> PathBuf {
        self.etc.join("keys")
    }
    /// The image policy, read from the verified root once it is mounted.
    pub fn policy(&self) -> PathBuf {
        self.sysroot.join("etc/pyre/image.json")
    }
    pub fn modules_list(&self) -> PathBuf {
        self.etc.join("modules.load")
    }
    pub fn dm_control(&self) -> PathBuf {
        self.dev.join("mapper/control")
    }
    pub fn dm_node(&self) -> PathBuf {
        self.dev.join("mapper").join(DM_NAME)
    }
    /// pyre's directory on /run, handed to the booted system.
    pub fn run_pyre(&self) -> PathBuf {
        self.run.join("pyre")
    }
    /// `path` as seen below the new root (`/run` → `/sysroot/run`).
    pub fn in_sysroot(&self, path: &Path) -> PathBuf {
        self.sysroot
            .join(path.strip_prefix(&self.rootfs).unwrap_or(path))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("mounting {what} on {target}: {reason}")]
    Mount {
        what: String,
        target: PathBuf,
        reason: String,
    },
    #[error("reading {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(transparent)]
    Cmdline(#[from] cmdline::CmdlineError),
    #[error(transparent)]
    Modules(#[from] modules::ModulesError),
    #[error(transparent)]
    RootDevice(#[from] rootdev::RootDevError),
    #[error("device-mapper {step} for {name}: {reason}")]
    Dm {
        step: &'static str,
        name: String,
        reason: String,
    },
    #[error("mounting the verity root {device} as erofs on {target}: {reason}{hint}")]
    RootMount {
        device: PathBuf,
        target: PathBuf,
        reason: String,
        hint: &'static str,
    },
    #[error("no trusted public keys (*.pub) in {0}")]
    NoKeys(PathBuf),
    #[error(
        "manifest digest mismatch: {path} is {actual}, the kernel command line pins {expected}"
    )]
    Digest {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Verify(#[from] verify::VerifyFailure),
    #[error("handing over to the root: {step}: {reason}")]
    Handover { step: String, reason: String },
    #[error("switch_root: {step}: {reason}")]
    SwitchRoot { step: String, reason: String },
}

impl InitError {
    /// Stable id of the failure class, printed on the console for alerting.
    pub fn code(&self) -> &'static str {
        use verify::VerifyFailure as V;
        match self {
            InitError::Mount { .. } | InitError::Read { .. } => "PYRE-INIT-SETUP",
            InitError::Cmdline(_) => "PYRE-INIT-CMDLINE",
            InitError::Modules(_) => "PYRE-INIT-MODULES",
            InitError::RootDevice(_) => "PYRE-INIT-ROOT-DEVICE",
            InitError::Dm { .. } => "PYRE-INIT-VERITY",
            InitError::RootMount { .. } => "PYRE-INIT-ROOT-MOUNT",
            InitError::NoKeys(_) | InitError::Verify(V::Signature(_)) => "PYRE-INIT-SIGNATURE",
            InitError::Digest { .. } => "PYRE-INIT-MANIFEST-DIGEST",
            InitError::Verify(V::Drift { .. }) => "PYRE-INIT-DRIFT",
            InitError::Verify(V::Other(_)) => "PYRE-INIT-VERIFY",
            InitError::Handover { .. } | InitError::SwitchRoot { .. } => "PYRE-INIT-HANDOVER",
        }
    }
}

/// What [`refuse_boot`] ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The power-off request was made (on a real machine it does not return).
    PoweredOff,
    /// `pyre.debug`: the machine is left up with the reason on the console.
    Halted,
    /// Powering off failed; the caller must halt.
    PowerOffFailed,
}

/// Say why the boot stops, print the drift report if there is one, sync, and power off
/// (or, with `debug`, stay up). The caller (PID 1) then waits forever: it must never exit.
pub fn refuse_boot(host: &dyn Host, err: &InitError, debug: bool) -> Refusal {
    host.console(&format!("pyre init: BOOT REFUSED [{}]: {err}", err.code()));
    if let InitError::Verify(verify::VerifyFailure::Drift { report, .. }) = err {
        let lines: Vec<&str> = report.lines().collect();
        for line in lines.iter().take(MAX_REPORT_LINES) {
            host.console(line);
        }
        if lines.len() > MAX_REPORT_LINES {
            host.console(&format!(
                "... {} more report lines not shown",
                lines.len() - MAX_REPORT_LINES
            ));
        }
    }
    host.sync();
    if debug {
        host.console(
            "pyre init: pyre.debug is set: not powering off; halted here (there is no shell)",
        );
        return Refusal::Halted;
    }
    host.console("pyre init: powering off");
    match host.power_off() {
        Ok(()) => Refusal::PoweredOff,
        Err(e) => {
            host.console(&format!(
                "pyre init: power off failed: {}; halted",
                errno_text(&e)
            ));
            Refusal::PowerOffFailed
        }
    }
}

/// `pyre.debug` from the command line file, tolerating anything (used when failing).
pub fn debug_from(cmdline_path: &Path) -> bool {
    std::fs::read_to_string(cmdline_path)
        .map(|s| cmdline::debug_requested(&s))
        .unwrap_or(false)
}

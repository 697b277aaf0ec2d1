//! `pyre boot` (pyre-boot.service, after switch_root): fetch this instance's config, verify it,
//! apply it without touching the read-only root, and record what was done; or, on a
//! boot-critical failure, say why and end the instance as the image policy says.
//!
//! The sequence ([`run`]), each stage logged with its duration and kept in the boot record:
//!
//! 1. `settings`: the kernel command line and the image policy (`/etc/pyre/image.json`) →
//!    provider settings (policy deadline and plain-http permission, command-line overrides).
//! 2. `fetch`: the provider (command line, `--config FILE`, else DMI) is checked against the
//!    policy, opened once, and asked for the config and then the instance identity under one
//!    deadline. For `qemu`, `qemu_fw_cfg` is loaded first if sysfs lacks it.
//! 3. `verify`: no config → the policy decides (`config-required`); else `config::load`
//!    (envelope signature against `/etc/pyre/keys`, full validation).
//! 4. `prepare`: everything checked before the first write: files mapped and decoded, owners
//!    resolved, volume specs converted and validated.
//! 5. `hostname` (sethostname(2), early so later log lines carry it), `volumes` (find, probe,
//!    format only if blank, mount), `files` (/run files, `/run/pyre/env`, then the files on
//!    each mounted volume), `commit` (`/run/pyre/config.json` 0600 and `/run/pyre/instance.json`).
//! 6. The boot record `/run/pyre/boot.json` gets pyre boot's section (see `init::record`).
//!
//! Secrets (file contents, environment values) never reach a log line or the record.
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::apply::ApplyHost;
use crate::config::{self, ConfigError, OnFailure};
use crate::host::{Lifecycle, Modules};
use crate::providers::{Clock, Failure, ProviderError};
use crate::volumes::{self, VolumeHost};

mod failure;
mod fwcfg;
pub mod report;
mod sequence;
#[cfg(test)]
mod tests;

pub use report::{Reporter, ReqwestReporter};

/// Stable message ids of pyre boot's own failures (the config, volume and apply ids come from
/// their modules). docs/boot.md lists them all.
pub mod msgid {
    /// The kernel command line or the image policy is unusable, or no provider can be chosen.
    pub const SETUP: &str = "PYRE_BOOT_SETUP";
    /// The config source was not reached by the deadline.
    pub const UNREACHABLE: &str = "PYRE_CONFIG_UNREACHABLE";
    /// The config source answered and the answer is refused (403, oversize, off-host redirect).
    pub const REFUSED: &str = "PYRE_CONFIG_REFUSED";
    /// Every boot-critical failure's summary line (with the action taken).
    pub const FAILED: &str = "PYRE_BOOT_FAILED";
}

/// Every host path `pyre boot` reads or writes ([`BootPaths::standard`] is the real layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootPaths {
    pub cmdline: PathBuf,
    pub policy: PathBuf,
    pub keys: PathBuf,
    /// `/run`: files of the config, and pyre's records under `<run>/pyre/`.
    pub run: PathBuf,
    pub sys: PathBuf,
    pub dev: PathBuf,
    pub dmi: PathBuf,
    pub ca: PathBuf,
    /// The running kernel's module directory (`/lib/modules/<release>`), for `qemu_fw_cfg`.
    pub modules: PathBuf,
    /// `--config FILE`: the file provider, whatever the command line says.
    pub config_file: Option<PathBuf>,
}

impl BootPaths {
    pub fn standard() -> BootPaths {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        BootPaths {
            cmdline: "/proc/cmdline".into(),
            policy: config::policy::DEFAULT_PATH.into(),
            keys: config::KEYS_DIR.into(),
            run: "/run".into(),
            sys: "/sys".into(),
            dev: "/dev".into(),
            dmi: "/sys/class/dmi/id".into(),
            ca: "/etc/pyre/ca".into(),
            modules: Path::new("/lib/modules").join(release.trim()),
            config_file: None,
        }
    }

    /// `<run>/pyre/NAME`
    pub fn record(&self, name: &str) -> PathBuf {
        self.run.join("pyre").join(name)
    }
}

/// The side effects `pyre boot` needs, injected (the real ones in `cmd::boot`; tests record).
pub struct Capabilities<'a> {
    pub apply: &'a dyn ApplyHost,
    pub volumes: &'a dyn VolumeHost,
    pub modules: &'a dyn Modules,
    pub lifecycle: &'a dyn Lifecycle,
    pub reporter: &'a dyn Reporter,
    /// Monotonic time for stage timings and the fetch deadline.
    pub clock: Arc<dyn Clock>,
}

/// Why the boot could not be completed. Each is boot-critical.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("reading the kernel command line {}: {error}", path.display())]
    Cmdline { path: PathBuf, error: io::Error },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Spec(#[from] volumes::spec::SpecError),
    #[error(transparent)]
    Apply(#[from] config::apply::ApplyError),
    #[error(transparent)]
    Volumes(#[from] volumes::ApplyError),
    #[error("writing {}: {error}", path.display())]
    Record { path: PathBuf, error: io::Error },
}

/// The failure classes, which decide the exit code (docs/exit-codes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Bad command line, policy or arguments.
    Setup,
    /// The image requires a config and the provider has none.
    Missing,
    /// The source was not reached by the deadline.
    Unreachable,
    /// The answer or the config is refused (status, signature, validation, policy).
    Refused,
    /// The config was accepted but could not be applied (volume, file, hostname).
    NotApplied,
}

impl BootError {
    pub fn message_id(&self) -> &'static str {
        match self {
            BootError::Cmdline { .. } => msgid::SETUP,
            BootError::Provider(e) => match e.failure() {
                Failure::Unreachable => msgid::UNREACHABLE,
                Failure::Refused => msgid::REFUSED,
                Failure::Setup => msgid::SETUP,
            },
            BootError::Config(e) => e.message_id(),
            BootError::Spec(_) => config::msgid::INVALID,
            BootError::Apply(e) => e.message_id(),
            BootError::Volumes(e) => e.message_id(),
            BootError::Record { .. } => config::msgid::APPLY,
        }
    }

    pub fn class(&self) -> Class {
        match self {
            BootError::Cmdline { .. } => Class::Setup,
            BootError::Provider(e) => match e.failure() {
                Failure::Unreachable => Class::Unreachable,
                Failure::Refused => Class::Refused,
                Failure::Setup => Class::Setup,
            },
            BootError::Config(ConfigError::Missing) => Class::Missing,
            BootError::Config(ConfigError::Policy(_) | ConfigError::Keys(_)) => Class::Setup,
            BootError::Config(_) | BootError::Spec(_) => Class::Refused,
            BootError::Apply(config::apply::ApplyError::Invalid(_)) => Class::Refused,
            BootError::Apply(_) | BootError::Volumes(_) | BootError::Record { .. } => {
                Class::NotApplied
            }
        }
    }
}

/// How `pyre boot` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The config was applied; pyre-ready.target may be reached.
    Applied,
    /// No config, and the image does not require one.
    NoConfig,
    /// A boot-critical failure: reported, and the policy's action taken (or, for `debug`, the
    /// machine left up). The unit must fail.
    Failed {
        class: Class,
        message_id: &'static str,
        action: OnFailure,
    },
}

/// Run the whole boot sequence, and the failure policy when it fails.
pub fn run(caps: &Capabilities, paths: &BootPaths) -> Outcome {
    let mut run = sequence::Run::new(caps, paths);
    match sequence::sequence(&mut run) {
        Ok(outcome) => {
            run.finish(&outcome);
            outcome
        }
        Err(e) => failure::fail(&mut run, &e),
    }
}

//! External data volumes: find the device a config names, check what it holds, format it
//! only when it is blank and the config allows, mount it. See docs/volumes.md.
//!
//! `pyre boot` and `pyre volumes apply` call [`apply`] with the real host
//! ([`host::RealVolumeHost`]), `/sys` and `/dev` ([`SysPaths::default`]) and the config's
//! volumes; it returns the report for the boot record, or an [`ApplyError`] when a required
//! volume failed (boot-critical: the image policy applies).
use std::path::PathBuf;

pub mod apply;
pub mod discover;
#[cfg(test)]
pub mod fake;
pub mod host;
pub mod mkfs;
pub mod mount;
pub mod policy;
pub mod probe;
pub mod report;
pub mod select;
pub mod spec;
pub mod wait;

pub use apply::apply;
pub use discover::SysPaths;
pub use host::{RealVolumeHost, VolumeHost};
pub use report::{Outcome, VolumeReport, VolumesReport};
pub use spec::{DeviceSelector, FormatPolicy, VolumeSpec};

/// Why one volume could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(transparent)]
    Discover(#[from] discover::DiscoverError),
    #[error("{error} (waited {waited:.1}s)")]
    NotFound {
        error: select::SelectError,
        waited: f64,
    },
    #[error(transparent)]
    Ambiguous(select::SelectError),
    #[error("{node} was already chosen for volume {other}")]
    Taken { node: PathBuf, other: String },
    #[error("{0}")]
    Probe(String),
    #[error(transparent)]
    Refused(#[from] policy::Refusal),
    #[error("{mountpoint} already has {device} ({fstype}) mounted on it")]
    MountpointBusy {
        mountpoint: PathBuf,
        device: String,
        fstype: String,
    },
    #[error("reading the mount table: {0}")]
    MountTable(String),
    #[error("running {command}: {reason}")]
    Command { command: String, reason: String },
    #[error("{command} failed ({status}): {output}")]
    Mkfs {
        command: String,
        status: String,
        output: String,
    },
    #[error("{node} does not hold {want} after {command}: found {found}")]
    MkfsResult {
        node: PathBuf,
        want: String,
        command: String,
        found: String,
    },
    #[error("creating mountpoint {path}: {reason}")]
    Mkdir { path: PathBuf, reason: String },
    #[error("mountpoint {path} resolves to {resolved}: {problem}")]
    MountpointEscapes {
        path: PathBuf,
        resolved: PathBuf,
        problem: String,
    },
    #[error("mounting {node} ({fstype}) on {mountpoint}: {reason}")]
    Mount {
        node: PathBuf,
        fstype: String,
        mountpoint: PathBuf,
        reason: String,
    },
}

impl VolumeError {
    /// The stable message id logged with this failure.
    pub fn message_id(&self) -> &'static str {
        match self {
            VolumeError::Refused(r) => r.id,
            VolumeError::NotFound { .. } => "PYRE_VOLUME_MISSING",
            VolumeError::Ambiguous(_) | VolumeError::Taken { .. } => "PYRE_VOLUME_AMBIGUOUS",
            _ => "PYRE_VOLUME_FAILED",
        }
    }
}

/// The volume stage could not do what the config requires.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("invalid volume configuration: {0}")]
    Spec(#[from] spec::SpecError),
    /// A required volume failed: boot-critical. The report says what was done up to then.
    #[error("required volume {volume}: {error}")]
    Required {
        volume: String,
        error: Box<VolumeError>,
        report: Box<VolumesReport>,
    },
}

impl ApplyError {
    pub fn message_id(&self) -> &'static str {
        match self {
            ApplyError::Spec(_) => "PYRE_CONFIG_INVALID",
            ApplyError::Required { error, .. } => error.message_id(),
        }
    }

    /// What the stage did before failing (for the boot record).
    pub fn report(&self) -> Option<&VolumesReport> {
        match self {
            ApplyError::Spec(_) => None,
            ApplyError::Required { report, .. } => Some(report),
        }
    }
}

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod select_tests;

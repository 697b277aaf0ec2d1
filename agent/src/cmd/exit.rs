//! The binary's edge: how a command ended, as typed values. [`Exit`] is the process exit code
//! of a command that ran; [`CmdError`] is the failure class of one that did not, which decides
//! the exit code and, for security events, the message id of its log line. Documented in
//! docs/exit-codes.md and `pyre --help` (firecracker's `MainError` -> `FcExitCode` model).
use std::process::ExitCode;

use crate::logging::MsgId;

/// Process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The check ran and found the tree exactly as sealed; other commands: done.
    Clean = 0,
    /// The check ran and found drift (`boot-report`: the record says the root was not
    /// verified).
    Drift = 1,
    /// The check could not be made, or the command failed: bad arguments, unreadable or badly
    /// signed manifest, I/O.
    CouldNotCheck = 2,
    /// `fetch`: the provider answered that this instance has no config.
    NoConfig = 3,
    /// `fetch`: the config source was not reached by the deadline (whether a config exists is
    /// unknown).
    Unreachable = 4,
    /// `fetch`, `boot`: the source answered and the answer is refused (403, off-host redirect,
    /// oversize…), or the config is (signature, validation, image policy).
    Refused = 5,
    /// `boot`: the config was accepted but not applied (a required volume, a file, the
    /// hostname).
    NotApplied = 6,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Why a command failed. Commands build their messages with `anyhow` context; `?` on an
/// `anyhow::Error` makes it [`CmdError::Failed`].
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The manifest signature is missing, malformed, made by another key or does not match:
    /// nothing was checked, and it is a security event.
    #[error("{0:#}")]
    Signature(anyhow::Error),
    /// Anything else that stopped the command.
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl CmdError {
    pub fn exit(&self) -> Exit {
        match self {
            CmdError::Signature(_) | CmdError::Failed(_) => Exit::CouldNotCheck,
        }
    }

    /// The stable id that starts the log line, for the failures that are security events.
    pub fn msg_id(&self) -> Option<MsgId> {
        match self {
            CmdError::Signature(_) => Some(MsgId::Signature),
            CmdError::Failed(_) => None,
        }
    }

    /// Log the failure (`pyre: error: [ID: ]message: cause: cause`).
    pub fn log(&self) {
        match self.msg_id() {
            Some(id) => log::error!("{id}: {self}"),
            None => log::error!("{self}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_class_has_its_code_and_id() {
        let e = || anyhow::anyhow!("cause").context("could not check /srv");
        let cases = [
            (
                CmdError::Signature(e()),
                Exit::CouldNotCheck,
                Some("PYRE_SIGNATURE"),
            ),
            (CmdError::from(e()), Exit::CouldNotCheck, None),
        ];
        for (err, code, id) in cases {
            assert_eq!(err.exit(), code, "{err:?}");
            assert_eq!(err.msg_id().map(MsgId::as_str), id, "{err:?}");
            assert_eq!(err.to_string(), "could not check /srv: cause");
        }
        let codes: Vec<u8> = [
            Exit::Clean,
            Exit::Drift,
            Exit::CouldNotCheck,
            Exit::NoConfig,
            Exit::Unreachable,
            Exit::Refused,
            Exit::NotApplied,
        ]
        .map(|e| e as u8)
        .to_vec();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6]);
    }
}

//! The root check as a parameter of the boot sequence: `pyre init` asks a [`RootVerifier`]
//! whether the mounted root matches the signed manifest. The production verifier wraps the
//! drift library; unit tests pass scripted outcomes.
use std::path::{Path, PathBuf};

/// What the verifier is asked to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyInput<'a> {
    /// The mounted root (/sysroot).
    pub root: &'a Path,
    /// The manifest; its detached signature is `<manifest>.sig`.
    pub manifest: &'a Path,
    /// Trusted public keys; the signature must verify with one of them.
    pub keys: &'a [PathBuf],
    /// The mount table, so mounts over the root are reported as such.
    pub mountinfo: &'a Path,
}

/// A clean verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub manifest_digest: String,
    pub entries: u64,
    pub bytes_hashed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    /// The manifest signature did not verify with any trusted key.
    #[error("manifest signature rejected: {0}")]
    Signature(String),
    /// The root differs from the manifest; `report` is the rendered drift report.
    #[error("root differs from the signed manifest ({changes} changes)")]
    Drift { changes: u64, report: String },
    /// The check could not be made.
    #[error("root verification could not run: {0}")]
    Other(String),
}

pub trait RootVerifier {
    fn verify(&self, input: &VerifyInput) -> Result<Verified, VerifyFailure>;
}

/// Stands in until the drift library is wired in: refuses every root (so a boot without a
/// real check can never pass).
pub struct Unavailable;

impl RootVerifier for Unavailable {
    fn verify(&self, _input: &VerifyInput) -> Result<Verified, VerifyFailure> {
        Err(VerifyFailure::Other(
            "this build of pyre has no root verifier".into(),
        ))
    }
}

//! The full re-verification: `pyre verify` semantics over the live root against the image's
//! signed manifest (`/etc/pyre/manifest`, its `.sig`, trusted keys `/etc/pyre/keys/*.pub`),
//! pinned to the digest this boot recorded. Mount points are taken from PID 1's mount table,
//! so the read-only binds pyre.service's own namespace adds are not seen as shadowing mounts.
//! It runs on the scheduler's thread, whose CPU and I/O priority are lowered
//! ([`crate::enforce::priority`]); the scan's worker threads inherit both.
use std::path::{Path, PathBuf};

use super::{Check, Found, Outcome};
use crate::drift::{self, VerifyError, VerifyRequest};
use crate::enforce::report::{Check as Kind, Finding};

/// Where the re-verification looks.
#[derive(Debug, Clone)]
pub struct VerifyPaths {
    /// The live root (`/`).
    pub root: PathBuf,
    /// The image's pyre directory: `manifest`, `manifest.sig`, `keys/*.pub`.
    pub etc: PathBuf,
    /// PID 1's mount table.
    pub mountinfo: PathBuf,
}

/// The one place the daemon's verify request is built.
pub fn request<'a>(
    root: &'a Path,
    manifest: &'a Path,
    key: &'a Path,
    mountinfo: &'a Path,
) -> VerifyRequest<'a> {
    // merge: drop_cache — set `drop_cache: true` here once drift::VerifyRequest has it (branch
    // `bounded`): every file's cached pages dropped before and after it is read, so bytes
    // changed on the device are read again through dm-verity.
    VerifyRequest {
        root,
        manifest,
        pubkey: Some(key),
        mountinfo,
    }
}

/// The trusted public keys (`*.pub`) in `dir`, sorted.
pub fn trusted_keys(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut keys: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    keys.sort();
    if keys.is_empty() {
        return Err(format!(
            "no trusted public keys (*.pub) in {}",
            dir.display()
        ));
    }
    Ok(keys)
}

/// The full re-verification (see the module docs).
pub struct VerifyCheck {
    paths: VerifyPaths,
    /// The manifest digest this boot pinned (boot record or kernel command line).
    pinned: Option<String>,
    /// The key that signed, once found.
    signer: Option<PathBuf>,
}

impl VerifyCheck {
    pub fn new(paths: VerifyPaths, pinned: Option<String>) -> VerifyCheck {
        VerifyCheck {
            paths,
            pinned,
            signer: None,
        }
    }

    fn manifest(&self) -> PathBuf {
        self.paths.etc.join("manifest")
    }

    /// The key that signed the manifest, and its digest.
    fn signer(&mut self) -> Result<(PathBuf, String), String> {
        let manifest = self.manifest();
        let keys = match &self.signer {
            Some(k) => vec![k.clone()],
            None => trusted_keys(&self.paths.etc.join("keys"))?,
        };
        let mut rejected = Vec::new();
        for key in keys {
            match drift::load_manifest(&manifest, Some(&key)) {
                Ok((_, digest, _)) => {
                    self.signer = Some(key.clone());
                    return Ok((key, digest));
                }
                Err(e @ (VerifyError::Signature(_) | VerifyError::MissingSignature { .. })) => {
                    rejected.push(format!("{}: {e}", key.display()))
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        self.signer = None;
        Err(format!(
            "manifest signature rejected: {}",
            rejected.join("; ")
        ))
    }
}

impl Check for VerifyCheck {
    fn kind(&self) -> Kind {
        Kind::Verify
    }

    fn run(&mut self) -> Outcome {
        let (key, digest) = match self.signer() {
            Ok(k) => k,
            Err(e) => return Outcome::Failed(e),
        };
        let manifest = self.manifest();
        if let Some(pinned) = self.pinned.as_ref().filter(|p| **p != digest) {
            let detail = format!(
                "the image's manifest {} is {digest}, this boot pinned {pinned}",
                manifest.display()
            );
            return Outcome::Found(Found {
                reason: detail.clone(),
                key: detail.clone(),
                findings: vec![Finding::Root { detail }],
                drift: None,
            });
        }
        let req = request(&self.paths.root, &manifest, &key, &self.paths.mountinfo);
        let report = match drift::verify_root(&req) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let c = &report.counts;
        if report.is_clean() {
            return Outcome::Clean(format!(
                "{} entries, {} files ({:.1} MB) hashed in {:.1}s: clean",
                c.entries,
                c.files_hashed,
                c.bytes_hashed as f64 / 1e6,
                report.duration_ms as f64 / 1000.0
            ));
        }
        let paths: Vec<String> = report
            .changes
            .iter()
            .map(|ch| format!("{} ({})", ch.path, ch.detail.kind()))
            .collect();
        const SHOWN: usize = 5;
        let more = paths.len().saturating_sub(SHOWN);
        let reason = format!(
            "{} sealed path(s) changed: {}{}",
            paths.len(),
            paths[..paths.len().min(SHOWN)].join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        Outcome::Found(Found {
            reason,
            key: paths.join("\n"),
            findings: Vec::new(),
            drift: serde_json::to_value(&report).ok(),
        })
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;

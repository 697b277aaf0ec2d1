//! Readiness fails closed: `pyre boot-report` (pyre-verified.service, which pyre-ready.target
//! requires) succeeds only when this boot's root was verified, by `pyre init` or right now.
//!
//! How a boot counts as verified by `pyre init`: its record `/run/pyre/boot.json` exists, says
//! `verified`, names the manifest digest that the kernel command line pins
//! (`pyre.manifest.digest`, which `pyre init` refuses to boot without), and the live root is
//! mounted from pyre's dm-verity device (`pyre-root`). /run is a fresh tmpfs each boot, and
//! nothing but the initramfs runs before systemd; a record that fails any of these checks was
//! not written by `pyre init` for this boot and the unit fails (it is never "trusted a bit").
//!
//! Without a record (an initramfs that is not pyre's: a distro initramfs, other tooling), the
//! live root is verified here against the signed manifest baked into it (`/etc/pyre/manifest`,
//! `manifest.sig`, keys `/etc/pyre/keys/*.pub`), pinned by `pyre.manifest.digest` when the
//! command line has it. No manifest, a bad signature or any drift fails the unit. See
//! systemd/README.md for what this check can and cannot vouch for.
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::record::BootRecord;
use super::verify::{RootVerifier, Verified, VerifyFailure, VerifyInput};
use super::{cmdline, DM_NAME};

/// Every path the readiness check reads; [`ReadyPaths::standard`] is the real layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyPaths {
    /// `pyre init`'s record (/run/pyre/boot.json).
    pub record: PathBuf,
    pub cmdline: PathBuf,
    pub mountinfo: PathBuf,
    /// sysfs, to name the device the root is mounted from.
    pub sys: PathBuf,
    /// The live root.
    pub root: PathBuf,
    /// The image's own pyre directory: manifest, manifest.sig, keys/.
    pub etc: PathBuf,
}

impl ReadyPaths {
    pub fn standard() -> ReadyPaths {
        ReadyPaths {
            record: "/run/pyre/boot.json".into(),
            cmdline: "/proc/cmdline".into(),
            mountinfo: "/proc/self/mountinfo".into(),
            sys: "/sys".into(),
            root: "/".into(),
            etc: "/etc/pyre".into(),
        }
    }
    pub fn manifest(&self) -> PathBuf {
        self.etc.join("manifest")
    }
}

/// How this boot's root came to be verified.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    /// `pyre init` verified it before systemd started.
    Recorded(BootRecord),
    /// There was no record: the live root was verified now, taking `seconds`.
    Live { verified: Verified, seconds: f64 },
}

impl Readiness {
    /// The one journal/console line.
    pub fn summary_line(&self) -> String {
        match self {
            Readiness::Recorded(r) => r.summary_line(),
            Readiness::Live { verified, seconds } => format!(
                "{LIVE_VERIFIED}manifest {}, {} entries, {:.1} MB hashed in {seconds:.2}s",
                verified.manifest_digest,
                verified.entries,
                verified.bytes_hashed as f64 / 1e6
            ),
        }
    }
}

/// The start of the line printed after a live check (the e2e tests wait for it).
pub const LIVE_VERIFIED: &str =
    "pyre: root verified at run time (pyre init did not verify this boot): ";

#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    #[error("reading {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("boot record {path}: {source}")]
    Record {
        path: PathBuf,
        source: super::record::RecordError,
    },
    #[error("boot record {path} says the root was not verified")]
    NotVerified { path: PathBuf },
    #[error("boot record {path} was not written by pyre init for this boot: {why}")]
    Untrusted { path: PathBuf, why: String },
    #[error(
        "pyre init did not verify this boot and there is no signed manifest to verify the root \
         against: {path}: {reason}"
    )]
    NoManifest { path: PathBuf, reason: String },
    #[error(
        "manifest digest mismatch: {path} is {actual}, the kernel command line pins {expected}"
    )]
    Digest {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("no trusted public keys (*.pub) in {0}")]
    NoKeys(PathBuf),
    #[error(transparent)]
    Verify(#[from] VerifyFailure),
}

fn read(path: &Path) -> Result<Vec<u8>, ReadyError> {
    std::fs::read(path).map_err(|e| ReadyError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Decide whether this boot's root is verified; see the module docs.
pub fn check(p: &ReadyPaths, verifier: &dyn RootVerifier) -> Result<Readiness, ReadyError> {
    let pinned = cmdline::manifest_digest(&String::from_utf8_lossy(&read(&p.cmdline)?));
    match std::fs::read(&p.record) {
        Ok(bytes) => trust_record(p, &bytes, pinned.as_deref()).map(Readiness::Recorded),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            verify_live(p, verifier, pinned.as_deref())
        }
        Err(e) => Err(ReadyError::Read {
            path: p.record.clone(),
            reason: e.to_string(),
        }),
    }
}

fn trust_record(
    p: &ReadyPaths,
    bytes: &[u8],
    pinned: Option<&str>,
) -> Result<BootRecord, ReadyError> {
    let path = p.record.clone();
    let record = BootRecord::from_json(bytes).map_err(|source| ReadyError::Record {
        path: path.clone(),
        source,
    })?;
    if !record.verified {
        return Err(ReadyError::NotVerified { path });
    }
    let untrusted = |why: String| ReadyError::Untrusted {
        path: path.clone(),
        why,
    };
    match pinned {
        None => {
            return Err(untrusted(
                "the kernel command line has no pyre.manifest.digest, which pyre init requires"
                    .into(),
            ))
        }
        Some(d) if d != record.manifest_digest => {
            return Err(untrusted(format!(
                "it names manifest {}, the kernel command line pins {d}",
                record.manifest_digest
            )))
        }
        Some(_) => {}
    }
    match root_dm_name(&p.mountinfo, &p.sys)? {
        Some(name) if name == DM_NAME => Ok(record),
        Some(name) => Err(untrusted(format!(
            "the root is mounted from device-mapper device {name:?}, not {DM_NAME:?}"
        ))),
        None => Err(untrusted(format!(
            "the root is not mounted from pyre's dm-verity device {DM_NAME:?}"
        ))),
    }
}

/// The device-mapper name of the device `/` is mounted from, if it is one.
fn root_dm_name(mountinfo: &Path, sys: &Path) -> Result<Option<String>, ReadyError> {
    let text = String::from_utf8_lossy(&read(mountinfo)?).into_owned();
    // The last mount on / is the one in effect (mountinfo lists mounts in stacking order).
    let Some(dev) = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 4 && f[4] == "/").then(|| f[2].to_string())
        })
        .next_back()
    else {
        return Err(ReadyError::Read {
            path: mountinfo.to_path_buf(),
            reason: "no mount on /".into(),
        });
    };
    let name = sys.join("dev/block").join(&dev).join("dm/name");
    Ok(std::fs::read_to_string(name)
        .ok()
        .map(|s| s.trim_end().to_string()))
}

fn verify_live(
    p: &ReadyPaths,
    verifier: &dyn RootVerifier,
    pinned: Option<&str>,
) -> Result<Readiness, ReadyError> {
    let manifest = p.manifest();
    let bytes = std::fs::read(&manifest).map_err(|e| ReadyError::NoManifest {
        path: manifest.clone(),
        reason: e.to_string(),
    })?;
    if let Some(expected) = pinned {
        let actual = crate::manifest::digest(&bytes);
        if actual != expected {
            return Err(ReadyError::Digest {
                path: manifest,
                expected: expected.to_string(),
                actual,
            });
        }
    }
    let keys_dir = p.etc.join("keys");
    let keys =
        super::boot::trusted_keys(&keys_dir).map_err(|_| ReadyError::NoKeys(keys_dir.clone()))?;
    let started = Instant::now();
    let verified = verifier.verify(&VerifyInput {
        root: &p.root,
        manifest: &manifest,
        keys: &keys,
        mountinfo: &p.mountinfo,
        // No dm-verity under this root to vouch for its blocks: hash every file.
        content: crate::drift::ContentCheck::Hash,
    })?;
    Ok(Readiness::Live {
        verified,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
#[path = "ready_tests.rs"]
mod tests;

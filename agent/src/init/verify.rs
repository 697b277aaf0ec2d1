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
    /// Hash every file, or compare metadata only (a dm-verity root whose content is read
    /// after switch_root).
    pub content: crate::drift::ContentCheck,
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
    /// The whole check: the signature, then the tree as `input.content` says.
    fn verify(&self, input: &VerifyInput) -> Result<Verified, VerifyFailure>;
    /// The manifest's signature only (no tree read): the digest of the manifest it signs.
    fn signature(&self, manifest: &Path, keys: &[PathBuf]) -> Result<String, VerifyFailure>;
}

/// The production verifier: the drift library. The signature is checked with each trusted
/// key in turn (cheap: the manifest digest only, nothing parsed); the tree check runs once,
/// with the key that signed: in full (every file read, so that dm-verity sees every block, and
/// hashed) or metadata only, as `input.content` says.
pub struct DriftVerifier;

impl DriftVerifier {
    /// The first trusted key the manifest's signature verifies with, and the digest.
    fn signer<'k>(
        manifest: &Path,
        keys: &'k [PathBuf],
    ) -> Result<(&'k PathBuf, String), VerifyFailure> {
        use crate::drift::{self, VerifyError};
        let mut rejections = Vec::new();
        for key in keys {
            match drift::check_signature(manifest, key) {
                Ok(digest) => return Ok((key, digest)),
                Err(e @ (VerifyError::Signature(_) | VerifyError::MissingSignature { .. })) => {
                    rejections.push(format!("{}: {e}", key.display()))
                }
                Err(e) => return Err(VerifyFailure::Other(e.to_string())),
            }
        }
        Err(VerifyFailure::Signature(rejections.join("; ")))
    }
}

impl RootVerifier for DriftVerifier {
    fn signature(&self, manifest: &Path, keys: &[PathBuf]) -> Result<String, VerifyFailure> {
        Self::signer(manifest, keys).map(|(_, digest)| digest)
    }

    fn verify(&self, input: &VerifyInput) -> Result<Verified, VerifyFailure> {
        use crate::drift::{self, VerifyError};
        let (key, _) = Self::signer(input.manifest, input.keys)?;
        let req = drift::VerifyRequest {
            pubkey: Some(key),
            mountinfo: input.mountinfo,
            content: input.content,
            ..drift::VerifyRequest::new(input.root, input.manifest)
        };
        let report = drift::verify_root(&req).map_err(|e| match e {
            VerifyError::Signature(_) | VerifyError::MissingSignature { .. } => {
                VerifyFailure::Signature(e.to_string())
            }
            other => VerifyFailure::Other(other.to_string()),
        })?;
        if !report.is_clean() {
            let mut text = Vec::new();
            report
                .render_text(&mut text)
                .map_err(|e| VerifyFailure::Other(format!("rendering the drift report: {e}")))?;
            return Err(VerifyFailure::Drift {
                changes: report.changes.len() as u64,
                report: String::from_utf8_lossy(&text).into_owned(),
            });
        }
        Ok(Verified {
            manifest_digest: report.manifest_digest,
            entries: report.counts.entries,
            bytes_hashed: report.counts.bytes_hashed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{keys, manifest};

    /// A real sealed and signed tree, checked through the real drift library.
    struct Sealed {
        dir: tempfile::TempDir,
        keys: Vec<PathBuf>,
    }

    impl Sealed {
        fn new() -> Sealed {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("root");
            std::fs::create_dir_all(root.join("usr/bin")).unwrap();
            std::fs::write(root.join("usr/bin/tool"), b"#!/bin/true\n").unwrap();
            std::fs::write(dir.path().join("mountinfo"), b"").unwrap();
            let m = manifest::seal(&root, &[], &[], 1).unwrap();
            let bytes = m.encode();
            std::fs::write(dir.path().join("manifest"), &bytes).unwrap();
            let signer = keys::generate().unwrap();
            let sig = keys::sign_digest(&signer, &manifest::digest(&bytes));
            std::fs::write(dir.path().join("manifest.sig"), sig).unwrap();
            let other = keys::generate().unwrap();
            let mut paths = Vec::new();
            for (name, k) in [("a-other.pub", &other), ("b-build.pub", &signer)] {
                let p = dir.path().join(name);
                std::fs::write(&p, keys::encode_public(&k.verifying_key())).unwrap();
                paths.push(p);
            }
            Sealed { dir, keys: paths }
        }

        fn check(&self, keys: &[PathBuf]) -> Result<Verified, VerifyFailure> {
            let d = self.dir.path();
            let (root, manifest, mountinfo) =
                (d.join("root"), d.join("manifest"), d.join("mountinfo"));
            DriftVerifier.verify(&VerifyInput {
                root: &root,
                manifest: &manifest,
                keys,
                mountinfo: &mountinfo,
                content: crate::drift::ContentCheck::Hash,
            })
        }
    }

    #[test]
    fn a_clean_tree_verifies_with_any_trusted_key_that_signed() {
        let s = Sealed::new();
        let v = s.check(&s.keys).unwrap();
        let bytes = std::fs::read(s.dir.path().join("manifest")).unwrap();
        assert_eq!(v.manifest_digest, manifest::digest(&bytes));
        assert!(v.entries >= 3, "/, usr, usr/bin, tool: {}", v.entries);
        assert_eq!(v.bytes_hashed, 12);
    }

    #[test]
    fn the_signature_alone_gives_the_digest_without_reading_the_tree() {
        let s = Sealed::new();
        let manifest = s.dir.path().join("manifest");
        std::fs::remove_dir_all(s.dir.path().join("root")).unwrap();
        let digest = DriftVerifier.signature(&manifest, &s.keys).unwrap();
        assert_eq!(digest, manifest::digest(&std::fs::read(&manifest).unwrap()));
        let err = DriftVerifier
            .signature(&manifest, &s.keys[..1])
            .unwrap_err();
        assert!(matches!(err, VerifyFailure::Signature(_)), "{err}");
        assert!(err.to_string().contains("a-other.pub"), "{err}");
    }

    #[test]
    fn a_foreign_signature_is_rejected() {
        let s = Sealed::new();
        let err = s.check(&s.keys[..1]).unwrap_err();
        assert!(matches!(err, VerifyFailure::Signature(_)), "{err}");
        assert!(err.to_string().contains("a-other.pub"), "{err}");
    }

    #[test]
    fn drift_comes_with_the_rendered_report() {
        let s = Sealed::new();
        std::fs::write(s.dir.path().join("root/usr/bin/tool"), b"#!/bin/false\n").unwrap();
        match s.check(&s.keys).unwrap_err() {
            VerifyFailure::Drift { changes, report } => {
                assert_eq!(changes, 1);
                assert!(report.contains("usr/bin/tool"), "{report}");
            }
            other => panic!("expected drift, got {other}"),
        }
    }
}

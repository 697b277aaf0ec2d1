//! `pyre boot-report`: pyre-verified.service's check, which pyre-ready.target requires. Prints
//! the record `pyre init` left in /run/pyre/boot.json when it verified this boot; without one
//! (an initramfs that is not pyre's) it verifies the live root against the image's signed
//! manifest in /etc/pyre/ itself. Fails closed: see [`crate::init::ready`].
use std::io::Write;

use super::exit::{CmdError, Exit};
use super::BootReportArgs;
use crate::init::ready::{self, ReadyError, ReadyPaths};
use crate::init::verify::{DriftVerifier, VerifyFailure};
use crate::logging::MsgId;

pub fn run(args: BootReportArgs) -> Result<Exit, CmdError> {
    let paths = ReadyPaths {
        record: args.record,
        cmdline: args.cmdline,
        root: args.root,
        etc: args.etc,
        ..ReadyPaths::standard()
    };
    match ready::check(&paths, &DriftVerifier) {
        Ok(r) => {
            println!("{}", r.summary_line());
            Ok(Exit::Clean)
        }
        Err(ReadyError::Verify(VerifyFailure::Drift { changes, report })) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(report.as_bytes()).and_then(|()| out.flush());
            log::warn!(
                "{}: {} drifted from the signed manifest {} ({changes} changes); \
                 pyre-ready.target stays down",
                MsgId::Drift,
                paths.root.display(),
                paths.manifest().display(),
            );
            Ok(Exit::Drift)
        }
        Err(e @ ReadyError::NotVerified { .. }) => {
            log::warn!("{e}");
            Ok(Exit::Drift)
        }
        Err(e) => {
            // Signature failures are security events: CmdError::Signature gives the log line
            // its stable id.
            let signature = matches!(
                e,
                ReadyError::Verify(VerifyFailure::Signature(_)) | ReadyError::NoKeys(_)
            );
            let err = anyhow::Error::new(e)
                .context("could not confirm that this boot's root is verified");
            Err(if signature {
                CmdError::Signature(err)
            } else {
                CmdError::Failed(err)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::record::BootRecord;
    use crate::{keys, manifest};

    /// A root with its signed manifest baked in as the image build does it: placeholders for
    /// /etc/pyre/manifest and manifest.sig, sealed with both excluded, then filled in.
    fn image_root(dir: &std::path::Path) -> std::path::PathBuf {
        let root = dir.join("root");
        let etc = root.join("etc/pyre");
        std::fs::create_dir_all(etc.join("keys")).unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/tool"), b"#!/bin/true\n").unwrap();
        let key = keys::generate().unwrap();
        let public = keys::encode_public(&key.verifying_key());
        std::fs::write(etc.join("keys/build.pub"), public).unwrap();
        std::fs::write(etc.join("manifest"), b"").unwrap();
        std::fs::write(etc.join("manifest.sig"), b"").unwrap();
        let excludes = [
            b"/etc/pyre/manifest".to_vec(),
            b"/etc/pyre/manifest.sig".to_vec(),
        ];
        let bytes = manifest::seal(&root, &excludes, &[], 1).unwrap().encode();
        let sig = keys::sign_digest(&key, &manifest::digest(&bytes));
        std::fs::write(etc.join("manifest"), &bytes).unwrap();
        std::fs::write(etc.join("manifest.sig"), sig).unwrap();
        root
    }

    fn args(dir: &std::path::Path, record: &str) -> BootReportArgs {
        std::fs::write(dir.join("cmdline"), b"root=/dev/vda ro\n").unwrap();
        BootReportArgs {
            record: dir.join(record),
            root: dir.join("root"),
            etc: dir.join("root/etc/pyre"),
            cmdline: dir.join("cmdline"),
        }
    }

    #[test]
    fn without_a_record_the_baked_manifest_decides() {
        let dir = tempfile::tempdir().unwrap();
        let root = image_root(dir.path());
        assert_eq!(run(args(dir.path(), "none.json")).unwrap(), Exit::Clean);
        std::fs::write(root.join("usr/bin/tool"), b"#!/bin/false\n").unwrap();
        assert_eq!(run(args(dir.path(), "none.json")).unwrap(), Exit::Drift);
        std::fs::write(root.join("etc/pyre/manifest.sig"), b"junk").unwrap();
        let err = run(args(dir.path(), "none.json")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with("could not confirm that this boot's root is verified"),
            "{msg}"
        );
        assert_eq!(err.msg_id(), Some(MsgId::Signature));
        assert_eq!(err.exit(), Exit::CouldNotCheck);
        std::fs::remove_file(root.join("etc/pyre/manifest")).unwrap();
        let err = run(args(dir.path(), "none.json")).unwrap_err();
        assert!(format!("{err:#}").contains("no signed manifest"), "{err:#}");
    }

    #[test]
    fn a_bad_or_unverified_record_fails() {
        let dir = tempfile::tempdir().unwrap();
        image_root(dir.path());
        std::fs::write(dir.path().join("junk.json"), b"{").unwrap();
        let err = run(args(dir.path(), "junk.json")).unwrap_err();
        assert!(format!("{err:#}").contains("not valid JSON"), "{err:#}");
        let r = BootRecord {
            version: 1,
            verified: false,
            manifest_digest: "sha256:00".into(),
            entries: 1,
            bytes_hashed: 1,
            root_hash: "ab".into(),
            root_device: "/dev/vda".into(),
            started_at: 2.0,
            stages: vec![],
            total_seconds: 1.0,
            root_check: None,
            checks: Vec::new(),
            content_reader: None,
            boot: None,
        };
        std::fs::write(dir.path().join("no.json"), r.to_json()).unwrap();
        assert_eq!(run(args(dir.path(), "no.json")).unwrap(), Exit::Drift);
    }
}

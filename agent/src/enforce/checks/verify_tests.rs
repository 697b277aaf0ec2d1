use super::*;
use crate::{keys, manifest};

/// A small sealed and signed tree laid out like an image: `root/etc/pyre/{manifest,
/// manifest.sig,keys/build.pub}`, with the manifest and its signature excluded from the seal.
struct Image {
    dir: tempfile::TempDir,
    digest: String,
}

impl Image {
    fn new() -> Image {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let etc = root.join("etc/pyre");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(etc.join("keys")).unwrap();
        std::fs::write(root.join("usr/bin/tool"), b"#!/bin/true\n").unwrap();
        std::fs::write(etc.join("manifest"), b"").unwrap();
        std::fs::write(etc.join("manifest.sig"), b"").unwrap();
        let signer = keys::generate().unwrap();
        std::fs::write(
            etc.join("keys/build.pub"),
            keys::encode_public(&signer.verifying_key()),
        )
        .unwrap();
        let excludes = [
            b"/etc/pyre/manifest".to_vec(),
            b"/etc/pyre/manifest.sig".to_vec(),
        ];
        let bytes = manifest::seal(&root, &excludes, &[], 1).unwrap().encode();
        let digest = manifest::digest(&bytes);
        std::fs::write(etc.join("manifest"), &bytes).unwrap();
        std::fs::write(
            etc.join("manifest.sig"),
            keys::sign_digest(&signer, &digest),
        )
        .unwrap();
        std::fs::write(dir.path().join("mountinfo"), b"").unwrap();
        Image { dir, digest }
    }

    fn check(&self, pinned: Option<&str>) -> VerifyCheck {
        let d = self.dir.path();
        VerifyCheck::new(
            VerifyPaths {
                root: d.join("root"),
                etc: d.join("root/etc/pyre"),
                mountinfo: d.join("mountinfo"),
            },
            pinned.map(str::to_string),
        )
    }
}

#[test]
fn a_clean_tree_then_a_tampered_one() {
    let img = Image::new();
    let mut c = img.check(Some(&img.digest));
    match c.run() {
        Outcome::Clean(s) => assert!(s.ends_with(": clean") && s.contains(" entries, "), "{s}"),
        other => panic!("{other:?}"),
    }
    std::fs::write(img.dir.path().join("root/usr/bin/tool"), b"#!/bin/evil\n").unwrap();
    let Outcome::Found(f) = c.run() else {
        panic!("expected drift")
    };
    assert_eq!(
        f.reason,
        "1 sealed path(s) changed: /usr/bin/tool (modified)"
    );
    assert!(f.findings.is_empty());
    let drift = f.drift.unwrap();
    assert_eq!(drift["verdict"], "drift");
    assert_eq!(drift["manifest_digest"], img.digest.as_str());
    assert_eq!(drift["changes"][0]["path"], "/usr/bin/tool");
}

#[test]
fn a_manifest_other_than_the_pinned_one_is_a_root_finding() {
    let img = Image::new();
    let Outcome::Found(f) = img.check(Some("sha256:00")).run() else {
        panic!("expected a finding")
    };
    assert!(
        f.reason.ends_with("this boot pinned sha256:00"),
        "{}",
        f.reason
    );
    assert!(matches!(&f.findings[..], [Finding::Root { .. }]));
}

#[test]
fn a_bad_signature_or_no_keys_cannot_check() {
    let img = Image::new();
    let etc = img.dir.path().join("root/etc/pyre");
    let other = keys::generate().unwrap();
    std::fs::write(
        etc.join("keys/build.pub"),
        keys::encode_public(&other.verifying_key()),
    )
    .unwrap();
    match img.check(None).run() {
        Outcome::Failed(e) => assert!(e.starts_with("manifest signature rejected: "), "{e}"),
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(etc.join("keys/build.pub")).unwrap();
    match img.check(None).run() {
        Outcome::Failed(e) => assert!(e.starts_with("no trusted public keys"), "{e}"),
        other => panic!("{other:?}"),
    }
}

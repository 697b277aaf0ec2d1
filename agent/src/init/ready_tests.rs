use std::cell::Cell;

use super::*;
use crate::init::record::Stage;

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// A verifier with a scripted answer that counts its calls.
struct Scripted {
    answer: Result<Verified, VerifyFailure>,
    calls: Cell<u32>,
}

impl Scripted {
    fn clean() -> Scripted {
        Scripted::new(Ok(Verified {
            manifest_digest: DIGEST.into(),
            entries: 7,
            bytes_hashed: 2_500_000,
        }))
    }
    fn new(answer: Result<Verified, VerifyFailure>) -> Scripted {
        Scripted {
            answer,
            calls: Cell::new(0),
        }
    }
}

impl RootVerifier for Scripted {
    fn verify(&self, input: &VerifyInput) -> Result<Verified, VerifyFailure> {
        self.calls.set(self.calls.get() + 1);
        assert!(input.manifest.ends_with("etc/pyre/manifest"));
        assert_eq!(input.keys.len(), 1);
        self.answer.clone()
    }

    fn signature(&self, _: &Path, _: &[PathBuf]) -> Result<String, VerifyFailure> {
        unreachable!("pyre-verified.service checks the whole tree")
    }
}

/// A fake machine: /proc/cmdline, mountinfo with / on device 253:0, sysfs naming it.
struct Machine {
    dir: tempfile::TempDir,
    paths: ReadyPaths,
}

impl Machine {
    fn new(cmdline: &str) -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let paths = ReadyPaths {
            record: d.join("run/pyre/boot.json"),
            cmdline: d.join("cmdline"),
            mountinfo: d.join("mountinfo"),
            sys: d.join("sys"),
            root: d.join("root"),
            etc: d.join("root/etc/pyre"),
        };
        std::fs::write(&paths.cmdline, format!("{cmdline}\n")).unwrap();
        std::fs::write(
            &paths.mountinfo,
            "1 0 0:2 / / rw - rootfs rootfs rw\n\
             25 1 253:0 / / ro,relatime - erofs /dev/mapper/pyre-root ro\n\
             26 25 0:5 / /dev rw - devtmpfs devtmpfs rw\n",
        )
        .unwrap();
        std::fs::create_dir_all(paths.etc.join("keys")).unwrap();
        std::fs::write(paths.etc.join("keys/build.pub"), "k").unwrap();
        Machine { dir, paths }
    }
    fn dm_name(&self, dev: &str, name: &str) {
        let p = self.paths.sys.join("dev/block").join(dev).join("dm");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("name"), format!("{name}\n")).unwrap();
    }
    fn record(&self, verified: bool, digest: &str) {
        let r = BootRecord {
            version: 1,
            verified,
            manifest_digest: digest.into(),
            entries: 9,
            bytes_hashed: 1_000_000,
            root_hash: "ab".into(),
            root_device: "/dev/vda".into(),
            started_at: 2.0,
            stages: vec![Stage {
                name: "verify".into(),
                seconds: 1.0,
            }],
            total_seconds: 1.5,
            root_check: None,
            checks: Vec::new(),
            content_reader: None,
            boot: None,
        };
        std::fs::create_dir_all(self.paths.record.parent().unwrap()).unwrap();
        std::fs::write(&self.paths.record, r.to_json()).unwrap();
    }
    fn manifest(&self, bytes: &[u8]) -> String {
        std::fs::write(self.paths.manifest(), bytes).unwrap();
        crate::manifest::digest(bytes)
    }
    fn check(&self, v: &Scripted) -> Result<Readiness, ReadyError> {
        let _ = &self.dir;
        check(&self.paths, v)
    }
}

#[test]
fn a_record_of_this_boot_is_trusted_without_a_second_check() {
    let m = Machine::new(&format!("ro pyre.manifest.digest={DIGEST} quiet"));
    m.record(true, DIGEST);
    m.dm_name("253:0", DM_NAME);
    let v = Scripted::clean();
    let r = m.check(&v).unwrap();
    assert!(matches!(&r, Readiness::Recorded(rec) if rec.manifest_digest == DIGEST));
    assert!(r
        .summary_line()
        .starts_with("pyre: root verified: manifest sha256:1111"));
    assert_eq!(v.calls.get(), 0);
}

#[test]
fn a_record_that_pyre_init_cannot_have_written_fails_closed() {
    let v = Scripted::clean();
    // Table: (cmdline, record digest, dm name of the root device, expected message part).
    let other = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    let cases: &[(String, &str, Option<&str>, &str)] = &[
        (
            "ro".into(),
            DIGEST,
            Some(DM_NAME),
            "has no pyre.manifest.digest",
        ),
        (
            format!("pyre.manifest.digest={other}"),
            DIGEST,
            Some(DM_NAME),
            "the kernel command line pins sha256:2222",
        ),
        (
            format!("pyre.manifest.digest={DIGEST}"),
            DIGEST,
            Some("other"),
            "device-mapper device \"other\", not \"pyre-root\"",
        ),
        (
            format!("pyre.manifest.digest={DIGEST}"),
            DIGEST,
            None,
            "not mounted from pyre's dm-verity device",
        ),
    ];
    for (cmdline, digest, dm, want) in cases {
        let m = Machine::new(cmdline);
        m.record(true, digest);
        m.manifest(b"a good manifest");
        if let Some(name) = dm {
            m.dm_name("253:0", name);
        }
        let e = m.check(&v).unwrap_err();
        assert!(matches!(e, ReadyError::Untrusted { .. }), "{cmdline}: {e}");
        let msg = e.to_string();
        assert!(
            msg.contains("was not written by pyre init for this boot") && msg.contains(want),
            "{cmdline}: {msg}"
        );
    }
    assert_eq!(
        v.calls.get(),
        0,
        "an untrusted record is refused, not re-checked"
    );
}

#[test]
fn a_record_saying_not_verified_fails() {
    let m = Machine::new(&format!("pyre.manifest.digest={DIGEST}"));
    m.record(false, DIGEST);
    let e = m.check(&Scripted::clean()).unwrap_err();
    assert!(
        e.to_string().ends_with("says the root was not verified"),
        "{e}"
    );
}

#[test]
fn without_a_record_the_live_root_is_verified_against_the_baked_manifest() {
    let m = Machine::new("root=/dev/vda ro");
    m.manifest(b"manifest");
    let v = Scripted::clean();
    let r = m.check(&v).unwrap();
    assert_eq!(v.calls.get(), 1);
    let line = r.summary_line();
    assert!(line.starts_with(LIVE_VERIFIED), "{line}");
    assert!(
        line.contains("manifest sha256:1111") && line.contains("7 entries, 2.5 MB hashed in"),
        "{line}"
    );
}

#[test]
fn without_a_record_the_command_line_pin_applies() {
    let m = Machine::new("");
    let digest = m.manifest(b"manifest");
    std::fs::write(&m.paths.cmdline, format!("pyre.manifest.digest={digest}")).unwrap();
    assert!(m.check(&Scripted::clean()).is_ok());
    std::fs::write(&m.paths.cmdline, format!("pyre.manifest.digest={DIGEST}")).unwrap();
    let e = m.check(&Scripted::clean()).unwrap_err();
    assert!(matches!(e, ReadyError::Digest { .. }), "{e}");
}

#[test]
fn without_a_record_no_manifest_or_keys_or_a_drifted_root_fails() {
    let m = Machine::new("ro");
    let e = m.check(&Scripted::clean()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("pyre init did not verify this boot and there is no signed manifest"),
        "{e}"
    );
    m.manifest(b"manifest");
    let drift = Scripted::new(Err(VerifyFailure::Drift {
        changes: 1,
        report: "modified /usr/bin/x".into(),
    }));
    let e = m.check(&drift).unwrap_err();
    assert!(
        matches!(
            e,
            ReadyError::Verify(VerifyFailure::Drift { changes: 1, .. })
        ),
        "{e}"
    );
    std::fs::remove_file(m.paths.etc.join("keys/build.pub")).unwrap();
    let e = m.check(&Scripted::clean()).unwrap_err();
    assert!(e.to_string().starts_with("no trusted public keys"), "{e}");
}

#[test]
fn the_digest_pin_is_read_from_a_line_pyre_init_would_refuse() {
    assert_eq!(
        cmdline::manifest_digest("pyre.typo=1 pyre.manifest.digest=a pyre.manifest.digest=b"),
        Some("b".into())
    );
    assert_eq!(cmdline::manifest_digest("root=/dev/vda ro"), None);
}

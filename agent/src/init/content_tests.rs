use super::*;
use crate::host::recording::{Op, RecordingHost};
use crate::init::record::tests::sample;
use crate::init::verify::Verified;

/// A verifier whose tree (metadata) check passes and whose full read names one unreadable file.
struct Drifted;

const UNREADABLE: &str =
    "drift: 1 change\n  unreadable (1)\n    /usr/share/common-licenses/GPL-3: \
                          reading content: Input/output error (os error 5)\n";

impl RootVerifier for Drifted {
    fn verify(&self, input: &VerifyInput) -> Result<Verified, VerifyFailure> {
        if input.content == ContentCheck::Metadata {
            return Ok(Verified {
                manifest_digest: "sha256:ab".into(),
                entries: 7554,
                bytes_hashed: 0,
            });
        }
        Err(VerifyFailure::Drift {
            changes: 1,
            report: UNREADABLE.into(),
        })
    }

    fn signature(&self, _: &Path, _: &[PathBuf]) -> Result<String, VerifyFailure> {
        unreachable!("pyre init checked the signature")
    }
}

/// A verifier whose tree check finds a changed mode (the metadata of a sealed file).
struct TreeDrifted;

impl RootVerifier for TreeDrifted {
    fn verify(&self, input: &VerifyInput) -> Result<Verified, VerifyFailure> {
        assert_eq!(
            input.content,
            ContentCheck::Metadata,
            "only the tree is walked"
        );
        assert!(input.root.ends_with("root"), "{}", input.root.display());
        Err(VerifyFailure::Drift {
            changes: 1,
            report: "drift: 1 change\n  changed (1)\n    /usr/bin/ls: mode 0755 -> 4755\n".into(),
        })
    }

    fn signature(&self, _: &Path, _: &[PathBuf]) -> Result<String, VerifyFailure> {
        unreachable!("pyre init checked the signature")
    }
}

fn setup(root_check: Option<&str>, policy: Option<&str>) -> (tempfile::TempDir, ContentPaths) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = ContentPaths {
        record: d.join("run/pyre/boot.json"),
        device: d.join("dev"),
        root: d.join("root"),
        run_pyre: d.join("run/pyre"),
        mountinfo: d.join("mountinfo"),
        policy: d.join("image.json"),
        cmdline: d.join("cmdline"),
        proc: d.join("proc"),
    };
    std::fs::create_dir_all(&p.run_pyre).unwrap();
    std::fs::create_dir_all(p.root.join("etc")).unwrap();
    std::fs::create_dir_all(p.run_pyre.join("keys")).unwrap();
    std::fs::write(p.run_pyre.join("keys/build.pub"), b"key").unwrap();
    let mut r = sample();
    r.root_check = root_check.map(str::to_string);
    std::fs::write(&p.record, r.to_json()).unwrap();
    std::fs::write(&p.cmdline, "ro quiet\n").unwrap();
    if let Some(policy) = policy {
        std::fs::write(&p.policy, policy).unwrap();
    }
    (dir, p)
}

fn run_with(p: &ContentPaths, host: &RecordingHost, read: DeviceRead) -> Outcome {
    run_verifier(p, host, read, &Drifted)
}

fn run_verifier(
    p: &ContentPaths,
    host: &RecordingHost,
    read: DeviceRead,
    verifier: &(dyn RootVerifier + Sync),
) -> Outcome {
    let reader = move |_: &Path| Ok(read.clone());
    let caps = Caps {
        clock: host,
        lifecycle: host,
        verifier,
        read: &reader,
    };
    run(p, &caps).unwrap()
}

#[test]
fn reads_a_device_in_chunks_across_readers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device");
    let size = 2 * CHUNK + 3 * BLOCK;
    std::fs::write(&path, vec![7u8; size]).unwrap();
    for readers in [1, 2, 3] {
        let r = read_device(&path, readers).unwrap();
        assert_eq!(r.bytes, size as u64, "{readers} readers");
        assert!(r.rejected.is_empty());
    }
    let err = read_device(&dir.path().join("absent"), 2).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn a_clean_read_is_recorded_and_nothing_else_happens() {
    let (_d, p) = setup(Some("read"), None);
    let host = RecordingHost::new();
    let read = DeviceRead {
        bytes: 178_000_000,
        rejected: vec![],
    };
    let Outcome::Passed {
        metadata,
        read,
        entries,
    } = run_with(&p, &host, read)
    else {
        panic!("expected a pass")
    };
    assert_eq!(
        (read.name.as_str(), read.bytes),
        ("content-read", 178_000_000)
    );
    assert_eq!((metadata.name.as_str(), entries), ("metadata", 7554));
    assert_eq!(metadata.place, "pyre-content.service");
    let rec = BootRecord::from_json(&std::fs::read(&p.record).unwrap()).unwrap();
    assert_eq!(rec.checks[rec.checks.len() - 2..], [metadata, read]);
    assert!(host.ops().is_empty(), "{:?}", host.ops());
}

#[test]
fn nothing_to_read_after_a_full_check_or_without_pyre_init() {
    for mode in [Some("full"), Some("metadata"), None] {
        let (_d, p) = setup(mode, None);
        let host = RecordingHost::new();
        let out = run_with(&p, &host, DeviceRead::default());
        assert!(matches!(out, Outcome::NotNeeded(_)), "{mode:?}: {out:?}");
    }
    let (_d, p) = setup(Some("read"), None);
    std::fs::remove_file(&p.record).unwrap();
    let host = RecordingHost::new();
    let out = run_with(&p, &host, DeviceRead::default());
    assert!(matches!(out, Outcome::NotNeeded(_)), "{out:?}");
    std::fs::write(&p.record, b"{").unwrap();
    let caps = Caps {
        clock: &host,
        lifecycle: &host,
        verifier: &Drifted,
        read: &|_: &Path| Ok(DeviceRead::default()),
    };
    assert!(run(&p, &caps).is_err(), "a broken record fails closed");
}

#[test]
fn a_rejected_block_names_the_file_and_ends_the_machine_as_the_policy_says() {
    let rejected = DeviceRead {
        bytes: 100,
        rejected: vec![Rejected {
            offset: 4096,
            len: 4096,
            error: "EIO (Input/output error)".into(),
        }],
    };
    let halt = r#"{"version": 1, "on-failure": "halt"}"#;
    let cases = [
        (None, "ro", Some(Shutdown::PowerOff), OnFailure::Poweroff),
        (Some(halt), "ro", Some(Shutdown::Halt), OnFailure::Halt),
        (None, "ro pyre.debug", None, OnFailure::Debug),
        (
            Some("{"),
            "ro",
            Some(Shutdown::PowerOff),
            OnFailure::Poweroff,
        ),
    ];
    for (policy, cmdline, how, want) in cases {
        let (_d, p) = setup(Some("read"), policy);
        std::fs::write(&p.cmdline, cmdline).unwrap();
        let host = RecordingHost::new();
        let Outcome::Rejected {
            checks,
            files,
            action,
            ..
        } = run_with(&p, &host, rejected.clone())
        else {
            panic!("expected a rejection")
        };
        assert_eq!(action, want, "{policy:?} {cmdline}");
        let outcomes: Vec<&str> = checks.iter().map(|c| c.outcome.as_str()).collect();
        assert_eq!(outcomes, ["passed", "failed"], "metadata, content-read");
        assert_eq!(files.len(), 1);
        assert!(files[0].starts_with("/usr/share/common-licenses/GPL-3:"));
        let shut: Vec<Op> = how.map(Op::ShutDown).into_iter().collect();
        assert_eq!(host.ops(), shut, "{policy:?} {cmdline}");
        let rec = BootRecord::from_json(&std::fs::read(&p.record).unwrap()).unwrap();
        assert_eq!(
            rec.checks.last().map(|c| c.outcome.as_str()),
            Some("failed")
        );
    }
}

/// With the manifest at hand, the rejected bytes are mapped to the file holding them through
/// its extents (where the test's filesystem has FIEMAP), without the verifier.
#[test]
fn the_file_holding_a_rejected_block_is_found_by_its_extents() {
    let (_d, mut p) = setup(Some("read"), None);
    let tree = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    p.root = tree.path().to_path_buf();
    std::fs::create_dir_all(p.root.join("usr/share")).unwrap();
    std::fs::create_dir_all(p.root.join("etc")).unwrap();
    let file = p.root.join("usr/share/GPL-3");
    std::fs::write(&file, vec![b'x'; 5 * 4096]).unwrap();
    std::fs::write(p.root.join("usr/share/other"), vec![b'y'; 4096]).unwrap();
    std::fs::File::open(&file).unwrap().sync_all().unwrap();
    let Ok(extents) = crate::sys::fiemap::extents_at(&file) else {
        return; // no FIEMAP here (tmpfs): the fallback is tested above
    };
    let m = crate::manifest::seal(&p.root, &[], &[], 1).unwrap();
    std::fs::write(p.run_pyre.join("manifest"), m.encode()).unwrap();
    let rejected = DeviceRead {
        bytes: 0,
        rejected: vec![Rejected {
            offset: extents[0].physical + 4096,
            len: 4096,
            error: "EIO (Input/output error)".into(),
        }],
    };
    let host = RecordingHost::new();
    let Outcome::Rejected { files, report, .. } = run_with(&p, &host, rejected) else {
        panic!("expected a rejection")
    };
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("/usr/share/GPL-3 (holds rejected bytes "),
        "{files:?}"
    );
    assert!(report.is_empty(), "the verifier was not needed");
}

/// A tree that differs from the manifest (a changed mode: no block rejected, as when the
/// image was built from another tree) is refused all the same: named, recorded, powered off.
#[test]
fn a_tree_that_differs_from_the_manifest_names_the_entry_and_ends_the_machine() {
    let (_d, p) = setup(Some("read"), None);
    let host = RecordingHost::new();
    let clean = DeviceRead {
        bytes: 178_000_000,
        rejected: vec![],
    };
    let Outcome::Rejected {
        checks,
        files,
        report,
        action,
    } = run_verifier(&p, &host, clean, &TreeDrifted)
    else {
        panic!("expected a rejection")
    };
    assert_eq!(files, ["/usr/bin/ls: mode 0755 -> 4755"]);
    assert!(report.contains("changed (1)"), "{report}");
    assert_eq!(action, OnFailure::Poweroff);
    assert_eq!(host.ops(), [Op::ShutDown(Shutdown::PowerOff)]);
    let outcomes: Vec<&str> = checks.iter().map(|c| c.outcome.as_str()).collect();
    assert_eq!(outcomes, ["failed", "passed"], "metadata, content-read");
    let rec = BootRecord::from_json(&std::fs::read(&p.record).unwrap()).unwrap();
    assert_eq!(rec.checks[rec.checks.len() - 2..], checks[..]);
}

/// Without the unit's bind of the root (a hand-run `pyre content-check`), nothing is judged:
/// an error, no action.
#[test]
fn a_missing_tree_is_an_error_not_drift() {
    let (_d, mut p) = setup(Some("read"), None);
    p.root = p.root.join("absent");
    let host = RecordingHost::new();
    let caps = Caps {
        clock: &host,
        lifecycle: &host,
        verifier: &Drifted,
        read: &|_: &Path| Ok(DeviceRead::default()),
    };
    let err = run(&p, &caps).unwrap_err();
    assert!(err.to_string().contains("absent"), "{err}");
    assert!(host.ops().is_empty(), "{:?}", host.ops());
}

/// pyre init's early reader left its result: it is taken (the device is not read again) and
/// recorded as the early reader's; a reader gone without one: the device is read here.
#[test]
fn the_early_readers_result_is_taken_and_its_absence_falls_back_to_a_read() {
    let (_d, p) = setup(Some("read"), None);
    let mut r = BootRecord::from_json(&std::fs::read(&p.record).unwrap()).unwrap();
    r.content_reader = Some(77);
    std::fs::write(&p.record, r.to_json()).unwrap();
    let early = crate::init::early::EarlyRead {
        started_at: 4.9,
        seconds: 7.5,
        readers: 1,
        read: DeviceRead {
            bytes: 264_000_000,
            rejected: vec![],
        },
    };
    std::fs::write(
        p.run_pyre.join(crate::init::early::RESULT),
        serde_json::to_vec(&early).unwrap(),
    )
    .unwrap();
    let host = RecordingHost::new();
    let caps = Caps {
        clock: &host,
        lifecycle: &host,
        verifier: &Drifted,
        read: &|_: &Path| panic!("the device was read again"),
    };
    let Outcome::Passed { read, .. } = run(&p, &caps).unwrap() else {
        panic!("expected a pass")
    };
    assert_eq!(
        (
            read.place.as_str(),
            read.started_at,
            read.seconds,
            read.bytes
        ),
        (EARLY_PLACE, 4.9, 7.5, 264_000_000)
    );
    // No result and no such process: read here.
    std::fs::remove_file(p.run_pyre.join(crate::init::early::RESULT)).unwrap();
    let fresh = DeviceRead {
        bytes: 5,
        rejected: vec![],
    };
    let Outcome::Passed { read, .. } = run_with(&p, &host, fresh) else {
        panic!("expected a pass")
    };
    assert_eq!((read.place.as_str(), read.bytes), (PLACE, 5));
}

use super::*;
use crate::host::{Op, RecordingHost};

#[test]
fn table_status_lines() {
    assert_eq!(parse_status("verity", "V"), TableStatus::Verified);
    assert_eq!(parse_status("verity", "C"), TableStatus::Corrupted);
    assert_eq!(parse_status("verity", "C 0"), TableStatus::Corrupted);
    assert!(matches!(parse_status("linear", "V"), TableStatus::Other(_)));
    assert!(matches!(parse_status("verity", ""), TableStatus::Other(_)));
}

#[test]
fn kernel_messages() {
    let m = parse_kmsg("3,1234,5678901,-;device-mapper: verity: 254:0: data block 77 is corrupted")
        .unwrap();
    assert_eq!(
        (m.dev.as_str(), m.area.as_str(), m.block),
        ("254:0", "data", 77)
    );
    assert_eq!(
        m.text,
        "device-mapper: verity: 254:0: data block 77 is corrupted"
    );
    let meta = parse_kmsg("device-mapper: verity: 8:16: metadata block 3 is corrupted").unwrap();
    assert_eq!((meta.area.as_str(), meta.block), ("metadata", 3));
    for other in [
        "6,1,2,-;device-mapper: verity: 254:0: reached maximum errors",
        "6,1,2,-;EXT4-fs (vdb): mounted filesystem",
        "device-mapper: verity: 254:0: data block x is corrupted",
        " SUBSYSTEM=block",
    ] {
        assert_eq!(parse_kmsg(other), None, "{other}");
    }
}

struct Rig {
    dir: tempfile::TempDir,
    host: Arc<RecordingHost>,
}

impl Rig {
    fn new(kmsg: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let dm = dir.path().join("sys/block/dm-0");
        std::fs::create_dir_all(dm.join("dm")).unwrap();
        std::fs::create_dir_all(dm.join("slaves/vda")).unwrap();
        std::fs::write(dm.join("dm/name"), "pyre-root\n").unwrap();
        std::fs::write(dm.join("slaves/vda/dev"), "254:0\n").unwrap();
        std::fs::write(dir.path().join("kmsg"), kmsg).unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        Rig {
            dir,
            host: Arc::new(RecordingHost::new()),
        }
    }

    fn check(&self, verity_boot: bool) -> VerityCheck {
        let d = self.dir.path();
        VerityCheck::new(
            self.host.clone(),
            VerityPaths {
                dm_control: d.join("control"),
                kmsg: d.join("kmsg"),
                sys: d.join("sys"),
                root: d.join("root"),
            },
            Arc::new(Sealed::default()),
            verity_boot,
        )
    }
}

#[test]
fn clean_when_the_table_says_v_and_the_log_is_quiet() {
    let rig = Rig::new("6,1,2,-;EXT4-fs (vdb): mounted\n");
    rig.host.set_dm_status("verity", "V");
    let mut c = rig.check(true);
    assert_eq!(
        c.run(),
        Outcome::Clean("table status V, no verity messages in the kernel log".into())
    );
    assert!(rig.host.ops().iter().any(|op| matches!(
        op,
        Op::Dm { request: DmRequest::Status { name }, .. } if name == "pyre-root"
    )));
    let mut root = RootState::default();
    c.root_state(&mut root);
    assert_eq!(root.verity.as_deref(), Some("verified (table status V)"));
}

#[test]
fn a_corrupted_block_in_the_log_is_found_once_per_block_and_only_for_the_root() {
    let rig = Rig::new(
        "3,10,5,-;device-mapper: verity: 254:0: data block 9 is corrupted\n\
         3,11,6,-;device-mapper: verity: 8:0: data block 4 is corrupted\n\
         3,12,7,-;device-mapper: verity: 254:0: data block 9 is corrupted\n",
    );
    rig.host
        .fail_when(|op| matches!(op, Op::Dm { .. }).then_some(libc::EACCES));
    let mut c = rig.check(true);
    let Outcome::Found(f) = c.run() else {
        panic!("expected corruption")
    };
    assert_eq!(f.key, "data:9");
    assert_eq!(
        f.reason,
        "dm-verity saw corrupted blocks of the root: block 9"
    );
    match &f.findings[..] {
        [Finding::VerityCorruption {
            device,
            block: Some(9),
            path: None,
            detail,
        }] => {
            assert_eq!(device, "/dev/mapper/pyre-root");
            assert!(
                detail.starts_with("device-mapper: verity: 254:0: data block 9"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The same incident on the next run (the log was read to its end: nothing new).
    let Outcome::Found(again) = c.run() else {
        panic!("still corrupted")
    };
    assert_eq!(again.key, f.key);
}

#[test]
fn table_status_c_alone_is_corruption() {
    let rig = Rig::new("");
    rig.host.set_dm_status("verity", "C");
    let Outcome::Found(f) = rig.check(true).run() else {
        panic!("expected corruption")
    };
    assert_eq!(f.key, "C");
    assert!(matches!(
        &f.findings[..],
        [Finding::VerityCorruption { block: None, .. }]
    ));
}

#[test]
fn no_source_is_a_failure_and_no_verity_root_is_not_applicable() {
    let rig = Rig::new("");
    rig.host
        .fail_when(|op| matches!(op, Op::Dm { .. }).then_some(libc::EACCES));
    std::fs::remove_file(rig.dir.path().join("kmsg")).unwrap();
    match rig.check(true).run() {
        Outcome::Failed(e) => {
            assert!(e.contains("not permitted (needs CAP_SYS_ADMIN)"), "{e}");
            assert!(e.contains("kmsg"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(rig.check(false).run(), Outcome::NotApplicable(_)));
}

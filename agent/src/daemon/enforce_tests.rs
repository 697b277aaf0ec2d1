use super::*;
use crate::enforce::report::Incident;
use crate::enforce::status::{RunResult, Status};
use crate::enforce::LogResponder;
use crate::{config, keys, manifest};

/// A sealed, signed image tree (`root/`, its `etc/pyre/`), a run directory, and PID 1's mount
/// table as a file (`mountinfo`), laid out like a booted instance without pyre's initramfs.
struct Rig {
    dir: tempfile::TempDir,
}

const TABLE: &str = "\
22 1 8:1 / / ro,relatime shared:1 - ext4 /dev/vda1 ro\n\
23 22 0:21 / /proc rw,nosuid shared:2 - proc proc rw\n\
26 22 0:23 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755\n";

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let etc = root.join("etc/pyre");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        for d in ["srv", "proc", "run"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::create_dir_all(etc.join("keys")).unwrap();
        std::fs::write(root.join("usr/bin/tool"), b"#!/bin/true\n").unwrap();
        std::fs::write(etc.join("manifest"), b"").unwrap();
        std::fs::write(etc.join("manifest.sig"), b"").unwrap();
        let signer = keys::generate().unwrap();
        let public = keys::encode_public(&signer.verifying_key());
        std::fs::write(etc.join("keys/build.pub"), public).unwrap();
        let excludes: Vec<Vec<u8>> = [
            "/proc",
            "/run",
            "/etc/pyre/manifest",
            "/etc/pyre/manifest.sig",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let bytes = manifest::seal(&root, &excludes, &[], 1).unwrap().encode();
        let digest = manifest::digest(&bytes);
        std::fs::write(etc.join("manifest"), &bytes).unwrap();
        std::fs::write(
            etc.join("manifest.sig"),
            keys::sign_digest(&signer, &digest),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::write(dir.path().join("mountinfo"), TABLE).unwrap();
        Rig { dir }
    }

    fn paths(&self) -> EnforcePaths {
        let d = self.dir.path();
        EnforcePaths {
            root: d.join("root"),
            verify_root: d.join("root"),
            etc: d.join("root/etc/pyre"),
            mountinfo: d.join("mountinfo"),
            sys: d.join("sys"),
            dm_control: d.join("control"),
            kmsg: d.join("kmsg"),
            run: d.join("run"),
        }
    }

    fn mount(&self, line: &str) {
        std::fs::write(
            self.dir.path().join("mountinfo"),
            format!("{TABLE}{line}\n"),
        )
        .unwrap();
    }
}

fn identity() -> Identity {
    Identity {
        hostname: "web-1".into(),
        image: "web:7".into(),
        manifest: String::new(),
        instance: "i-9".into(),
        boot_id: "bb161606-cbaa".into(),
    }
}

fn run(check: &mut Scheduled) -> Outcome {
    check.check.run()
}

#[test]
fn the_checks_follow_the_config_and_the_image() {
    let rig = Rig::new();
    let cfg = config::parse(
        br#"{"version":1,"drift":{"interval":"10m","action":"report"},
             "volumes":[{"name":"data","device":{"label":"data"},"filesystem":"ext4","mountpoint":"/srv/data"}]}"#,
    )
    .unwrap();
    let mut checks = checks(Some(&cfg), &rig.paths(), &identity());
    let kinds: Vec<Kind> = checks.iter().map(|c| c.check.kind()).collect();
    assert_eq!(kinds, [Kind::Mounts, Kind::Verity, Kind::Verify]);
    assert_eq!(
        (checks[0].every, checks[1].every),
        (MOUNTS_EVERY, VERITY_EVERY)
    );
    let every = checks[2].every;
    assert!(
        every >= Duration::from_secs(540) && every <= Duration::from_secs(660),
        "{every:?}"
    );
    assert_eq!(
        checks[2].first, every,
        "boot verified the root: the first run waits a period"
    );
    assert!(matches!(run(&mut checks[0]), Outcome::Clean(_)));
    assert!(matches!(run(&mut checks[1]), Outcome::NotApplicable(_)));
    assert!(matches!(run(&mut checks[2]), Outcome::Clean(_)));
    // The config's volume mount point is the image's own; a bind over a sealed binary is not.
    rig.mount("40 22 8:17 / /srv/data rw - ext4 /dev/vdb rw");
    assert!(matches!(run(&mut checks[0]), Outcome::Clean(_)));
    rig.mount("41 22 8:1 /tmp/evil /usr/bin/tool rw - ext4 /dev/vda1 rw");
    let Outcome::Found(f) = run(&mut checks[0]) else {
        panic!("a mount over a sealed file is found")
    };
    assert_eq!(f.reason, "ext4 /dev/vda1 mounted over sealed /usr/bin/tool");
}

#[test]
fn without_a_config_the_defaults_apply_and_without_a_manifest_nothing_is_clean() {
    let rig = Rig::new();
    let every = checks(None, &rig.paths(), &identity())[2].every;
    assert!(every >= Duration::from_secs(3240) && every <= Duration::from_secs(3960));
    std::fs::remove_file(rig.paths().etc.join("manifest")).unwrap();
    let mut checks = checks(None, &rig.paths(), &identity());
    match run(&mut checks[0]) {
        Outcome::Failed(why) => {
            assert!(why.starts_with("no sealed paths to check against"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(run(&mut checks[2]), Outcome::Failed(_)));
}

#[test]
fn boot_record_provider_and_instance() {
    let d = tempfile::tempdir().unwrap();
    let rec = d.path().join("boot.json");
    assert!(!verity_boot(&rec));
    std::fs::write(&rec, r#"{"version":1,"verified":true}"#).unwrap();
    assert!(verity_boot(&rec));
    std::fs::write(&rec, r#"{"version":1,"verified":false}"#).unwrap();
    assert!(!verity_boot(&rec));
    assert_eq!(provider(d.path()), None);
    std::fs::write(d.path().join("instance.json"), r#"{"provider":"aws"}"#).unwrap();
    assert_eq!(provider(d.path()).as_deref(), Some("aws"));
    let i = instance(&identity(), Some("aws".into()));
    assert_eq!(
        (i.id.as_deref(), i.image_id.as_deref(), i.boot_id.as_deref()),
        (Some("i-9"), Some("web:7"), Some("bb161606-cbaa"))
    );
}

/// The whole loop on a real thread and clock: the mounts check runs at start, finds the bind
/// mount, the responder stores the report, and status.json (0644) shows it; stop is prompt.
#[test]
fn the_thread_reports_publishes_and_stops() {
    let rig = Rig::new();
    rig.mount("41 22 8:1 /tmp/evil /usr/bin/tool rw - ext4 /dev/vda1 rw");
    let p = rig.paths();
    let cfg = config::parse(br#"{"version":1,"lifetime":{"max-age":"1d"}}"#).unwrap();
    let respond = Arc::new(LogResponder {
        reports: p.run.join("reports"),
    });
    let e = start(
        Some(&cfg),
        Path::new("/run/pyre/config.json"),
        &p,
        &identity(),
        vec![],
        respond,
        false,
    )
    .unwrap();
    let status_path = p.run.join("status.json");
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let st = std::fs::read(&status_path)
            .ok()
            .and_then(|b| Status::from_json(&b).ok());
        if let Some(st) = st.filter(|s| {
            s.checks
                .iter()
                .all(|c| c.last.is_some() || c.check == Kind::Verify)
        }) {
            break st;
        }
        assert!(
            std::time::Instant::now() < until,
            "no status with the cheap checks run"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stopped = std::time::Instant::now();
    e.stop(Duration::from_secs(5));
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopped.elapsed()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&status_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let mounts = &status.checks[0];
    assert_eq!(mounts.last.as_ref().unwrap().result, RunResult::Found);
    assert!(status.found());
    assert_eq!(status.root.read_only, Some(true));
    assert_eq!(status.instance.id.as_deref(), Some("i-9"));
    assert_eq!(status.lifetime.as_ref().unwrap().max_age_s, 86400);
    assert!(status.checks[2].next.is_some() && status.checks[2].last.is_none());
    let id = mounts.last_incident.clone().unwrap();
    let report = std::fs::read(p.run.join("reports").join(format!("{id}.json"))).unwrap();
    let inc = Incident::from_json(&report).unwrap();
    assert_eq!(
        inc.event.reason,
        "ext4 /dev/vda1 mounted over sealed /usr/bin/tool"
    );
    assert_eq!(inc.instance.hostname.as_deref(), Some("web-1"));
}

//! Adversarial live trees that need privileges to build (issue 14): a directory loop through a
//! bind mount, made in a private mount namespace, and a huge directory nobody may read, checked
//! as an unprivileged user (root reads a mode-000 directory regardless: CAP_DAC_OVERRIDE). As
//! in adversarial_trees.rs, each must finish within a bound relative to an untouched verify of
//! the same tree, and the times are printed.
mod adversarial_common;
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use adversarial_common::*;
use common::*;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use pyre::drift::{verify_root, DriftReport, VerifyRequest};

const FLOOR: Duration = Duration::from_secs(3);

/// Verify `t` from a thread with its own mount namespace, in which the tree's root is bind
/// mounted (recursively) onto its own `/usr/lib/loop`, then again onto the copy's
/// `/usr/lib/loop`, eight times deep: once reading that thread's mount table (which shows the
/// mounts) and once with an empty one (only the walker's own check, a directory met again
/// below itself, can stop it). Threads the verify starts inherit the namespace of the thread
/// that starts them.
fn verify_in_a_loop(t: &Tree) -> [(DriftReport, Duration); 2] {
    let (root, manifest, empty) = (t.root.clone(), t.manifest(), t.file("no-mounts"));
    fs::write(&empty, b"").unwrap();
    std::thread::spawn(move || {
        let none: Option<&str> = None;
        unshare(CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).unwrap();
        let mut at = root.clone();
        for _ in 0..8 {
            at = at.join("usr/lib/loop");
            let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(Some(&root), &at, none, flags, none).unwrap();
        }
        // The loop is real: the tree shows itself again below itself, eight times.
        assert!(at.join("etc/passwd").is_file(), "{}", at.display());
        let run = |mountinfo: &Path| {
            timed(|| {
                verify_root(&VerifyRequest {
                    mountinfo,
                    ..VerifyRequest::new(&root, &manifest)
                })
                .expect("verify_root")
            })
        };
        [run(Path::new("/proc/thread-self/mountinfo")), run(&empty)]
    })
    .join()
    .unwrap()
}

#[test]
fn a_directory_loop_through_a_bind_mount_is_not_walked_into() {
    let _serial = serial();
    let t = base_tree();
    bulk(&t, 40, 50, 4096);
    mkdir(&t.path("usr/lib/loop"), 0o755);
    t.seal(&[]);
    let untouched = baseline(&t);
    let [(shown, took_shown), (hidden, took_hidden)] = verify_in_a_loop(&t);
    for (case, r, took) in [
        ("bind-mount loop (in the mount table)", &shown, took_shown),
        ("bind-mount loop (empty mount table)", &hidden, took_hidden),
    ] {
        assert_bounded(case, untouched, took, 10, FLOOR);
        let shadowed = [("/usr/lib/loop".to_string(), "shadowed".to_string(), vec![])];
        assert_eq!(summary(r), shadowed, "{case}: {}", brief(r));
        assert_eq!(r.counts.found, r.counts.entries, "{case}");
    }
    let v = json(&shown);
    assert_eq!(v["changes"][0]["fstype"], fstype_of(&t.root));
    // Without a mount table entry there is nothing to name the mount by.
    let v = json(&hidden);
    assert!(v["changes"][0].get("fstype").is_none(), "{v}");
}

/// The filesystem type of the mount holding `p`, as the mount table names it.
fn fstype_of(p: &Path) -> String {
    let o = std::process::Command::new("findmnt")
        .args(["-n", "-o", "FSTYPE", "--target"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Run `pyre verify --format json` on `t` as uid/gid 65534.
fn verify_unprivileged(t: &Tree) -> Output {
    for _ in 0..100 {
        let mut c = t.pyre_copy();
        c.args(["verify", "--format", "json", "-m"])
            .arg(t.manifest())
            .arg(&t.root)
            .uid(65534)
            .gid(65534);
        match c.output() {
            // The copy may still be open for writing by another test's fork (see cli.rs).
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            r => return r.unwrap(),
        }
    }
    panic!("the copied pyre binary stayed busy (ETXTBSY)")
}

#[test]
fn a_huge_directory_nobody_may_read_is_unreadable() {
    let _serial = serial();
    // Everything readable by others, so the untouched verify as uid 65534 is clean.
    let t = Tree::empty_reachable();
    bulk(&t, 40, 50, 4096);
    mkdir(&t.path("var/cache/huge"), 0o755);
    for i in 0..20_000 {
        fs::File::create(t.path(&format!("var/cache/huge/{i:05}"))).unwrap();
    }
    t.seal(&[]);
    fs::set_permissions(t.manifest(), fs::Permissions::from_mode(0o644)).unwrap();
    let untouched = median3(|| {
        let (o, took) = timed(|| verify_unprivileged(&t));
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        took
    });
    fs::set_permissions(t.path("var/cache/huge"), fs::Permissions::from_mode(0o000)).unwrap();
    let (o, took) = timed(|| verify_unprivileged(&t));
    assert_bounded(
        "huge mode-000 directory (uid 65534)",
        untouched,
        took,
        10,
        FLOOR,
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{}", v["counts"]);
    assert_eq!(changes[0]["path"], "/var/cache/huge");
    assert_eq!(changes[0]["kind"], "unreadable");
    let error = changes[0]["error"].as_str().unwrap();
    assert!(error.contains("Permission denied"), "{error}");
}

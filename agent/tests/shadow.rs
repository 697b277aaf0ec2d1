//! Mounts hiding sealed paths. Each case runs `pyre verify` in a private mount namespace made
//! for that one child process; the only mounts are on directories inside the test's temp dir.
mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use common::*;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

enum M {
    Tmpfs(PathBuf),
    Bind(PathBuf, PathBuf),
}

/// Run `pyre verify --format json` with `mounts` made in a new mount namespace.
fn verify_with_mounts(t: &Tree, mounts: Vec<M>) -> (i32, serde_json::Value) {
    let mut cmd = pyre();
    cmd.args(["verify", "--format", "json", "-m"])
        .arg(t.manifest())
        .arg(&t.root);
    let o = in_namespace(cmd, mounts);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    (o.status.code().unwrap(), v)
}

/// Run `cmd` in a new private mount namespace after making `mounts` there.
fn in_namespace(mut cmd: std::process::Command, mounts: Vec<M>) -> std::process::Output {
    // SAFETY: the closure runs in the forked child before exec and only makes syscalls.
    unsafe {
        cmd.pre_exec(move || {
            let none: Option<&str> = None;
            unshare(CloneFlags::CLONE_NEWNS)?;
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
            for m in &mounts {
                match m {
                    M::Tmpfs(at) => {
                        mount(Some("pyre-test"), at, Some("tmpfs"), MsFlags::empty(), none)?
                    }
                    M::Bind(from, at) => mount(Some(from), at, none, MsFlags::MS_BIND, none)?,
                }
            }
            Ok(())
        });
    }
    cmd.output().expect("run pyre in a mount namespace")
}

#[test]
fn tmpfs_over_sealed_directory_is_shadowed() {
    let t = base_tree();
    t.seal(&[]);
    let (code, v) = verify_with_mounts(&t, vec![M::Tmpfs(t.path("var/lib"))]);
    assert_eq!(code, 1, "{v}");
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{v}");
    assert_eq!(changes[0]["path"], "/var/lib");
    assert_eq!(changes[0]["kind"], "shadowed");
    assert_eq!(changes[0]["hidden_entries"], 3);
    assert_eq!(changes[0]["fstype"], "tmpfs");
    assert_eq!(changes[0]["source"], "pyre-test");
    assert_eq!(v["counts"]["shadowed"], 1);
}

#[test]
fn bind_mount_on_the_same_filesystem_is_shadowed() {
    // Same st_dev on both sides: only the mount table shows it.
    let t = base_tree();
    t.seal(&[]);
    let (code, v) = verify_with_mounts(&t, vec![M::Bind(t.path("etc"), t.path("usr/lib"))]);
    assert_eq!(code, 1, "{v}");
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{v}");
    assert_eq!(changes[0]["path"], "/usr/lib");
    assert_eq!(changes[0]["kind"], "shadowed");
    assert_eq!(changes[0]["hidden_entries"], 1);
}

#[test]
fn mount_on_an_excluded_path_is_clean() {
    let t = base_tree();
    t.seal(&["/run", "/tmp"]);
    let (code, v) = verify_with_mounts(&t, vec![M::Tmpfs(t.path("run")), M::Tmpfs(t.path("tmp"))]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["verdict"], "clean");
}

#[test]
fn mount_on_a_file_bind_is_shadowed() {
    let t = base_tree();
    t.seal(&[]);
    let (code, v) = verify_with_mounts(
        &t,
        vec![M::Bind(t.path("etc/shadow"), t.path("etc/passwd"))],
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["changes"][0]["path"], "/etc/passwd");
    assert_eq!(v["changes"][0]["kind"], "shadowed");
}

#[test]
fn seal_does_not_cross_a_mount_and_excludes_it() {
    let t = base_tree();
    let mut cmd = pyre();
    cmd.arg("seal").arg(&t.root).arg("-o").arg(t.manifest());
    let o = in_namespace(cmd, vec![M::Tmpfs(t.path("var/lib"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("/var/lib is a mount point; recording it as excluded"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(t.manifest()).unwrap();
    assert!(
        text.starts_with("pyre-manifest 1\nexclude /var/lib\n"),
        "{text}"
    );
    assert!(
        text.contains("\n/var/lib dir ") && !text.contains("/var/lib/app"),
        "{text}"
    );
}

//! Shared helpers of the integration tests: temp trees, sealing, verifying, tree tampering.
#![allow(dead_code)]
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use pyre::drift::{verify_root, DriftReport, VerifyRequest};
use pyre::manifest;
use pyre::sys::mountinfo;

pub const MOUNTINFO: &str = "/proc/self/mountinfo";

pub fn pyre() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pyre"))
}

/// A temp dir holding `root/` (the tree) and room for manifests and keys.
pub struct Tree {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Tree {
    pub fn empty() -> Tree {
        Tree::empty_in(&std::env::temp_dir())
    }

    /// A tree an unprivileged user can reach: under the temp dir when every ancestor of it
    /// is world-traversable, otherwise under /tmp (a checkout or `TMPDIR` inside a 0700
    /// home must not decide whether the test can run).
    pub fn empty_reachable() -> Tree {
        let tmp = std::env::temp_dir();
        let parent = if world_traversable(&tmp) {
            tmp
        } else {
            PathBuf::from("/tmp")
        };
        assert!(
            world_traversable(&parent),
            "no world-traversable temp dir ({}) for an unprivileged test",
            parent.display()
        );
        Tree::empty_in(&parent)
    }

    /// A copy of the `pyre` binary inside the tree's temp dir (mode 0755): the binary under
    /// `target/` may sit in a directory other users cannot traverse (a clone in /root).
    pub fn pyre_copy(&self) -> Command {
        let bin = self.file("pyre");
        if !bin.exists() {
            fs::copy(env!("CARGO_BIN_EXE_pyre"), &bin).unwrap();
            fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Command::new(bin)
    }

    /// A tree on tmpfs when the machine has /dev/shm: for trees of very many files, which
    /// ext4 creates slowly when inodes were recently freed.
    pub fn empty_on_tmpfs() -> Tree {
        let shm = Path::new("/dev/shm");
        Tree::empty_in(if shm.is_dir() { shm } else { Path::new("/tmp") })
    }

    pub fn empty_in(parent: &Path) -> Tree {
        let dir = tempfile::tempdir_in(parent).expect("tempdir");
        // World-traversable, so a test may verify as an unprivileged user.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        Tree { dir, root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn manifest(&self) -> PathBuf {
        self.file("manifest")
    }

    /// Seal the tree with the library into `manifest`; returns the digest.
    pub fn seal(&self, excludes: &[&str]) -> String {
        let bytes = seal_bytes(&self.root, excludes);
        fs::write(self.manifest(), &bytes).unwrap();
        manifest::digest(&bytes)
    }

    pub fn verify(&self) -> DriftReport {
        verify_root(&VerifyRequest {
            root: &self.root,
            manifest: &self.manifest(),
            pubkey: None,
            mountinfo: Path::new(MOUNTINFO),
            content: pyre::drift::ContentCheck::Hash,
        })
        .expect("verify_root")
    }
}

pub fn seal_bytes(root: &Path, excludes: &[&str]) -> Vec<u8> {
    let mounts = mountinfo::parse(&fs::read(MOUNTINFO).unwrap());
    let ex: Vec<Vec<u8>> = excludes.iter().map(|x| x.as_bytes().to_vec()).collect();
    manifest::seal(root, &ex, &mounts, 2)
        .expect("seal")
        .encode()
}

pub fn write(p: &Path, content: &[u8], mode: u32) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, content).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn mkdir(p: &Path, mode: u32) {
    fs::create_dir_all(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and a buffer of the given length.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

pub fn remove_xattr(p: &Path, name: &str) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings.
    let r = unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) };
    assert_eq!(
        r,
        0,
        "removexattr {name}: {}",
        std::io::Error::last_os_error()
    );
}

pub fn mknod(p: &Path, kind: nix::sys::stat::SFlag, major: u64, minor: u64) {
    nix::sys::stat::mknod(
        p,
        kind,
        nix::sys::stat::Mode::from_bits_truncate(0o660),
        nix::sys::stat::makedev(major, minor),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", p.display()));
}

/// A small tree with one of every kind of entry and attribute the manifest records.
pub fn base_tree() -> Tree {
    base_tree_in(Tree::empty())
}

/// [`base_tree`] in a place an unprivileged user can reach (see [`Tree::empty_reachable`]).
pub fn base_tree_reachable() -> Tree {
    base_tree_in(Tree::empty_reachable())
}

/// Every directory from `/` down to `dir` lets others search it (mode o+x).
pub fn world_traversable(dir: &Path) -> bool {
    dir.ancestors().all(|d| {
        fs::metadata(d)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    })
}

fn base_tree_in(t: Tree) -> Tree {
    use nix::sys::stat::SFlag;
    let p = |r: &str| t.path(r);
    mkdir(&p("etc"), 0o755);
    write(&p("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n", 0o644);
    write(&p("etc/shadow"), b"root:*:19000:0:99999:7:::\n", 0o640);
    std::os::unix::fs::lchown(p("etc/shadow"), Some(0), Some(42)).unwrap();
    write(&p("etc/empty"), b"", 0o644);
    write(&p("etc/attr"), b"with xattrs\n", 0o644);
    set_xattr(&p("etc/attr"), "user.note", b"sealed");
    set_xattr(&p("etc/attr"), "security.pyre", b"\x00\x01binary");
    write(&p("usr/bin/tool"), b"#!/bin/sh\necho tool\n", 0o755);
    write(&p("usr/bin/su"), b"setuid binary\n", 0o4755);
    write(&p("usr/bin/a"), b"linked twice\n", 0o755);
    fs::hard_link(p("usr/bin/a"), p("usr/bin/b")).unwrap();
    mkdir(&p("usr/lib"), 0o755);
    symlink("../bin/tool", p("usr/lib/tool-link")).unwrap();
    mkdir(&p("tmp"), 0o1777);
    mkdir(&p("dev"), 0o755);
    mknod(&p("dev/null"), SFlag::S_IFCHR, 1, 3);
    mknod(&p("dev/loop0"), SFlag::S_IFBLK, 7, 0);
    mkdir(&p("run"), 0o755);
    nix::unistd::mkfifo(
        &p("run/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    mkdir(&p("var/lib/app"), 0o750);
    write(&p("var/lib/app/state"), b"state\n", 0o600);
    write(&p("var/lib/app/more"), b"more\n", 0o600);
    // A name that is not UTF-8 and one with a space.
    write(
        &t.root.join(OsStr::from_bytes(b"var/caf\xe9")),
        b"latin-1 name\n",
        0o644,
    );
    write(&p("var/with space"), b"spaced\n", 0o644);
    t
}

/// (path, kind, attributes) of every change, for table comparisons.
pub fn summary(r: &DriftReport) -> Vec<(String, String, Vec<String>)> {
    let v = serde_json::to_value(r).unwrap();
    v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let attrs = c["attributes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x["attribute"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            (
                c["path"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
                attrs,
            )
        })
        .collect()
}

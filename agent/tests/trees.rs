//! Whole-tree properties: reproducible manifests, no false positives, odd and big trees.
mod common;

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn sealing_is_reproducible_also_after_cp_a() {
    let t = base_tree();
    let first = seal_bytes(&t.root, &["/run"]);
    let second = seal_bytes(&t.root, &["/run"]);
    assert_eq!(first, second, "sealing twice");
    let copy = t.file("copy");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&t.root)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    let copied = seal_bytes(&copy, &["/run"]);
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&copied),
        "cp -a copy"
    );
    // And nothing in it names where or when it was made.
    let text = String::from_utf8(first).unwrap();
    assert!(!text.contains(t.dir.path().to_str().unwrap()));
}

#[test]
fn hundred_verifies_of_an_untouched_tree_are_clean() {
    let t = base_tree();
    for d in 0..10 {
        for f in 0..10 {
            write(
                &t.path(&format!("data/{d}/{f}")),
                format!("{d}-{f}").repeat(f * 50).as_bytes(),
                0o644,
            );
        }
    }
    t.seal(&[]);
    for i in 0..100 {
        let r = t.verify();
        assert!(r.is_clean(), "run {i}: {:?}", summary(&r));
        assert_eq!(r.counts.entries, r.counts.found);
    }
}

#[test]
fn empty_large_and_sparse_files() {
    let t = Tree::empty();
    write(&t.path("empty"), b"", 0o644);
    let big: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    write(&t.path("large"), &big, 0o644);
    let mut sparse = fs::File::create(t.path("sparse")).unwrap();
    sparse.set_len(32 * 1024 * 1024).unwrap();
    sparse.seek(SeekFrom::Start(20 * 1024 * 1024)).unwrap();
    sparse.write_all(b"island").unwrap();
    drop(sparse);
    t.seal(&[]);
    let text = fs::read_to_string(t.manifest()).unwrap();
    assert!(text.contains(
        "/empty file mode=0644 uid=0 gid=0 size=0 \
         sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    ));
    assert!(text.contains("/sparse file mode=0644 uid=0 gid=0 size=33554432 sha256="));
    let r = t.verify();
    assert!(r.is_clean());
    assert_eq!(r.counts.bytes_hashed, 4 * 1024 * 1024 + 32 * 1024 * 1024);
    // One byte flipped in the middle of the large file, one in the hole of the sparse one.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(t.path("large"))
        .unwrap();
    f.seek(SeekFrom::Start(2 * 1024 * 1024)).unwrap();
    f.write_all(&[big[2 * 1024 * 1024] ^ 1]).unwrap();
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(t.path("sparse"))
        .unwrap();
    f.seek(SeekFrom::Start(100)).unwrap();
    f.write_all(b"\x01").unwrap();
    let got = summary(&t.verify());
    let want = vec![
        (
            "/large".to_string(),
            "modified".to_string(),
            vec!["content".to_string()],
        ),
        (
            "/sparse".to_string(),
            "modified".to_string(),
            vec!["content".to_string()],
        ),
    ];
    assert_eq!(got, want);
}

/// A tree deeper than PATH_MAX (4096 bytes): only reachable through directory descriptors.
#[test]
fn tree_deeper_than_path_max() {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::{mkdirat, Mode};
    use std::os::fd::{FromRawFd, OwnedFd};
    const DEPTH: usize = 2500;
    let t = Tree::empty_on_tmpfs();
    let open_dir = |parent: Option<i32>, name: &Path| {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = openat(parent, name, flags, Mode::empty()).unwrap();
        // SAFETY: just opened, owned here only.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    let mut dir = open_dir(None, &t.root);
    for _ in 0..DEPTH {
        mkdirat(Some(dir.as_raw_fd()), "d", Mode::from_bits_truncate(0o755)).unwrap();
        dir = open_dir(Some(dir.as_raw_fd()), Path::new("d"));
    }
    let write_leaf = |content: &[u8]| {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(0o644);
        let fd = openat(Some(dir.as_raw_fd()), "leaf", flags, mode).unwrap();
        // SAFETY: just opened, owned here only.
        let mut f = unsafe { fs::File::from_raw_fd(fd) };
        f.write_all(content).unwrap();
    };
    write_leaf(b"deep");
    t.seal(&[]);
    let m = fs::read_to_string(t.manifest()).unwrap();
    assert!(
        m.ends_with(&format!("end {}\n", DEPTH + 2)),
        "{}",
        &m[m.len() - 40..]
    );
    assert!(t.verify().is_clean());
    write_leaf(b"DEEP");
    let got = summary(&t.verify());
    assert_eq!(got.len(), 1);
    assert!(got[0].0.len() > 4096 && got[0].0.ends_with("/d/d/leaf"));
    assert_eq!(got[0].1, "modified");
}

#[test]
fn hundred_thousand_entries() {
    let t = Tree::empty_on_tmpfs();
    for d in 0..100 {
        let dir = t.path(&format!("d{d:03}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..999 {
            fs::File::create(dir.join(format!("f{f:03}"))).unwrap();
        }
    }
    write(&t.path("d050/f500"), b"", 0o644);
    t.seal(&[]);
    let r = t.verify();
    assert!(r.is_clean());
    assert_eq!(r.counts.entries, 1 + 100 + 100 * 999);
    fs::write(t.path("d050/f500"), b"x").unwrap();
    fs::remove_file(t.path("d099/f998")).unwrap();
    let got: Vec<(String, String)> = summary(&t.verify())
        .into_iter()
        .map(|(p, k, _)| (p, k))
        .collect();
    assert_eq!(
        got,
        vec![
            ("/d050/f500".to_string(), "modified".to_string()),
            ("/d099/f998".to_string(), "removed".to_string()),
        ]
    );
}

#[test]
fn root_through_a_symlink_or_relative_path_seals_the_same() {
    let t = base_tree();
    let direct = seal_bytes(&t.root, &[]);
    let link = t.file("link");
    std::os::unix::fs::symlink(&t.root, &link).unwrap();
    assert_eq!(seal_bytes(&link, &[]), direct, "through a symlink");
    let o = pyre()
        .current_dir(t.dir.path())
        .args(["seal", "root", "-o", "relative.manifest"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        fs::read(t.file("relative.manifest")).unwrap(),
        direct,
        "relative root"
    );
}

//! The options of a verification: the hash cap (`pyre verify --hash-cap`,
//! `VerifyRequest::hash_cap`) and reading past the page cache (`VerifyRequest::drop_cache`).
mod common;

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;

use common::*;
use pyre::drift::{verify_root, VerifyRequest};

/// Pages of `file`'s first `len` bytes in the page cache (mincore on a mapping never touched).
fn resident_pages(file: &File, len: usize) -> usize {
    // SAFETY: a fresh read-only shared mapping of an open file, only passed to mincore and
    // unmapped before returning; `vec` has one byte per page of the mapping.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "{}", io::Error::last_os_error());
        let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
        let mut vec = vec![0u8; len.div_ceil(page)];
        let r = libc::mincore(p, len, vec.as_mut_ptr());
        libc::munmap(p, len);
        assert_eq!(r, 0, "mincore: {}", io::Error::last_os_error());
        vec.iter().filter(|b| **b & 1 != 0).count()
    }
}

#[test]
fn drop_cache_gives_the_same_report_and_leaves_hashed_files_out_of_the_cache() {
    let t = base_tree();
    const LEN: usize = 8 << 20;
    let blob = t.path("usr/share/blob");
    write(&blob, &vec![0x5a; LEN], 0o644);
    File::open(&blob).unwrap().sync_all().unwrap(); // clean pages: only those can be dropped
    let f = File::open(&blob).unwrap();
    let fs = nix::sys::statfs::fstatfs(&f).unwrap();
    if fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC {
        eprintln!("skipped: the temp dir is tmpfs, whose pages are its storage");
        return;
    }
    t.seal(&[]);
    let plain = t.verify();
    let cached = resident_pages(&f, LEN);
    let manifest = t.manifest();
    let dropped = verify_root(&VerifyRequest {
        drop_cache: true,
        ..VerifyRequest::new(&t.root, &manifest)
    })
    .unwrap();
    let after = resident_pages(&f, LEN);
    eprintln!(
        "blob pages in the page cache: {cached} after a verify, {after} after one with drop_cache"
    );
    assert!(
        plain.is_clean() && dropped.is_clean(),
        "{:?}",
        summary(&dropped)
    );
    assert_eq!(dropped.counts, plain.counts);
    assert_eq!(dropped.manifest_digest, plain.manifest_digest);
    assert_eq!(cached, LEN / 4096, "a plain verify reads through the cache");
    assert!(
        after * 100 <= cached,
        "{after} of {cached} pages still cached"
    );
    // And a change is still found.
    fs::write(t.path("etc/passwd"), b"root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let changed = verify_root(&VerifyRequest {
        drop_cache: true,
        ..VerifyRequest::new(&t.root, &manifest)
    })
    .unwrap();
    let want = vec![(
        "/etc/passwd".to_string(),
        "modified".to_string(),
        vec!["content".to_string(), "size".to_string()],
    )];
    assert_eq!(summary(&changed), want);
}

fn verify_json(t: &Tree, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let o = pyre()
        .args(["verify", "--format", "json"])
        .args(extra)
        .arg("-m")
        .arg(t.manifest())
        .arg(&t.root)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code().unwrap(),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn hash_cap_bounds_what_is_hashed_of_added_files() {
    let t = base_tree();
    t.seal(&[]);
    write(&t.path("etc/added"), &[b'x'; 10_000], 0o644);
    write(&t.path("etc/small"), b"tiny\n", 0o644);
    // The default (64 MiB): both hashed.
    let (code, v, _) = verify_json(&t, &[]);
    assert_eq!(code, 1);
    assert!(v["changes"][0]["actual"]["sha256"].is_string(), "{v}");
    assert_eq!(v["counts"]["hashes_skipped"], 0);
    // 8 KiB: the 10 000-byte file is over it, the 5-byte one (later in path order) fits.
    let (code, v, _) = verify_json(&t, &["--hash-cap", "8K"]);
    assert_eq!(code, 1);
    let added = &v["changes"][0];
    assert_eq!(added["path"], "/etc/added");
    assert_eq!(added["actual"]["size"], 10_000);
    assert_eq!(added["actual"]["sha256_skipped"], "over the 8 KiB cap");
    assert!(v["changes"][1]["actual"]["sha256"].is_string(), "{v}");
    assert_eq!(v["counts"]["hashes_skipped"], 1);
    // 0: nothing not sealed is read; sealed files still are.
    fs::write(t.path("etc/passwd"), b"root:x:0:0:root:/root:/bin/zz\n").unwrap(); // same size
    let (_, v, _) = verify_json(&t, &["--hash-cap", "0"]);
    assert_eq!(v["counts"]["hashes_skipped"], 2, "{v}");
    let passwd = &v["changes"][1];
    assert_eq!(passwd["path"], "/etc/passwd");
    assert_eq!(passwd["attributes"][0]["attribute"], "content");
    assert!(passwd["attributes"][0]["actual"].is_string(), "{passwd}");
    // The text says so too.
    let o = pyre()
        .args(["verify", "--hash-cap", "8K", "-m"])
        .arg(t.manifest())
        .arg(&t.root)
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains(", 1 not hashed;"), "{text}");
    assert!(
        text.contains("/etc/added  file 0644 0:0 10000 bytes (not hashed: over the 8 KiB cap)"),
        "{text}"
    );
    // A size that is not one is a usage error.
    let (code, _, err) = verify_json(&t, &["--hash-cap", "64 MB"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown unit"), "{err}");
}

#[test]
fn a_sealed_file_of_another_size_is_reported_without_being_read() {
    let t = base_tree();
    t.seal(&[]);
    write(&t.path("etc/passwd"), b"x", 0o644);
    let r = t.verify();
    let v = serde_json::to_value(&r).unwrap();
    let c = &v["changes"][0];
    assert_eq!(c["kind"], "modified");
    assert_eq!(c["attributes"][0]["attribute"], "content");
    assert_eq!(c["attributes"][0]["actual"], serde_json::Value::Null);
    assert_eq!(
        c["attributes"][0]["skipped"],
        "size differs from the sealed file"
    );
    assert_eq!(c["attributes"][1]["attribute"], "size");
    assert_eq!(r.counts.hashes_skipped, 1);
    let mut text = Vec::new();
    r.render_text(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("content: sha256:")
            && text.contains(" -> (not hashed: size differs from the sealed file); size: 30 -> 1"),
        "{text}"
    );
}

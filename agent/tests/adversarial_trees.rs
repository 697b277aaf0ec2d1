//! Adversarial live trees (issue 14): each verify must finish within a bound relative to an
//! untouched verify of the same tree and report the right change kind. The times are printed
//! (`cargo test --test adversarial_trees -- --nocapture`). What one verification reads is
//! bounded by the sealed tree plus the hash cap: docs/drift-report.md, "What is read".
mod adversarial_common;
mod common;

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use std::{fs, thread};

use adversarial_common::*;
use common::*;
use sha2::{Digest, Sha256};

/// Cases whose work should not depend on what was added: within 10 times an untouched verify
/// (they take about as long), or this floor. Unbounded reading takes minutes.
const RATIO: u32 = 10;
const FLOOR: Duration = Duration::from_secs(3);

#[test]
fn a_1_tib_sparse_file_is_not_read() {
    let _serial = serial();
    let t = sealed_tree();
    let untouched = baseline(&t);
    sparse(&t.path("etc/huge"), TIB);
    // A sealed file grown to 1 TiB: another size than sealed, so not read at all.
    sparse(&t.path("etc/passwd"), TIB);
    let (r, took) = timed(|| t.verify());
    assert_bounded(
        "1 TiB sparse file added, a sealed one grown to 1 TiB",
        untouched,
        took,
        RATIO,
        FLOOR,
    );
    let v = json(&r);
    let huge = &change(&v, "/etc/huge");
    assert_eq!(huge["kind"], "added", "{huge}");
    assert_eq!(huge["actual"]["size"], TIB);
    assert_eq!(huge["actual"]["sha256_skipped"], "over the 64 MiB cap");
    assert!(huge["actual"].get("sha256").is_none(), "{huge}");
    let passwd = change(&v, "/etc/passwd");
    assert_eq!(passwd["kind"], "modified", "{passwd}");
    let attrs = passwd["attributes"].as_array().unwrap();
    assert_eq!(attrs[0]["attribute"], "content");
    assert_eq!(attrs[0]["actual"], serde_json::Value::Null);
    assert_eq!(attrs[0]["skipped"], "size differs from the sealed file");
    assert_eq!(attrs[1]["attribute"], "size");
    assert_eq!(attrs[1]["actual"], TIB);
    assert_eq!(v["counts"]["hashes_skipped"], 2);
    assert!(r.counts.bytes_hashed < 16 * MIB, "{}", v["counts"]);
}

#[test]
fn sparse_files_under_the_cap_share_one_cap() {
    let _serial = serial();
    // 4000 sparse files of 48 MiB (188 GiB of zeros, no disk space): each fits the cap
    // alone, so the cap has to hold for all of them together (hashing them all would take
    // minutes on two cores, seconds on sixty-four).
    let t = sealed_tree();
    let untouched = baseline(&t);
    mkdir(&t.path("var/spool/x"), 0o755);
    for i in 0..4000 {
        sparse(&t.path(&format!("var/spool/x/{i:04}")), 48 * MIB);
    }
    let (r, took) = timed(|| t.verify());
    assert_bounded(
        "4000 sparse 48 MiB files added",
        untouched,
        took,
        RATIO,
        FLOOR,
    );
    let v = json(&r);
    let zeros = format!("sha256:{:x}", Sha256::digest(vec![0u8; 48 << 20]));
    let first = change(&v, "/var/spool/x/0000");
    assert_eq!(first["kind"], "added");
    assert_eq!(first["actual"]["sha256"], zeros.as_str(), "{first}");
    for i in 1..4000 {
        let c = &r.changes[i + 2];
        assert_eq!(c.path, format!("/var/spool/x/{i:04}"));
        let c = serde_json::to_value(c).unwrap();
        assert_eq!(c["kind"], "added");
        assert_eq!(
            c["actual"]["sha256_skipped"],
            "the 64 MiB cap was spent on unsealed files earlier in path order"
        );
    }
    assert_eq!(v["counts"]["hashes_skipped"], 3999);
    assert_eq!(r.changes.len(), 4002, "{}", brief(&r)); // and /var/spool, /var/spool/x
}

#[test]
fn hundred_thousand_added_empty_files() {
    let _serial = serial();
    let t = Tree::empty_on_tmpfs();
    for d in ["sealed", "var/spool/many"] {
        mkdir(&t.path(d), 0o755);
    }
    let make = |dir: &str, n: usize| {
        for i in 0..n {
            fs::File::create(t.path(&format!("{dir}/{i:06}"))).unwrap();
        }
    };
    // 20k sealed files in one directory, then 100k added in another: the tree the untouched
    // verify walks is a sixth of the one with the added files.
    make("sealed", 20_000);
    t.seal(&[]);
    let untouched = baseline(&t);
    make("var/spool/many", 100_000);
    let (r, took) = timed(|| t.verify());
    // Six times the entries, each added one also reported, and nothing more per entry.
    assert_bounded("100k added empty files", untouched, took, 20, FLOOR);
    assert_eq!(r.counts.added, 100_000);
    assert_eq!(r.changes.len(), 100_000);
    assert!(r.changes.iter().all(|c| c.detail.kind() == "added"));
    let v = json(&r);
    let one = change(&v, "/var/spool/many/099999");
    let empty = format!("sha256:{:x}", Sha256::digest([]));
    assert_eq!(one["actual"]["sha256"], empty.as_str(), "{one}");
}

#[test]
fn a_directory_replaced_by_a_symlink_to_the_host_root() {
    let _serial = serial();
    let t = sealed_tree();
    let untouched = baseline(&t);
    fs::remove_dir_all(t.path("usr")).unwrap();
    std::os::unix::fs::symlink("/", t.path("usr")).unwrap();
    let (r, took) = timed(|| t.verify());
    assert_bounded(
        "directory replaced by a symlink to /",
        untouched,
        took,
        RATIO,
        FLOOR,
    );
    let v = json(&r);
    let usr = change(&v, "/usr");
    assert_eq!(usr["kind"], "type-changed", "{usr}");
    assert_eq!(usr["expected"]["type"], "dir");
    assert_eq!(usr["actual"]["type"], "symlink");
    assert_eq!(usr["actual"]["target"], "/");
    // Its sealed children are gone from the tree (never looked for on the host).
    assert_eq!(change(&v, "/usr/bin/tool")["kind"], "removed");
    assert_eq!(r.counts.found, r.counts.entries - 7, "{}", v["counts"]);
}

#[test]
fn a_fifo_and_a_socket_where_files_were_sealed() {
    let _serial = serial();
    let t = sealed_tree();
    let untouched = baseline(&t);
    // Nobody writes to the FIFO: opening it to read without O_NONBLOCK would wait forever.
    fs::remove_file(t.path("etc/passwd")).unwrap();
    nix::unistd::mkfifo(
        &t.path("etc/passwd"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    fs::remove_file(t.path("etc/shadow")).unwrap();
    let _listener = UnixListener::bind(t.path("etc/shadow")).unwrap();
    let (r, took) = timed(|| t.verify());
    assert_bounded(
        "a FIFO and a socket in place of files",
        untouched,
        took,
        RATIO,
        FLOOR,
    );
    let v = json(&r);
    for (path, kind) in [("/etc/passwd", "fifo"), ("/etc/shadow", "socket")] {
        let c = change(&v, path);
        assert_eq!(c["kind"], "type-changed", "{c}");
        assert_eq!(c["expected"]["type"], "file");
        assert_eq!(c["actual"]["type"], kind);
    }
    assert_eq!(r.changes.len(), 2, "{}", brief(&r));
}

#[test]
fn files_that_grow_while_the_tree_is_read() {
    let _serial = serial();
    let t = sealed_tree();
    write(&t.path("var/log/app.log"), b"sealed line\n", 0o644);
    t.seal(&[]);
    let untouched = baseline(&t);
    let stop = AtomicBool::new(false);
    let (r, took) = thread::scope(|s| {
        let open = |p: &str| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(t.path(p))
                .unwrap()
        };
        // A sealed log and an added one grow by 256 MiB of holes and a line per round (faster
        // than anything can read them; 8 TiB at most), another added one by a line a
        // millisecond.
        let (mut sealed, mut added, mut slow) = (
            open("var/log/app.log"),
            open("var/log/new.log"),
            open("var/log/slow.log"),
        );
        let stop = &stop;
        let writer = s.spawn(move || {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) && rounds < 32 * 1024 {
                for f in [&mut sealed, &mut added] {
                    let len = f.metadata().unwrap().len();
                    f.set_len(len + 256 * MIB).unwrap();
                    f.write_all(b"appended line\n").unwrap();
                }
                slow.write_all(b"appended line\n").unwrap();
                rounds += 1;
                thread::sleep(Duration::from_millis(1));
            }
        });
        thread::sleep(Duration::from_millis(20));
        let out = timed(|| t.verify());
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        out
    });
    assert_bounded("files growing while read", untouched, took, RATIO, FLOOR);
    let v = json(&r);
    let app = change(&v, "/var/log/app.log");
    assert_eq!(app["kind"], "modified", "{app}");
    let attrs: Vec<&str> = app["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attribute"].as_str().unwrap())
        .collect();
    assert_eq!(attrs, ["content", "size"], "{app}");
    for p in ["/var/log/new.log", "/var/log/slow.log"] {
        let c = change(&v, p);
        assert_eq!(c["kind"], "added", "{c}");
        eprintln!("  {p}: {}", c["actual"]);
    }
    assert_eq!(r.changes.len(), 3, "{}", brief(&r));
}

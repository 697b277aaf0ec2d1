//! Shared by the adversarial-tree tests: trees with enough sealed content that an untouched
//! verify is a real baseline, and the bound each case must meet, a ratio to that baseline with
//! a floor (so a baseline of a few milliseconds cannot make a case flaky). Timed sections run
//! one at a time (`SERIAL`), so the cases of one test binary do not slow each other down.
#![allow(dead_code)]
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyre::drift::DriftReport;
use serde_json::Value;

use crate::common::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// Hold for the whole case, so that no other case of this binary runs meanwhile.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `dirs` directories of `files` files of `size` bytes each under `/bulk` of the tree.
pub fn bulk(t: &Tree, dirs: usize, files: usize, size: usize) {
    for d in 0..dirs {
        for f in 0..files {
            let byte = ((d * files + f) % 251) as u8;
            write(&t.path(&format!("bulk/{d}/{f}")), &vec![byte; size], 0o644);
        }
    }
}

/// The base tree (one of every kind of entry) with 2000 sealed 4 KiB files, sealed.
pub fn sealed_tree() -> Tree {
    let t = base_tree();
    bulk(&t, 40, 50, 4096);
    t.seal(&[]);
    t
}

pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let r = f();
    (r, start.elapsed())
}

/// The median of three runs of `run`, each of which must succeed.
pub fn median3(mut run: impl FnMut() -> Duration) -> Duration {
    let mut d = [run(), run(), run()];
    d.sort();
    d[1]
}

/// The median time of three untouched verifies through the library (each must be clean).
pub fn baseline(t: &Tree) -> Duration {
    median3(|| {
        let (r, d) = timed(|| t.verify());
        assert!(r.is_clean(), "untouched tree: {}", brief(&r));
        d
    })
}

/// The case took at most `ratio` times the untouched verify, or `floor`, whichever is more.
/// Both times are printed for the record.
pub fn assert_bounded(
    case: &str,
    untouched: Duration,
    took: Duration,
    ratio: u32,
    floor: Duration,
) {
    let bound = (untouched * ratio).max(floor);
    eprintln!(
        "{case}: {:.3} s (untouched verify {:.3} s; bound {:.3} s = max({ratio} x untouched, {:.1} s))",
        took.as_secs_f64(),
        untouched.as_secs_f64(),
        bound.as_secs_f64(),
        floor.as_secs_f64()
    );
    assert!(took <= bound, "{case}: took {took:?}, bound {bound:?}");
}

/// The counts and the first changes of a report: for failure messages that stay readable
/// when a case reports thousands of changes.
pub fn brief(r: &DriftReport) -> String {
    let all = summary(r);
    let first: Vec<_> = all.iter().take(8).collect();
    format!(
        "{} changes, first {first:?}; counts {:?}",
        all.len(),
        r.counts
    )
}

pub fn json(r: &DriftReport) -> Value {
    serde_json::to_value(r).unwrap()
}

/// The change at `path` of a JSON report.
pub fn change<'a>(v: &'a Value, path: &str) -> &'a Value {
    v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no change at {path}: {}", v["counts"]))
}

/// Sparse: `len` bytes of which none is written.
pub fn sparse(p: &Path, len: u64) {
    let f = std::fs::File::create(p).unwrap();
    f.set_len(len).unwrap();
}

pub const TIB: u64 = 1 << 40;
pub const MIB: u64 = 1 << 20;

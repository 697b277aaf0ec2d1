//! Shared helpers of the log-shipping tests against real receivers on 127.0.0.1.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyre::logship::clock::SystemClock;
use pyre::logship::source::SourcePaths;
use pyre::logship::{Identity, Pipeline, PipelineHandle, PipelineOptions, SinkSpec, SourceSpec};

/// Whether to skip: rsyslogd missing outside CI (in CI, scripts/deps.sh installs it and a
/// missing one is a failure).
pub fn no_rsyslog() -> bool {
    if pyre_tests::rsyslog::available() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "rsyslogd is not installed (scripts/deps.sh)"
    );
    eprintln!("skipping: rsyslogd is not installed (run scripts/deps.sh)");
    true
}

pub fn identity() -> Identity {
    Identity {
        hostname: "web-1".into(),
        image: "img-7".into(),
        manifest: "sha256:abcd".into(),
        instance: "i-0123".into(),
        boot_id: "boot-a".into(),
    }
}

/// Append lines `line NNNNNN` for `range` to `path`.
pub fn write_lines(path: &Path, range: std::ops::RangeInclusive<u64>) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut buf = String::new();
    for i in range {
        buf.push_str(&format!("line {i:06}\n"));
    }
    f.write_all(buf.as_bytes()).unwrap();
}

pub fn fast_opts() -> PipelineOptions {
    PipelineOptions {
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..PipelineOptions::default()
    }
}

pub struct Running {
    pub handle: PipelineHandle,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    pub fn drain(&self, secs: u64) {
        if let Err(p) = self
            .handle
            .drain(Instant::now() + Duration::from_secs(secs))
        {
            panic!("drain failed: {p:?}");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn ship(source: SourceSpec, sink: SinkSpec, state: &Path, opts: PipelineOptions) -> Running {
    ship_with(source, sink, state, opts, SourcePaths::default())
}

pub fn ship_with(
    source: SourceSpec,
    sink: SinkSpec,
    state: &Path,
    opts: PipelineOptions,
    paths: SourcePaths,
) -> Running {
    let p = Pipeline::new(
        &source,
        &sink,
        &identity(),
        state,
        &paths,
        opts,
        Arc::new(SystemClock::new()),
    )
    .unwrap();
    let (handle, t) = p.spawn().unwrap();
    Running {
        handle,
        thread: Some(t),
    }
}

/// A received RFC 5424 line's `seq` and message.
pub fn seq_and_msg(line: &str) -> Option<(u64, &str)> {
    let at = line.find(" seq=\"")? + 6;
    let end = at + line[at..].find('"')?;
    let seq = line[at..end].parse().ok()?;
    let sd_end = end + line[end..].find(']')?;
    Some((seq, line.get(sd_end + 2..).unwrap_or("")))
}

/// How often each sequence number arrived, checking that `line N` came as sequence N.
pub fn count_by_seq<'a>(lines: impl IntoIterator<Item = &'a str>) -> BTreeMap<u64, u32> {
    let mut m = BTreeMap::new();
    for l in lines {
        if let Some((seq, msg)) = seq_and_msg(l) {
            if let Some(n) = msg.strip_prefix("line ") {
                assert_eq!(
                    n.parse::<u64>().ok(),
                    Some(seq),
                    "sequence and line differ: {l}"
                );
            }
            *m.entry(seq).or_insert(0) += 1;
        }
    }
    m
}

/// Sequence numbers of 1..=n that never arrived.
pub fn missing(counts: &BTreeMap<u64, u32>, n: u64) -> Vec<u64> {
    (1..=n).filter(|s| !counts.contains_key(s)).collect()
}

pub fn duplicates(counts: &BTreeMap<u64, u32>) -> u64 {
    counts
        .values()
        .map(|&c| u64::from(c.saturating_sub(1)))
        .sum()
}

pub fn wait_until(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < end,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn dirs(name: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::Builder::new().prefix(name).tempdir().unwrap();
    let rx = t.path().join("receiver");
    let state = t.path().join("state");
    (t, rx, state)
}

//! The guest's logs at the host: two real rsyslog receivers (plain TCP and RELP) on 127.0.0.1,
//! the `logs` section of config v1 that points a guest's `pyre daemon` at them (10.0.2.2), an
//! RFC 5424 parser independent of pyre's own writer, and the judgement of what arrived — shared
//! by tests/tests/config_volumes.rs and `pyre-demo`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::markers;
use crate::rsyslog::{Input, Rsyslog, RsyslogError};
use crate::server::GUEST_HOST_ADDR;

/// The SD-ID of pyre's structured data (docs/logs.md, "Record format").
pub const SD_ID: &str = "pyre@32473";

/// The lines of one boot that must reach both receivers: the kernel's first, `pyre init`'s
/// (through /dev/kmsg, before systemd), `pyre boot`'s, and the journal's after the power
/// button (logind's, then systemd stopping pyre.service: shipped by the drain on stop).
pub const BOOT_LINES: &[(&str, &str)] = &[
    ("kmsg", "Linux version "),
    ("journal", "Linux version "),
    ("kmsg", markers::ROOT_DEVICE),
    ("journal", markers::ROOT_DEVICE),
    ("kmsg", markers::VERIFIED),
    ("journal", markers::BOOT_STAGES),
    ("journal", "Power key pressed"),
    ("journal", "Stopping pyre.service"),
];

/// One received RFC 5424 record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record as received.
    pub raw: String,
    pub pri: u8,
    pub timestamp: String,
    pub hostname: String,
    pub app: String,
    pub procid: String,
    pub msgid: String,
    /// The parameters of the [`SD_ID`] element (empty without one).
    pub sd: BTreeMap<String, String>,
    pub msg: String,
}

impl Record {
    /// A parameter of pyre's SD element, or "".
    pub fn param(&self, name: &str) -> &str {
        self.sd.get(name).map_or("", String::as_str)
    }
    /// `source` of the SD element: `journal`, `kmsg`, `file:…`.
    pub fn source(&self) -> &str {
        self.param("source")
    }
    /// The per-pipeline sequence number.
    pub fn seq(&self) -> Option<u64> {
        self.param("seq").parse().ok()
    }
}

fn word(s: &str) -> Option<(&str, &str)> {
    let (w, rest) = s.split_once(' ')?;
    (!w.is_empty()).then_some((w, rest))
}

/// Parse one record (as rsyslog's `%rawmsg%` keeps it); `None` when it is not RFC 5424.
pub fn parse(line: &str) -> Option<Record> {
    let rest = line.strip_prefix('<')?;
    let (pri, rest) = rest.split_once('>')?;
    let pri: u8 = pri.parse().ok().filter(|p| *p < 192)?;
    let rest = rest.strip_prefix("1 ")?;
    let (timestamp, rest) = word(rest)?;
    let (hostname, rest) = word(rest)?;
    let (app, rest) = word(rest)?;
    let (procid, rest) = word(rest)?;
    let (msgid, rest) = word(rest)?;
    let (sd, rest) = structured_data(rest)?;
    let msg = rest.strip_prefix(' ').unwrap_or(rest);
    Some(Record {
        raw: line.into(),
        pri,
        timestamp: timestamp.into(),
        hostname: hostname.into(),
        app: app.into(),
        procid: procid.into(),
        msgid: msgid.into(),
        sd,
        msg: msg.into(),
    })
}

/// The STRUCTURED-DATA field: `-` or elements `[ID k="v" …]` (values escaped with `\`); the
/// parameters of the [`SD_ID`] element and what follows the field.
fn structured_data(s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    if let Some(rest) = s.strip_prefix('-') {
        return Some((BTreeMap::new(), rest));
    }
    let mut params = BTreeMap::new();
    let mut rest = s;
    while let Some(body) = rest.strip_prefix('[') {
        let end = body.find([' ', ']'])?;
        let id = &body[..end];
        let mut p = &body[end..];
        loop {
            if let Some(after) = p.strip_prefix(']') {
                rest = after;
                break;
            }
            let (name, after) = p.strip_prefix(' ')?.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let close = loop {
                match chars.next()? {
                    (_, '\\') => {
                        let (_, c) = chars.next()?;
                        if !matches!(c, '"' | '\\' | ']') {
                            value.push('\\');
                        }
                        value.push(c);
                    }
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            if id == SD_ID {
                params.insert(name.to_string(), value);
            }
            p = &after[close + 1..];
        }
    }
    (rest.len() < s.len()).then_some((params, rest))
}

/// The two receivers of a scenario, and when the first record reached either.
pub struct GuestLogs {
    pub tcp: Rsyslog,
    pub relp: Rsyslog,
    first: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

impl GuestLogs {
    /// Start rsyslog twice under `dir` (`tcp/`, `relp/`) and watch for the first record.
    pub fn start(dir: &Path) -> Result<GuestLogs, RsyslogError> {
        let tcp = Rsyslog::start(&dir.join("tcp"), Input::Tcp)?;
        let relp = Rsyslog::start(&dir.join("relp"), Input::Relp)?;
        let files: Vec<PathBuf> = vec![tcp.output(), relp.output()];
        let first = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (first.clone(), stop.clone());
        let watcher = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let any = files
                    .iter()
                    .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0));
                if any {
                    *f.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Ok(GuestLogs {
            tcp,
            relp,
            first,
            stop,
            watcher: Some(watcher),
        })
    }

    /// The sink URLs as the guest reaches them.
    pub fn urls(&self) -> [String; 2] {
        [
            format!("syslog+tcp://{GUEST_HOST_ADDR}:{}", self.tcp.port()),
            format!("relp://{GUEST_HOST_ADDR}:{}", self.relp.port()),
        ]
    }

    /// The `logs` section: the journal and the kernel log, to both receivers.
    pub fn config(&self) -> Value {
        let sinks: Vec<Value> = self.urls().iter().map(|u| json!({ "url": u })).collect();
        json!({ "sources": ["journal", "kmsg"], "sinks": sinks })
    }

    /// When (on the host's clock) a first record was seen at either receiver (polled every
    /// 100 ms).
    pub fn first_record_at(&self) -> Option<Instant> {
        *self.first.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every record so far at the TCP and the RELP receiver; lines that are not RFC 5424 are
    /// returned apart.
    pub fn received(&self) -> Received {
        let split = |r: &Rsyslog| {
            let (mut ok, mut bad) = (Vec::new(), Vec::new());
            for l in r.lines() {
                match parse(&l) {
                    Some(rec) => ok.push(rec),
                    None => bad.push(l),
                }
            }
            (ok, bad)
        };
        let (tcp, mut garbled) = split(&self.tcp);
        let (relp, more) = split(&self.relp);
        garbled.extend(more);
        Received { tcp, relp, garbled }
    }
}

impl GuestLogs {
    /// Wait up to `timeout` for both receivers to hold what `want` says ([`judge`]); rsyslog
    /// may still be writing records it acknowledged. What arrived and the problems left.
    pub fn wait_judged(&self, want: &Expected, timeout: Duration) -> (Received, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            let mut problems = judge("syslog+tcp", &got.tcp, want);
            problems.extend(judge("relp", &got.relp, want));
            if !got.garbled.is_empty() {
                problems.push(format!("not RFC 5424: {:?}", got.garbled));
            }
            if problems.is_empty() || Instant::now() >= deadline {
                return (got, problems);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for GuestLogs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

/// What the receivers hold.
#[derive(Debug, Clone)]
pub struct Received {
    pub tcp: Vec<Record>,
    pub relp: Vec<Record>,
    pub garbled: Vec<String>,
}

/// What one boot must have shipped: its identity in every record and these lines.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub hostname: &'a str,
    /// `sha256:<hex>`.
    pub manifest: &'a str,
    /// (source, text in the message) that must arrive, e.g. `("kmsg", "Linux version")`.
    pub lines: &'a [(&'a str, &'a str)],
}

/// Per source: the distinct sequence numbers received, and whether they run 1..=n without a
/// hole.
pub fn sequence(records: &[Record], source: &str) -> (usize, bool) {
    let mut seqs: Vec<u64> = records
        .iter()
        .filter(|r| r.source() == source)
        .filter_map(Record::seq)
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    let whole = seqs.iter().enumerate().all(|(i, s)| *s == i as u64 + 1);
    (seqs.len(), whole)
}

/// Judge one receiver's records: at least one; every record RFC 5424 with the hostname, the
/// manifest digest, one boot id and a sequence number; each expected line present; per source
/// the sequence numbers without a hole and no gap marker. The problems found, none when right.
pub fn judge(sink: &str, records: &[Record], want: &Expected) -> Vec<String> {
    let mut problems = Vec::new();
    if records.is_empty() {
        return vec![format!("{sink}: no record arrived")];
    }
    let mut boot_ids: Vec<&str> = records.iter().map(|r| r.param("boot_id")).collect();
    boot_ids.sort_unstable();
    boot_ids.dedup();
    if boot_ids.len() != 1 || boot_ids[0].is_empty() {
        problems.push(format!("{sink}: boot ids {boot_ids:?}, expected one"));
    }
    for r in records {
        let wrong = r.hostname != want.hostname
            || r.param("manifest") != want.manifest
            || r.seq().is_none();
        if wrong {
            problems.push(format!(
                "{sink}: a record without hostname {}, manifest {} and seq: {r:?}",
                want.hostname, want.manifest
            ));
            break;
        }
    }
    for (source, text) in want.lines {
        if !records
            .iter()
            .any(|r| r.source() == *source && r.msg.contains(text))
        {
            problems.push(format!("{sink}: no {source} record containing {text:?}"));
        }
    }
    for source in ["journal", "kmsg"] {
        let (n, whole) = sequence(records, source);
        if n == 0 || !whole {
            problems.push(format!(
                "{sink}: {source}: {n} distinct sequence numbers, not 1..={n}"
            ));
        }
    }
    if let Some(g) = records.iter().find(|r| r.msgid == "PYRE_LOG_GAP") {
        problems.push(format!("{sink}: a gap marker: {g:?}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pyre_records_and_escaped_values() {
        let r = parse(
            "<30>1 2024-01-02T03:04:05.000006Z web-1 systemd 1 - [pyre@32473 \
             image=\"a\\\"b\" manifest=\"sha256:ab\" boot_id=\"b-1\" source=\"journal\" \
             seq=\"17\"][other@1 x=\"y\"] Started foo [x].",
        )
        .unwrap();
        assert_eq!(r.pri, 30);
        assert_eq!(
            (r.hostname.as_str(), r.app.as_str(), r.procid.as_str()),
            ("web-1", "systemd", "1")
        );
        assert_eq!(r.param("image"), "a\"b");
        assert_eq!(r.param("manifest"), "sha256:ab");
        assert_eq!(r.param("x"), "");
        assert_eq!((r.source(), r.seq()), ("journal", Some(17)));
        assert_eq!(r.msg, "Started foo [x].");
        let bare = parse("<13>1 - h app - - - hello").unwrap();
        assert!(bare.sd.is_empty());
        assert_eq!(bare.msg, "hello");
        for bad in [
            "hello",
            "<13>2 - h a - - - m",
            "<13>1 - h a - - [x m",
            "<999>1 - h a - - - m",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    fn rec(source: &str, seq: u64, msg: &str) -> Record {
        parse(&format!(
            "<6>1 - web-1 app - - [pyre@32473 manifest=\"sha256:ab\" boot_id=\"b\" \
             source=\"{source}\" seq=\"{seq}\"] {msg}"
        ))
        .unwrap()
    }

    #[test]
    fn judges_identity_lines_and_sequences() {
        let want = Expected {
            hostname: "web-1",
            manifest: "sha256:ab",
            lines: &[("kmsg", "Linux version")],
        };
        let good = vec![
            rec("kmsg", 1, "Linux version 6.1"),
            rec("journal", 1, "x"),
            rec("journal", 2, "y"),
            rec("journal", 2, "y"),
        ];
        assert_eq!(judge("tcp", &good, &want), Vec::<String>::new());
        assert_eq!(sequence(&good, "journal"), (2, true));
        let mut holed = good.clone();
        holed.push(rec("journal", 4, "z"));
        assert_eq!(
            judge("tcp", &holed, &want),
            ["tcp: journal: 3 distinct sequence numbers, not 1..=3"]
        );
        let e = judge("relp", &good[1..], &want);
        assert_eq!(e[0], "relp: no kmsg record containing \"Linux version\"");
        assert_eq!(judge("tcp", &[], &want), ["tcp: no record arrived"]);
    }
}

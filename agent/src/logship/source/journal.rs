//! The systemd journal, read through `journalctl -o export --follow` (its path a parameter).
//!
//! Why a child process rather than reading journal files: the journal file format, its
//! rotation, vacuuming and cross-file interleaving are systemd's to get right, and `journalctl`
//! is in every image that has a journal; linking libsystemd would break the fully static
//! binary. The cost is one process per journal pipeline and a pipe.
//!
//! Start: `--boot` (everything of this boot) without a checkpoint, else `--after-cursor`.
//! Gaps: the cursor carries the journal's sequence number (`s=<id>;i=<hex>`); when the next
//! entry of the same sequence has a number more than one past the last one seen (the journal
//! was rotated and vacuumed past the cursor while pyre was behind or stopped), a gap marker
//! with the exact count precedes it. A cursor journalctl refuses outright is a gap of unknown
//! size, and reading restarts from the start of the boot.
//!
//! Drain barrier: `journalctl --sync` (journald writes everything it was sent before the call:
//! a unit's last lines, systemd's `Stopping …`) then `journalctl --lines=1` for the last
//! entry's sequence number; the source has caught up once it handed that entry out. Waiting
//! for the follower to go quiet is not enough: under load journald and the follower lag by
//! more than any fixed quiet time (seen in a QEMU guest at shutdown).
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::logship::checkpoint::Position;
use crate::logship::record::{Entry, GapCount};
use crate::logship::source::export::{cursor_seqnum, read_entry, JournalEntry};
use crate::logship::source::{Source, SourceError};

/// Entries parsed ahead of the pipeline (bounded: the pipe then blocks journalctl).
const AHEAD: usize = 256;
const RESTART_DELAY: Duration = Duration::from_secs(1);
/// Each of the two journalctl calls of [`Source::mark`] at most.
const MARK_TIMEOUT: Duration = Duration::from_secs(3);

enum Msg {
    Entry(Box<JournalEntry>),
    /// The stream ended: the parse error if any, and journalctl's last stderr line.
    End(Option<String>, String),
}

pub struct JournalSource {
    program: PathBuf,
    /// The cursor of the last entry handed out (None: none yet this run).
    cursor: Option<String>,
    last_seq: Option<(String, u64)>,
    child: Option<Child>,
    rx: Option<Receiver<Msg>>,
    /// Entries read from this child so far.
    read_this_run: u64,
    restart_at: Option<Instant>,
    pending: Option<(Entry, Position)>,
    /// The sequence (id, number) of the journal's last entry when a drain was asked.
    mark: Option<(String, u64)>,
}

impl JournalSource {
    pub fn spawn(program: &Path, position: Position) -> Result<JournalSource, SourceError> {
        let cursor = match position {
            Position::Start => None,
            Position::Journal { cursor } => Some(cursor),
            other => {
                return Err(SourceError::Position {
                    source_name: "journal".into(),
                    position: other,
                })
            }
        };
        let last_seq = cursor
            .as_deref()
            .and_then(cursor_seqnum)
            .map(|(id, n)| (id.to_string(), n));
        let mut s = JournalSource {
            program: program.to_path_buf(),
            cursor,
            last_seq,
            child: None,
            rx: None,
            read_this_run: 0,
            restart_at: None,
            pending: None,
            mark: None,
        };
        s.start()?;
        Ok(s)
    }

    fn start(&mut self) -> Result<(), SourceError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(["--output=export", "--follow", "--no-tail", "--no-pager"]);
        match &self.cursor {
            Some(c) => cmd.arg(format!("--after-cursor={c}")),
            None => cmd.arg("--boot"),
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| SourceError::Spawn {
            program: self.program.display().to_string(),
            source: e,
        })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::sync_channel(AHEAD);
        std::thread::Builder::new()
            .name("pyre-journal".into())
            .spawn(move || {
                let err_thread = std::thread::spawn(move || {
                    let mut s = String::new();
                    let _ = (&mut stderr).take(64 * 1024).read_to_string(&mut s);
                    s.lines().last().unwrap_or("").to_string()
                });
                let mut r = BufReader::with_capacity(64 * 1024, stdout);
                let problem = loop {
                    match read_entry(&mut r) {
                        Ok(Some(e)) => {
                            if tx.send(Msg::Entry(Box::new(e))).is_err() {
                                return;
                            }
                        }
                        Ok(None) => break None,
                        Err(e) => break Some(e.to_string()),
                    }
                };
                drop(r);
                let last = err_thread.join().unwrap_or_default();
                let _ = tx.send(Msg::End(problem, last));
            })
            .map_err(|e| SourceError::Spawn {
                program: "journal reader thread".into(),
                source: e,
            })?;
        self.child = Some(child);
        self.rx = Some(rx);
        self.read_this_run = 0;
        Ok(())
    }

    fn stop_child(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.rx = None;
    }

    /// Turn one journal entry into what the pipeline gets, a gap marker first if needed.
    fn accept(&mut self, je: JournalEntry) -> (Entry, Position) {
        self.read_this_run += 1;
        let seq = cursor_seqnum(&je.cursor).map(|(id, n)| (id.to_string(), n));
        let gap = match (&self.last_seq, &seq) {
            (Some((last_id, last)), Some((id, n))) if last_id == id && *n > last + 1 => {
                Some(n - last - 1)
            }
            _ => None,
        };
        if seq.is_some() {
            self.last_seq = seq;
        }
        let pos = Position::Journal {
            cursor: je.cursor.clone(),
        };
        let entry = je.to_entry();
        let before = match self.cursor.replace(je.cursor) {
            Some(cursor) => Position::Journal { cursor },
            None => Position::Start,
        };
        match gap {
            Some(n) => {
                // The marker resumes where the entry before it did: if the marker is acknowledged
                // but not the entry, the entry is read again (and the gap reported again).
                self.pending = Some((entry, pos));
                let why = "the journal was rotated past pyre's cursor";
                (Entry::gap(GapCount::Known(n), why), before)
            }
            None => (entry, pos),
        }
    }

    fn ended(&mut self, problem: Option<String>, stderr: String) -> Option<(Entry, Position)> {
        let status = self.child.as_mut().and_then(|c| c.wait().ok());
        self.child = None;
        self.rx = None;
        let failed = problem.is_some() || status.is_some_and(|s| !s.success());
        log::warn!(
            "journal: {} ended ({}){}{}; restarting in {}s",
            self.program.display(),
            status.map_or("no status".to_string(), |s| s.to_string()),
            problem.map(|p| format!(": {p}")).unwrap_or_default(),
            if stderr.is_empty() {
                String::new()
            } else {
                format!(": {stderr}")
            },
            RESTART_DELAY.as_secs()
        );
        self.restart_at = Some(Instant::now() + RESTART_DELAY);
        if failed && self.read_this_run == 0 && self.cursor.is_some() {
            // journalctl refused the cursor itself: start over from the start of the boot.
            let pos = Position::Start;
            self.cursor = None;
            self.last_seq = None;
            let why = "journalctl refused pyre's cursor; reading again from the start of the boot";
            return Some((Entry::gap(GapCount::Unknown, why), pos));
        }
        None
    }
}

impl Source for JournalSource {
    fn next(&mut self, wait: Duration) -> Result<Option<(Entry, Position)>, SourceError> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        let deadline = Instant::now() + wait;
        if let Some(at) = self.restart_at {
            let now = Instant::now();
            if now < at {
                std::thread::sleep((at - now).min(wait));
                if Instant::now() < at {
                    return Ok(None);
                }
            }
            self.restart_at = None;
            if let Err(e) = self.start() {
                self.restart_at = Some(Instant::now() + RESTART_DELAY);
                return Err(e);
            }
        }
        let Some(rx) = &self.rx else { return Ok(None) };
        let msg = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        match msg {
            Ok(Msg::Entry(je)) => Ok(Some(self.accept(*je))),
            Ok(Msg::End(problem, stderr)) => Ok(self.ended(problem, stderr)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Ok(self.ended(None, String::new())),
        }
    }

    fn settle(&self) -> Duration {
        Duration::from_millis(300)
    }

    fn mark(&mut self) {
        self.mark = None;
        let mut sync = Command::new(&self.program);
        sync.arg("--sync");
        if let Err(e) = run_bounded(&mut sync, MARK_TIMEOUT) {
            log::warn!("journal: {} --sync: {e}", self.program.display());
        }
        let mut tail = Command::new(&self.program);
        tail.args(["--output=export", "--lines=1", "--no-pager", "--quiet"]);
        match run_bounded(&mut tail, MARK_TIMEOUT) {
            Ok(out) => self.mark = last_seqnum(&out),
            Err(e) => log::warn!("journal: {} --lines=1: {e}", self.program.display()),
        }
    }

    fn at_mark(&self) -> bool {
        match (&self.mark, &self.last_seq) {
            (None, _) => true,
            (Some((mark_id, mark)), Some((id, n))) if mark_id == id => n >= mark,
            // Another sequence (a new journal): the numbers do not compare.
            (Some(_), Some(_)) => true,
            (Some(_), None) => false,
        }
    }
}

/// The sequence (id, number) of the last entry of an export stream.
fn last_seqnum(export: &[u8]) -> Option<(String, u64)> {
    let mut r = std::io::Cursor::new(export);
    let mut last = None;
    while let Ok(Some(e)) = read_entry(&mut r) {
        last = cursor_seqnum(&e.cursor).map(|(id, n)| (id.to_string(), n));
    }
    last
}

/// Run `cmd` (stdin empty, stderr dropped) for at most `timeout`; its stdout when it exits 0.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<Vec<u8>, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(1 << 20).read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                return Err(format!("no answer within {timeout:?}"));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let out = reader.join().unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        Err(status.to_string())
    }
}

impl Drop for JournalSource {
    fn drop(&mut self) {
        self.stop_child();
    }
}

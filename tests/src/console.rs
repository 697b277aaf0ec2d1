//! The captured serial console: bytes as they arrived, when they arrived, and waiting on them.
//! The log file keeps the raw bytes; the in-memory copy drops ANSI escape sequences (systemd
//! colours its status lines), so markers are plain text.
use std::fs::File;
use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the reader threads fill and the waiters watch.
#[derive(Default)]
struct State {
    bytes: Vec<u8>,
    /// (end offset of a chunk, when it arrived relative to the start)
    stamps: Vec<(usize, Duration)>,
    /// The console stream ended (QEMU exited or closed it).
    closed: bool,
    /// Where the escape-sequence filter is, across chunks.
    esc: Esc,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Esc {
    #[default]
    Text,
    /// After ESC.
    Start,
    /// Inside `ESC [ …` until a final byte.
    Csi,
}

/// Append `chunk` to `out` without ANSI escape sequences (CSI `ESC [ … final` and two-byte
/// `ESC x`); `state` carries a sequence split across chunks.
fn strip_ansi(state: &mut Esc, chunk: &[u8], out: &mut Vec<u8>) {
    for &b in chunk {
        *state = match (*state, b) {
            (Esc::Text, 0x1b) => Esc::Start,
            (Esc::Text, _) => {
                out.push(b);
                Esc::Text
            }
            (Esc::Start, b'[') => Esc::Csi,
            (Esc::Start, _) => Esc::Text,
            (Esc::Csi, 0x40..=0x7e) => Esc::Text,
            (Esc::Csi, _) => Esc::Csi,
        };
    }
}

/// A console shared between the reader thread and the test.
#[derive(Clone)]
pub struct Console {
    inner: Arc<(Mutex<State>, Condvar)>,
    started: Instant,
}

/// How a wait for a marker ended without finding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// The deadline passed.
    Timeout,
    /// The console closed (the machine is gone) before the marker appeared.
    Closed,
}

impl Console {
    pub fn new(started: Instant) -> Console {
        Console {
            inner: Arc::new((Mutex::new(State::default()), Condvar::new())),
            started,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append bytes that just arrived.
    pub fn push(&self, chunk: &[u8]) {
        let at = self.started.elapsed();
        let mut s = self.lock();
        let State { bytes, esc, .. } = &mut *s;
        strip_ansi(esc, chunk, bytes);
        let end = s.bytes.len();
        s.stamps.push((end, at));
        self.inner.1.notify_all();
    }

    /// Mark the stream as ended.
    pub fn close(&self) {
        self.lock().closed = true;
        self.inner.1.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Everything so far, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock().bytes).into_owned()
    }

    /// The last `lines` lines, for error messages.
    pub fn tail(&self, lines: usize) -> String {
        tail_of(&self.text(), lines)
    }

    /// Whether `marker` has appeared; with when (relative to the start) its last byte arrived.
    pub fn find(&self, marker: &str) -> Option<Duration> {
        let s = self.lock();
        find_in(&s, marker.as_bytes(), 0)
    }

    /// How many (escape-free) bytes arrived so far: an offset for [`Console::wait_any_after`].
    pub fn len(&self) -> usize {
        self.lock().bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wait until one of `markers` appears, the console closes, or `deadline` passes.
    /// Returns the index of the marker found first in the console and when it arrived.
    pub fn wait_any(
        &self,
        markers: &[&str],
        deadline: Instant,
    ) -> Result<(usize, Duration), Missed> {
        self.wait_any_after(markers, 0, deadline)
    }

    /// [`Console::wait_any`] for markers that start at or after byte `from`.
    pub fn wait_any_after(
        &self,
        markers: &[&str],
        from: usize,
        deadline: Instant,
    ) -> Result<(usize, Duration), Missed> {
        let mut s = self.lock();
        loop {
            let found = markers
                .iter()
                .enumerate()
                .filter_map(|(i, m)| Some((i, position(&s.bytes, m.as_bytes(), from)?, m.len())))
                .min_by_key(|&(_, pos, _)| pos);
            if let Some((i, pos, len)) = found {
                return Ok((i, stamp_at(&s.stamps, pos + len)));
            }
            if s.closed {
                return Err(Missed::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Missed::Timeout);
            }
            s = self
                .inner
                .1
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The console line holding the first `marker`, once it is complete (a newline arrived,
    /// the console closed, or `deadline` passed); None when `marker` has not appeared.
    pub fn complete_line(&self, marker: &str, deadline: Instant) -> Option<String> {
        let start = {
            let s = self.lock();
            let at = position(&s.bytes, marker.as_bytes(), 0)?;
            s.bytes[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1)
        };
        let _ = self.wait_any_after(&["\n"], start, deadline);
        let s = self.lock();
        let line = s.bytes[start..]
            .split(|&b| b == b'\n')
            .next()
            .unwrap_or_default();
        Some(
            String::from_utf8_lossy(line)
                .trim_end_matches('\r')
                .to_string(),
        )
    }

    /// Copy `source` into this console on a new thread until it ends, appending to `log` and,
    /// when `echo` is set, to stdout. The console is closed at the end when `closes` is set.
    pub fn spawn_reader(
        &self,
        mut source: impl Read + Send + 'static,
        log: Option<Arc<Mutex<File>>>,
        echo: bool,
        closes: bool,
    ) -> JoinHandle<()> {
        let console = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match source.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let chunk = &buf[..n];
                        if let Some(log) = &log {
                            let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
                            let _ = f.write_all(chunk);
                            let _ = f.flush();
                        }
                        if echo {
                            let mut out = std::io::stdout().lock();
                            let _ = out.write_all(chunk);
                            let _ = out.flush();
                        }
                        console.push(chunk);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            if closes {
                console.close();
            }
        })
    }
}

fn position(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(from);
    }
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn find_in(s: &State, needle: &[u8], from: usize) -> Option<Duration> {
    let pos = position(&s.bytes, needle, from)?;
    Some(stamp_at(&s.stamps, pos + needle.len()))
}

/// When the byte just before offset `end` arrived.
fn stamp_at(stamps: &[(usize, Duration)], end: usize) -> Duration {
    let i = stamps.partition_point(|&(chunk_end, _)| chunk_end < end);
    stamps
        .get(i)
        .or(stamps.last())
        .map(|&(_, t)| t)
        .unwrap_or_default()
}

pub fn tail_of(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    all[from..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_markers_across_chunks_with_arrival_time() {
        let c = Console::new(Instant::now());
        c.push(b"[    0.1] Linux version\npyre: stage mod");
        std::thread::sleep(Duration::from_millis(30));
        c.push(b"ules 12 ms\nReached target");
        let t = c.find("stage modules").unwrap();
        assert!(t >= Duration::from_millis(30), "{t:?}");
        assert!(c.find("Linux version").unwrap() < Duration::from_millis(30));
        assert_eq!(c.find("absent"), None);
    }

    #[test]
    fn drops_escape_sequences_even_split_across_chunks() {
        let c = Console::new(Instant::now());
        c.push(b"[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1");
        c.push(b";39mmulti-user.target\x1b[0m - Multi-User System.\r\n\x1bc");
        assert_eq!(
            c.text(),
            "[  OK  ] Reached target multi-user.target - Multi-User System.\r\n"
        );
        assert!(c.find("Reached target multi-user.target").is_some());
    }

    #[test]
    fn complete_line_waits_for_the_end_of_the_line() {
        let c = Console::new(Instant::now());
        c.push(b"boot\npyre init: BOOT REFUSED [PYRE-INIT-ROOT-MOUN");
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            c2.push(b"T]: mounting: EIO\r\nnext");
        });
        let soon = Instant::now() + Duration::from_secs(5);
        let line = c.complete_line("BOOT REFUSED [", soon).unwrap();
        t.join().unwrap();
        assert_eq!(
            line,
            "pyre init: BOOT REFUSED [PYRE-INIT-ROOT-MOUNT]: mounting: EIO"
        );
        assert_eq!(c.complete_line("absent", soon), None);
        c.push(b" unfinished");
        c.close();
        assert_eq!(c.complete_line("next", soon).unwrap(), "next unfinished");
    }

    #[test]
    fn wait_any_returns_the_earliest_marker_and_sees_later_pushes() {
        let c = Console::new(Instant::now());
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            c2.push(b"pyre: refusing: bad\nlogin: ");
        });
        let got = c.wait_any(
            &["login: ", "refusing"],
            Instant::now() + Duration::from_secs(5),
        );
        t.join().unwrap();
        assert_eq!(got.unwrap().0, 1);
    }

    #[test]
    fn wait_any_reports_timeout_and_close() {
        let c = Console::new(Instant::now());
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(c.wait_any(&["x"], soon), Err(Missed::Timeout));
        c.push(b"x1 ");
        let from = c.len();
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(c.wait_any_after(&["x"], from, soon), Err(Missed::Timeout));
        c.push(b"x2");
        assert_eq!(c.wait_any_after(&["x2", "x"], from, soon).unwrap().0, 0);
        c.close();
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(c.wait_any(&["absent"], later), Err(Missed::Closed));
    }

    #[test]
    fn reader_copies_to_log_and_closes() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("c.log");
        let log = Arc::new(Mutex::new(File::create(&log_path).unwrap()));
        let c = Console::new(Instant::now());
        let src = std::io::Cursor::new(b"one\ntwo\nthree\n".to_vec());
        c.spawn_reader(src, Some(log), false, true).join().unwrap();
        assert!(c.is_closed());
        assert_eq!(
            std::fs::read_to_string(&log_path).unwrap(),
            "one\ntwo\nthree\n"
        );
        assert_eq!(c.tail(2), "two\nthree");
    }
}

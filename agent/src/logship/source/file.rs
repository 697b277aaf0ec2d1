//! A plain file followed like `tail -F`: line by line, across rotation (the path names a new
//! file: the old one is read to its end first) and truncation (copytruncate: start again at 0,
//! with a gap marker since lines written just before may be gone). The checkpoint is the file's
//! identity (device, inode) and the offset after the last acknowledged line; on restart a
//! rotated file is found again by its identity in the same directory.
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::logship::checkpoint::Position;
use crate::logship::record::{Entry, GapCount, MAX_MESSAGE};
use crate::logship::source::{Source, SourceError};

const POLL: Duration = Duration::from_millis(50);
const CHUNK: usize = 64 * 1024;

pub struct FileSource {
    path: PathBuf,
    name: String,
    open: Option<Open>,
    /// Markers and lines ready to hand out.
    ready: VecDeque<(Entry, Position)>,
}

struct Open {
    file: File,
    dev: u64,
    ino: u64,
    /// Offset just after the last line handed out.
    offset: u64,
    /// Bytes read from the file: `buf[head..]` are those after `offset` (no whole line yet,
    /// or lines not handed out yet); `buf[..head]` were handed out and are dropped before the
    /// next read, so taking a line never moves the rest of the buffer.
    buf: Vec<u8>,
    head: usize,
    /// Whether this is a rotated-away file to be read to its end and then left.
    rotated: bool,
}

impl Open {
    fn new(file: File, meta: &fs::Metadata, offset: u64, rotated: bool) -> Open {
        Open {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            offset,
            buf: Vec::with_capacity(CHUNK),
            head: 0,
            rotated,
        }
    }

    fn position(&self) -> Position {
        Position::File {
            dev: self.dev,
            ino: self.ino,
            offset: self.offset,
        }
    }

    /// Bytes after `offset` read but not handed out.
    fn pending(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    /// The next `len` pending bytes as a line (a trailing CR dropped), `consumed` bytes of
    /// the file (the line and its LF, if any) passed.
    fn take_line(&mut self, len: usize, consumed: usize) -> (Entry, Position) {
        let mut text = &self.buf[self.head..self.head + len];
        if let Some(t) = text.strip_suffix(b"\r") {
            text = t;
        }
        let entry = Entry::new(text);
        self.head += consumed;
        self.offset += consumed as u64;
        (entry, self.position())
    }

    /// Read what follows the pending bytes: how many bytes came.
    fn read_more(&mut self) -> io::Result<usize> {
        if self.head > 0 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        let at = self.offset + self.buf.len() as u64;
        let len = self.buf.len();
        self.buf.resize(len + CHUNK, 0);
        let r = self.file.read_at(&mut self.buf[len..], at);
        self.buf.truncate(len + *r.as_ref().unwrap_or(&0));
        r
    }
}

impl FileSource {
    pub fn open(path: &Path, position: Position) -> Result<FileSource, SourceError> {
        let mut s = FileSource {
            path: path.to_path_buf(),
            name: format!("file:{}", path.display()),
            open: None,
            ready: VecDeque::new(),
        };
        match position {
            Position::Start => {}
            Position::File { dev, ino, offset } => s.resume(dev, ino, offset),
            other => {
                return Err(SourceError::Position {
                    source_name: s.name,
                    position: other,
                })
            }
        }
        Ok(s)
    }

    fn resume(&mut self, dev: u64, ino: u64, offset: u64) {
        let same = |m: &fs::Metadata| m.dev() == dev && m.ino() == ino;
        if let Ok(m) = fs::metadata(&self.path) {
            if same(&m) {
                if let Ok(f) = File::open(&self.path) {
                    self.open = Some(Open::new(f, &m, offset, false));
                    return;
                }
            }
        }
        // Rotated since: look for the same file beside it (app.log.1 and the like).
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        let found = fs::read_dir(dir).ok().and_then(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .find(|p| fs::metadata(p).is_ok_and(|m| same(&m) && m.is_file()))
        });
        match found.and_then(|p| Some((File::open(&p).ok()?, fs::metadata(&p).ok()?))) {
            Some((f, m)) => self.open = Some(Open::new(f, &m, offset, true)),
            None => self.gap("rotated away since the checkpoint"),
        }
    }

    fn gap(&mut self, why: &str) {
        let pos = self.open.as_ref().map_or(Position::Start, Open::position);
        let entry = Entry::gap(GapCount::Unknown, &format!("{} {why}", self.name));
        self.ready.push_back((entry, pos));
    }

    /// Read what is there; false when nothing new came.
    fn step(&mut self) -> Result<bool, SourceError> {
        let Some(o) = self.open.as_mut() else {
            return Ok(self.open_current());
        };
        // Every whole line pending at once (cheap: no copy of the rest of the buffer).
        let mut took = false;
        while let Some(nl) = o.pending().iter().position(|&b| b == b'\n') {
            self.ready.push_back(o.take_line(nl, nl + 1));
            took = true;
        }
        if o.pending().len() >= MAX_MESSAGE {
            self.ready.push_back(o.take_line(MAX_MESSAGE, MAX_MESSAGE));
            return Ok(true);
        }
        if took {
            return Ok(true);
        }
        let n = o.read_more().map_err(|e| SourceError::Read {
            what: self.name.clone(),
            source: e,
        })?;
        if n > 0 {
            return Ok(true);
        }
        // At the end: rotated, truncated, or just nothing new yet.
        let at = o.offset + o.pending().len() as u64;
        let size = o.file.metadata().map(|m| m.len()).unwrap_or(at);
        if size < o.offset {
            o.offset = 0;
            o.buf.clear();
            o.head = 0;
            self.gap("was truncated");
            return Ok(true);
        }
        let replaced = match fs::metadata(&self.path) {
            Ok(m) => m.dev() != o.dev || m.ino() != o.ino,
            Err(_) => false,
        };
        if o.rotated || replaced {
            let rest = o.pending().len();
            if rest > 0 {
                self.ready.push_back(o.take_line(rest, rest));
            }
            self.open = None;
            return Ok(self.open_current() || !self.ready.is_empty());
        }
        Ok(false)
    }

    /// Open the file now at the path, from its start.
    fn open_current(&mut self) -> bool {
        let opened = File::open(&self.path).and_then(|f| {
            let m = f.metadata()?;
            Ok((f, m))
        });
        match opened {
            Ok((f, m)) => {
                self.open = Some(Open::new(f, &m, 0, false));
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                log::debug!("opening {}: {e}", self.path.display());
                false
            }
        }
    }
}

impl Source for FileSource {
    fn next(&mut self, wait: Duration) -> Result<Option<(Entry, Position)>, SourceError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Ok(Some(r));
            }
            if self.step()? {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL.min(deadline - now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn drain(s: &mut FileSource) -> Vec<(String, Position)> {
        let mut out = Vec::new();
        while let Some((e, p)) = s.next(Duration::ZERO).unwrap() {
            let text = String::from_utf8(e.message).unwrap();
            out.push((
                if e.gap.is_some() {
                    format!("GAP {text}")
                } else {
                    text
                },
                p,
            ));
        }
        out
    }

    fn texts(v: &[(String, Position)]) -> Vec<&str> {
        v.iter().map(|(t, _)| t.as_str()).collect()
    }

    fn append(p: &Path, s: &str) {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap()
            .write_all(s.as_bytes())
            .unwrap();
    }

    #[test]
    fn follows_lines_rotation_and_truncation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        let mut s = FileSource::open(&p, Position::Start).unwrap();
        assert!(drain(&mut s).is_empty(), "no file yet");
        append(&p, "one\ntwo\r\nthr");
        assert_eq!(texts(&drain(&mut s)), ["one", "two"]);
        append(&p, "ee\nfour");
        let got = drain(&mut s);
        assert_eq!(texts(&got), ["three"]);
        // Rotate: the rest of the old file (an unfinished line included) comes first.
        fs::rename(&p, d.path().join("app.log.1")).unwrap();
        append(&p, "five\n");
        assert_eq!(texts(&drain(&mut s)), ["four", "five"]);
        // copytruncate
        fs::write(&p, "").unwrap();
        append(&p, "six\n");
        let got = drain(&mut s);
        assert!(
            got[0].0.starts_with("GAP ") && got[0].0.contains("truncated"),
            "{got:?}"
        );
        assert_eq!(texts(&got[1..]), ["six"]);
    }

    #[test]
    fn resumes_after_checkpoint_even_when_rotated() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.log");
        append(&p, "a\nb\nc\n");
        let mut s = FileSource::open(&p, Position::Start).unwrap();
        let got = drain(&mut s);
        let after_a = got[0].1.clone();
        let mut s = FileSource::open(&p, after_a.clone()).unwrap();
        assert_eq!(texts(&drain(&mut s)), ["b", "c"]);
        fs::rename(&p, d.path().join("app.log.1")).unwrap();
        append(&p, "d\n");
        let mut s = FileSource::open(&p, after_a).unwrap();
        assert_eq!(texts(&drain(&mut s)), ["b", "c", "d"]);
        // The rotated file is gone too: a gap, then the current file from its start.
        let gone = Position::File {
            dev: 0,
            ino: 1,
            offset: 2,
        };
        let mut s = FileSource::open(&p, gone).unwrap();
        let got = drain(&mut s);
        assert!(got[0].0.contains("rotated away"), "{got:?}");
        assert_eq!(texts(&got[1..]), ["d"]);
        assert!(FileSource::open(
            &p,
            Position::Kmsg {
                boot_id: "b".into(),
                seq: 1
            }
        )
        .is_err());
    }
}

//! The kernel log from `/dev/kmsg` (its path a parameter). Each read returns one record,
//! `PRI,SEQ,USEC,FLAGS[,…];MESSAGE\n` followed by ` KEY=VALUE` continuation lines. When the
//! ring buffer overwrote records pyre had not read yet, the read fails with EPIPE and the next
//! one returns the oldest record left; the jump in sequence numbers is the count of lost
//! records, sent as a gap marker. The checkpoint is (boot id, sequence number): after a
//! restart in the same boot pyre skips what was acknowledged; in a new boot it starts over.
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::logship::checkpoint::Position;
use crate::logship::record::{Entry, GapCount, FACILITY_KERN};
use crate::logship::source::{Source, SourceError};

/// One parsed kernel log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    pub facility: u8,
    pub severity: u8,
    pub seq: u64,
    /// Microseconds since boot.
    pub usec: u64,
    pub message: Vec<u8>,
}

/// Parse one record as read from /dev/kmsg; None when it is not one.
pub fn parse_record(buf: &[u8]) -> Option<KmsgRecord> {
    let semi = buf.iter().position(|&b| b == b';')?;
    let mut fields = std::str::from_utf8(&buf[..semi]).ok()?.split(',');
    let pri: u32 = fields.next()?.parse().ok()?;
    let seq: u64 = fields.next()?.parse().ok()?;
    let usec: u64 = fields.next()?.parse().ok()?;
    let rest = &buf[semi + 1..];
    // The message ends at the first newline; continuation lines (" KEY=VALUE") are dropped.
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    Some(KmsgRecord {
        facility: ((pri >> 3) & 0xff).min(23) as u8,
        severity: (pri & 7) as u8,
        seq,
        usec,
        message: rest[..end].to_vec(),
    })
}

/// Read one record at a time, and wait for one (a parameter so tests can inject EPIPE).
pub trait KmsgDevice: Send {
    /// One record into `buf`: its length, or WouldBlock when there is none yet.
    fn read_record(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Wait up to `timeout` for a record to be readable.
    fn wait(&mut self, timeout: Duration) -> io::Result<()>;
}

/// The real device, opened non-blocking.
pub struct DevKmsg(File);

impl DevKmsg {
    pub fn open(path: &Path) -> io::Result<DevKmsg> {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        Ok(DevKmsg(f))
    }
}

impl KmsgDevice for DevKmsg {
    fn read_record(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        crate::logship::util::poll_in(self.0.as_fd(), timeout).map(|_| ())
    }
}

pub struct KmsgSource<D: KmsgDevice = DevKmsg> {
    dev: D,
    name: String,
    boot_id: String,
    /// Realtime of boot, to date records.
    booted: SystemTime,
    /// Sequence number of the last record handed out or skipped.
    last: Option<u64>,
    /// Records up to this one were acknowledged before (same boot): skip them.
    skip_through: Option<u64>,
    pending: Option<(Entry, Position)>,
    buf: Vec<u8>,
}

impl KmsgSource<DevKmsg> {
    pub fn open(path: &Path, position: Position, boot_id: &str) -> Result<Self, SourceError> {
        let dev = DevKmsg::open(path).map_err(|e| SourceError::Read {
            what: path.display().to_string(),
            source: e,
        })?;
        KmsgSource::with_device(dev, path, position, boot_id, boot_realtime())
    }
}

/// Now minus the time since boot (CLOCK_BOOTTIME, which the kernel log's clock follows
/// closely enough to date records).
fn boot_realtime() -> SystemTime {
    let up = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .unwrap_or_default();
    SystemTime::now() - up
}

impl<D: KmsgDevice> KmsgSource<D> {
    pub fn with_device(
        dev: D,
        path: &Path,
        position: Position,
        boot_id: &str,
        booted: SystemTime,
    ) -> Result<Self, SourceError> {
        let name = path.display().to_string();
        let skip_through = match position {
            Position::Start => None,
            Position::Kmsg { boot_id: b, seq } => (b == boot_id).then_some(seq),
            other => {
                return Err(SourceError::Position {
                    source_name: "kmsg".into(),
                    position: other,
                })
            }
        };
        Ok(KmsgSource {
            dev,
            name,
            boot_id: boot_id.to_string(),
            booted,
            last: skip_through,
            skip_through,
            pending: None,
            buf: vec![0; 16 * 1024],
        })
    }

    fn position(&self, seq: u64) -> Position {
        Position::Kmsg {
            boot_id: self.boot_id.clone(),
            seq,
        }
    }

    fn accept(&mut self, r: KmsgRecord) -> Option<(Entry, Position)> {
        if self.skip_through.is_some_and(|s| r.seq <= s) {
            return None;
        }
        let gap = match self.last {
            Some(last) if r.seq > last + 1 => Some(r.seq - last - 1),
            _ => None,
        };
        let before = self.last;
        self.last = Some(r.seq);
        let mut e = Entry::new(r.message);
        e.severity = r.severity;
        e.facility = r.facility;
        e.time = Some(self.booted + Duration::from_micros(r.usec));
        e.unit = Some("kernel".into());
        if r.facility == FACILITY_KERN {
            e.app_name = Some("kernel".into());
        } else if let Some((app, pid)) = tag_of(&e.message) {
            // Written from user space (`pyre init: …`, `systemd[1]: …`): its tag names it.
            e.app_name = Some(app);
            e.procid = pid;
        }
        let pos = self.position(r.seq);
        match gap {
            Some(n) => {
                self.pending = Some((e, pos));
                let marker = Entry::gap(
                    GapCount::Known(n),
                    "the kernel log ring buffer overwrote them",
                );
                // Resumes where the record before the gap did, so the record after it is
                // read again if only the marker was acknowledged.
                let at = before.map_or(Position::Start, |b| self.position(b));
                Some((marker, at))
            }
            None => Some((e, pos)),
        }
    }
}

impl<D: KmsgDevice> Source for KmsgSource<D> {
    fn next(&mut self, wait: Duration) -> Result<Option<(Entry, Position)>, SourceError> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        let mut waited = false;
        loop {
            match self.dev.read_record(&mut self.buf) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    let Some(r) = parse_record(&self.buf[..n]) else {
                        log::debug!("{}: skipping a record that does not parse", self.name);
                        continue;
                    };
                    if let Some(out) = self.accept(r) {
                        return Ok(Some(out));
                    }
                }
                // Overwritten before read: the next read returns the oldest record left and
                // the sequence jump says how many were lost.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if waited || wait.is_zero() {
                        return Ok(None);
                    }
                    waited = true;
                    self.dev.wait(wait).map_err(|e| SourceError::Read {
                        what: self.name.clone(),
                        source: e,
                    })?;
                }
                Err(e) => {
                    return Err(SourceError::Read {
                        what: self.name.clone(),
                        source: e,
                    })
                }
            }
        }
    }
}

/// The syslog tag a user-space writer put first: `name[pid]: …` or `name …: …` (the first
/// word, when a colon follows within the first 48 bytes), e.g. `systemd[1]:` → (systemd, 1),
/// `pyre init: verify: …` → (pyre, none).
fn tag_of(message: &[u8]) -> Option<(String, Option<String>)> {
    let head = &message[..message.len().min(48)];
    head.iter().position(|&b| b == b':')?;
    let end = head
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b"_.-/".contains(&b)))?;
    if end == 0 {
        return None;
    }
    let app = String::from_utf8_lossy(&head[..end]).into_owned();
    let pid = match head[end] {
        b'[' => {
            let close = head[end..].iter().position(|&b| b == b']')? + end;
            let p = &head[end + 1..close];
            (!p.is_empty() && p.iter().all(u8::is_ascii_digit))
                .then(|| String::from_utf8_lossy(p).into_owned())
        }
        b':' | b' ' => None,
        _ => return None,
    };
    Some((app, pid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn user_space_records_are_named_by_their_tag() {
        let t = |m: &str| tag_of(m.as_bytes());
        assert_eq!(t("pyre init: verify: 0.2 s"), Some(("pyre".into(), None)));
        assert_eq!(
            t("systemd[1]: Started x"),
            Some(("systemd".into(), Some("1".into())))
        );
        assert_eq!(t("no colon anywhere here"), None);
        assert_eq!(t(": leading colon"), None);
        assert_eq!(t("(weird): x"), None);
    }

    struct Fake(VecDeque<io::Result<Vec<u8>>>);

    impl KmsgDevice for Fake {
        fn read_record(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.pop_front() {
                None => Err(io::ErrorKind::WouldBlock.into()),
                Some(Ok(r)) => {
                    buf[..r.len()].copy_from_slice(&r);
                    Ok(r.len())
                }
                Some(Err(e)) => Err(e),
            }
        }
        fn wait(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    fn rec(seq: u64, msg: &str) -> io::Result<Vec<u8>> {
        Ok(format!("6,{seq},{},-;{msg}\n SUBSYSTEM=x\n", seq * 1000).into_bytes())
    }

    fn read_all(dev: Fake, pos: Position) -> Vec<(String, Position)> {
        let mut s =
            KmsgSource::with_device(dev, Path::new("kmsg"), pos, "b1", SystemTime::UNIX_EPOCH)
                .unwrap();
        let mut out = Vec::new();
        while let Some((e, p)) = s.next(Duration::ZERO).unwrap() {
            out.push((String::from_utf8(e.message).unwrap(), p));
        }
        out
    }

    #[test]
    fn parses_records() {
        let r =
            parse_record(b"30,1234,5678901,-,caller=T1;systemd[1]: hello\n SUBSYSTEM=x\n").unwrap();
        assert_eq!(
            (r.facility, r.severity, r.seq, r.usec),
            (3, 6, 1234, 5_678_901)
        );
        assert_eq!(r.message, b"systemd[1]: hello");
        for bad in [&b""[..], b"6,1,2", b"x,1,2,-;m", b"6,,2,-;m", b"6,1,-2,-;m"] {
            assert_eq!(parse_record(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn overwritten_records_become_a_counted_gap() {
        let epipe = || Err(io::Error::from_raw_os_error(libc::EPIPE));
        let dev = Fake(VecDeque::from([
            rec(1, "a"),
            rec(2, "b"),
            epipe(),
            rec(7, "g"),
            rec(8, "h"),
        ]));
        let got = read_all(dev, Position::Start);
        let texts: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts.len(), 5);
        assert!(texts[2].contains("4 log records lost"), "{texts:?}");
        assert_eq!((texts[3], texts[4]), ("g", "h"));
        let seq_of = |p: &Position| match p {
            Position::Kmsg { seq, .. } => *seq,
            _ => 0,
        };
        assert_eq!(
            got.iter().map(|(_, p)| seq_of(p)).collect::<Vec<_>>(),
            [1, 2, 2, 7, 8]
        );
    }

    #[test]
    fn resumes_in_the_same_boot_only() {
        let recs = || Fake(VecDeque::from([rec(5, "e"), rec(6, "f"), rec(7, "g")]));
        let same = Position::Kmsg {
            boot_id: "b1".into(),
            seq: 6,
        };
        assert_eq!(read_all(recs(), same)[0].0, "g");
        // Acknowledged through 2, but the buffer now starts at 5: two records were lost.
        let behind = Position::Kmsg {
            boot_id: "b1".into(),
            seq: 2,
        };
        assert!(read_all(recs(), behind)[0].0.contains("2 log records lost"));
        let other_boot = Position::Kmsg {
            boot_id: "b0".into(),
            seq: 6,
        };
        assert_eq!(read_all(recs(), other_boot).len(), 3);
    }
}

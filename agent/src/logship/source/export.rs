//! The journal export format (systemd's `journalctl -o export`): entries separated by an empty
//! line; each field either `NAME=value\n` or, for values that are not plain text,
//! `NAME\n` + little-endian u64 length + the bytes + `\n`. Parsing is bounded: fields pyre does
//! not use are skipped without being held, kept values are cut at [`MAX_MESSAGE`], so a
//! multi-megabyte core dump field costs no memory.
use std::io::{self, BufRead, Read};
use std::time::{Duration, UNIX_EPOCH};

use crate::logship::record::{Entry, FACILITY_KERN, FACILITY_USER, MAX_MESSAGE, SEVERITY_INFO};

/// Longest field name read; longer ones are a format error.
const MAX_NAME: usize = 256;

/// The fields of one journal entry that pyre uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalEntry {
    pub cursor: String,
    pub realtime_usec: Option<u64>,
    pub message: Vec<u8>,
    pub priority: Option<u8>,
    pub facility: Option<u8>,
    pub identifier: Option<String>,
    pub pid: Option<String>,
    pub comm: Option<String>,
    pub unit: Option<String>,
    pub transport: Option<String>,
    /// `PYRE_MSGID`: the message id of pyre's security events (the record's MSGID).
    pub msgid: Option<String>,
}

impl JournalEntry {
    /// The record fields: app-name from SYSLOG_IDENTIFIER (else _COMM), procid from _PID,
    /// severity from PRIORITY, facility from SYSLOG_FACILITY (kern for the kernel transport).
    pub fn to_entry(&self) -> Entry {
        let kernel = self.transport.as_deref() == Some("kernel");
        let mut e = Entry::new(self.message.clone());
        e.time = self
            .realtime_usec
            .map(|us| UNIX_EPOCH + Duration::from_micros(us));
        e.severity = self.priority.filter(|p| *p <= 7).unwrap_or(SEVERITY_INFO);
        e.facility = self.facility.filter(|f| *f <= 23).unwrap_or(if kernel {
            FACILITY_KERN
        } else {
            FACILITY_USER
        });
        e.app_name = self.identifier.clone().or_else(|| self.comm.clone());
        e.procid = self.pid.clone();
        e.msgid = self.msgid.clone();
        e.unit = self
            .unit
            .clone()
            .or_else(|| kernel.then(|| "kernel".to_string()));
        e
    }
}

/// `s=<seqnum id>;i=<seqnum, hex>;…` → (seqnum id, seqnum).
pub fn cursor_seqnum(cursor: &str) -> Option<(&str, u64)> {
    let mut id = None;
    let mut num = None;
    for part in cursor.split(';') {
        if let Some(v) = part.strip_prefix("s=") {
            id = Some(v);
        } else if let Some(v) = part.strip_prefix("i=") {
            num = u64::from_str_radix(v, 16).ok();
        }
    }
    Some((id?, num?))
}

/// Read the next entry; Ok(None) at the end of the stream (between entries).
pub fn read_entry<R: BufRead>(r: &mut R) -> io::Result<Option<JournalEntry>> {
    let mut e = JournalEntry::default();
    let mut any = false;
    loop {
        let mut name = Vec::new();
        let n = read_capped_line(r, &mut name, MAX_NAME + 1 + MAX_MESSAGE)?;
        if n == 0 {
            return if any {
                Err(bad("stream ended inside an entry"))
            } else {
                Ok(None)
            };
        }
        if name.is_empty() {
            if any {
                return Ok(Some(e));
            }
            continue; // stray blank line between entries
        }
        any = true;
        let (field, value) = match name.iter().position(|&b| b == b'=') {
            Some(eq) => {
                let mut v = name[eq + 1..].to_vec();
                v.truncate(MAX_MESSAGE);
                name.truncate(eq);
                (name, v)
            }
            None => {
                if name.len() > MAX_NAME {
                    return Err(bad("field name too long"));
                }
                let mut len = [0u8; 8];
                r.read_exact(&mut len)?;
                let len = u64::from_le_bytes(len);
                let v = read_capped(r, len, MAX_MESSAGE)?;
                let mut nl = [0u8; 1];
                r.read_exact(&mut nl)?;
                if nl[0] != b'\n' {
                    return Err(bad("binary field not followed by a newline"));
                }
                (name, v)
            }
        };
        if field.len() > MAX_NAME {
            return Err(bad("field name too long"));
        }
        set_field(&mut e, &field, value);
    }
}

fn set_field(e: &mut JournalEntry, field: &[u8], value: Vec<u8>) {
    let text = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
    let small = |v: &[u8]| {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    match field {
        b"__CURSOR" => e.cursor = text(value),
        b"__REALTIME_TIMESTAMP" => e.realtime_usec = small(&value),
        b"MESSAGE" => e.message = value,
        b"PRIORITY" => e.priority = small(&value).and_then(|p| u8::try_from(p).ok()),
        b"SYSLOG_FACILITY" => e.facility = small(&value).and_then(|p| u8::try_from(p).ok()),
        b"SYSLOG_IDENTIFIER" => e.identifier = Some(text(value)),
        b"_PID" => e.pid = Some(text(value)),
        b"SYSLOG_PID" if e.pid.is_none() => e.pid = Some(text(value)),
        b"_COMM" => e.comm = Some(text(value)),
        b"_SYSTEMD_UNIT" => e.unit = Some(text(value)),
        b"_TRANSPORT" => e.transport = Some(text(value)),
        b"PYRE_MSGID" => e.msgid = Some(text(value)),
        _ => {}
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("journal export format: {what}"),
    )
}

/// Read up to and including `\n` into `out` (without it), keeping at most `cap` bytes.
/// Returns the bytes consumed (0 at the end of the stream).
fn read_capped_line<R: BufRead>(r: &mut R, out: &mut Vec<u8>, cap: usize) -> io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if consumed > 0 {
                return Err(bad("stream ended inside a field"));
            }
            return Ok(0);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = done.unwrap_or(buf.len());
        r.consume(used);
        consumed += used;
        if done.is_some() {
            return Ok(consumed);
        }
    }
}

/// Read exactly `len` bytes, keeping the first `cap`.
fn read_capped<R: Read>(r: &mut R, len: u64, cap: usize) -> io::Result<Vec<u8>> {
    let keep = len.min(cap as u64) as usize;
    let mut v = vec![0u8; keep];
    r.read_exact(&mut v)?;
    let rest = len - keep as u64;
    if rest > 0 {
        let skipped = io::copy(&mut r.take(rest), &mut io::sink())?;
        if skipped < rest {
            return Err(bad("stream ended inside a binary field"));
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(name: &str, value: &[u8]) -> Vec<u8> {
        let mut v = format!("{name}\n").into_bytes();
        v.extend_from_slice(&(value.len() as u64).to_le_bytes());
        v.extend_from_slice(value);
        v.push(b'\n');
        v
    }

    #[test]
    fn parses_text_and_binary_fields() {
        let mut s = b"__CURSOR=s=abc;i=1f;b=x\n__REALTIME_TIMESTAMP=1700000000000001\n\
                      PRIORITY=3\nSYSLOG_FACILITY=4\nSYSLOG_IDENTIFIER=sshd\n_PID=42\n\
                      _SYSTEMD_UNIT=ssh.service\n"
            .to_vec();
        s.extend(binary("MESSAGE", b"two\nlines \xff"));
        s.extend(binary("COREDUMP", &vec![7u8; 200_000]));
        s.extend_from_slice(b"\n\n__CURSOR=s=abc;i=20\nMESSAGE=next\n_TRANSPORT=kernel\n\n");
        s.extend_from_slice(
            b"__CURSOR=s=abc;i=21\nMESSAGE=PYRE_DRIFT: x\nPYRE_MSGID=PYRE_DRIFT\n\n",
        );
        let mut r = io::Cursor::new(s);
        let a = read_entry(&mut r).unwrap().unwrap();
        assert_eq!(cursor_seqnum(&a.cursor), Some(("abc", 0x1f)));
        assert_eq!(a.message, b"two\nlines \xff");
        let e = a.to_entry();
        assert_eq!((e.severity, e.facility), (3, 4));
        assert_eq!(e.app_name.as_deref(), Some("sshd"));
        assert_eq!(e.procid.as_deref(), Some("42"));
        assert_eq!(e.unit.as_deref(), Some("ssh.service"));
        assert_eq!(e.msgid, None);
        let b = read_entry(&mut r).unwrap().unwrap().to_entry();
        assert_eq!(
            (b.facility, b.unit.as_deref()),
            (FACILITY_KERN, Some("kernel"))
        );
        let c = read_entry(&mut r).unwrap().unwrap().to_entry();
        assert_eq!(c.msgid.as_deref(), Some("PYRE_DRIFT"));
        assert!(read_entry(&mut r).unwrap().is_none());
    }

    #[test]
    fn bad_streams_are_errors_not_panics() {
        let cases: Vec<Vec<u8>> = vec![
            b"MESSAGE=cut".to_vec(),
            b"MESSAGE\n\x05\x00\x00\x00\x00\x00\x00\x00ab".to_vec(),
            b"MESSAGE\n\xff\xff\xff\xff\xff\xff\xff\xffab".to_vec(),
            b"MESSAGE\n\x01\x00\x00\x00\x00\x00\x00\x00aX\n".to_vec(),
            [vec![b'A'; 300], b"\n".to_vec()].concat(),
        ];
        for c in cases {
            assert!(read_entry(&mut io::Cursor::new(&c)).is_err(), "{c:?}");
        }
    }

    #[test]
    fn huge_text_values_are_cut() {
        let mut s = b"MESSAGE=".to_vec();
        s.extend(vec![b'x'; MAX_MESSAGE * 3]);
        s.extend_from_slice(b"\n__CURSOR=c\n\n");
        let e = read_entry(&mut io::Cursor::new(s)).unwrap().unwrap();
        assert_eq!((e.message.len(), e.cursor.as_str()), (MAX_MESSAGE, "c"));
    }
}

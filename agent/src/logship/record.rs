//! Log records: what a source yields ([`Entry`]), what a pipeline queues ([`Record`]: an entry
//! with its per-boot sequence number and source position), and the RFC 5424 rendering with one
//! structured-data element `[pyre@32473 …]` that lets receivers drop duplicates and spot gaps.
use std::io::Write;
use std::time::SystemTime;

use crate::logship::checkpoint::Position;

/// The documentation enterprise number (RFC 5612) until pyre has its own.
pub const SD_ID: &str = "pyre@32473";
/// MSGID of the record pyre sends when lines were lost before it could read them.
pub const GAP_MSGID: &str = "PYRE_LOG_GAP";
/// Longest message kept; longer ones are cut (receivers cap too: imrelp at 128 KiB).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Who wrote the lines: the same on every record of a boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The configured hostname (RFC 5424 HOSTNAME).
    pub hostname: String,
    /// Image id.
    pub image: String,
    /// The image's manifest digest (`sha256:…`).
    pub manifest: String,
    /// Instance id from the provider.
    pub instance: String,
    /// This boot's id (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
}

/// syslog facility codes used here (RFC 5424 table 1).
pub const FACILITY_KERN: u8 = 0;
pub const FACILITY_USER: u8 = 1;
pub const FACILITY_DAEMON: u8 = 3;
pub const SEVERITY_WARNING: u8 = 4;
pub const SEVERITY_INFO: u8 = 6;

/// How many lines a gap lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapCount {
    Known(u64),
    Unknown,
}

/// One log line as a source read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it was logged (None: when pyre read it).
    pub time: Option<SystemTime>,
    /// 0 (emerg) ..= 7 (debug).
    pub severity: u8,
    /// 0 (kern) ..= 23 (local7).
    pub facility: u8,
    pub app_name: Option<String>,
    pub procid: Option<String>,
    /// The systemd unit (a Loki label); None outside the journal.
    pub unit: Option<String>,
    /// The message bytes (not necessarily UTF-8), at most [`MAX_MESSAGE`].
    pub message: Vec<u8>,
    /// Set on the marker record a source emits when lines were lost before it read them.
    pub gap: Option<GapCount>,
    /// The RFC 5424 MSGID of a security event (the journal's `PYRE_MSGID` field, e.g.
    /// `PYRE_DRIFT`); none on ordinary lines.
    pub msgid: Option<String>,
}

impl Entry {
    pub fn new(message: impl Into<Vec<u8>>) -> Entry {
        let mut message = message.into();
        message.truncate(MAX_MESSAGE);
        Entry {
            time: None,
            severity: SEVERITY_INFO,
            facility: FACILITY_USER,
            app_name: None,
            procid: None,
            unit: None,
            message,
            gap: None,
            msgid: None,
        }
    }

    /// The marker for lines lost before pyre read them (`why` names the place).
    pub fn gap(count: GapCount, why: &str) -> Entry {
        let text = match count {
            GapCount::Known(n) => {
                format!("pyre: {n} log records lost before they were read: {why}")
            }
            GapCount::Unknown => {
                format!("pyre: log records may have been lost before they were read: {why}")
            }
        };
        Entry {
            severity: SEVERITY_WARNING,
            facility: FACILITY_DAEMON,
            app_name: Some("pyre".into()),
            gap: Some(count),
            ..Entry::new(text)
        }
    }

    /// Bytes this entry holds (for the pipeline's memory bound).
    pub fn weight(&self) -> usize {
        self.message.len()
            + self.app_name.as_ref().map_or(0, String::len)
            + self.procid.as_ref().map_or(0, String::len)
            + self.unit.as_ref().map_or(0, String::len)
            + 96
    }
}

/// An entry in a pipeline: numbered and placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Per-boot sequence number of this (source, sink) pipeline, from 1.
    pub seq: u64,
    pub entry: Entry,
    /// Where the source resumes after this record.
    pub pos: Position,
}

/// Renders records of one pipeline: identity plus the source's name.
#[derive(Debug, Clone)]
pub struct Renderer {
    pub identity: Identity,
    /// `journal`, `kmsg` or `file:PATH`: a structured-data parameter.
    pub source: String,
}

impl Renderer {
    /// Append the RFC 5424 form of `rec` (no framing, no trailing newline) to `out`.
    pub fn rfc5424(&self, rec: &Record, out: &mut Vec<u8>) {
        let e = &rec.entry;
        let pri = u16::from(e.facility.min(23)) * 8 + u16::from(e.severity.min(7));
        let _ = write!(out, "<{pri}>1 ");
        write_timestamp(out, e.time.unwrap_or_else(SystemTime::now));
        out.push(b' ');
        header_field(out, &self.identity.hostname, 255);
        out.push(b' ');
        header_field(out, e.app_name.as_deref().unwrap_or(""), 48);
        out.push(b' ');
        header_field(out, e.procid.as_deref().unwrap_or(""), 128);
        out.push(b' ');
        let msgid = match (&e.gap, &e.msgid) {
            (Some(_), _) => GAP_MSGID,
            (None, Some(m)) => m.as_str(),
            (None, None) => "",
        };
        header_field(out, msgid, 32);
        out.push(b' ');
        self.structured_data(rec, out);
        if !e.message.is_empty() {
            out.push(b' ');
            out.extend_from_slice(&e.message);
        }
    }

    fn structured_data(&self, rec: &Record, out: &mut Vec<u8>) {
        let id = &self.identity;
        out.push(b'[');
        out.extend_from_slice(SD_ID.as_bytes());
        for (name, value) in [
            ("image", id.image.as_str()),
            ("manifest", id.manifest.as_str()),
            ("instance", id.instance.as_str()),
            ("boot_id", id.boot_id.as_str()),
            ("source", self.source.as_str()),
        ] {
            if !value.is_empty() {
                sd_param(out, name, value);
            }
        }
        sd_param(out, "seq", &rec.seq.to_string());
        match rec.entry.gap {
            Some(GapCount::Known(n)) => sd_param(out, "gap", &n.to_string()),
            Some(GapCount::Unknown) => sd_param(out, "gap", "unknown"),
            None => {}
        }
        out.push(b']');
    }
}

fn sd_param(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    escape_sd_value(out, value);
    out.push(b'"');
}

/// RFC 5424 6.3.3: inside PARAM-VALUE, `"`, `\` and `]` are escaped with a backslash.
pub fn escape_sd_value(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// A header field: PRINTUSASCII (33..=126) only, at most `max` octets, `-` when empty.
fn header_field(out: &mut Vec<u8>, value: &str, max: usize) {
    let start = out.len();
    out.extend(
        value
            .bytes()
            .take(max)
            .map(|b| if (33..=126).contains(&b) { b } else { b'_' }),
    );
    if out.len() == start {
        out.push(b'-');
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds; RFC 5424 6.2.3).
pub fn write_timestamp(out: &mut Vec<u8>, t: SystemTime) {
    let mut s = String::with_capacity(27);
    crate::sys::time::write_rfc3339(&mut s, t, 6);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn renderer() -> Renderer {
        Renderer {
            identity: Identity {
                hostname: "web-1".into(),
                image: "img \"a\"]\\".into(),
                manifest: "sha256:ab".into(),
                instance: "i-1".into(),
                boot_id: "b1".into(),
            },
            source: "journal".into(),
        }
    }

    fn record(entry: Entry) -> Record {
        Record {
            seq: 7,
            entry,
            pos: Position::Start,
        }
    }

    #[test]
    fn renders_rfc5424_with_escaped_sd() {
        let mut e = Entry::new("hello world");
        e.time = Some(UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789));
        e.severity = 3;
        e.facility = 4;
        e.app_name = Some("sshd".into());
        e.procid = Some("42".into());
        let mut out = Vec::new();
        renderer().rfc5424(&record(e), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<35>1 2023-11-14T22:13:20.123456Z web-1 sshd 42 - [pyre@32473 \
             image=\"img \\\"a\\\"\\]\\\\\" manifest=\"sha256:ab\" instance=\"i-1\" \
             boot_id=\"b1\" source=\"journal\" seq=\"7\"] hello world"
        );
    }

    #[test]
    fn header_fields_are_cleaned_and_gaps_marked() {
        let mut e = Entry::gap(GapCount::Known(12), "journal rotated past the cursor");
        e.app_name = Some("my app\u{e9}".into());
        e.time = Some(UNIX_EPOCH);
        let mut r = renderer();
        r.identity = Identity::default();
        let mut out = Vec::new();
        r.rfc5424(&record(e), &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("<28>1 1970-01-01T00:00:00.000000Z - my_app__ - PYRE_LOG_GAP [pyre@32473 source=\"journal\" seq=\"7\" gap=\"12\"] pyre: 12 log"),
            "{s}"
        );
    }

    #[test]
    fn a_security_event_carries_its_msgid() {
        let mut e = Entry::new("PYRE_DRIFT: incident x");
        e.time = Some(UNIX_EPOCH);
        e.severity = 2;
        e.facility = 4;
        e.app_name = Some("pyre".into());
        e.msgid = Some("PYRE_DRIFT".into());
        let mut r = renderer();
        r.identity = Identity::default();
        let mut out = Vec::new();
        r.rfc5424(&record(e), &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("<34>1 1970-01-01T00:00:00.000000Z - pyre - PYRE_DRIFT [pyre@32473 "),
            "{s}"
        );
    }

    #[test]
    fn long_messages_are_cut() {
        assert_eq!(
            Entry::new(vec![b'x'; MAX_MESSAGE + 10]).message.len(),
            MAX_MESSAGE
        );
    }
}

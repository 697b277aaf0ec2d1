//! The responder's security events over the daemon's log shipping ([`ShipEvents`]).
//!
//! How an event reaches the sinks: it is written to the journal with journald's native
//! protocol (one datagram to `/run/systemd/journal/socket`: `MESSAGE`, `PRIORITY` (2 crit for
//! drift, 5 notice for rotation), `SYSLOG_FACILITY=4` (auth), `SYSLOG_IDENTIFIER=pyre`,
//! `MESSAGE_ID` (a fixed 128-bit id per kind), `PYRE_MSGID` (`PYRE_DRIFT`/`PYRE_ROTATION`,
//! which the journal source puts in the RFC 5424 MSGID) and `PYRE_REPORT_ID`), and the journal
//! pipelines read it like every other line. Why the journal rather than a record pushed into
//! the pipelines: the journal is where pyre.service logs anyway, so the event is also on the
//! machine, it keeps its place among the lines around it, it has the priority and fields set
//! exactly (a stderr line would be priority info), and the pipelines' checkpoints and
//! at-least-once delivery cover it with nothing new.
//!
//! Why the drain waits for it first: journald handles datagrams asynchronously, and the drain
//! barrier means "what the source has shown so far". So [`ShipEvents::drain`] first polls
//! `journalctl PYRE_REPORT_ID=<id>` until the journal has the event (bounded by the same
//! deadline), then runs [`drain::drain_all`]. Without a journal socket (no journald) the event
//! goes to stderr and there is nothing to wait for.
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::enforce::respond::{SecurityEvent, ShipEvents};
use crate::logging::MsgId;
use crate::logship::drain;
use crate::logship::PipelineHandle;

/// journald's native socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// syslog facility of security events: 4 (auth, "security/authorization messages").
pub const FACILITY_AUTH: u8 = 4;
/// How often the journal is asked whether it has the event.
const POLL: Duration = Duration::from_millis(100);

/// `MESSAGE_ID` (journal catalog style) of each kind of event.
pub fn message_id(id: MsgId) -> &'static str {
    match id {
        MsgId::Drift => "5e0b6d2f9a8c4a7f8d0c3e1b7a6f4d21",
        MsgId::Rotation => "8b3f1c0e6d2a4e9bb7a5c4d3e2f10987",
        MsgId::Signature => "c2d4e6f80a1b4c3d9e8f7a6b5c4d3e2f",
    }
}

/// journald's native protocol: `NAME=value\n`, or for a value with a newline
/// `NAME\n` + its length (u64, little endian) + the value + `\n`.
pub fn encode_native(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Security events into the journal, drained through the daemon's pipelines.
pub struct JournalEvents {
    handles: Vec<PipelineHandle>,
    socket: PathBuf,
    journalctl: PathBuf,
    /// The report id of the last event the journal took (None: none, or it went to stderr).
    waiting_for: Mutex<Option<String>>,
}

impl JournalEvents {
    /// `socket`: journald's native socket; `journalctl`: the program the journal source runs.
    pub fn new(handles: Vec<PipelineHandle>, socket: &Path, journalctl: &Path) -> JournalEvents {
        JournalEvents {
            handles,
            socket: socket.to_path_buf(),
            journalctl: journalctl.to_path_buf(),
            waiting_for: Mutex::new(None),
        }
    }

    fn reads_journal(&self) -> bool {
        self.handles.iter().any(|h| h.name().starts_with("journal"))
    }

    fn send(&self, e: &SecurityEvent) -> io::Result<()> {
        let priority = e.severity.to_string();
        let facility = FACILITY_AUTH.to_string();
        let datagram = encode_native(&[
            ("MESSAGE", &e.message),
            ("PRIORITY", &priority),
            ("SYSLOG_FACILITY", &facility),
            ("SYSLOG_IDENTIFIER", "pyre"),
            ("MESSAGE_ID", message_id(e.msgid)),
            ("PYRE_MSGID", e.msgid.as_str()),
            ("PYRE_REPORT_ID", &e.report_id),
        ]);
        UnixDatagram::unbound()?.send_to(&datagram, &self.socket)?;
        Ok(())
    }

    /// Poll journalctl until it shows the event with `report_id`, or `deadline`.
    fn wait_in_journal(&self, report_id: &str, deadline: Instant) -> Result<(), String> {
        loop {
            let out = Command::new(&self.journalctl)
                .args(["--no-pager", "-q", "-o", "cat", "-n", "1"])
                .arg(format!("PYRE_REPORT_ID={report_id}"))
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .map_err(|e| format!("running {}: {e}", self.journalctl.display()))?;
            if out.status.success() && !out.stdout.is_empty() {
                return Ok(());
            }
            if Instant::now() + POLL > deadline {
                return Err(format!(
                    "the journal did not show the event {report_id} before the deadline"
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl ShipEvents for JournalEvents {
    fn log_event(&self, event: &SecurityEvent) -> Result<(), String> {
        match self.send(event) {
            Ok(()) => {
                *self.waiting_for.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(event.report_id.clone());
                Ok(())
            }
            Err(e) => {
                // Not lost: stderr reaches the console (and the journal, if there is one).
                log::error!("{}", event.message);
                Err(format!("the journal socket {}: {e}", self.socket.display()))
            }
        }
    }

    fn drain(&self, within: Duration) -> Result<u64, String> {
        let deadline = Instant::now() + within;
        let waiting = self
            .waiting_for
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let (Some(id), true) = (waiting, self.reads_journal()) {
            self.wait_in_journal(&id, deadline)?;
        }
        drain::drain_all(&self.handles, deadline).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> SecurityEvent {
        SecurityEvent {
            msgid: MsgId::Drift,
            severity: 2,
            report_id: "20261123T101502Z-bb161606-mounts".into(),
            message: "PYRE_DRIFT: incident x (check mounts): y; action poweroff".into(),
        }
    }

    #[test]
    fn native_protocol_fields() {
        assert_eq!(encode_native(&[("A", "b"), ("C", "")]), b"A=b\nC=\n");
        let two = encode_native(&[("MESSAGE", "l1\nl2")]);
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&5u64.to_le_bytes());
        want.extend_from_slice(b"l1\nl2\n");
        assert_eq!(two, want);
    }

    #[test]
    fn the_event_reaches_the_journal_socket_with_its_fields() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("socket");
        let journald = UnixDatagram::bind(&sock).unwrap();
        let ship = JournalEvents::new(Vec::new(), &sock, Path::new("/nonexistent/journalctl"));
        ship.log_event(&event()).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = journald.recv(&mut buf).unwrap();
        let text = String::from_utf8(buf[..n].to_vec()).unwrap();
        for line in [
            "MESSAGE=PYRE_DRIFT: incident x (check mounts): y; action poweroff\n",
            "PRIORITY=2\n",
            "SYSLOG_FACILITY=4\n",
            "SYSLOG_IDENTIFIER=pyre\n",
            "MESSAGE_ID=5e0b6d2f9a8c4a7f8d0c3e1b7a6f4d21\n",
            "PYRE_MSGID=PYRE_DRIFT\n",
            "PYRE_REPORT_ID=20261123T101502Z-bb161606-mounts\n",
        ] {
            assert!(text.contains(line), "{line:?} in {text:?}");
        }
        // No journal pipeline: nothing to wait for, nothing to drain.
        assert_eq!(ship.drain(Duration::from_secs(1)), Ok(0));
    }

    #[test]
    fn without_a_journal_socket_the_event_is_reported_failed() {
        let dir = tempfile::tempdir().unwrap();
        let ship = JournalEvents::new(
            Vec::new(),
            &dir.path().join("absent"),
            Path::new("journalctl"),
        );
        let err = ship.log_event(&event()).unwrap_err();
        assert!(err.contains("absent"), "{err}");
    }

    #[test]
    fn message_ids_are_distinct_128_bit_hex() {
        let ids = [MsgId::Drift, MsgId::Rotation, MsgId::Signature].map(message_id);
        for id in ids {
            assert!(
                id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "{id}"
            );
        }
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    }
}

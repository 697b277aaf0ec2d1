//! The drain barrier: returns once everything logged before the call is acknowledged by every
//! pipeline's sink, or fails at the deadline saying how much is still pending where.
//!
//! In-process callers (the daemon before a power-off) call [`drain_all`]. Other processes
//! (`pyre logs drain`) reach a running `pyre logs ship` through a unix socket in its state
//! directory ([`CONTROL_SOCKET`]), speaking one line each way:
//! `drain <milliseconds>\n` → `ok <records acknowledged>\n` or `pending <records> <details>\n`.
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::logship::pipeline::{Pending, PipelineHandle};

/// The control socket's name in the state directory.
pub const CONTROL_SOCKET: &str = "control.sock";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DrainError {
    #[error("drain deadline passed with {total} records pending: {}", describe(.pending))]
    Pending { total: u64, pending: Vec<Pending> },
    #[error("drain through {path}: {problem}")]
    Control { path: PathBuf, problem: String },
}

fn describe(pending: &[Pending]) -> String {
    pending
        .iter()
        .map(|p| {
            let mut s = format!("{} ({} records", p.name, p.records);
            if !p.caught_up {
                s.push_str(", still reading its source");
            }
            if let Some(e) = &p.last_error {
                s.push_str(&format!(", last error: {e}"));
            }
            s.push(')');
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Drain every pipeline at once, all by `deadline`. Ok holds the records acknowledged so far.
pub fn drain_all(handles: &[PipelineHandle], deadline: Instant) -> Result<u64, DrainError> {
    let tickets: Vec<u64> = handles.iter().map(PipelineHandle::request_drain).collect();
    let pending: Vec<Pending> = handles
        .iter()
        .zip(tickets)
        .filter_map(|(h, t)| h.wait_drained(t, deadline).err())
        .collect();
    if pending.is_empty() {
        return Ok(handles.iter().map(|h| h.status().acked).sum());
    }
    Err(DrainError::Pending {
        total: pending.iter().map(|p| p.records).sum(),
        pending,
    })
}

/// Serves drain requests for `handles` on `STATE_DIR/control.sock` (mode 0600) until dropped.
pub struct ControlServer {
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    pub fn start(state_dir: &Path, handles: Vec<PipelineHandle>) -> io::Result<ControlServer> {
        let path = state_dir.join(CONTROL_SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let thread = std::thread::Builder::new()
            .name("pyre-logs-control".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    if let Err(e) = serve_one(conn, &handles) {
                        if e.kind() == io::ErrorKind::BrokenPipe {
                            continue;
                        }
                        if e.kind() == io::ErrorKind::ConnectionAborted {
                            return; // shutdown
                        }
                        log::debug!("logs control: {e}");
                    }
                }
            })?;
        Ok(ControlServer {
            path,
            thread: Some(thread),
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        // Wake the accept loop with a "quit" line, then remove the socket.
        if let Ok(mut s) = UnixStream::connect(&self.path) {
            let _ = s.write_all(b"quit\n");
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_one(conn: UnixStream, handles: &[PipelineHandle]) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&conn).take(256).read_line(&mut line)?;
    let mut w = &conn;
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["quit"] => Err(io::ErrorKind::ConnectionAborted.into()),
        ["drain", ms] => {
            let Ok(ms) = ms.parse::<u64>() else {
                return writeln!(w, "error bad deadline");
            };
            let deadline = Instant::now() + Duration::from_millis(ms);
            match drain_all(handles, deadline) {
                Ok(acked) => writeln!(w, "ok {acked}"),
                Err(DrainError::Pending { total, pending }) => {
                    writeln!(
                        w,
                        "pending {total} {}",
                        describe(&pending).replace('\n', " ")
                    )
                }
                Err(e) => writeln!(w, "error {e}"),
            }
        }
        _ => writeln!(w, "error unknown request"),
    }
}

use std::io::Read as _;

/// Ask the `pyre logs ship` serving `state_dir` to drain within `deadline`.
pub fn request(state_dir: &Path, deadline: Duration) -> Result<u64, DrainError> {
    let path = state_dir.join(CONTROL_SOCKET);
    let err = |problem: String| DrainError::Control {
        path: path.clone(),
        problem,
    };
    let mut s = UnixStream::connect(&path).map_err(|e| err(format!("connecting: {e}")))?;
    s.set_read_timeout(Some(deadline + Duration::from_secs(5)))
        .map_err(|e| err(e.to_string()))?;
    writeln!(s, "drain {}", deadline.as_millis()).map_err(|e| err(format!("writing: {e}")))?;
    let mut line = String::new();
    BufReader::new(&s)
        .take(64 * 1024)
        .read_line(&mut line)
        .map_err(|e| err(format!("reading the answer: {e}")))?;
    let line = line.trim_end();
    if let Some(n) = line.strip_prefix("ok ") {
        return n.parse().map_err(|_| err(format!("bad answer {line:?}")));
    }
    if let Some(rest) = line.strip_prefix("pending ") {
        let (total, details) = rest.split_once(' ').unwrap_or((rest, ""));
        let total = total
            .parse()
            .map_err(|_| err(format!("bad answer {line:?}")))?;
        return Err(DrainError::Pending {
            total,
            pending: vec![Pending {
                name: details.to_string(),
                records: total,
                caught_up: true,
                last_error: None,
            }],
        });
    }
    Err(err(format!("answer {line:?}")))
}

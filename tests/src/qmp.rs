//! A QMP (QEMU Machine Protocol) client over QEMU's `-qmp unix:SOCK` socket: each command is
//! sent after the capabilities handshake and returns once QEMU has answered it, so a request
//! such as `system_powerdown` is known to have been carried out (no sleeping on a guess).
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

/// How long QEMU may take to answer one command.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("QMP socket {path}: QEMU closed it before answering {command}")]
    Closed { path: PathBuf, command: String },
    #[error("QMP socket {path}: {command} failed: {error}")]
    Refused {
        path: PathBuf,
        command: String,
        error: String,
    },
    #[error("QMP socket {path}: not JSON: {line:?}")]
    Garbled { path: PathBuf, line: String },
}

/// One QMP session.
pub struct Qmp {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connect, read the greeting and leave negotiation mode.
    pub fn connect(path: &Path) -> Result<Qmp, QmpError> {
        let io = |source| QmpError::Io {
            path: path.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(path).map_err(io)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut q = Qmp {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
        };
        q.read_until(|v| v.get("QMP").is_some(), "the greeting")?;
        q.execute("qmp_capabilities", None)?;
        Ok(q)
    }

    /// Run `command` (with `arguments`) and return QEMU's `return` value; events that arrive
    /// in between are skipped.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut line = msg.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })?;
        let reply = self.read_until(
            |v| v.get("return").is_some() || v.get("error").is_some(),
            command,
        )?;
        match reply.get("error") {
            Some(e) => Err(QmpError::Refused {
                path: self.path.clone(),
                command: command.to_string(),
                error: e.to_string(),
            }),
            None => Ok(reply["return"].clone()),
        }
    }

    fn read_until(
        &mut self,
        wanted: impl Fn(&Value) -> bool,
        what: &str,
    ) -> Result<Value, QmpError> {
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|source| QmpError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(QmpError::Closed {
                    path: self.path.clone(),
                    command: what.to_string(),
                });
            }
            let v: Value = serde_json::from_str(line.trim()).map_err(|_| QmpError::Garbled {
                path: self.path.clone(),
                line: line.trim().to_string(),
            })?;
            if wanted(&v) {
                return Ok(v);
            }
        }
    }
}

/// The `send-key` arguments for a key combination such as `["ctrl", "alt", "delete"]`.
pub fn keys(qcodes: &[&str]) -> Value {
    let keys: Vec<Value> = qcodes
        .iter()
        .map(|k| json!({ "type": "qcode", "data": k }))
        .collect();
    json!({ "keys": keys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A scripted QMP server: greeting, then for each command an event and the reply.
    #[test]
    fn handshake_commands_events_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            writeln!(w, r#"{{"QMP": {{"version": {{}}, "capabilities": []}}}}"#).unwrap();
            let mut seen = Vec::new();
            let ok = r#"{"return": {}}"#;
            let answers = [
                vec![ok],
                vec![r#"{"event": "POWERDOWN", "data": {}}"#, ok],
                vec![r#"{"error": {"class": "GenericError", "desc": "no"}}"#],
            ];
            for lines in answers {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                seen.push(line.trim().to_string());
                for l in lines {
                    writeln!(w, "{l}").unwrap();
                }
            }
            seen
        });
        let mut q = Qmp::connect(&path).unwrap();
        assert_eq!(q.execute("system_powerdown", None).unwrap(), json!({}));
        let e = q
            .execute("send-key", Some(keys(&["ctrl", "alt", "delete"])))
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with(r#"send-key failed: {"class":"GenericError","desc":"no"}"#),
            "{e}"
        );
        let seen = server.join().unwrap();
        assert_eq!(seen[0], r#"{"execute":"qmp_capabilities"}"#);
        assert_eq!(seen[1], r#"{"execute":"system_powerdown"}"#);
        assert_eq!(
            seen[2],
            r#"{"arguments":{"keys":[{"data":"ctrl","type":"qcode"},{"data":"alt","type":"qcode"},{"data":"delete","type":"qcode"}]},"execute":"send-key"}"#
        );
    }
}

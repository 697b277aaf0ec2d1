//! syslog over TCP and TLS (RFC 6587 / RFC 5425 octet counting, or LF framing), and over UDP
//! (RFC 5426, one record per datagram).
//!
//! Plain syslog has no acknowledgements. Over TCP and TLS a record counts as acknowledged once
//! the peer's TCP acknowledged every byte of it (the kernel's unacknowledged send queue,
//! `SIOCOUTQ`, has drained past it): the receiving host has the bytes, though the receiver may
//! still lose them (a crash before it reads or stores them). Over UDP nothing is ever known:
//! a record counts as acknowledged once sent.
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use crate::logship::record::{Record, Renderer};
use crate::logship::sink::stream::{connect_tcp, Conn};
use crate::logship::sink::{tls, Sink, SinkError, CONNECT_TIMEOUT};
use crate::logship::spec::{Framing, SinkSpec, Target};

/// Records per write (and per acknowledgement step).
const BATCH_RECORDS: usize = 256;
const BATCH_BYTES: usize = 256 * 1024;
/// Longest datagram sent (a longer record is cut).
const MAX_DATAGRAM: usize = 65_000;

/// Append `msg` framed for a stream.
pub fn frame(framing: Framing, msg: &[u8], out: &mut Vec<u8>) {
    match framing {
        Framing::OctetCounting => {
            out.extend_from_slice(msg.len().to_string().as_bytes());
            out.push(b' ');
            out.extend_from_slice(msg);
        }
        Framing::Newline => {
            for &b in msg {
                if b == b'\n' {
                    out.extend_from_slice(b"#012");
                } else {
                    out.push(b);
                }
            }
            out.push(b'\n');
        }
    }
}

pub struct StreamSink {
    name: String,
    target: Target,
    tls: Option<(Arc<ClientConfig>, String)>,
    framing: Framing,
    conn: Option<Conn>,
    /// Sent batches: (wire offset just past the batch, records in it).
    batches: VecDeque<(u64, usize)>,
    buf: Vec<u8>,
    line: Vec<u8>,
}

impl StreamSink {
    pub fn new(spec: &SinkSpec, target: Target) -> Result<StreamSink, SinkError> {
        let tls = if target.tls() {
            let server_name = spec
                .server_name
                .clone()
                .unwrap_or_else(|| target.host.clone());
            Some((tls::client_config(spec, &[], None)?, server_name))
        } else {
            None
        };
        Ok(StreamSink {
            name: target.redacted(),
            target,
            tls,
            framing: spec.framing.unwrap_or_default(),
            conn: None,
            batches: VecDeque::new(),
            buf: Vec::new(),
            line: Vec::new(),
        })
    }

    fn io_err(&self, op: &'static str) -> impl Fn(io::Error) -> SinkError + '_ {
        move |e| SinkError::Io {
            sink: self.name.clone(),
            op,
            source: e,
        }
    }
}

impl Sink for StreamSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn connect(&mut self) -> Result<(), SinkError> {
        self.disconnect();
        let tcp = connect_tcp(
            &self.name,
            &self.target.host,
            self.target.port,
            CONNECT_TIMEOUT,
        )?;
        self.conn = Some(match &self.tls {
            Some((config, sn)) => Conn::tls(&self.name, tcp, config.clone(), sn, CONNECT_TIMEOUT)?,
            None => Conn::plain(tcp),
        });
        Ok(())
    }

    fn connected(&self) -> bool {
        self.conn.is_some()
    }

    fn send(&mut self, recs: &[Record], r: &Renderer) -> Result<usize, SinkError> {
        self.buf.clear();
        let mut n = 0;
        for rec in recs.iter().take(BATCH_RECORDS) {
            self.line.clear();
            r.rfc5424(rec, &mut self.line);
            frame(self.framing, &self.line, &mut self.buf);
            n += 1;
            if self.buf.len() >= BATCH_BYTES {
                break;
            }
        }
        if n == 0 {
            return Ok(0);
        }
        let conn = self.conn.as_mut().ok_or_else(|| SinkError::Closed {
            sink: self.name.clone(),
        })?;
        let res = conn.write_all(&self.buf).and_then(|_| conn.flush());
        let end = conn.wire_written();
        res.map_err(self.io_err("writing"))?;
        self.batches.push_back((end, n));
        Ok(n)
    }

    fn poll_acked(&mut self, wait: Duration) -> Result<usize, SinkError> {
        let deadline = Instant::now() + wait;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Ok(0);
            };
            if self.batches.is_empty() {
                return Ok(0);
            }
            let acked = conn
                .wire_acked()
                .map_err(self.io_err("reading the send queue"))?;
            let mut n = 0;
            while let Some(&(end, count)) = self.batches.front() {
                if end > acked {
                    break;
                }
                n += count;
                self.batches.pop_front();
            }
            if n > 0 {
                return Ok(n);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(0);
            }
            // Nothing to read is expected; a readable socket means the peer closed or failed.
            let conn = self.conn.as_mut().expect("connected");
            if conn
                .readable((deadline - now).min(Duration::from_millis(5)))
                .map_err(self.io_err("polling"))?
            {
                let mut scratch = [0u8; 4096];
                match self
                    .conn
                    .as_mut()
                    .expect("connected")
                    .read_some(&mut scratch)
                {
                    Ok(0) => {
                        return Err(SinkError::Closed {
                            sink: self.name.clone(),
                        })
                    }
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => return Err(self.io_err("reading")(e)),
                }
            }
        }
    }

    fn disconnect(&mut self) {
        if let Some(mut c) = self.conn.take() {
            c.shutdown();
        }
        self.batches.clear();
    }
}

/// syslog over UDP: nothing is ever acknowledged, so everything sent counts as delivered.
pub struct UdpSink {
    name: String,
    target: Target,
    sock: Option<UdpSocket>,
    sent: usize,
    line: Vec<u8>,
}

impl UdpSink {
    pub fn new(target: Target) -> UdpSink {
        UdpSink {
            name: target.redacted(),
            target,
            sock: None,
            sent: 0,
            line: Vec::new(),
        }
    }
}

impl Sink for UdpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn connect(&mut self) -> Result<(), SinkError> {
        let err = |e: io::Error| SinkError::Connect {
            sink: self.name.clone(),
            source: e,
        };
        let addr = (self.target.host.as_str(), self.target.port)
            .to_socket_addrs()
            .map_err(err)?
            .next()
            .ok_or_else(|| err(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
        let local = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let sock = UdpSocket::bind(local).map_err(err)?;
        sock.connect(addr).map_err(err)?;
        self.sock = Some(sock);
        self.sent = 0;
        Ok(())
    }

    fn connected(&self) -> bool {
        self.sock.is_some()
    }

    fn send(&mut self, recs: &[Record], r: &Renderer) -> Result<usize, SinkError> {
        let sock = self.sock.as_ref().ok_or_else(|| SinkError::Closed {
            sink: self.name.clone(),
        })?;
        let mut n = 0;
        for rec in recs.iter().take(BATCH_RECORDS) {
            self.line.clear();
            r.rfc5424(rec, &mut self.line);
            self.line.truncate(MAX_DATAGRAM);
            if let Err(e) = sock.send(&self.line) {
                if n > 0 {
                    break; // those went out; the error comes back on the next send
                }
                return Err(SinkError::Io {
                    sink: self.name.clone(),
                    op: "sending a datagram",
                    source: e,
                });
            }
            n += 1;
        }
        self.sent += n;
        Ok(n)
    }

    fn poll_acked(&mut self, _wait: Duration) -> Result<usize, SinkError> {
        Ok(std::mem::take(&mut self.sent))
    }

    fn disconnect(&mut self) {
        self.sock = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        let mut out = Vec::new();
        frame(Framing::OctetCounting, b"<13>1 - a\nb", &mut out);
        frame(Framing::Newline, b"x\ny", &mut out);
        assert_eq!(out, b"11 <13>1 - a\nbx#012y\n");
    }
}

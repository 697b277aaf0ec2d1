//! Hand-written HTTP/1.1, one request per connection (`Connection: close`), so faults can be
//! injected at the byte level: a pause before the status line, a trickled or truncated body, a
//! reset connection, an oversize chunked body.
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::fault::Plan;

/// Requests larger than this are refused (the server reads only small requests).
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 2 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map(|(_, q)| q).unwrap_or("")
    }
}

pub fn read_request(stream: &TcpStream) -> io::Result<HttpRequest> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut r = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = match (parts.next(), parts.next()) {
        (Some(m), Some(t)) => (m.to_string(), t.to_string()),
        _ => return Err(bad("no request line")),
    };
    let mut headers = Vec::new();
    let mut size = line.len();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(bad("eof in headers"));
        }
        size += h.len();
        if size > MAX_HEAD {
            return Err(bad("headers too large"));
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > MAX_BODY {
        return Err(bad("request body too large"));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(HttpRequest {
        method,
        target,
        headers,
        body,
    })
}

/// An answer before faults shape how it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply::new(status, "text/plain", Vec::new())
    }

    pub fn header(mut self, n: &str, v: &str) -> Reply {
        self.headers.push((n.into(), v.into()));
        self
    }

    pub fn set_content_type(&mut self, t: &str) {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        self.headers.push(("Content-Type".into(), t.into()));
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Close with RST instead of FIN (SO_LINGER with a zero timeout).
pub fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a properly sized linger struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

/// Send `reply` shaped by `plan` (delay, trickle, truncate, oversize). The caller has already
/// dealt with replacing faults.
pub fn send(mut s: &TcpStream, reply: &Reply, plan: &Plan) -> io::Result<()> {
    if let Some(d) = plan.delay {
        std::thread::sleep(d);
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (n, v) in &reply.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n");
    if let Some(n) = plan.oversize {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        s.write_all(head.as_bytes())?;
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            s.write_all(format!("{k:x}\r\n").as_bytes())?;
            s.write_all(&chunk[..k])?;
            s.write_all(b"\r\n")?;
            left -= k;
        }
        return s.write_all(b"0\r\n\r\n");
    }
    let announced = if plan.truncate {
        reply.body.len() + 64
    } else {
        reply.body.len()
    };
    head.push_str(&format!("Content-Length: {announced}\r\n\r\n"));
    s.write_all(head.as_bytes())?;
    match plan.trickle {
        Some(pause) => {
            for piece in reply.body.chunks(8) {
                s.write_all(piece)?;
                s.flush()?;
                std::thread::sleep(pause);
            }
        }
        None => s.write_all(&reply.body)?,
    }
    s.flush()?;
    if plan.truncate {
        // Let the client see the short body, then end the connection early.
        let _ = s.shutdown(std::net::Shutdown::Write);
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

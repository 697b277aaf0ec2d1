//! Host-side servers the guest reaches through QEMU user networking: a server bound to
//! 127.0.0.1:<free port> answers the guest at 10.0.2.2:<port>.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::received::Received;
use std::thread::JoinHandle;
use std::time::Duration;

/// The address the guest uses for the host under QEMU user networking.
pub const GUEST_HOST_ADDR: &str = "10.0.2.2";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding 127.0.0.1:0: {0}")]
    Bind(std::io::Error),
}

/// A TCP server on 127.0.0.1:0 running `handle` for each connection on its own thread.
/// Stopped (and its accept thread joined) when dropped.
pub struct TcpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpServer {
    pub fn start<F>(handle: F) -> Result<TcpServer, ServerError>
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(ServerError::Bind)?;
        let addr = listener.local_addr().map_err(ServerError::Bind)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = Arc::new(handle);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handle = handle.clone();
                std::thread::spawn(move || handle(conn));
            }
        });
        Ok(TcpServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// Where the host reaches it: 127.0.0.1:<port>.
    pub fn host_addr(&self) -> SocketAddr {
        self.addr
    }
    /// Where the guest reaches it: 10.0.2.2:<port>.
    pub fn guest_addr(&self) -> String {
        format!("{GUEST_HOST_ADDR}:{}", self.port())
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP/1.1 request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
    pub fn ok(body: impl Into<Vec<u8>>) -> Response {
        Response::new(200, body)
    }
    pub fn not_found() -> Response {
        Response::new(404, "not found\n")
    }
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A small HTTP/1.1 server (one request per connection) that records every request it got.
pub struct HttpServer {
    tcp: TcpServer,
    requests: Arc<Received<Request>>,
}

impl HttpServer {
    /// Serve with `handler`.
    pub fn start<F>(handler: F) -> Result<HttpServer, ServerError>
    where
        F: Fn(&Request) -> Response + Send + Sync + 'static,
    {
        let requests = Received::new();
        let seen = requests.clone();
        let tcp = TcpServer::start(move |conn| {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
            let Ok(req) = read_request(&mut BufReader::new(&conn)) else {
                return;
            };
            let resp = handler(&req);
            let head_only = req.method == "HEAD";
            // Recorded before answering, so a client that got its answer finds it recorded.
            seen.push(req);
            let _ = write_response(&conn, &resp, head_only);
            let _ = conn.shutdown(Shutdown::Write);
        })?;
        Ok(HttpServer { tcp, requests })
    }

    /// Serve the files under `root` for GET and HEAD; anything else (or `..`) is a 404.
    pub fn files(root: impl Into<PathBuf>) -> Result<HttpServer, ServerError> {
        let root = root.into();
        HttpServer::start(move |req| {
            if req.method != "GET" && req.method != "HEAD" {
                return Response::new(405, "method not allowed\n");
            }
            match safe_join(&root, &req.path).and_then(|p| std::fs::read(p).ok()) {
                Some(body) => Response::ok(body).header("Content-Type", "application/octet-stream"),
                None => Response::not_found(),
            }
        })
    }

    pub fn port(&self) -> u16 {
        self.tcp.port()
    }
    /// `http://127.0.0.1:<port><path>`
    pub fn host_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.tcp.host_addr())
    }
    /// `http://10.0.2.2:<port><path>`: what the guest uses.
    pub fn guest_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.tcp.guest_addr())
    }
    /// Requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.all()
    }
    /// The first request (received or arriving within `timeout`) matching `pred`.
    pub fn wait_for_request(
        &self,
        timeout: Duration,
        pred: impl Fn(&Request) -> bool,
    ) -> Option<Request> {
        self.requests.wait_for(timeout, pred)
    }
}

/// `root` + the URL path (query dropped), refusing anything that climbs out of `root`.
fn safe_join(root: &Path, url_path: &str) -> Option<PathBuf> {
    let path = url_path.split(['?', '#']).next()?;
    let mut out = root.to_path_buf();
    for c in Path::new(path.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    out.is_file().then_some(out)
}

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

pub fn read_request(r: &mut impl BufRead) -> std::io::Result<Request> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut line = String::new();
    let mut head_len = r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        let n = r.read_line(&mut h)?;
        head_len += n;
        if n == 0 || head_len > MAX_HEAD {
            return Err(bad("truncated or oversized request head"));
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').ok_or_else(|| bad("malformed header"))?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let len: usize = match headers.get("content-length") {
        Some(v) => v.parse().map_err(|_| bad("bad content-length"))?,
        None => 0,
    };
    if len > MAX_BODY {
        return Err(bad("body too large"));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

pub fn write_response(mut w: impl Write, resp: &Response, head_only: bool) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        resp.body.len()
    ));
    w.write_all(head.as_bytes())?;
    if !head_only {
        w.write_all(&resp.body)?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::Mutex;

    /// A minimal client: send raw bytes, return (status line, body).
    fn fetch(addr: SocketAddr, raw: &str) -> (String, Vec<u8>) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(out[..split].to_vec()).unwrap();
        (
            head.lines().next().unwrap().to_string(),
            out[split + 4..].to_vec(),
        )
    }

    #[test]
    fn file_server_serves_files_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/config.json"), b"{\"version\":1}").unwrap();
        let srv = HttpServer::files(dir.path()).unwrap();
        assert!(srv.guest_url("/x").starts_with("http://10.0.2.2:"));
        assert_eq!(
            srv.host_url("/x"),
            format!("http://127.0.0.1:{}/x", srv.port())
        );
        let addr = srv.tcp.host_addr();
        let (status, body) = fetch(addr, "GET /sub/config.json?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body, b"{\"version\":1}");
        let (status, body) = fetch(addr, "HEAD /sub/config.json HTTP/1.1\r\n\r\n");
        assert_eq!((status.as_str(), body.len()), ("HTTP/1.1 200 OK", 0));
        let (status, _) = fetch(addr, "GET /../etc/passwd HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        let (status, _) = fetch(addr, "GET /sub HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        let (status, _) = fetch(addr, "DELETE /sub/config.json HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        let last = srv.wait_for_request(Duration::from_secs(5), |r| r.method == "DELETE");
        assert_eq!(last.unwrap().path, "/sub/config.json");
        let paths: Vec<String> = srv.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths.len(), 5);
        assert_eq!(paths[0], "/sub/config.json?x=1");
    }

    #[test]
    fn handler_sees_method_headers_and_body() {
        let srv = HttpServer::start(|req| {
            if req.method == "PUT" && req.headers.get("x-token").map(String::as_str) == Some("t") {
                Response::ok(req.body.clone()).header("X-Echo", "1")
            } else {
                Response::new(401, "no")
            }
        })
        .unwrap();
        let addr = srv.tcp.host_addr();
        let (status, body) = fetch(
            addr,
            "PUT /api/token HTTP/1.1\r\nX-Token: t\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert_eq!(
            (status.as_str(), body.as_slice()),
            ("HTTP/1.1 200 OK", &b"hello"[..])
        );
        let (status, _) = fetch(addr, "PUT /api/token HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 401 Unauthorized");
        let reqs = srv.requests();
        assert_eq!(reqs[0].headers.get("content-length").unwrap(), "5");
        assert_eq!(reqs[0].body, b"hello");
    }

    #[test]
    fn tcp_server_hands_raw_connections_and_stops_on_drop() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let got2 = got.clone();
        let srv = TcpServer::start(move |mut c| {
            let mut s = String::new();
            let _ = c.read_to_string(&mut s);
            got2.lock().unwrap().push(s);
        })
        .unwrap();
        let addr = srv.host_addr();
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"<13>1 - line").unwrap();
        drop(c);
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while got.lock().unwrap().is_empty() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(got.lock().unwrap().as_slice(), ["<13>1 - line"]);
        drop(srv);
        assert!(TcpStream::connect(addr).is_err(), "listener must be closed");
    }

    #[test]
    fn malformed_requests_are_rejected() {
        let mut r = BufReader::new(&b"garbage\r\n\r\n"[..]);
        assert!(read_request(&mut r).is_err());
        let mut r = BufReader::new(&b"GET / HTTP/1.1\r\nno-colon\r\n\r\n"[..]);
        assert!(read_request(&mut r).is_err());
        let mut r = BufReader::new(&b"GET / HTTP/1.1\r\nHost: x\r\n"[..]);
        assert!(read_request(&mut r).is_err());
    }
}

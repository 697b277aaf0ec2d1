//! A host-side incident-report collector: the `drift.report-url` endpoint of the run-time
//! enforcement scenarios. It listens on 127.0.0.1 (the guest reaches it at 10.0.2.2), records
//! every request with its body and time of arrival, and answers according to its [`Mode`]:
//! up (a given status), refusing (the port stays reserved — bound, not listening — so every
//! connection is refused), or hanging (it reads the request and never answers). The mode can
//! change while a machine runs; the port stays the same.
use std::io::{BufReader, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::received::Received;
use crate::server::{read_request, write_response, Response, GUEST_HOST_ADDR};

/// How the collector treats a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer every request with this status (2xx is an acknowledgement).
    Answer(u16),
    /// Refuse connections: the port is bound but not listening (the endpoint is down).
    Refuse,
    /// Accept and read the request, then never answer (a wedged endpoint).
    Hang,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Post {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    /// When the whole request had arrived (host clock).
    pub at: Instant,
    /// The status it was answered with (`None`: held unanswered).
    pub answered: Option<u16>,
}

impl Post {
    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

struct Shared {
    mode: Mutex<Mode>,
    posts: Arc<Received<Post>>,
    /// Connections held open (hanging mode), closed when the mode changes or on drop.
    held: Mutex<Vec<TcpStream>>,
}

pub struct Collector {
    port: u16,
    shared: Arc<Shared>,
    /// Accepting (answering or hanging modes).
    listener: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    /// Refusing mode: the port bound but not listening.
    reserved: Option<OwnedFd>,
}

impl Collector {
    /// Start on a free port of 127.0.0.1 in `mode`.
    pub fn start(mode: Mode) -> std::io::Result<Collector> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let mut c = Collector {
            port,
            shared: Arc::new(Shared {
                mode: Mutex::new(mode),
                posts: Received::new(),
                held: Mutex::new(Vec::new()),
            }),
            listener: None,
            reserved: None,
        };
        if mode == Mode::Refuse {
            drop(l);
            c.reserved = Some(reserve(port)?);
        } else {
            c.accept_on(l);
        }
        Ok(c)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://10.0.2.2:<port><path>`: the `drift.report-url` the guest uses.
    pub fn guest_url(&self, path: &str) -> String {
        format!("http://{GUEST_HOST_ADDR}:{}{path}", self.port)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn host_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn mode(&self) -> Mode {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switch modes on the same port; held connections are closed unanswered.
    pub fn set_mode(&mut self, mode: Mode) -> std::io::Result<()> {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
        self.release_held();
        match (mode, self.listener.is_some()) {
            (Mode::Refuse, true) => {
                self.stop_accepting();
                self.reserved = Some(reserve(self.port)?);
            }
            (Mode::Answer(_) | Mode::Hang, false) => {
                self.reserved = None;
                let l = TcpListener::bind(("127.0.0.1", self.port))?;
                self.accept_on(l);
            }
            _ => {}
        }
        Ok(())
    }

    /// Every request so far, in arrival order.
    pub fn posts(&self) -> Vec<Post> {
        self.shared.posts.all()
    }

    /// The first request (already here or arriving within `timeout`) matching `pred`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Post) -> bool) -> Option<Post> {
        self.shared.posts.wait_for(timeout, pred)
    }

    /// The first POSTed JSON document (within `timeout`) matching `pred`, with its arrival.
    pub fn wait_for_report(
        &self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<(Value, Instant)> {
        let p = self.wait_for(timeout, |p| {
            p.method == "POST" && p.json().is_some_and(|v| pred(&v))
        })?;
        Some((p.json()?, p.at))
    }

    fn accept_on(&mut self, l: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, shared) = (stop.clone(), self.shared.clone());
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || serve(conn, &shared));
            }
        });
        self.listener = Some((stop, thread));
    }

    fn stop_accepting(&mut self) {
        if let Some((stop, thread)) = self.listener.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect_timeout(
                &([127, 0, 0, 1], self.port).into(),
                Duration::from_secs(1),
            );
            let _ = thread.join();
        }
    }

    fn release_held(&self) {
        for c in self
            .shared
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop_accepting();
        self.release_held();
    }
}

fn serve(conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(req) = read_request(&mut BufReader::new(&conn)) else {
        return;
    };
    let mode = *shared.mode.lock().unwrap_or_else(|e| e.into_inner());
    let answered = match mode {
        Mode::Answer(status) => Some(status),
        _ => None,
    };
    // Recorded before answering, so a client that got its answer finds it recorded.
    shared.posts.push(Post {
        method: req.method,
        path: req.path,
        body: req.body,
        at: Instant::now(),
        answered,
    });
    match answered {
        Some(status) => {
            let _ = write_response(&conn, &Response::new(status, "{}\n"), false);
            let _ = conn.shutdown(Shutdown::Write);
        }
        None => {
            // Hold it: the client waits until its own timeout (or the mode changes).
            if let Ok(c) = conn.try_clone() {
                shared
                    .held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(c);
            }
            let mut sink = [0u8; 256];
            let mut conn = conn;
            let _ = conn.set_read_timeout(None);
            while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
        }
    }
}

/// A TCP socket bound to 127.0.0.1:`port` and not listening: connections to it are refused,
/// and no one else takes the port meanwhile.
fn reserve(port: u16) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2)/setsockopt(2)/bind(2) on a descriptor this function owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn post(port: u16, body: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(
            s,
            "POST /reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn records_answers_refuses_and_hangs_on_one_port() {
        let mut c = Collector::start(Mode::Refuse).unwrap();
        let port = c.port();
        assert_eq!(c.guest_url("/r"), format!("http://10.0.2.2:{port}/r"));
        let e = post(port, "{}").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
        assert!(c.posts().is_empty());

        c.set_mode(Mode::Answer(202)).unwrap();
        let before = Instant::now();
        let out = post(port, r#"{"event":{"check":"mounts"}}"#).unwrap();
        assert!(out.starts_with("HTTP/1.1 202 "), "{out}");
        let (v, at) = c
            .wait_for_report(Duration::from_secs(1), |v| v["event"]["check"] == "mounts")
            .unwrap();
        assert_eq!(v["event"]["check"], "mounts");
        assert!(at >= before);
        assert_eq!(c.posts()[0].path, "/reports");
        assert_eq!(c.posts()[0].answered, Some(202));

        c.set_mode(Mode::Hang).unwrap();
        let e = post(port, r#"{"n":2}"#).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        );
        let held = c.wait_for(Duration::from_secs(1), |p| p.body == br#"{"n":2}"#);
        assert_eq!(held.unwrap().answered, None);

        c.set_mode(Mode::Refuse).unwrap();
        assert!(post(port, "{}").is_err());
        c.set_mode(Mode::Answer(500)).unwrap();
        assert!(post(port, "{}").unwrap().starts_with("HTTP/1.1 500 "));
        assert_eq!(c.posts().len(), 3);
        assert_eq!(c.mode(), Mode::Answer(500));
    }
}

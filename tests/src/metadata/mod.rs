//! A fake cloud metadata server for tests, `make demo` and the QEMU scenarios: AWS IMDSv2,
//! GCE, Azure IMDS and OpenStack on one 127.0.0.1 port, serving a given config as user data,
//! with faults injected on request (see [`fault`] for the spec grammar).
//!
//! Control endpoint (same port): `POST /__pyre/faults` (specs, one per line), `DELETE
//! /__pyre/faults`, `PUT`/`DELETE /__pyre/config`, `GET /__pyre/requests` (one line per
//! request served: `METHOD TARGET STATUS`, status 0 for a reset connection).
use std::collections::HashSet;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub mod fault;
pub mod protocol;
pub mod wire;

pub use fault::{Fault, Injected, Scope};
use protocol::Kind;
use wire::{HttpRequest, Reply};

/// One request as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub method: String,
    pub target: String,
    /// 0 when the connection was reset instead of answered.
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.method, self.target, self.status)
    }
}

#[derive(Default)]
pub struct State {
    config: Mutex<Option<Vec<u8>>>,
    faults: Mutex<Vec<Injected>>,
    tokens: Mutex<HashSet<String>>,
    next_token: AtomicU64,
    served: Mutex<Vec<Served>>,
    /// Print each request on stderr (the binary).
    pub verbose: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    pub fn config(&self) -> Option<Vec<u8>> {
        lock(&self.config).clone()
    }

    pub fn new_token(&self) -> String {
        let n = self.next_token.fetch_add(1, Ordering::SeqCst) + 1;
        let t = format!("AQAEAPyreFakeToken{n:04}==");
        lock(&self.tokens).insert(t.clone());
        t
    }

    pub fn token_valid(&self, t: &str) -> bool {
        lock(&self.tokens).contains(t)
    }

    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let Ok(req) = wire::read_request(&stream) else {
            return;
        };
        if req.path().starts_with("/__pyre/") {
            let reply = self.control(&req);
            self.record(&req, reply.status);
            let _ = wire::send(&stream, &reply, &fault::Plan::default());
            return;
        }
        let scope = match protocol::kind(&req) {
            Kind::Token => Scope::Token,
            Kind::Config => Scope::Config,
            Kind::Other => Scope::Other,
        };
        let plan = fault::plan(&mut lock(&self.faults), scope);
        let mut reply = match &plan.replace {
            Some(Fault::Reset) => {
                self.record(&req, 0);
                wire::reset(stream);
                return;
            }
            Some(Fault::Status(c)) => Reply::empty(*c),
            Some(Fault::TooMany(after)) => match after {
                Some(s) => Reply::empty(429).header("Retry-After", &s.to_string()),
                None => Reply::empty(429),
            },
            Some(Fault::TokenExpiry) => {
                lock(&self.tokens).clear();
                Reply::empty(401)
            }
            Some(Fault::Redirect(to)) => Reply::empty(302).header("Location", to),
            _ => protocol::answer(self, &req),
        };
        // GCE's server marks every answer, errors included.
        let gce = req.path().starts_with("/computeMetadata/");
        if gce && !reply.headers.iter().any(|(n, _)| n == "Metadata-Flavor") {
            reply = reply.header("Metadata-Flavor", "Google");
        }
        if let Some(t) = &plan.content_type {
            reply.set_content_type(t);
        }
        self.record(&req, reply.status);
        let _ = wire::send(&stream, &reply, &plan);
    }

    fn record(&self, req: &HttpRequest, status: u16) {
        let s = Served {
            method: req.method.clone(),
            target: req.target.clone(),
            status,
            headers: req.headers.clone(),
        };
        if self.verbose.load(Ordering::Relaxed) {
            eprintln!("pyre-metadata: {s}");
        }
        lock(&self.served).push(s);
    }

    fn control(&self, req: &HttpRequest) -> Reply {
        let text = |s: String| Reply::new(200, "text/plain", s);
        match (req.method.as_str(), req.path()) {
            ("POST", "/__pyre/faults") => {
                let body = String::from_utf8_lossy(&req.body);
                let parsed: Result<Vec<_>, _> = body
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(Injected::parse)
                    .collect();
                match parsed {
                    Ok(f) => {
                        lock(&self.faults).extend(f);
                        text("ok\n".into())
                    }
                    Err(e) => Reply::new(400, "text/plain", e),
                }
            }
            ("DELETE", "/__pyre/faults") => {
                lock(&self.faults).clear();
                text("ok\n".into())
            }
            ("PUT", "/__pyre/config") => {
                *lock(&self.config) = Some(req.body.clone());
                text("ok\n".into())
            }
            ("DELETE", "/__pyre/config") => {
                *lock(&self.config) = None;
                text("ok\n".into())
            }
            ("GET", "/__pyre/requests") => text(
                lock(&self.served)
                    .iter()
                    .filter(|s| !s.target.starts_with("/__pyre/"))
                    .map(|s| format!("{s}\n"))
                    .collect(),
            ),
            _ => Reply::empty(404),
        }
    }
}

/// The server: bound to 127.0.0.1 only, one thread per connection, stopped when dropped.
pub struct MetadataServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetadataServer {
    /// On a free port, serving `config` (None: every config request is "no user data").
    pub fn start(config: Option<Vec<u8>>) -> io::Result<MetadataServer> {
        MetadataServer::start_on(0, config)
    }

    pub fn start_on(port: u16, config: Option<Vec<u8>>) -> io::Result<MetadataServer> {
        MetadataServer::start_at(std::net::Ipv4Addr::LOCALHOST, port, config)
    }

    /// On another local address: only inside a private network namespace, where the bench
    /// gives `lo` the cloud's link-local 169.254.169.254 for tools that cannot be pointed
    /// elsewhere (afterburn). Everything else uses 127.0.0.1.
    pub fn start_at(
        ip: std::net::Ipv4Addr,
        port: u16,
        config: Option<Vec<u8>>,
    ) -> io::Result<MetadataServer> {
        let listener = TcpListener::bind((ip, port))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        *lock(&state.config) = config;
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, state2) = (stop.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let state = state2.clone();
                std::thread::spawn(move || state.serve(conn));
            }
        });
        Ok(MetadataServer {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT`, the base URL to give `--metadata-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn set_config(&self, config: Option<Vec<u8>>) {
        *lock(&self.state.config) = config;
    }

    /// Inject a fault by spec (`503*3`, `delay=1500`, …).
    pub fn inject(&self, spec: &str) -> Result<(), String> {
        lock(&self.state.faults).push(Injected::parse(spec)?);
        Ok(())
    }

    pub fn clear_faults(&self) {
        lock(&self.state.faults).clear();
    }

    /// Every request served so far, in order (control requests excluded).
    pub fn served(&self) -> Vec<Served> {
        lock(&self.state.served)
            .iter()
            .filter(|s| !s.target.starts_with("/__pyre/"))
            .cloned()
            .collect()
    }
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

//! A receiver speaking Loki's push API (`POST /loki/api/v1/push`, JSON) on 127.0.0.1: it checks
//! the body's shape as Loki does (streams of labels and `[ns-string, line]` values; 400
//! otherwise), keeps every entry, and can be stopped and started again on the same port to
//! play a restarting Loki. Any other POST path is taken as newline-delimited JSON. Over plain
//! HTTP, or HTTPS (rustls) with a given certificate and key.
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// One received entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Stream labels as `key=value`, sorted (Loki); empty for NDJSON.
    pub labels: Vec<String>,
    /// Nanoseconds (Loki) or 0.
    pub ts: String,
    /// The log line (Loki) or the JSON object (NDJSON).
    pub line: String,
}

#[derive(Default)]
struct State {
    entries: Mutex<Vec<Pushed>>,
    requests: Mutex<u64>,
    conns: Mutex<Vec<TcpStream>>,
}

pub struct LokiReceiver {
    port: u16,
    tls: Option<Arc<ServerConfig>>,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LokiReceiver {
    pub fn start() -> io::Result<LokiReceiver> {
        Self::start_with(None)
    }

    /// Over HTTPS, presenting the certificate chain `cert` with `key` (PEM files).
    pub fn start_tls(cert: &Path, key: &Path) -> io::Result<LokiReceiver> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| io::Error::other(format!("{}: {e}", cert.display())))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| io::Error::other(format!("{}: {e}", key.display())))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(io::Error::other)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self::start_with(Some(Arc::new(config)))
    }

    fn start_with(tls: Option<Arc<ServerConfig>>) -> io::Result<LokiReceiver> {
        let mut r = LokiReceiver {
            port: 0,
            tls,
            state: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        r.listen(TcpListener::bind("127.0.0.1:0")?)?;
        Ok(r)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn entries(&self) -> Vec<Pushed> {
        self.state.entries.lock().unwrap().clone()
    }

    pub fn requests(&self) -> u64 {
        *self.state.requests.lock().unwrap()
    }

    fn listen(&mut self, l: TcpListener) -> io::Result<()> {
        self.port = l.local_addr()?.port();
        self.stop = Arc::new(AtomicBool::new(false));
        let (state, stop, tls) = (self.state.clone(), self.stop.clone(), self.tls.clone());
        self.thread = Some(std::thread::spawn(move || {
            for conn in l.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if let Ok(c) = conn.try_clone() {
                    state.conns.lock().unwrap().push(c);
                }
                let state = state.clone();
                let tls = tls.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                    let _ = match tls {
                        None => serve(conn, &state),
                        Some(cfg) => ServerConnection::new(cfg)
                            .map_err(io::Error::other)
                            .and_then(|c| serve(StreamOwned::new(c, conn), &state)),
                    };
                });
            }
        }));
        Ok(())
    }

    /// Stop listening and cut every open connection (a crashed or restarting receiver).
    pub fn down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ =
            TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for c in self.state.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Listen again on the same port.
    pub fn up(&mut self) -> io::Result<()> {
        if self.thread.is_some() {
            return Ok(());
        }
        let l = TcpListener::bind(("127.0.0.1", self.port))?;
        self.listen(l)
    }
}

impl Drop for LokiReceiver {
    fn drop(&mut self) {
        self.down();
    }
}

fn serve(conn: impl Read + Write, state: &State) -> io::Result<()> {
    let mut r = BufReader::new(conn);
    loop {
        let mut request = String::new();
        if r.read_line(&mut request)? == 0 {
            return Ok(());
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        let path = request.split_whitespace().nth(1).unwrap_or("");
        let parsed = if path == "/loki/api/v1/push" {
            parse_push(&body)
        } else {
            parse_ndjson(&body)
        };
        *state.requests.lock().unwrap() += 1;
        let status = match parsed {
            Ok(entries) => {
                state.entries.lock().unwrap().extend(entries);
                "204 No Content"
            }
            Err(_) => "400 Bad Request",
        };
        let w = r.get_mut();
        write!(w, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n")?;
        w.flush()?;
    }
}

fn parse_push(body: &[u8]) -> Result<Vec<Pushed>, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for s in v["streams"].as_array().ok_or("no streams")? {
        let mut labels: Vec<String> = s["stream"]
            .as_object()
            .ok_or("no stream labels")?
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        labels.sort();
        for val in s["values"].as_array().ok_or("no values")? {
            let ts = val[0].as_str().ok_or("timestamp not a string")?;
            ts.parse::<u128>().map_err(|_| "timestamp not a number")?;
            let line = val[1].as_str().ok_or("line not a string")?;
            out.push(Pushed {
                labels: labels.clone(),
                ts: ts.to_string(),
                line: line.to_string(),
            });
        }
    }
    Ok(out)
}

fn parse_ndjson(body: &[u8]) -> Result<Vec<Pushed>, String> {
    body.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).map_err(|e| e.to_string())?;
            Ok(Pushed {
                labels: Vec::new(),
                ts: "0".into(),
                line: v.to_string(),
            })
        })
        .collect()
}

//! One HTTP exchange, behind a narrow [`Transport`] trait: the real one is reqwest's blocking
//! client (rustls only), tests script answers. Retrying and deadlines live in `fetch.rs`.
//!
//! Errors carry the method and the URI (query redacted where it may hold a secret), so a log
//! line or a console message says exactly which request failed and how.
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Default cap on a response body (a config is small; a huge answer is a fault, not a config).
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Put => "PUT",
        })
    }
}

/// A request: method, absolute URL, extra headers. `shown` is the URL as logs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub shown: String,
}

impl Request {
    pub fn get(url: impl Into<String>) -> Request {
        Request::new(Method::Get, url.into())
    }

    pub fn put(url: impl Into<String>) -> Request {
        Request::new(Method::Put, url.into())
    }

    fn new(method: Method, url: String) -> Request {
        Request {
            method,
            shown: url.clone(),
            url,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    /// Hide the query string in logs and errors (a pre-signed URL carries its credential there).
    pub fn secret_query(mut self) -> Request {
        if let Some(i) = self.url.find('?') {
            self.shown = format!("{}?…", &self.url[..i]);
        }
        self
    }

    pub fn error(&self, kind: HttpErrorKind) -> HttpError {
        HttpError {
            method: self.method,
            uri: self.shown.clone(),
            kind,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case.
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

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What went wrong below the HTTP status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpErrorKind {
    #[error("connecting: {0}")]
    Connect(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("body truncated: {0}")]
    Truncated(String),
    #[error("body larger than {0} bytes")]
    TooLarge(u64),
    #[error("redirect refused: {0}")]
    Redirect(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("{0}")]
    Other(String),
}

impl HttpErrorKind {
    /// Could the same request succeed if sent again? (The retry decision table's transport half.)
    pub fn retryable(&self) -> bool {
        match self {
            HttpErrorKind::Connect(_)
            | HttpErrorKind::Timeout(_)
            | HttpErrorKind::Lost(_)
            | HttpErrorKind::Truncated(_) => true,
            HttpErrorKind::TooLarge(_)
            | HttpErrorKind::Redirect(_)
            | HttpErrorKind::Tls(_)
            | HttpErrorKind::Other(_) => false,
        }
    }
}

/// A failed exchange, naming the request (Bottlerocket imdsclient style).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{method} {uri}: {kind}")]
pub struct HttpError {
    pub method: Method,
    pub uri: String,
    pub kind: HttpErrorKind,
}

/// Sends one request and reads the whole (capped) body. No retries here.
pub trait Transport: Send + Sync {
    fn send(&self, req: &Request, timeout: Duration) -> Result<Response, HttpError>;
}

/// For providers that read local files (qemu, file): building no HTTP client keeps their
/// start-up free of TLS set-up.
pub struct Offline;

impl Transport for Offline {
    fn send(&self, req: &Request, _: Duration) -> Result<Response, HttpError> {
        Err(req.error(HttpErrorKind::Other("this provider uses no network".into())))
    }
}

/// How the real client is built.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    pub max_body: u64,
    pub connect_timeout: Duration,
    /// Extra trusted CAs (PEM), added to the system bundle.
    pub extra_roots: Vec<Vec<u8>>,
    /// Refuse plain http (also on redirects).
    pub https_only: bool,
    /// Trust the system CA bundle. Off for plain-http metadata endpoints: loading and parsing
    /// the bundle is most of a client's start-up cost, and redirects cannot change the scheme.
    pub system_roots: bool,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            max_body: DEFAULT_MAX_BODY,
            connect_timeout: Duration::from_secs(3),
            extra_roots: Vec::new(),
            https_only: false,
            system_roots: true,
        }
    }
}

/// Every `*.pem` file in `dir` (sorted), for [`TransportOptions::extra_roots`]. A missing
/// directory means none.
pub fn read_ca_dir(dir: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    paths.sort();
    paths.iter().map(std::fs::read).collect()
}

/// Marker error our redirect policy returns, found again in reqwest's error chain.
#[derive(Debug)]
struct RedirectRefused(String);

impl fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedirectRefused {}

fn origin(u: &reqwest::Url) -> (String, Option<String>, Option<u16>) {
    (
        u.scheme().to_string(),
        u.host_str().map(str::to_string),
        u.port_or_known_default(),
    )
}

/// Same-origin redirects (at most 3) are followed; anything pointing at another host, port or
/// scheme is refused: a metadata answer must not send us elsewhere.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(origin);
        let to = attempt.url().to_string();
        if first.as_ref() != Some(&origin(attempt.url())) {
            attempt.error(RedirectRefused(format!("to another host ({to})")))
        } else if attempt.previous().len() > 3 {
            attempt.error(RedirectRefused(format!("too many redirects (last {to})")))
        } else {
            attempt.follow()
        }
    })
}

pub struct ReqwestTransport {
    client: reqwest::blocking::Client,
    max_body: u64,
}

impl ReqwestTransport {
    pub fn new(opts: &TransportOptions) -> Result<ReqwestTransport, String> {
        let mut b = reqwest::blocking::Client::builder()
            .no_proxy()
            .redirect(redirect_policy())
            .connect_timeout(opts.connect_timeout)
            .https_only(opts.https_only)
            .user_agent(concat!("pyre/", env!("CARGO_PKG_VERSION")));
        let mut roots = Vec::new();
        for pem in &opts.extra_roots {
            roots.extend(
                reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| format!("reading a CA certificate: {e}"))?,
            );
        }
        b = if opts.system_roots {
            b.tls_certs_merge(roots)
        } else {
            b.tls_certs_only(roots)
        };
        let client = b
            .build()
            .map_err(|e| format!("building the http client: {e}"))?;
        Ok(ReqwestTransport {
            client,
            max_body: opts.max_body,
        })
    }
}

/// The whole source chain as one string, for classifying and reporting reqwest errors.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn find_redirect(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<RedirectRefused>() {
            return Some(r.0.clone());
        }
        cur = c.source();
    }
    None
}

fn classify(e: &reqwest::Error, timeout: Duration) -> HttpErrorKind {
    let text = chain(e);
    if let Some(r) = find_redirect(e) {
        return HttpErrorKind::Redirect(r);
    }
    if e.is_timeout() {
        return HttpErrorKind::Timeout(timeout);
    }
    // rustls reports certificate problems inside the connect error; they do not heal by retrying.
    if text.contains("certificate") || text.contains("Certificate") {
        return HttpErrorKind::Tls(text);
    }
    if e.is_connect() {
        HttpErrorKind::Connect(text)
    } else if e.is_body() || e.is_decode() {
        HttpErrorKind::Truncated(text)
    } else if e.is_request() {
        HttpErrorKind::Lost(text)
    } else if e.is_builder() || e.is_redirect() {
        HttpErrorKind::Other(text)
    } else {
        HttpErrorKind::Lost(text)
    }
}

impl Transport for ReqwestTransport {
    fn send(&self, req: &Request, timeout: Duration) -> Result<Response, HttpError> {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Put => reqwest::Method::PUT,
        };
        let mut rb = self.client.request(method, &req.url).timeout(timeout);
        for (n, v) in &req.headers {
            rb = rb.header(*n, v);
        }
        let resp = rb.send().map_err(|e| req.error(classify(&e, timeout)))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (n.as_str().to_string(), v)
            })
            .collect();
        if resp.content_length().is_some_and(|n| n > self.max_body) {
            return Err(req.error(HttpErrorKind::TooLarge(self.max_body)));
        }
        let mut body = Vec::new();
        let mut limited = resp.take(self.max_body + 1);
        if let Err(e) = limited.read_to_end(&mut body) {
            let kind = match e.get_ref().and_then(|i| i.downcast_ref::<reqwest::Error>()) {
                Some(re) if re.is_timeout() => HttpErrorKind::Timeout(timeout),
                _ if e.kind() == std::io::ErrorKind::TimedOut => HttpErrorKind::Timeout(timeout),
                _ => HttpErrorKind::Truncated(chain(&e)),
            };
            return Err(req.error(kind));
        }
        if body.len() as u64 > self.max_body {
            return Err(req.error(HttpErrorKind::TooLarge(self.max_body)));
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_query_is_hidden() {
        let r = Request::get("https://r.example/c.json?X-Sig=abc").secret_query();
        assert_eq!(r.shown, "https://r.example/c.json?…");
        let e = r.error(HttpErrorKind::TooLarge(10));
        assert_eq!(
            e.to_string(),
            "GET https://r.example/c.json?…: body larger than 10 bytes"
        );
    }

    #[test]
    fn retry_table() {
        let cases = [
            (HttpErrorKind::Connect("refused".into()), true),
            (HttpErrorKind::Timeout(Duration::from_secs(1)), true),
            (HttpErrorKind::Lost("reset".into()), true),
            (HttpErrorKind::Truncated("eof".into()), true),
            (HttpErrorKind::TooLarge(1), false),
            (HttpErrorKind::Redirect("x".into()), false),
            (HttpErrorKind::Tls("bad".into()), false),
            (HttpErrorKind::Other("x".into()), false),
        ];
        for (k, want) in cases {
            assert_eq!(k.retryable(), want, "{k}");
        }
    }

    #[test]
    fn ca_dir_missing_is_empty() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_ca_dir(&d.path().join("none")).unwrap().is_empty());
        std::fs::write(d.path().join("b.pem"), "B").unwrap();
        std::fs::write(d.path().join("a.pem"), "A").unwrap();
        std::fs::write(d.path().join("c.txt"), "C").unwrap();
        assert_eq!(
            read_ca_dir(d.path()).unwrap(),
            vec![b"A".to_vec(), b"B".to_vec()]
        );
    }
}

//! Batches POSTed over HTTP(S) with reqwest (blocking; rustls with the sink's CA and client
//! certificate): newline-delimited JSON for `http(s)://URL`, and, through [`Encoding::Loki`],
//! Loki's push API. A batch counts as acknowledged when the answer is 2xx; any other answer or
//! a transport error leaves it unacknowledged, to be sent again.
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::logship::record::{write_timestamp, GapCount, Record, Renderer};
use crate::logship::sink::{loki, tls, Sink, SinkError, CONNECT_TIMEOUT};
use crate::logship::spec::{Scheme, SinkSpec, Target};

/// Records per POST, and the body size after which a batch is closed.
pub use super::{HTTP_BATCH_BYTES as BATCH_BYTES, HTTP_BATCH_RECORDS as BATCH_RECORDS};
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Ndjson,
    Loki,
}

pub struct HttpSink {
    name: String,
    url: String,
    encoding: Encoding,
    tls: Option<Arc<rustls::ClientConfig>>,
    client: Option<reqwest::blocking::Client>,
    acked: usize,
    body: Vec<u8>,
}

/// NDJSON batches to `http(s)://…`.
pub type NdjsonSink = HttpSink;

impl HttpSink {
    pub fn new(spec: &SinkSpec, target: Target) -> Result<HttpSink, SinkError> {
        let (encoding, url) = match target.scheme {
            Scheme::Loki { https } => (Encoding::Loki, loki::push_url(&target.url, https)),
            _ => (Encoding::Ndjson, target.url.clone()),
        };
        let tls = if target.tls() {
            Some(tls::client_config(
                spec,
                &[b"http/1.1"],
                spec.server_name.as_deref(),
            )?)
        } else {
            None
        };
        Ok(HttpSink {
            name: target.redacted(),
            url,
            encoding,
            tls,
            client: None,
            acked: 0,
            body: Vec::new(),
        })
    }

    fn err(&self, problem: String) -> SinkError {
        SinkError::Http {
            sink: self.name.clone(),
            url: crate::logship::spec::redact(&self.url),
            problem,
        }
    }
}

impl Sink for HttpSink {
    fn name(&self) -> &str {
        &self.name
    }

    /// Builds the client; connections are made (and kept alive) by reqwest per request.
    fn connect(&mut self) -> Result<(), SinkError> {
        if self.client.is_some() {
            return Ok(());
        }
        let mut b = reqwest::blocking::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pyre/", env!("CARGO_PKG_VERSION")));
        if let Some(cfg) = &self.tls {
            b = b.tls_backend_preconfigured(Arc::unwrap_or_clone(cfg.clone()));
        }
        let client = b
            .build()
            .map_err(|e| self.err(format!("building the client: {e}")))?;
        self.client = Some(client);
        Ok(())
    }

    fn connected(&self) -> bool {
        self.client.is_some()
    }

    fn send(&mut self, recs: &[Record], r: &Renderer) -> Result<usize, SinkError> {
        if recs.is_empty() {
            return Ok(0);
        }
        self.body.clear();
        let (n, content_type) = match self.encoding {
            Encoding::Ndjson => (ndjson(recs, r, &mut self.body), "application/x-ndjson"),
            Encoding::Loki => (loki::push_body(recs, r, &mut self.body), "application/json"),
        };
        let client = self.client.as_ref().ok_or_else(|| SinkError::Closed {
            sink: self.name.clone(),
        })?;
        let resp = client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(self.body.clone())
            .send()
            .map_err(|e| self.err(error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().unwrap_or_default();
            let text: String = text.trim().chars().take(300).collect();
            return Err(self.err(format!("answered {status}: {text}")));
        }
        self.acked += n;
        Ok(n)
    }

    fn poll_acked(&mut self, _wait: Duration) -> Result<usize, SinkError> {
        Ok(std::mem::take(&mut self.acked))
    }

    fn disconnect(&mut self) {
        // A new client next time: no half-dead keep-alive connection is reused.
        self.client = None;
        self.acked = 0;
    }
}

/// The error and its causes on one line (reqwest's own text hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// One JSON object per line for the first records of `recs`: how many were written.
pub fn ndjson(recs: &[Record], r: &Renderer, out: &mut Vec<u8>) -> usize {
    let id = &r.identity;
    let mut n = 0;
    let mut ts = Vec::with_capacity(32);
    for rec in recs.iter().take(BATCH_RECORDS) {
        let e = &rec.entry;
        ts.clear();
        write_timestamp(&mut ts, e.time.unwrap_or_else(std::time::SystemTime::now));
        let mut v = json!({
            "time": String::from_utf8_lossy(&ts),
            "host": id.hostname,
            "severity": e.severity,
            "facility": e.facility,
            "app": e.app_name,
            "procid": e.procid,
            "unit": e.unit,
            "message": String::from_utf8_lossy(&e.message),
            "image": id.image,
            "manifest": id.manifest,
            "instance": id.instance,
            "boot_id": id.boot_id,
            "source": r.source,
            "seq": rec.seq,
        });
        match e.gap {
            Some(GapCount::Known(k)) => v["gap"] = json!(k),
            Some(GapCount::Unknown) => v["gap"] = json!("unknown"),
            None => {}
        }
        let _ = serde_json::to_writer(&mut *out, &v);
        let _ = out.write_all(b"\n");
        n += 1;
        if out.len() >= BATCH_BYTES {
            break;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logship::checkpoint::Position;
    use crate::logship::record::{Entry, Identity};

    #[test]
    fn ndjson_lines() {
        let r = Renderer {
            identity: Identity {
                hostname: "h".into(),
                boot_id: "b".into(),
                ..Identity::default()
            },
            source: "kmsg".into(),
        };
        let recs: Vec<Record> = (1..=3)
            .map(|i| Record {
                seq: i,
                entry: Entry::new(format!("m{i}\n\u{1}")),
                pos: Position::Start,
            })
            .collect();
        let mut out = Vec::new();
        assert_eq!(ndjson(&recs, &r, &mut out), 3);
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["seq"], 3);
        assert_eq!(lines[0]["message"], "m1\n\u{1}");
        assert_eq!(lines[0]["source"], "kmsg");
    }
}

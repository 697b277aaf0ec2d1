//! Sinks, one file per transport, chosen by the URL's scheme in [`open`]. A sink sends records
//! and reports, in order, how many the receiver has acknowledged, as far as its transport can
//! tell (docs/logs.md, "Guarantees"); the pipeline advances the checkpoint only that far.
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::logship::record::{Record, Renderer};
use crate::logship::spec::{Scheme, SinkSpec, SpecError};

/// Most records and bytes in one HTTP (Loki or NDJSON) batch.
pub const HTTP_BATCH_RECORDS: usize = 1000;
pub const HTTP_BATCH_BYTES: usize = 1024 * 1024;

pub mod http;
pub mod loki;
pub mod relp;
pub mod stream;
pub mod syslog;
pub mod tls;

/// How long connecting (TCP plus any TLS or RELP handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("tls settings {path}: {problem}")]
    TlsConfig { path: PathBuf, problem: String },
    #[error("connecting to {sink}: {source}")]
    Connect { sink: String, source: io::Error },
    #[error("tls handshake with {sink} (server name {server_name}): {problem}")]
    Tls {
        sink: String,
        server_name: String,
        problem: String,
    },
    #[error("{op} on {sink}: {source}")]
    Io {
        sink: String,
        op: &'static str,
        source: io::Error,
    },
    #[error("{sink} closed the connection")]
    Closed { sink: String },
    #[error("{sink}: {problem}")]
    Protocol { sink: String, problem: String },
    #[error("{sink}: POST {url}: {problem}")]
    Http {
        sink: String,
        url: String,
        problem: String,
    },
}

/// One receiver.
pub trait Sink: Send {
    /// The sink URL without credentials.
    fn name(&self) -> &str;
    /// Connect (and handshake); records not acknowledged before are sent again after it.
    fn connect(&mut self) -> Result<(), SinkError>;
    fn connected(&self) -> bool;
    /// Send the first records of `recs` (all of them or a prefix: a full window, a full batch)
    /// and say how many were taken.
    fn send(&mut self, recs: &[Record], r: &Renderer) -> Result<usize, SinkError>;
    /// How many more of the records sent are acknowledged (oldest first), waiting up to `wait`
    /// for news while some are outstanding.
    fn poll_acked(&mut self, wait: Duration) -> Result<usize, SinkError>;
    /// Drop the connection; what was not acknowledged is sent again after the next connect.
    fn disconnect(&mut self);
}

/// The sink `spec` names.
pub fn open(spec: &SinkSpec) -> Result<Box<dyn Sink>, SinkError> {
    let target = spec.target()?;
    Ok(match target.scheme {
        Scheme::SyslogTcp | Scheme::SyslogTls => Box::new(syslog::StreamSink::new(spec, target)?),
        Scheme::SyslogUdp => Box::new(syslog::UdpSink::new(target)),
        Scheme::Relp | Scheme::RelpTls => Box::new(relp::RelpSink::new(spec, target)?),
        Scheme::Loki { .. } => Box::new(http::HttpSink::new(spec, target)?),
        Scheme::Http { .. } => Box::new(http::NdjsonSink::new(spec, target)?),
    })
}

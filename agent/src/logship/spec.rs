//! What a pipeline is built from: the `logs` section of config v1 (sources; sinks by URL with
//! TLS settings). These small types mirror the config sketch (kebab-case, unknown fields refused)
//! so `config::Logs` can replace them without changing the pipeline.
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("source {0:?}: expected journal, kmsg or file:PATH (an absolute path)")]
    Source(String),
    #[error("sink url {url}: {problem}")]
    Url { url: String, problem: String },
    #[error(
        "sink url {url}: {field} is only for tls sinks (syslog+tls, relp+tls, https, loki+https)"
    )]
    TlsOnly { url: String, field: &'static str },
    #[error("sink url {url}: client-cert and client-key go together")]
    ClientPair { url: String },
}

/// `logs` in config v1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogsSpec {
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    #[serde(default)]
    pub sinks: Vec<SinkSpec>,
}

impl LogsSpec {
    /// The `logs` section of an applied config (`config::Logs`) as pipeline specs. The config's
    /// `non-transparent` framing is this module's [`Framing::Newline`]; a file source must be
    /// an absolute path. Sinks are checked by [`SinkSpec::target`] when a pipeline opens them.
    pub fn from_config(logs: &crate::config::Logs) -> Result<LogsSpec, SpecError> {
        use crate::config::{Framing as CfgFraming, LogSource};
        let sources = logs
            .sources
            .iter()
            .map(|s| match s {
                LogSource::Journal => Ok(SourceSpec::Journal),
                LogSource::Kmsg => Ok(SourceSpec::Kmsg),
                LogSource::File(p) => format!("file:{p}").parse(),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sinks = logs
            .sinks
            .iter()
            .map(|s| SinkSpec {
                url: s.url.clone(),
                ca: s.ca.as_ref().map(PathBuf::from),
                server_name: s.server_name.clone(),
                client_cert: s.client_cert.as_ref().map(PathBuf::from),
                client_key: s.client_key.as_ref().map(PathBuf::from),
                framing: s.framing.map(|f| match f {
                    CfgFraming::OctetCounting => Framing::OctetCounting,
                    CfgFraming::NonTransparent => Framing::Newline,
                }),
            })
            .collect();
        Ok(LogsSpec { sources, sinks })
    }
}

/// One source: `"journal"`, `"kmsg"` or `"file:/abs/path"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SourceSpec {
    Journal,
    Kmsg,
    File(PathBuf),
}

impl TryFrom<String> for SourceSpec {
    type Error = SpecError;
    fn try_from(s: String) -> Result<Self, SpecError> {
        s.parse()
    }
}

impl std::str::FromStr for SourceSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "journal" => Ok(SourceSpec::Journal),
            "kmsg" => Ok(SourceSpec::Kmsg),
            _ => match s.strip_prefix("file:") {
                Some(p) if p.starts_with('/') => Ok(SourceSpec::File(PathBuf::from(p))),
                _ => Err(SpecError::Source(s.to_string())),
            },
        }
    }
}

impl From<SourceSpec> for String {
    fn from(s: SourceSpec) -> String {
        s.to_string()
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Journal => f.write_str("journal"),
            SourceSpec::Kmsg => f.write_str("kmsg"),
            SourceSpec::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// How syslog records are delimited on a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// `LEN SP MSG` (RFC 6587 3.4.1 / RFC 5425): any byte may appear in a message.
    #[default]
    OctetCounting,
    /// `MSG LF` for receivers that need it; a LF inside a message is sent as `#012`.
    Newline,
}

/// One sink in config v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SinkSpec {
    pub url: String,
    /// PEM file of the CA certificates the receiver's certificate must chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Name the receiver's certificate must carry (default: the URL's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// PEM client certificate chain for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client-cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framing: Option<Framing>,
}

impl SinkSpec {
    pub fn new(url: &str) -> SinkSpec {
        SinkSpec {
            url: url.to_string(),
            ca: None,
            server_name: None,
            client_cert: None,
            client_key: None,
            framing: None,
        }
    }

    /// Parse and check the URL and the TLS settings together.
    pub fn target(&self) -> Result<Target, SpecError> {
        let t = Target::parse(&self.url)?;
        let tls = t.tls();
        for (set, field) in [
            (self.ca.is_some(), "ca"),
            (self.server_name.is_some(), "server-name"),
            (self.client_cert.is_some(), "client-cert"),
            (self.client_key.is_some(), "client-key"),
        ] {
            if set && !tls {
                return Err(SpecError::TlsOnly {
                    url: t.redacted(),
                    field,
                });
            }
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(SpecError::ClientPair { url: t.redacted() });
        }
        Ok(t)
    }
}

/// The kind of sink a URL scheme names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    SyslogTcp,
    SyslogTls,
    SyslogUdp,
    Relp,
    RelpTls,
    Loki { https: bool },
    Http { https: bool },
}

/// A parsed sink URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// Host as written (brackets removed from an IPv6 literal).
    pub host: String,
    pub port: u16,
    /// The URL as given (for HTTP sinks: what is POSTed to, after the scheme is mapped).
    pub url: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, SpecError> {
        let bad = |problem: &str| SpecError::Url {
            url: redact(url),
            problem: problem.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected SCHEME://HOST:PORT"))?;
        let scheme = match scheme {
            "syslog+tcp" | "syslog" | "tcp" => Scheme::SyslogTcp,
            "syslog+tls" | "tls" => Scheme::SyslogTls,
            "syslog+udp" | "udp" => Scheme::SyslogUdp,
            "relp" => Scheme::Relp,
            "relp+tls" => Scheme::RelpTls,
            "loki+http" => Scheme::Loki { https: false },
            "loki+https" => Scheme::Loki { https: true },
            "http" => Scheme::Http { https: false },
            "https" => Scheme::Http { https: true },
            other => return Err(bad(&format!("unknown scheme {other:?}"))),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("expected HOST:PORT"))?;
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
            None => match scheme {
                Scheme::Http { https: false } | Scheme::Loki { https: false } => 80,
                Scheme::Http { https: true } | Scheme::Loki { https: true } => 443,
                Scheme::SyslogTls => 6514,
                Scheme::Relp | Scheme::RelpTls => 20514,
                _ => return Err(bad("a port is required")),
            },
        };
        if host.is_empty() || (host.contains(':') && !hostport.starts_with('[')) {
            return Err(bad("bad host"));
        }
        Ok(Target {
            scheme,
            host: host.to_string(),
            port,
            url: url.to_string(),
        })
    }

    pub fn tls(&self) -> bool {
        matches!(
            self.scheme,
            Scheme::SyslogTls
                | Scheme::RelpTls
                | Scheme::Loki { https: true }
                | Scheme::Http { https: true }
        )
    }

    /// The URL with any user:password removed, for logs and checkpoint files.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }
}

fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        return match after {
            "" => Some((h, None)),
            _ => Some((h, Some(after.strip_prefix(':')?))),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p))),
        None => Some((s, None)),
    }
}

/// `scheme://user:secret@host/…` → `scheme://host/…`: credentials never reach a log line.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_print() {
        for s in ["journal", "kmsg", "file:/var/log/app.log"] {
            let p: SourceSpec = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        for bad in ["", "journald", "file:", "file:relative", "File:/x"] {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        let cases = [
            (
                "syslog+tcp://127.0.0.1:514",
                Scheme::SyslogTcp,
                "127.0.0.1",
                514,
            ),
            (
                "syslog+tls://logs.example",
                Scheme::SyslogTls,
                "logs.example",
                6514,
            ),
            ("syslog+udp://[::1]:514", Scheme::SyslogUdp, "::1", 514),
            ("relp://h:20514", Scheme::Relp, "h", 20514),
            (
                "loki+http://h:3100",
                Scheme::Loki { https: false },
                "h",
                3100,
            ),
            (
                "https://u:pw@h/ingest?x=1",
                Scheme::Http { https: true },
                "h",
                443,
            ),
        ];
        for (url, scheme, host, port) in cases {
            let t = Target::parse(url).unwrap();
            assert_eq!(
                (t.scheme, t.host.as_str(), t.port),
                (scheme, host, port),
                "{url}"
            );
        }
        for bad in [
            "syslog+tcp://h",
            "ftp://h:1",
            "h:514",
            "syslog+tcp://:514",
            "relp://h:x",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(redact("https://u:pw@h:1/p@x"), "https://h:1/p@x");
        assert_eq!(redact("relp://h:1"), "relp://h:1");
        let e = Target::parse("https://u:secret@h:1:2").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn from_applied_config() {
        let cfg = crate::config::parse(
            br#"{"version":1,"logs":{"sources":["journal","file:/var/log/a"],
              "sinks":[{"url":"syslog+tcp://h:514","framing":"non-transparent"},
                       {"url":"syslog+tls://h:1","ca":"/etc/pyre/ca.pem"}]}}"#,
        )
        .unwrap();
        let l = LogsSpec::from_config(cfg.logs.as_ref().unwrap()).unwrap();
        assert_eq!(
            l.sources,
            [SourceSpec::Journal, SourceSpec::File("/var/log/a".into())]
        );
        assert_eq!(l.sinks[0].framing, Some(Framing::Newline));
        assert_eq!(l.sinks[1].ca, Some(PathBuf::from("/etc/pyre/ca.pem")));
        let defaults =
            crate::config::parse(br#"{"version":1,"logs":{"sinks":[{"url":"relp://h:1"}]}}"#)
                .unwrap();
        let d = LogsSpec::from_config(defaults.logs.as_ref().unwrap()).unwrap();
        assert_eq!(d.sources, [SourceSpec::Journal, SourceSpec::Kmsg]);
    }

    #[test]
    fn every_scheme_a_config_may_name_is_shipped() {
        use crate::config::validate::{SINK_SCHEMES, TLS_SCHEMES};
        for scheme in SINK_SCHEMES {
            let t = Target::parse(&format!("{scheme}://h:1")).unwrap();
            assert_eq!(t.tls(), TLS_SCHEMES.contains(scheme), "{scheme}");
        }
        let cfg = crate::config::parse(
            br#"{"version":1,"logs":{"sinks":[{"url":"relp+tls://h:20514","ca":"/etc/pyre/ca.pem",
              "server-name":"logs.example","client-cert":"/run/c.pem","client-key":"/run/c.key"}]}}"#,
        )
        .unwrap();
        let l = LogsSpec::from_config(cfg.logs.as_ref().unwrap()).unwrap();
        assert_eq!(l.sinks[0].target().unwrap().scheme, Scheme::RelpTls);
    }

    #[test]
    fn config_shape() {
        let json = r#"{"sources":["journal","file:/var/log/a"],
            "sinks":[{"url":"syslog+tls://h:6514","ca":"/etc/pyre/ca/logs.pem",
                      "server-name":"logs","framing":"newline"}]}"#;
        let l: LogsSpec = serde_json::from_str(json).unwrap();
        assert_eq!(l.sinks[0].framing, Some(Framing::Newline));
        assert!(l.sinks[0].target().is_ok());
        let unknown = r#"{"sinks":[{"url":"relp://h:1","cert":"x"}]}"#;
        assert!(serde_json::from_str::<LogsSpec>(unknown).is_err());
        let mut plain = SinkSpec::new("syslog+tcp://h:514");
        plain.ca = Some("/x".into());
        assert!(matches!(plain.target(), Err(SpecError::TlsOnly { .. })));
    }
}

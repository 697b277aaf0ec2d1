//! Where an instance's config comes from: one provider per cloud (or registry, fw_cfg, file)
//! behind [`MetadataProvider`], chosen by `pyre.provider=` or detected from DMI (never by
//! probing endpoints), fetched with retries under one overall deadline.
//!
//! The boot calls [`Settings::from_cmdline`], then [`fetch_config`] (and [`fetch_identity`]).
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod aws;
pub mod azure;
pub mod detect;
pub mod fetch;
pub mod file;
pub mod gcp;
pub mod http;
pub mod openstack;
pub mod qemu;
pub mod settings;
pub mod url;

#[cfg(test)]
pub(crate) mod testing;

pub use detect::{detect, ProviderKind};
pub use fetch::{Clock, FetchError, Fetcher, RetryPolicy, SystemClock, DEFAULT_DEADLINE};
pub use settings::Settings;

use http::{HttpError, Method, ReqwestTransport, TransportOptions};

/// Who this instance is, as far as its cloud says (absent fields: not given by that cloud).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Identity {
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// One source of config (modelled on afterburn's `MetadataProvider`: what a source cannot
/// give is "not supported" by default).
pub trait MetadataProvider {
    fn kind(&self) -> ProviderKind;

    /// The config bytes as stored (user data, attribute, fw_cfg blob, file). `Ok(None)` is a
    /// definite "there is no config" (404, empty user data, no such fw_cfg entry).
    fn config(&self) -> Result<Option<Vec<u8>>, ProviderError>;

    fn identity(&self) -> Result<Identity, ProviderError> {
        Err(ProviderError::NotSupported {
            provider: self.kind(),
            what: "instance identity",
        })
    }
}

/// What a caller does about a failure: the exit code and boot policy key off this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The endpoint (or device) was not reached by the deadline: whether a config exists is
    /// unknown. Always boot-critical.
    Unreachable,
    /// The source answered, and the answer is refused (403, off-host redirect, oversize, bad
    /// encoding, not the metadata server it claims to be…).
    Refused,
    /// The command line, the arguments or this machine say nothing usable (unknown provider,
    /// none detected, bad URL).
    Setup,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{method} {uri}: status {status}{why}")]
    Status {
        method: Method,
        uri: String,
        status: u16,
        why: &'static str,
    },
    #[error("{method} {uri}: {why}")]
    Refused {
        method: Method,
        uri: String,
        why: String,
    },
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is larger than {cap} bytes", path.display())]
    TooLarge { path: PathBuf, cap: u64 },
    #[error("{what} is not available: {why}")]
    Unavailable { what: String, why: String },
    #[error("no pyre.provider= given and none detected from DMI ({})", dmi.display())]
    NotDetected { dmi: PathBuf },
    #[error("kernel command line parameter {key}={value:?} is invalid: {why}")]
    Cmdline {
        key: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("{0}")]
    Setup(String),
    #[error("provider {provider} does not provide {what}")]
    NotSupported {
        provider: ProviderKind,
        what: &'static str,
    },
}

impl ProviderError {
    pub fn failure(&self) -> Failure {
        match self {
            ProviderError::Fetch(FetchError::Deadline { .. }) => Failure::Unreachable,
            ProviderError::Unavailable { .. } => Failure::Unreachable,
            ProviderError::Fetch(FetchError::Http(_))
            | ProviderError::Status { .. }
            | ProviderError::Refused { .. }
            | ProviderError::Io { .. }
            | ProviderError::TooLarge { .. } => Failure::Refused,
            ProviderError::NotDetected { .. }
            | ProviderError::Cmdline { .. }
            | ProviderError::Setup(_)
            | ProviderError::NotSupported { .. } => Failure::Setup,
        }
    }

    pub(crate) fn status(req: &http::Request, status: u16, why: &'static str) -> ProviderError {
        ProviderError::Status {
            method: req.method,
            uri: req.shown.clone(),
            status,
            why,
        }
    }

    pub(crate) fn refused(req: &http::Request, why: impl Into<String>) -> ProviderError {
        ProviderError::Refused {
            method: req.method,
            uri: req.shown.clone(),
            why: why.into(),
        }
    }
}

impl From<HttpError> for ProviderError {
    fn from(e: HttpError) -> Self {
        ProviderError::Fetch(FetchError::Http(e))
    }
}

/// Host paths the providers read (all parameters, for tests).
#[derive(Debug, Clone)]
pub struct HostPaths {
    /// `/sys/class/dmi/id`
    pub dmi: PathBuf,
    /// `/sys` (fw_cfg, block devices)
    pub sysfs: PathBuf,
    /// `/dev`
    pub dev: PathBuf,
    /// `/etc/pyre/ca`: extra CAs (`*.pem`) trusted for `pyre.config.url`.
    pub ca_dir: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            dmi: "/sys/class/dmi/id".into(),
            sysfs: "/sys".into(),
            dev: "/dev".into(),
            ca_dir: "/etc/pyre/ca".into(),
        }
    }
}

/// `pyre.provider=`, else DMI detection. `None` = the image runs without config.
pub fn choose(settings: &Settings, paths: &HostPaths) -> Result<ProviderKind, ProviderError> {
    match settings.provider {
        Some(k) => Ok(k),
        None => detect(&paths.dmi).ok_or_else(|| ProviderError::NotDetected {
            dmi: paths.dmi.clone(),
        }),
    }
}

/// The real HTTP transport for `kind`: none for local providers; https-only for `url` unless
/// plain http is allowed; the system CA bundle loaded only when the endpoint is https.
pub fn transport(
    kind: ProviderKind,
    settings: &Settings,
    paths: &HostPaths,
) -> Result<Arc<dyn http::Transport>, ProviderError> {
    let endpoint = match kind {
        ProviderKind::File | ProviderKind::Qemu | ProviderKind::None => {
            return Ok(Arc::new(http::Offline))
        }
        ProviderKind::Url => settings.config_url.as_deref(),
        _ => settings.metadata_url.as_deref(),
    };
    let https = endpoint.is_some_and(|u| u.starts_with("https:"));
    let mut opts = TransportOptions {
        max_body: settings.max_body,
        system_roots: https,
        ..TransportOptions::default()
    };
    if kind == ProviderKind::Url {
        opts.https_only = !settings.allow_http;
        if https {
            opts.extra_roots = http::read_ca_dir(&paths.ca_dir).map_err(|e| ProviderError::Io {
                path: paths.ca_dir.clone(),
                source: e,
            })?;
        }
    }
    Ok(Arc::new(
        ReqwestTransport::new(&opts).map_err(ProviderError::Setup)?,
    ))
}

/// The one `match` that builds a provider. `Ok(None)` for `none`.
pub fn build(
    kind: ProviderKind,
    settings: &Settings,
    paths: &HostPaths,
    fetcher: Fetcher,
) -> Result<Option<Box<dyn MetadataProvider>>, ProviderError> {
    let base = settings.metadata_url.clone();
    Ok(Some(match kind {
        ProviderKind::None => return Ok(None),
        ProviderKind::Aws => Box::new(aws::Aws::new(fetcher, base)),
        ProviderKind::Gcp => Box::new(gcp::Gcp::new(fetcher, base)),
        ProviderKind::Azure => Box::new(azure::Azure::new(fetcher, base)),
        ProviderKind::Openstack => Box::new(openstack::Openstack::new(
            fetcher,
            base,
            openstack::ConfigDrive::real(paths, settings.max_body),
        )),
        ProviderKind::Qemu => Box::new(qemu::Qemu::new(&paths.sysfs, settings.max_body)),
        ProviderKind::Url => Box::new(url::Url::new(fetcher, settings)?),
        ProviderKind::File => Box::new(file::File::new(settings)?),
    }))
}

/// The chosen provider, with the real transport and a deadline starting now on `clock`.
pub fn open(
    settings: &Settings,
    paths: &HostPaths,
    clock: Arc<dyn Clock>,
) -> Result<(ProviderKind, Option<Box<dyn MetadataProvider>>), ProviderError> {
    let kind = choose(settings, paths)?;
    let fetcher = Fetcher::new(
        transport(kind, settings, paths)?,
        clock,
        settings.deadline,
        RetryPolicy::default(),
    );
    Ok((kind, build(kind, settings, paths, fetcher)?))
}

/// What [`fetch_config`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub provider: ProviderKind,
    /// `None`: definitely no config (or the provider is `none`).
    pub config: Option<Vec<u8>>,
}

/// Choose the provider and fetch the config bytes under `settings.deadline`.
pub fn fetch_config(
    settings: &Settings,
    paths: &HostPaths,
    clock: Arc<dyn Clock>,
) -> Result<Fetched, ProviderError> {
    let (provider, p) = open(settings, paths, clock)?;
    let config = match p {
        Some(p) => p.config()?,
        None => None,
    };
    Ok(Fetched { provider, config })
}

/// Choose the provider and ask it who this instance is.
pub fn fetch_identity(
    settings: &Settings,
    paths: &HostPaths,
    clock: Arc<dyn Clock>,
) -> Result<Identity, ProviderError> {
    match open(settings, paths, clock)? {
        (_, Some(p)) => p.identity(),
        (k, None) => Err(ProviderError::NotSupported {
            provider: k,
            what: "instance identity",
        }),
    }
}

/// Read a local file, refusing one larger than `cap` bytes.
pub(crate) fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ProviderError> {
    use std::io::Read;
    let io = |e| ProviderError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > cap {
        return Err(ProviderError::TooLarge {
            path: path.to_path_buf(),
            cap,
        });
    }
    Ok(buf)
}

/// Join a base URL (no trailing slash needed) and an absolute path.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// 2xx with a body → `Some`, 2xx empty or 404 → `None`, anything else → refused.
pub(crate) fn body_or_none(
    req: &http::Request,
    resp: http::Response,
) -> Result<Option<Vec<u8>>, ProviderError> {
    match resp.status {
        200..=299 if resp.body.iter().all(u8::is_ascii_whitespace) => Ok(None),
        200..=299 => Ok(Some(resp.body)),
        404 => Ok(None),
        s => Err(ProviderError::status(req, s, "")),
    }
}

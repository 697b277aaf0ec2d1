//! Amazon EC2 through IMDSv2 only: a session token from `PUT /latest/api/token`, sent on
//! every GET. A 401 (token expired) refreshes the token once; a 403 means IMDS is disabled or
//! the token hop limit stops us (final). IPv4 and IPv6 endpoints are raced for the token; the
//! first to answer is used from then on. `pyre.metadata.url=` replaces both.
use std::sync::Mutex;

use super::fetch::Fetcher;
use super::http::{Request, Response};
use super::{body_or_none, join, Identity, MetadataProvider, ProviderError, ProviderKind};

pub const BASES: [&str; 2] = ["http://169.254.169.254", "http://[fd00:ec2::254]"];
pub const TOKEN_PATH: &str = "/latest/api/token";
pub const USER_DATA_PATH: &str = "/latest/user-data";
pub const IDENTITY_PATH: &str = "/latest/dynamic/instance-identity/document";
pub const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
pub const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
/// Token lifetime asked for: long enough for a boot, short enough not to linger.
pub const TOKEN_TTL_SECS: u32 = 300;

struct Session {
    base: String,
    token: String,
}

pub struct Aws {
    fetcher: Fetcher,
    bases: Vec<String>,
    session: Mutex<Option<Session>>,
}

impl Aws {
    /// `base` replaces the raced IPv4/IPv6 endpoints.
    pub fn new(fetcher: Fetcher, base: Option<String>) -> Aws {
        let bases = match base {
            Some(b) => vec![b],
            None => BASES.iter().map(|s| s.to_string()).collect(),
        };
        Aws {
            fetcher,
            bases,
            session: Mutex::new(None),
        }
    }

    fn new_session(&self) -> Result<Session, ProviderError> {
        let reqs: Vec<Request> = self
            .bases
            .iter()
            .map(|b| {
                Request::put(join(b, TOKEN_PATH)).header(TTL_HEADER, TOKEN_TTL_SECS.to_string())
            })
            .collect();
        let (i, resp) = self.fetcher.race(&reqs)?;
        let req = &reqs[i];
        match resp.status {
            200 => {}
            403 => return Err(ProviderError::status(req, 403, " (IMDS is disabled)")),
            s => return Err(ProviderError::status(req, s, "")),
        }
        let token = String::from_utf8(resp.body)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| ProviderError::refused(req, "not a usable token"))?;
        Ok(Session {
            base: self.bases[i].clone(),
            token,
        })
    }

    /// The current session's base and token; a new session when there is none or `fresh`.
    fn session(&self, fresh: bool) -> Result<(String, String), ProviderError> {
        let mut guard = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let s = match guard.take() {
            Some(s) if !fresh => s,
            _ => self.new_session()?,
        };
        let out = (s.base.clone(), s.token.clone());
        *guard = Some(s);
        Ok(out)
    }

    /// GET `path` with the token; a 401 gets a fresh token and one more try.
    fn get(&self, path: &str) -> Result<(Request, Response), ProviderError> {
        let mut fresh = false;
        loop {
            let (base, token) = self.session(fresh)?;
            let req = Request::get(join(&base, path)).header(TOKEN_HEADER, token);
            let resp = self.fetcher.send(&req)?;
            match resp.status {
                401 if !fresh => {
                    log::info!(
                        "{} {}: token refused (401), asking for a new one",
                        req.method,
                        req.shown
                    );
                    fresh = true;
                }
                401 => {
                    return Err(ProviderError::status(
                        &req,
                        401,
                        " (a fresh token was refused)",
                    ))
                }
                403 => return Err(ProviderError::status(&req, 403, " (IMDS is disabled)")),
                _ => return Ok((req, resp)),
            }
        }
    }
}

impl MetadataProvider for Aws {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Aws
    }

    fn config(&self) -> Result<Option<Vec<u8>>, ProviderError> {
        let (req, resp) = self.get(USER_DATA_PATH)?;
        body_or_none(&req, resp)
    }

    fn identity(&self) -> Result<Identity, ProviderError> {
        let (req, resp) = self.get(IDENTITY_PATH)?;
        if resp.status != 200 {
            return Err(ProviderError::status(&req, resp.status, ""));
        }
        parse_identity(&resp.body).ok_or_else(|| {
            ProviderError::refused(&req, "not an instance identity document (JSON object)")
        })
    }
}

/// Lenient: other people's document; only the fields we show, unknown fields ignored.
pub fn parse_identity(body: &[u8]) -> Option<Identity> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    let s = |k: &str| obj.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Some(Identity {
        provider: "aws".into(),
        instance_id: s("instanceId"),
        region: s("region"),
        zone: s("availabilityZone"),
        instance_type: s("instanceType"),
        hostname: None,
    })
}

#[cfg(test)]
mod mock_tests;

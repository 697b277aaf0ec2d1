//! Microsoft Azure IMDS (`Metadata: true` on every request). The config is the VM's user data,
//! `/metadata/instance/compute/userData?...&format=text`, which IMDS returns base64-encoded.
use base64::Engine;

use super::fetch::Fetcher;
use super::http::{Request, Response};
use super::{join, Identity, MetadataProvider, ProviderError, ProviderKind};

pub const BASE: &str = "http://169.254.169.254";
pub const INSTANCE_PATH: &str = "/metadata/instance?api-version=2021-02-01";
pub const USER_DATA_PATH: &str =
    "/metadata/instance/compute/userData?api-version=2021-02-01&format=text";

pub struct Azure {
    fetcher: Fetcher,
    base: String,
}

impl Azure {
    pub fn new(fetcher: Fetcher, base: Option<String>) -> Azure {
        Azure {
            fetcher,
            base: base.unwrap_or_else(|| BASE.to_string()),
        }
    }

    fn get(&self, path: &str) -> Result<(Request, Response), ProviderError> {
        let req = Request::get(join(&self.base, path)).header("Metadata", "true");
        let resp = self.fetcher.send(&req)?;
        Ok((req, resp))
    }
}

impl MetadataProvider for Azure {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Azure
    }

    fn config(&self) -> Result<Option<Vec<u8>>, ProviderError> {
        let (req, resp) = self.get(USER_DATA_PATH)?;
        match resp.status {
            200 => decode_user_data(&resp.body).map_err(|why| ProviderError::refused(&req, why)),
            404 => Ok(None),
            s => Err(ProviderError::status(&req, s, "")),
        }
    }

    fn identity(&self) -> Result<Identity, ProviderError> {
        let (req, resp) = self.get(INSTANCE_PATH)?;
        if resp.status != 200 {
            return Err(ProviderError::status(&req, resp.status, ""));
        }
        parse_identity(&resp.body)
            .ok_or_else(|| ProviderError::refused(&req, "not an instance document (JSON object)"))
    }
}

/// Base64 text (whitespace ignored) → bytes; empty → `None`.
pub fn decode_user_data(body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if text.is_empty() {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|e| format!("user data is not base64: {e}"))?;
    Ok(Some(bytes).filter(|b| !b.is_empty()))
}

/// `compute.{vmId, location, zone, vmSize, name}` of the instance document.
pub fn parse_identity(body: &[u8]) -> Option<Identity> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let c = v.as_object()?.get("compute")?.as_object()?;
    let s = |k: &str| {
        c.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Some(Identity {
        provider: "azure".into(),
        instance_id: s("vmId"),
        region: s("location"),
        zone: s("zone"),
        instance_type: s("vmSize"),
        hostname: s("name"),
    })
}

#[cfg(test)]
mod mock_tests;

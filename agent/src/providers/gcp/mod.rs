//! Google Compute Engine: the metadata server at `/computeMetadata/v1/`, asked with
//! `Metadata-Flavor: Google` and believed only when the answer carries that header back. The
//! config is the instance attribute `pyre-config`.
use super::fetch::Fetcher;
use super::http::{Request, Response};
use super::{body_or_none, join, Identity, MetadataProvider, ProviderError, ProviderKind};

pub const BASE: &str = "http://169.254.169.254";
pub const CONFIG_PATH: &str = "/computeMetadata/v1/instance/attributes/pyre-config";
pub const INSTANCE_PATH: &str = "/computeMetadata/v1/instance/?recursive=true";
pub const FLAVOR: (&str, &str) = ("Metadata-Flavor", "Google");

pub struct Gcp {
    fetcher: Fetcher,
    base: String,
}

impl Gcp {
    pub fn new(fetcher: Fetcher, base: Option<String>) -> Gcp {
        Gcp {
            fetcher,
            base: base.unwrap_or_else(|| BASE.to_string()),
        }
    }

    fn get(&self, path: &str) -> Result<(Request, Response), ProviderError> {
        let req = Request::get(join(&self.base, path)).header(FLAVOR.0, FLAVOR.1);
        let resp = self.fetcher.send(&req)?;
        if resp.header(FLAVOR.0) != Some(FLAVOR.1) {
            return Err(ProviderError::refused(
                &req,
                "answer lacks Metadata-Flavor: Google (not the GCE metadata server)",
            ));
        }
        Ok((req, resp))
    }
}

impl MetadataProvider for Gcp {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gcp
    }

    fn config(&self) -> Result<Option<Vec<u8>>, ProviderError> {
        let (req, resp) = self.get(CONFIG_PATH)?;
        body_or_none(&req, resp)
    }

    fn identity(&self) -> Result<Identity, ProviderError> {
        let (req, resp) = self.get(INSTANCE_PATH)?;
        if resp.status != 200 {
            return Err(ProviderError::status(&req, resp.status, ""));
        }
        parse_identity(&resp.body).ok_or_else(|| {
            ProviderError::refused(&req, "not an instance description (JSON object)")
        })
    }
}

fn last_segment(s: &str) -> String {
    s.rsplit('/').next().unwrap_or(s).to_string()
}

/// From `instance/?recursive=true`: `zone` and `machineType` are resource paths
/// (`projects/1/zones/europe-west1-b`); the region is the zone less its last `-x`.
pub fn parse_identity(body: &[u8]) -> Option<Identity> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    let s = |k: &str| obj.get(k).and_then(|v| v.as_str());
    let id = match obj.get("id") {
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let zone = s("zone").map(last_segment);
    let region = zone
        .as_deref()
        .and_then(|z| z.rsplit_once('-'))
        .map(|(r, _)| r.to_string());
    Some(Identity {
        provider: "gcp".into(),
        instance_id: id,
        region,
        zone,
        instance_type: s("machineType").map(last_segment),
        hostname: s("hostname").map(str::to_string),
    })
}

#[cfg(test)]
mod mock_tests;

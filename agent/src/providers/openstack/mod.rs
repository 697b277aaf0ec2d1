//! OpenStack: the config drive (label `config-2`) first, then the metadata service
//! (`/openstack/latest/user_data`). A drive that exists is the answer, even without user data.
use super::fetch::Fetcher;
use super::http::Request;
use super::{body_or_none, join, Identity, MetadataProvider, ProviderError, ProviderKind};

pub mod drive;

pub use drive::{ConfigDrive, DriveAccess};

pub const BASE: &str = "http://169.254.169.254";
pub const USER_DATA_PATH: &str = "/openstack/latest/user_data";
pub const META_DATA_PATH: &str = "/openstack/latest/meta_data.json";

pub struct Openstack {
    fetcher: Fetcher,
    base: String,
    drive: Box<dyn DriveAccess>,
}

impl Openstack {
    pub fn new(fetcher: Fetcher, base: Option<String>, drive: Box<dyn DriveAccess>) -> Openstack {
        Openstack {
            fetcher,
            base: base.unwrap_or_else(|| BASE.to_string()),
            drive,
        }
    }
}

impl MetadataProvider for Openstack {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Openstack
    }

    fn config(&self) -> Result<Option<Vec<u8>>, ProviderError> {
        if let Some((dev, fstype)) = self.drive.find() {
            log::info!("config drive {} ({fstype})", dev.display());
            return self.drive.read_user_data(&dev, fstype);
        }
        let req = Request::get(join(&self.base, USER_DATA_PATH));
        let resp = self.fetcher.send(&req)?;
        body_or_none(&req, resp)
    }

    fn identity(&self) -> Result<Identity, ProviderError> {
        let req = Request::get(join(&self.base, META_DATA_PATH));
        let resp = self.fetcher.send(&req)?;
        if resp.status != 200 {
            return Err(ProviderError::status(&req, resp.status, ""));
        }
        parse_identity(&resp.body)
            .ok_or_else(|| ProviderError::refused(&req, "not a meta_data.json object"))
    }
}

/// `meta_data.json`: `uuid`, `availability_zone`, `hostname`; OpenStack gives no region or
/// flavor here.
pub fn parse_identity(body: &[u8]) -> Option<Identity> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    let s = |k: &str| obj.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Some(Identity {
        provider: "openstack".into(),
        instance_id: s("uuid"),
        region: None,
        zone: s("availability_zone"),
        instance_type: None,
        hostname: s("hostname").or_else(|| s("name")),
    })
}

#[cfg(test)]
mod mock_tests;

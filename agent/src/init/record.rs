//! `/run/pyre/boot.json`: what `pyre init` verified and how long each stage took, written
//! before switch_root and read by `pyre boot-report` (pyre-verified.service) and the daemon.
use serde::{Deserialize, Serialize};

pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Stage {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BootRecord {
    pub version: u32,
    pub verified: bool,
    /// `sha256:<hex>` of the manifest the root was checked against.
    pub manifest_digest: String,
    pub entries: u64,
    pub bytes_hashed: u64,
    /// The dm-verity root hash from the kernel command line.
    pub root_hash: String,
    pub root_device: String,
    /// Seconds since boot when `pyre init` started.
    pub started_at: f64,
    pub stages: Vec<Stage>,
    /// Seconds from the start of `pyre init` to writing this record.
    pub total_seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("boot record version {0} is not supported (expected {RECORD_VERSION})")]
    Version(u32),
    #[error("boot record is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl BootRecord {
    pub fn from_json(bytes: &[u8]) -> Result<BootRecord, RecordError> {
        let r: BootRecord = serde_json::from_slice(bytes)?;
        if r.version != RECORD_VERSION {
            return Err(RecordError::Version(r.version));
        }
        Ok(r)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a boot record always serializes");
        v.push(b'\n');
        v
    }

    /// The one console/journal line: digest, size and stage times.
    pub fn summary_line(&self) -> String {
        let verdict = if self.verified {
            "root verified"
        } else {
            "root NOT verified"
        };
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|s| format!("{} {:.2}s", s.name, s.seconds))
            .collect();
        format!(
            "pyre: {verdict}: manifest {}, {} entries, {:.1} MB hashed; stages: {}, total {:.2}s",
            self.manifest_digest,
            self.entries,
            self.bytes_hashed as f64 / 1e6,
            stages.join(", "),
            self.total_seconds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> BootRecord {
        BootRecord {
            version: 1,
            verified: true,
            manifest_digest: "sha256:ab".into(),
            entries: 9912,
            bytes_hashed: 226_400_000,
            root_hash: "cd".into(),
            root_device: "/dev/vda".into(),
            started_at: 2.5,
            stages: vec![
                Stage {
                    name: "modules".into(),
                    seconds: 0.213,
                },
                Stage {
                    name: "verify".into(),
                    seconds: 12.3,
                },
            ],
            total_seconds: 12.9,
        }
    }

    #[test]
    fn round_trips_and_renders() {
        let r = sample();
        assert_eq!(BootRecord::from_json(&r.to_json()).unwrap(), r);
        assert_eq!(
            r.summary_line(),
            "pyre: root verified: manifest sha256:ab, 9912 entries, 226.4 MB hashed; \
             stages: modules 0.21s, verify 12.30s, total 12.90s"
        );
    }

    #[test]
    fn refuses_other_versions_and_unknown_fields() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["version"] = 2.into();
        let err = BootRecord::from_json(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "boot record version 2 is not supported (expected 1)"
        );
        v["version"] = 1.into();
        v["surprise"] = true.into();
        let err = BootRecord::from_json(v.to_string().as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `surprise`"),
            "{err}"
        );
    }
}

//! `/run/pyre/boot.json`: what `pyre init` verified and how long each stage took, written
//! before switch_root and read by `pyre boot-report` (pyre-verified.service) and the daemon.
//! `pyre boot` (pyre-boot.service, after switch_root) adds its own section, [`BootSection`],
//! under the key `boot` ([`with_boot_section`]); on an image whose initramfs is not pyre's it
//! creates the file with only `version` and that section (so it never passes for a record of
//! `pyre init`).
use serde::{Deserialize, Serialize};

pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Stage {
    pub name: String,
    pub seconds: f64,
}

/// One check of the root: what ran, where, when, how long, on how many bytes, with what result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Check {
    /// `metadata` (the tree against the manifest, no content read), `content-hash` (every file
    /// read and hashed against the manifest) or `content-read` (the whole dm-verity device
    /// read, so that the kernel checks every block against the root hash).
    pub name: String,
    /// `initramfs` (pyre init, before switch_root) or the unit that ran it after switch_root.
    #[serde(rename = "where")]
    pub place: String,
    /// Seconds since boot when it started.
    pub started_at: f64,
    pub seconds: f64,
    /// Bytes read (and, for `content-hash`, hashed); 0 for `metadata`.
    pub bytes: u64,
    /// `passed` or `failed`.
    pub outcome: String,
}

impl Check {
    pub fn line(&self) -> String {
        format!(
            "{} {} in {} {:.2}s ({:.1} MB)",
            self.name,
            self.outcome,
            self.place,
            self.seconds,
            self.bytes as f64 / 1e6
        )
    }
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
    /// How the root is checked (`full`, `read`, `metadata`: the image policy's `root-check`,
    /// or `pyre.verify=`); with `read`, pyre-content.service reads the device after
    /// switch_root and adds its check below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_check: Option<String>,
    /// The checks that ran, in order (pyre init's, then pyre-content.service's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// With `read`: the pid of the child pyre init forked to read the device while systemd
    /// starts (its result: /run/pyre/content-read.json), if it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_reader: Option<u32>,
    /// Added by `pyre boot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<Box<BootSection>>,
}

/// What `pyre boot` did: its stages and their times, how it ended and, on a boot-critical
/// failure, the reason with its stable message id and the action taken. Names, paths and counts
/// only: never a file's content or an environment value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BootSection {
    /// Seconds since boot when `pyre boot` started.
    pub started_at: f64,
    pub stages: Vec<Stage>,
    pub total_seconds: f64,
    /// `applied`, `no-config` or `failed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The key id of a signed config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The image policy's action on failure (`poweroff`, `reboot`, `halt`, `debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// What was applied (hostname, file paths, variable names) and the volumes report.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

impl BootSection {
    /// The one console/journal line.
    pub fn summary_line(&self) -> String {
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|s| format!("{} {:.3}s", s.name, s.seconds))
            .collect();
        format!(
            "pyre boot: {}{}; stages: {}, total {:.3}s",
            self.outcome,
            self.provider
                .as_deref()
                .map(|p| format!(" (provider {p})"))
                .unwrap_or_default(),
            stages.join(", "),
            self.total_seconds
        )
    }
}

/// The record file's new bytes: `existing` (pyre init's record) with `check` appended to its
/// `checks`, everything else kept as it was. None when `existing` is not a JSON object.
pub fn with_check(existing: &[u8], check: &Check) -> Option<Vec<u8>> {
    let mut obj = match serde_json::from_slice::<serde_json::Value>(existing) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return None,
    };
    let value = serde_json::to_value(check).expect("a check always serializes");
    match obj.get_mut("checks") {
        Some(serde_json::Value::Array(list)) => list.push(value),
        _ => {
            obj.insert("checks".into(), serde_json::Value::Array(vec![value]));
        }
    }
    let mut v = serde_json::to_vec_pretty(&obj).expect("a JSON object always serializes");
    v.push(b'\n');
    Some(v)
}

/// Hold an exclusive lock on the record's directory while reading and rewriting the record:
/// `pyre boot` and pyre-content.service update it concurrently. Released when dropped.
pub fn lock_dir(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dir)?;
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// The record file's new bytes: `existing` (the file as `pyre init` left it, if any) with
/// `section` as its `boot` key. An existing file that is not a JSON object is replaced (the
/// caller logs it); the bool says so.
pub fn with_boot_section(existing: Option<&[u8]>, section: &BootSection) -> (Vec<u8>, bool) {
    let mut replaced = false;
    let mut obj = match existing.map(serde_json::from_slice::<serde_json::Value>) {
        Some(Ok(serde_json::Value::Object(m))) => m,
        None => serde_json::Map::new(),
        Some(_) => {
            replaced = true;
            serde_json::Map::new()
        }
    };
    obj.entry("version").or_insert(RECORD_VERSION.into());
    obj.insert(
        "boot".into(),
        serde_json::to_value(section).expect("a boot section always serializes"),
    );
    let mut v = serde_json::to_vec_pretty(&obj).expect("a JSON object always serializes");
    v.push(b'\n');
    (v, replaced)
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
        let checks: String = self
            .checks
            .iter()
            .map(|c| format!("; {}", c.line()))
            .collect();
        let what = if self.root_check.as_deref() == Some("read") {
            "signed; tree and every block checked by pyre-content.service before \
             pyre-ready.target"
                .to_string()
        } else {
            format!(
                "{} entries, {:.1} MB hashed",
                self.entries,
                self.bytes_hashed as f64 / 1e6
            )
        };
        format!(
            "pyre: {verdict}: manifest {}, {what}; stages: {}, total {:.2}s{checks}",
            self.manifest_digest,
            stages.join(", "),
            self.total_seconds
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
            root_check: None,
            checks: Vec::new(),
            content_reader: None,
            boot: None,
        }
    }

    #[test]
    fn the_content_read_adds_its_check_and_keeps_the_rest() {
        let mut r = sample();
        r.root_check = Some("read".into());
        r.checks.push(Check {
            name: "manifest".into(),
            place: "initramfs".into(),
            started_at: 2.6,
            seconds: 0.05,
            bytes: 1_043_568,
            outcome: "passed".into(),
        });
        let metadata = Check {
            name: "metadata".into(),
            place: "pyre-content.service".into(),
            started_at: 5.0,
            seconds: 3.5,
            bytes: 0,
            outcome: "passed".into(),
        };
        let read = Check {
            name: "content-read".into(),
            place: "pyre-content.service".into(),
            started_at: 5.0,
            seconds: 6.25,
            bytes: 178_000_000,
            outcome: "passed".into(),
        };
        let (with_boot, _) = with_boot_section(Some(&r.to_json()), &boot_section());
        let bytes = with_check(&with_boot, &metadata).unwrap();
        let bytes = with_check(&bytes, &read).unwrap();
        let back = BootRecord::from_json(&bytes).unwrap();
        assert_eq!(back.checks.len(), 3);
        assert_eq!(back.checks[1..], [metadata, read.clone()]);
        assert!(back.boot.is_some(), "pyre boot's section is kept");
        let line = back.summary_line();
        assert!(
            line.starts_with(
                "pyre: root verified: manifest sha256:ab, signed; tree and every block checked \
                 by pyre-content.service before pyre-ready.target; stages: "
            ),
            "{line}"
        );
        assert!(
            line.ends_with(
                "; manifest passed in initramfs 0.05s (1.0 MB); metadata passed in \
                 pyre-content.service 3.50s (0.0 MB); content-read passed in \
                 pyre-content.service 6.25s (178.0 MB)"
            ),
            "{line}"
        );
        assert!(with_check(b"[]", &read).is_none());
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path()).unwrap();
        drop(held);
        lock_dir(dir.path()).unwrap();
    }

    fn boot_section() -> BootSection {
        BootSection {
            started_at: 14.0,
            stages: vec![],
            total_seconds: 0.3,
            outcome: "applied".into(),
            provider: None,
            signed_by: None,
            message_id: None,
            reason: None,
            action: None,
            details: serde_json::Value::Null,
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
    fn pyre_boot_adds_its_section() {
        let section = BootSection {
            started_at: 14.0,
            stages: vec![Stage {
                name: "fetch".into(),
                seconds: 0.25,
            }],
            total_seconds: 0.3,
            outcome: "applied".into(),
            provider: Some("qemu".into()),
            signed_by: None,
            message_id: None,
            reason: None,
            action: None,
            details: serde_json::Value::Null,
        };
        let (bytes, replaced) = with_boot_section(Some(&sample().to_json()), &section);
        assert!(!replaced);
        let r = BootRecord::from_json(&bytes).unwrap();
        assert_eq!(r.boot.as_deref(), Some(&section));
        assert_eq!(
            BootRecord { boot: None, ..r },
            sample(),
            "init's part is kept as it was"
        );
        // No record from pyre init: only the version and the section, never init's fields.
        let (bytes, _) = with_boot_section(None, &section);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 2);
        assert!(BootRecord::from_json(&bytes).is_err());
        let (_, replaced) = with_boot_section(Some(b"garbage"), &section);
        assert!(replaced);
        assert_eq!(
            section.summary_line(),
            "pyre boot: applied (provider qemu); stages: fetch 0.250s, total 0.300s"
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

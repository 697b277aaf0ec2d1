//! Who writes the shipped records: the [`Identity`] every record carries, gathered from the
//! applied config and the files boot leaves in /run. Every path is a parameter; other people's
//! and later stages' files are read leniently (a missing or unreadable one leaves its field
//! empty and says so at debug level), except the boot id, without which records cannot be told
//! apart across boots.
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::logship::Identity;
use crate::sys::cmdline;

/// Where the identity is read from.
#[derive(Debug, Clone)]
pub struct IdentityPaths {
    /// `/run/pyre/boot.json`: `manifest-digest` (and `image-id` when a later stage records it).
    pub boot_record: PathBuf,
    /// `/run/pyre/instance.json`: the provider's identity (`instance-id`).
    pub instance: PathBuf,
    /// `/proc/cmdline`: `pyre.manifest.digest` when there is no boot record.
    pub cmdline: PathBuf,
    /// `/etc/os-release`: `IMAGE_ID` and `IMAGE_VERSION` when the boot record has no image id.
    pub os_release: PathBuf,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: PathBuf,
}

impl IdentityPaths {
    /// The standard places, with pyre's run directory `run` (`/run/pyre`).
    pub fn standard(run: &Path) -> IdentityPaths {
        IdentityPaths {
            boot_record: run.join("boot.json"),
            instance: run.join("instance.json"),
            cmdline: "/proc/cmdline".into(),
            os_release: "/etc/os-release".into(),
            boot_id: "/proc/sys/kernel/random/boot_id".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("reading the boot id from {path}: {source}")]
    BootId { path: PathBuf, source: io::Error },
    #[error("the boot id in {0} is empty")]
    EmptyBootId(PathBuf),
}

/// The identity: `hostname` is the config's (or this host's name, given by the caller).
pub fn gather(hostname: String, paths: &IdentityPaths) -> Result<Identity, IdentityError> {
    let boot_id = fs::read_to_string(&paths.boot_id)
        .map_err(|source| IdentityError::BootId {
            path: paths.boot_id.clone(),
            source,
        })?
        .trim()
        .to_string();
    if boot_id.is_empty() {
        return Err(IdentityError::EmptyBootId(paths.boot_id.clone()));
    }
    let record = read_json(&paths.boot_record);
    let field = |v: &Option<serde_json::Value>, k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(|s| s.as_str())
            .map(str::to_string)
    };
    let manifest = field(&record, "manifest-digest")
        .or_else(|| {
            let line = fs::read_to_string(&paths.cmdline).ok()?;
            cmdline::pyre_params(&line)
                .into_iter()
                .filter(|p| p.key == "manifest.digest")
                .filter_map(|p| p.value)
                .next_back()
        })
        .unwrap_or_default();
    let image = field(&record, "image-id")
        .or_else(|| {
            fs::read_to_string(&paths.os_release)
                .ok()
                .and_then(|t| os_release_image(&t))
        })
        .unwrap_or_default();
    let instance = field(&read_json(&paths.instance), "instance-id").unwrap_or_default();
    Ok(Identity {
        hostname,
        image,
        manifest,
        instance,
        boot_id,
    })
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    let bytes = fs::read(path)
        .map_err(|e| log::debug!("identity: {}: {e}", path.display()))
        .ok()?;
    serde_json::from_slice(&bytes)
        .map_err(|e| log::warn!("identity: {} is not JSON: {e}", path.display()))
        .ok()
}

/// `IMAGE_ID[:IMAGE_VERSION]` of an os-release(5) text.
pub fn os_release_image(text: &str) -> Option<String> {
    let get = |key: &str| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
            .rfind(|v| !v.is_empty())
    };
    let id = get("IMAGE_ID")?;
    Some(match get("IMAGE_VERSION") {
        Some(v) => format!("{id}:{v}"),
        None => id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> IdentityPaths {
        IdentityPaths {
            boot_record: dir.join("boot.json"),
            instance: dir.join("instance.json"),
            cmdline: dir.join("cmdline"),
            os_release: dir.join("os-release"),
            boot_id: dir.join("boot_id"),
        }
    }

    #[test]
    fn from_boot_record_and_instance() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(d.path());
        fs::write(&p.boot_id, "b-1\n").unwrap();
        fs::write(
            &p.boot_record,
            r#"{"version":1,"manifest-digest":"sha256:aa"}"#,
        )
        .unwrap();
        fs::write(&p.instance, r#"{"provider":"aws","instance-id":"i-9"}"#).unwrap();
        fs::write(&p.cmdline, "pyre.manifest.digest=sha256:bb quiet\n").unwrap();
        fs::write(
            &p.os_release,
            "ID=debian\nIMAGE_ID=\"web\"\nIMAGE_VERSION=7\n",
        )
        .unwrap();
        let id = gather("h".into(), &p).unwrap();
        assert_eq!(
            (id.hostname, id.image, id.manifest, id.instance, id.boot_id),
            (
                "h".into(),
                "web:7".into(),
                "sha256:aa".into(),
                "i-9".into(),
                "b-1".into()
            )
        );
    }

    #[test]
    fn cmdline_when_no_record_and_empty_when_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(d.path());
        fs::write(&p.boot_id, "b-1").unwrap();
        let bare = gather("h".into(), &p).unwrap();
        assert_eq!(
            (bare.image, bare.manifest, bare.instance),
            Default::default()
        );
        fs::write(&p.cmdline, "root=/dev/vda pyre.manifest.digest=sha256:bb\n").unwrap();
        fs::write(&p.boot_record, "not json").unwrap();
        assert_eq!(gather("h".into(), &p).unwrap().manifest, "sha256:bb");
    }

    #[test]
    fn boot_id_is_required() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(d.path());
        let e = gather("h".into(), &p).unwrap_err().to_string();
        assert!(e.starts_with("reading the boot id from "), "{e}");
        fs::write(&p.boot_id, "\n").unwrap();
        assert!(matches!(
            gather("h".into(), &p),
            Err(IdentityError::EmptyBootId(_))
        ));
    }

    #[test]
    fn os_release_images() {
        assert_eq!(os_release_image("IMAGE_ID=a"), Some("a".into()));
        assert_eq!(os_release_image("ID=debian\n"), None);
        assert_eq!(os_release_image("IMAGE_ID=''\nIMAGE_VERSION=1"), None);
    }
}

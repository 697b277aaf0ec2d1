//! The `volumes` section of config v1 as this module consumes it: [`VolumeSpec`] is made from a
//! validated `config::Volume` ([`from_config`]); its serde form (same field names, kebab-case
//! and defaults) serves the tests and reports.
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{self, Selector};

/// The default `wait`: EBS volumes attach after boot, so give them time.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Filesystems a volume may be mounted as.
pub const MOUNTABLE: &[&str] = &["ext2", "ext3", "ext4", "xfs", "btrfs", "vfat"];
/// Filesystems pyre makes on a blank device (`format: if-blank`).
pub const FORMATTABLE: &[&str] = &["ext4", "xfs"];

/// One external data volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VolumeSpec {
    pub name: String,
    pub device: DeviceSelector,
    pub filesystem: String,
    /// Filesystem label given to `mkfs` when pyre formats the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub mountpoint: PathBuf,
    /// Mount options on top of the defaults `nodev,nosuid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default)]
    pub format: FormatPolicy,
    /// A required volume that cannot be mounted is a boot-critical failure.
    #[serde(default = "yes")]
    pub required: bool,
    /// How long to wait for the device to appear, counted from the start of the stage.
    #[serde(
        default = "default_wait",
        deserialize_with = "duration_str",
        serialize_with = "duration_ser"
    )]
    pub wait: Duration,
    /// Grow the filesystem when the device is larger than it.
    #[serde(default)]
    pub grow: bool,
}

/// How the device is recognised: exactly one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceSelector {
    /// A device node or a symlink to one (`/dev/disk/by-id/...`).
    Path(PathBuf),
    /// Filesystem label.
    Label(String),
    /// Filesystem UUID.
    Uuid(String),
    /// GPT partition name.
    Partlabel(String),
    /// GPT unique partition GUID.
    Partuuid(String),
    /// Disk serial: virtio `serial=`, NVMe serial or WWID, EBS `vol-...` volume id.
    Serial(String),
}

impl std::fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSelector::Path(p) => write!(f, "path {}", p.display()),
            DeviceSelector::Label(v) => write!(f, "label {v:?}"),
            DeviceSelector::Uuid(v) => write!(f, "uuid {v}"),
            DeviceSelector::Partlabel(v) => write!(f, "partlabel {v:?}"),
            DeviceSelector::Partuuid(v) => write!(f, "partuuid {v}"),
            DeviceSelector::Serial(v) => write!(f, "serial {v:?}"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FormatPolicy {
    /// Never run mkfs: a blank device is refused.
    #[default]
    Never,
    /// Run mkfs only on a device found blank (no signature, all zero where one would be).
    IfBlank,
}

fn yes() -> bool {
    true
}

fn default_wait() -> Duration {
    DEFAULT_WAIT
}

/// A config v1 volume as this module consumes it. The config module has validated it (exactly
/// one selector); a device with none or several is refused again here, naming the volume.
impl TryFrom<&config::Volume> for VolumeSpec {
    type Error = SpecError;

    fn try_from(v: &config::Volume) -> Result<VolumeSpec, SpecError> {
        let device = match v.device.selectors().as_slice() {
            [one] => match *one {
                Selector::Path(p) => DeviceSelector::Path(p.into()),
                Selector::Label(l) => DeviceSelector::Label(l.into()),
                Selector::Uuid(u) => DeviceSelector::Uuid(u.into()),
                Selector::Partlabel(l) => DeviceSelector::Partlabel(l.into()),
                Selector::Partuuid(u) => DeviceSelector::Partuuid(u.into()),
                Selector::Serial(s) => DeviceSelector::Serial(s.into()),
            },
            other => {
                return Err(SpecError {
                    at: format!("volume {:?}.device", v.name),
                    problem: format!("needs exactly one selector, has {}", other.len()),
                })
            }
        };
        Ok(VolumeSpec {
            name: v.name.clone(),
            device,
            filesystem: filesystem_name(v.filesystem).to_string(),
            label: v.label.clone(),
            mountpoint: PathBuf::from(&v.mountpoint),
            options: v.options.clone(),
            format: match v.format {
                config::Format::Never => FormatPolicy::Never,
                config::Format::IfBlank => FormatPolicy::IfBlank,
            },
            required: v.required,
            wait: v.wait.get(),
            grow: v.grow,
        })
    }
}

/// The config's volumes, converted and checked by [`validate`] (nothing touched yet).
pub fn from_config(c: &config::Config) -> Result<Vec<VolumeSpec>, SpecError> {
    let specs = c
        .volumes
        .iter()
        .map(VolumeSpec::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    validate(&specs)?;
    Ok(specs)
}

fn filesystem_name(f: config::Filesystem) -> &'static str {
    match f {
        config::Filesystem::Ext4 => "ext4",
        config::Filesystem::Xfs => "xfs",
        config::Filesystem::Btrfs => "btrfs",
        config::Filesystem::Vfat => "vfat",
    }
}

/// `500ms`, `30s`, `15m`, `24h` (the shared grammar of `sys::duration`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::sys::duration::parse(s).map_err(|e| e.to_string())
}

fn duration_str<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn duration_ser<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::sys::duration::format(*d))
}

/// A volume that cannot be applied as written. `at` is the JSON path (`volumes[0].label`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {problem}")]
pub struct SpecError {
    pub at: String,
    pub problem: String,
}

/// Top-level directories a volume is never mounted on or under: the sealed root, kernel
/// filesystems and pyre's own state.
const SEALED: &[&str] = &[
    "/usr",
    "/etc",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/boot",
    "/proc",
    "/sys",
    "/dev",
    "/run/pyre",
];

/// Check every volume before anything is touched.
pub fn validate(specs: &[VolumeSpec]) -> Result<(), SpecError> {
    for (i, v) in specs.iter().enumerate() {
        let err = |field: &str, problem: String| SpecError {
            at: format!("volumes[{i}].{field}"),
            problem,
        };
        if v.name.is_empty() || v.name.contains(|c: char| c.is_control() || c == '/') {
            return Err(err("name", format!("invalid name {:?}", v.name)));
        }
        if let Some(j) = specs[..i].iter().position(|o| o.name == v.name) {
            return Err(err("name", format!("{:?} is also volumes[{j}]", v.name)));
        }
        check_selector(&v.device).map_err(|p| err("device", p))?;
        if !MOUNTABLE.contains(&v.filesystem.as_str()) {
            let p = format!("{:?} is not one of {}", v.filesystem, MOUNTABLE.join(", "));
            return Err(err("filesystem", p));
        }
        if v.format == FormatPolicy::IfBlank && !FORMATTABLE.contains(&v.filesystem.as_str()) {
            let p = format!("pyre formats only {}", FORMATTABLE.join(" and "));
            return Err(err("format", p));
        }
        if let Some(label) = &v.label {
            check_label(label, &v.filesystem).map_err(|p| err("label", p))?;
        }
        check_mountpoint(&v.mountpoint).map_err(|p| err("mountpoint", p))?;
        if let Some(j) = specs[..i].iter().position(|o| o.mountpoint == v.mountpoint) {
            return Err(err(
                "mountpoint",
                format!("also the mountpoint of volumes[{j}]"),
            ));
        }
        super::mount::MountOptions::parse(&v.options).map_err(|p| err("options", p))?;
    }
    Ok(())
}

fn check_selector(s: &DeviceSelector) -> Result<(), String> {
    let value = match s {
        DeviceSelector::Path(p) => {
            return if p.is_absolute() {
                Ok(())
            } else {
                Err(format!("path {} is not absolute", p.display()))
            }
        }
        DeviceSelector::Label(v)
        | DeviceSelector::Uuid(v)
        | DeviceSelector::Partlabel(v)
        | DeviceSelector::Partuuid(v)
        | DeviceSelector::Serial(v) => v,
    };
    if value.trim().is_empty() {
        return Err(format!("empty {s}"));
    }
    Ok(())
}

fn check_label(label: &str, fs: &str) -> Result<(), String> {
    let max = match fs {
        "xfs" => 12,
        "vfat" => 11,
        _ => 16,
    };
    if label.is_empty() || label.len() > max {
        return Err(format!("{label:?} must be 1 to {max} bytes for {fs}"));
    }
    if label.chars().any(|c| c.is_control()) {
        return Err(format!("{label:?} contains a control character"));
    }
    Ok(())
}

/// An absolute, normalised path below a writable place: never `/`, a sealed directory or
/// anything under one, nor a top-level directory itself (`/var`, `/run`).
pub fn check_mountpoint(p: &Path) -> Result<(), String> {
    let shown = p.display();
    if !p.is_absolute() {
        return Err(format!("{shown} is not absolute"));
    }
    let mut depth = 0;
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(_) => depth += 1,
            _ => return Err(format!("{shown} is not normalised (no . or ..)")),
        }
    }
    let text = p.to_string_lossy();
    if text.len() > 1 && (text.ends_with('/') || text.contains("//")) {
        return Err(format!("{shown} is not normalised"));
    }
    if let Some(sealed) = SEALED.iter().find(|s| p.starts_with(s)) {
        return Err(format!(
            "{shown} is under {sealed}, which is sealed or system-owned; use /var or /run"
        ));
    }
    if depth < 2 {
        return Err(format!(
            "{shown} would cover a top-level directory; mount below it (/var/lib/NAME)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<VolumeSpec, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    const MIN: &str = r#"{"name":"data","device":{"serial":"vol-0abc"},"filesystem":"ext4",
        "mountpoint":"/var/lib/data"}"#;

    #[test]
    fn defaults_follow_the_config_sketch() {
        let v = spec(MIN).unwrap();
        assert_eq!(v.format, FormatPolicy::Never);
        assert!(v.required);
        assert!(!v.grow);
        assert_eq!(v.wait, Duration::from_secs(30));
        assert_eq!(v.device, DeviceSelector::Serial("vol-0abc".into()));
        assert!(v.options.is_empty() && v.label.is_none());
    }

    #[test]
    fn full_volume_parses() {
        let v = spec(
            r#"{"name":"data","device":{"partuuid":"0fc63daf-8483-4772-8e79-3d69d8477de4"},
            "filesystem":"xfs","label":"data","mountpoint":"/var/lib/data","options":["noexec"],
            "format":"if-blank","required":false,"wait":"1500ms","grow":true}"#,
        )
        .unwrap();
        assert_eq!(v.format, FormatPolicy::IfBlank);
        assert_eq!(v.wait, Duration::from_millis(1500));
        assert!(v.grow && !v.required);
        validate(&[v]).unwrap();
    }

    #[test]
    fn bad_documents_name_the_problem() {
        let cases = [
            (r#""format":"always""#, "unknown variant `always`"),
            (
                r#""wait":"30""#,
                "duration \"30\" has no unit (ms, s, m, h or d)",
            ),
            (r#""wait":"s""#, "does not start with a whole number"),
            (r#""colour":"red""#, "unknown field `colour`"),
        ];
        for (extra, want) in cases {
            let json = MIN.replacen('{', &format!("{{{extra},"), 1);
            let e = spec(&json).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
        let two = MIN.replace(r#"{"serial":"vol-0abc"}"#, r#"{"serial":"a","label":"b"}"#);
        assert!(spec(&two).is_err(), "two selector keys");
        let unknown = MIN.replace(r#"{"serial":"vol-0abc"}"#, r#"{"wwn":"a"}"#);
        assert!(spec(&unknown)
            .unwrap_err()
            .contains("unknown variant `wwn`"));
    }

    #[test]
    fn validation_table() {
        let base = spec(MIN).unwrap();
        type Change = fn(&mut VolumeSpec);
        let cases: Vec<(Change, &str)> = vec![
            (
                |v| v.mountpoint = "/usr/data".into(),
                "volumes[0].mountpoint: /usr/data is under /usr",
            ),
            (
                |v| v.mountpoint = "/etc".into(),
                "volumes[0].mountpoint: /etc is under /etc",
            ),
            (
                |v| v.mountpoint = "/var".into(),
                "would cover a top-level directory",
            ),
            (
                |v| v.mountpoint = "/".into(),
                "would cover a top-level directory",
            ),
            (|v| v.mountpoint = "var/x".into(), "is not absolute"),
            (
                |v| v.mountpoint = "/var/../usr/x".into(),
                "is not normalised",
            ),
            (|v| v.mountpoint = "/run/pyre/x".into(), "under /run/pyre"),
            (|v| v.mountpoint = "/boot/efi".into(), "under /boot"),
            (
                |v| v.filesystem = "zfs".into(),
                "volumes[0].filesystem: \"zfs\" is not one of",
            ),
            (
                |v| {
                    v.filesystem = "btrfs".into();
                    v.format = FormatPolicy::IfBlank
                },
                "volumes[0].format: pyre formats only ext4 and xfs",
            ),
            (
                |v| v.label = Some("x".repeat(17)),
                "must be 1 to 16 bytes for ext4",
            ),
            (
                |v| {
                    v.filesystem = "xfs".into();
                    v.label = Some("x".repeat(13))
                },
                "must be 1 to 12 bytes for xfs",
            ),
            (
                |v| v.options = vec!["suid".into()],
                "volumes[0].options: suid",
            ),
            (
                |v| v.device = DeviceSelector::Serial(" ".into()),
                "volumes[0].device: empty serial",
            ),
            (
                |v| v.device = DeviceSelector::Path("vdb".into()),
                "path vdb is not absolute",
            ),
            (|v| v.name = "a/b".into(), "volumes[0].name: invalid name"),
        ];
        for (change, want) in cases {
            let mut v = base.clone();
            change(&mut v);
            let e = validate(&[v]).unwrap_err().to_string();
            assert!(e.contains(want), "want {want:?}, got {e:?}");
        }
        let mut other = base.clone();
        other.mountpoint = "/var/lib/other".into();
        let e = validate(&[base.clone(), other]).unwrap_err().to_string();
        assert_eq!(e, "volumes[1].name: \"data\" is also volumes[0]");
        let mut other = base.clone();
        other.name = "other".into();
        let e = validate(&[base, other]).unwrap_err().to_string();
        assert_eq!(
            e,
            "volumes[1].mountpoint: also the mountpoint of volumes[0]"
        );
    }

    #[test]
    fn converts_a_config_volume() {
        let doc = format!(
            r#"{{"version":1,"hostname":"web-1","volumes":[{}]}}"#,
            MIN.replace("\"ext4\",", "\"xfs\",\"format\":\"if-blank\",\"wait\":\"5s\",\"grow\":true,\"options\":[\"noexec\"],\"label\":\"data\",")
        );
        let c = crate::config::parse(doc.as_bytes()).unwrap();
        let specs = from_config(&c).unwrap();
        let want = VolumeSpec {
            name: "data".into(),
            device: DeviceSelector::Serial("vol-0abc".into()),
            filesystem: "xfs".into(),
            label: Some("data".into()),
            mountpoint: "/var/lib/data".into(),
            options: vec!["noexec".into()],
            format: FormatPolicy::IfBlank,
            required: true,
            wait: Duration::from_secs(5),
            grow: true,
        };
        assert_eq!(specs, [want]);
        let mut v = c.volumes[0].clone();
        v.device.label = Some("x".into());
        let e = VolumeSpec::try_from(&v).unwrap_err().to_string();
        assert_eq!(
            e,
            "volume \"data\".device: needs exactly one selector, has 2"
        );
    }
}

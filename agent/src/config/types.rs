//! Config v1: the types (serde + JSON Schema from the same definitions). Field meanings are in
//! docs/config.md; the later issues (volumes, logs, drift, lifetime) give sections behaviour.
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::Duration;
use super::secret::Secret;

/// The only config version this pyre reads.
pub const CONFIG_VERSION: u32 = 1;

/// A pyre config: who this instance is and what it gets at boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "pyre config v1")]
pub struct Config {
    /// Format version: must be 1.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// The host name (RFC 1123, at most 64 characters), set with sethostname(2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Files written atomically under /run or under a volume's mountpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<File>,
    /// Variables written to /run/pyre/env (an EnvironmentFile= for workloads). Values are
    /// secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Secret<String>>,
    /// Data volumes found by what they are (never by kernel name), formatted only if blank.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Log shipping: where records come from and where they go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Logs>,
    /// Drift enforcement by the daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// Replace the instance after a maximum age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Lifetime>,
}

/// A file to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct File {
    /// Absolute path under /run (not /run/pyre) or under a volume's mountpoint.
    pub path: String,
    /// Octal permission bits, 3 or 4 digits ("0600"); no setuid, setgid or sticky bits.
    #[serde(default = "default_mode")]
    #[schemars(regex(pattern = r"^0?[0-7]{3}$"))]
    pub mode: String,
    /// "USER:GROUP", each a name or a numeric id; default: owned by root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The content (a secret: never logged).
    pub content: Secret<String>,
    /// How `content` is encoded.
    #[serde(default)]
    pub encoding: Encoding,
}

fn default_mode() -> String {
    "0600".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    Base64,
}

/// A data volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Volume {
    /// A unique name for logs and reports.
    pub name: String,
    /// How to find the device: exactly one selector.
    pub device: Device,
    pub filesystem: Filesystem,
    /// Filesystem label given when formatting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Absolute mountpoint, not under the sealed system directories or /run.
    pub mountpoint: String,
    /// Mount options ("noexec", "nodev", …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Whether pyre may create a filesystem: never, or only on a device with no signature at all.
    #[serde(default)]
    pub format: Format,
    /// Whether a missing volume is boot-critical.
    #[serde(default = "yes")]
    pub required: bool,
    /// How long to wait for the device to appear.
    #[serde(default = "default_wait")]
    pub wait: Duration,
    /// Grow the filesystem to the device's size at mount.
    #[serde(default)]
    pub grow: bool,
}

fn yes() -> bool {
    true
}

fn default_wait() -> Duration {
    Duration::from_secs(30)
}

/// Exactly one way to identify a disk.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct Device {
    /// A stable device path such as /dev/disk/by-id/…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Filesystem label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Filesystem UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// GPT partition name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partlabel: Option<String>,
    /// GPT partition UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partuuid: Option<String>,
    /// Disk serial number (EBS volume id, virtio serial, NVMe serial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// One device selector, as the volumes code matches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector<'a> {
    Path(&'a str),
    Label(&'a str),
    Uuid(&'a str),
    Partlabel(&'a str),
    Partuuid(&'a str),
    Serial(&'a str),
}

impl Device {
    /// The selectors given (validation makes sure there is exactly one).
    pub fn selectors(&self) -> Vec<Selector<'_>> {
        let d = self;
        [
            d.path.as_deref().map(Selector::Path),
            d.label.as_deref().map(Selector::Label),
            d.uuid.as_deref().map(Selector::Uuid),
            d.partlabel.as_deref().map(Selector::Partlabel),
            d.partuuid.as_deref().map(Selector::Partuuid),
            d.serial.as_deref().map(Selector::Serial),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The one selector of a validated config.
    pub fn selector(&self) -> Selector<'_> {
        self.selectors()[0]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Filesystem {
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    #[default]
    Never,
    IfBlank,
}

/// Log shipping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Logs {
    /// "journal", "kmsg" or "file:/absolute/path".
    #[serde(default = "default_sources")]
    pub sources: Vec<LogSource>,
    pub sinks: Vec<Sink>,
}

fn default_sources() -> Vec<LogSource> {
    vec![LogSource::Journal, LogSource::Kmsg]
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogSource {
    Journal,
    Kmsg,
    File(String),
}

impl fmt::Display for LogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogSource::Journal => f.write_str("journal"),
            LogSource::Kmsg => f.write_str("kmsg"),
            LogSource::File(p) => write!(f, "file:{p}"),
        }
    }
}

impl Serialize for LogSource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        match &*s {
            "journal" => Ok(LogSource::Journal),
            "kmsg" => Ok(LogSource::Kmsg),
            other => match other.strip_prefix("file:") {
                Some(p) => Ok(LogSource::File(p.to_owned())),
                None => Err(serde::de::Error::custom(format!(
                    "unknown log source {other:?}, expected \"journal\", \"kmsg\" or \"file:/PATH\""
                ))),
            },
        }
    }
}

impl JsonSchema for LogSource {
    fn schema_name() -> Cow<'static, str> {
        "LogSource".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^(journal|kmsg|file:/.+)$",
            "description": "\"journal\", \"kmsg\" or \"file:/absolute/path\".",
        })
    }
}

/// A log receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Sink {
    /// syslog+tcp://, syslog+tls://, syslog+udp://, relp://, relp+tls://, loki+http(s)://, http(s)://
    pub url: String,
    /// CA bundle (PEM, absolute path in the image) to check the receiver with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Name to check in the receiver's certificate when it differs from the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Client certificate (PEM, absolute path) for mutual TLS; needs `client-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// Client key (PEM, absolute path) for mutual TLS; needs `client-cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// syslog over TCP/TLS only: octet-counting (RFC 6587, default) or non-transparent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framing: Option<Framing>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    OctetCounting,
    NonTransparent,
}

/// Drift enforcement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Drift {
    /// How often the daemon re-verifies the root.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// What drift leads to.
    #[serde(default)]
    pub action: DriftAction,
    /// Time between reporting drift and acting on it (logs are shipped meanwhile).
    #[serde(default = "default_grace")]
    pub grace: Duration,
    /// Where drift reports are POSTed (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_url: Option<String>,
}

fn default_interval() -> Duration {
    Duration::from_secs(3600)
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DriftAction {
    Report,
    #[default]
    Poweroff,
    Reboot,
}

/// Instance lifetime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lifetime {
    /// Power off after this long since boot.
    pub max_age: Duration,
    /// Up to this much is taken off `max-age` at random, so a fleet does not end at once.
    #[serde(default)]
    pub jitter: Duration,
}

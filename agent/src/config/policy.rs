//! The image policy, `/etc/pyre/image.json`: baked into the image (and so covered by its
//! manifest), it decides what a boot accepts and what a boot-critical failure does.
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::ConfigError;

pub const POLICY_VERSION: u32 = 1;
pub const DEFAULT_PATH: &str = "/etc/pyre/image.json";

/// Where a config may come from (the provider names of `pyre.provider=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Aws,
    Gcp,
    Azure,
    Openstack,
    Qemu,
    Url,
    File,
    /// The image runs without config.
    None,
}

/// Every provider, in the order of `pyre.provider=`'s documentation.
pub const ALL: [ProviderKind; 8] = [
    ProviderKind::Aws,
    ProviderKind::Gcp,
    ProviderKind::Azure,
    ProviderKind::Openstack,
    ProviderKind::Qemu,
    ProviderKind::Url,
    ProviderKind::File,
    ProviderKind::None,
];

impl ProviderKind {
    /// The name on the kernel command line and in the image policy.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Aws => "aws",
            ProviderKind::Gcp => "gcp",
            ProviderKind::Azure => "azure",
            ProviderKind::Openstack => "openstack",
            ProviderKind::Qemu => "qemu",
            ProviderKind::Url => "url",
            ProviderKind::File => "file",
            ProviderKind::None => "none",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// What a boot-critical failure leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Report, ship logs, power off (the instance ends; a fleet replaces it).
    #[default]
    Poweroff,
    /// Reboot and try again.
    Reboot,
    /// Stop the machine without powering off (the console stays readable).
    Halt,
    /// Stay up without reaching pyre-ready.target, for debugging an image. Never in production.
    Debug,
}

/// How `pyre init` checks a dm-verity root before switch_root (image policy `root-check`,
/// kernel command line `pyre.verify=`, which wins). docs/boot.md has the trade-offs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RootCheck {
    /// Before switch_root: the tree's metadata against the signed manifest (no file content
    /// read: dm-verity authenticates every block against the pinned root hash). After it, in
    /// parallel with the rest of the boot: the whole verity device read so that dm-verity
    /// checks every block; pyre-ready.target waits for it, and a rejected block powers off.
    #[default]
    Read,
    /// Before switch_root: every file read and hashed against the manifest.
    Full,
    /// The metadata check only: content is checked by dm-verity only as it is read. For
    /// measuring the boot, never in production.
    Metadata,
}

impl RootCheck {
    pub const ALL: [RootCheck; 3] = [RootCheck::Read, RootCheck::Full, RootCheck::Metadata];

    /// The word of `pyre.verify=` and of the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            RootCheck::Read => "read",
            RootCheck::Full => "full",
            RootCheck::Metadata => "metadata",
        }
    }
}

impl std::str::FromStr for RootCheck {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        RootCheck::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

/// The image policy. A missing file means every default below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "pyre image policy v1")]
pub struct Policy {
    /// Format version: must be 1.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Whether a boot without a config is boot-critical.
    #[serde(default)]
    pub config_required: bool,
    /// Whether only configs signed by a key in /etc/pyre/keys are accepted. (A signed config is
    /// always checked, whatever this says.)
    #[serde(default)]
    pub signature_required: bool,
    /// Providers a config may come from; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderKind>,
    /// The one deadline for fetching the config (overridden by `pyre.config.deadline=`).
    #[serde(default = "default_deadline")]
    pub deadline: Duration,
    /// Whether the url provider may use plain http.
    #[serde(default)]
    pub allow_http: bool,
    /// What a boot-critical failure does.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Where the boot record is POSTed (success or failure reason) before the failure action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_url: Option<String>,
    /// How `pyre init` checks the root (overridden by `pyre.verify=`).
    #[serde(default)]
    pub root_check: RootCheck,
}

fn default_deadline() -> Duration {
    Duration::from_secs(120)
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            version: POLICY_VERSION,
            config_required: false,
            signature_required: false,
            providers: Vec::new(),
            deadline: default_deadline(),
            allow_http: false,
            on_failure: OnFailure::Poweroff,
            report_url: None,
            root_check: RootCheck::Read,
        }
    }
}

impl Policy {
    pub fn parse(bytes: &[u8]) -> Result<Policy, ConfigError> {
        Self::parse_inner(bytes).map_err(ConfigError::Policy)
    }

    fn parse_inner(bytes: &[u8]) -> Result<Policy, String> {
        let p: Policy = super::from_json(bytes).map_err(|p| p.to_string())?;
        if p.version != POLICY_VERSION {
            return Err(format!(
                "version: unsupported image policy version {}, this pyre reads version {POLICY_VERSION}",
                p.version
            ));
        }
        if p.deadline.is_zero() {
            return Err("deadline: must be more than zero".into());
        }
        if let Some(u) = &p.report_url {
            super::validate::url_with(u, &["http", "https"])
                .map_err(|m| format!("report-url: {m}"))?;
        }
        Ok(p)
    }

    /// Read the policy at `path`; a missing file means the defaults.
    pub fn load(path: &Path) -> Result<Policy, ConfigError> {
        match std::fs::read(path) {
            Ok(b) => Policy::parse_inner(&b)
                .map_err(|e| ConfigError::Policy(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Policy::default()),
            Err(e) => Err(ConfigError::Policy(format!(
                "reading {}: {e}",
                path.display()
            ))),
        }
    }

    /// Refuse a provider the image does not allow.
    pub fn check_provider(&self, p: ProviderKind) -> Result<(), ConfigError> {
        if self.providers.is_empty() || self.providers.contains(&p) {
            Ok(())
        } else {
            Err(ConfigError::ProviderNotAllowed(p))
        }
    }

    /// A definite "no config" from the provider: fine unless the image requires one.
    pub fn check_absent(&self) -> Result<(), ConfigError> {
        if self.config_required {
            Err(ConfigError::Missing)
        } else {
            Ok(())
        }
    }
}

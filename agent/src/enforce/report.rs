//! The incident report: what `pyre daemon` writes when a run-time check finds drift or the
//! instance reaches its maximum age, before it acts. One JSON document per incident, stored
//! under `/run/pyre/reports/<id>.json` (and `<volume>/pyre/reports/`), POSTed to
//! `drift.report-url`, shipped through the log sinks, rendered by `pyre report`.
//!
//! Fields are only ever added; `report_version` changes if one changes meaning. Readers must
//! ignore fields they do not know (no `deny_unknown_fields` here, on purpose).
use serde::{Deserialize, Serialize};

/// `kind` of every incident report: tells it apart from a plain `pyre verify` drift report.
pub const KIND: &str = "pyre.incident";
pub const REPORT_VERSION: u32 = 1;

/// One incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// [`REPORT_VERSION`].
    pub report_version: u32,
    /// [`KIND`].
    pub kind: String,
    pub event: Event,
    pub instance: Instance,
    pub host: HostFacts,
    /// What the check found (mounts, verity corruption, lifetime); empty for a full
    /// re-verification, whose changes are in `drift`.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// The full re-verification's drift report (the `pyre verify --format json` contract),
    /// when the `verify` check found it; kept as JSON so a reader of an older or newer report
    /// still renders it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<serde_json::Value>,
}

/// What happened, when, which check saw it, and what pyre is about to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per incident: `<UTC time compact>-<boot id prefix>-<check>`, e.g.
    /// `20261123T101502Z-bb161606-verify`; also the report's file stem.
    pub id: String,
    /// RFC 3339 UTC with milliseconds.
    pub time: String,
    pub check: Check,
    /// One line for people, e.g. "2 sealed paths changed: /usr/bin/ls, /etc/passwd".
    pub reason: String,
    /// The action about to be taken.
    pub action: Action,
    /// How long pyre waits for the acknowledgements before acting, in seconds.
    pub grace_s: u64,
}

/// Which check raised the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// A mount over or inside a sealed path, or the root no longer the sealed read-only device.
    Mounts,
    /// dm-verity reported corruption (table status or kernel message).
    Verity,
    /// The full re-verification of the live root found drift.
    Verify,
    /// `lifetime.max-age` reached (phoenix rotation): not drift.
    Lifetime,
    /// A report an earlier instance persisted on the data volume and never got acknowledged,
    /// shipped again by this one (the event keeps its original check in `reason`).
    Carried,
}

/// The action taken after the report (config `drift.action`; lifetime always powers off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Log only, keep serving.
    Report,
    Poweroff,
    Reboot,
    /// Nothing (e.g. a reboot refused by the boot counter on the data volume).
    None,
}

/// Which instance of which image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// From the provider (e.g. EC2 `i-…`); absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provider the config came from (`aws`, `gcp`, `file`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The image id from the image policy, when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// `sha256:<hex>` of the sealed manifest.
    pub manifest_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    pub agent_version: String,
}

/// Facts about the host at the time of the incident (sysinfo).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    pub uptime_s: u64,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
    pub cpus: usize,
}

/// One thing a cheap check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Finding {
    /// Something mounted over or inside a sealed path that the image did not mount itself.
    Mount {
        /// The mount point (escaped as in the manifest).
        path: String,
        fstype: String,
        source: String,
        /// The sealed path it covers or sits inside.
        sealed: String,
    },
    /// The root is not the sealed device, or not read-only.
    Root { detail: String },
    /// dm-verity saw a corrupted block.
    VerityCorruption {
        device: String,
        /// The data block number, when the kernel named it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        block: Option<u64>,
        /// The file holding that block, when it could be mapped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        detail: String,
    },
    /// `lifetime.max-age` reached.
    MaxAge {
        /// Uptime at the time, and the (jittered) limit, in seconds.
        age_s: u64,
        limit_s: u64,
    },
}

impl HostFacts {
    /// Read them now (sysinfo; never fails: unknown facts stay empty or zero).
    pub fn collect() -> HostFacts {
        use sysinfo::{MemoryRefreshKind, RefreshKind, System};
        let sys = System::new_with_specifics(
            RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        let load = System::load_average();
        HostFacts {
            kernel: System::kernel_version(),
            os: System::long_os_version(),
            uptime_s: System::uptime(),
            memory_total_bytes: sys.total_memory(),
            memory_used_bytes: sys.used_memory(),
            load: [load.one, load.five, load.fifteen],
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl Check {
    /// The name used in the JSON (`mounts`, `verity`, `verify`, `lifetime`, `carried`).
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Mounts => "mounts",
            Check::Verity => "verity",
            Check::Verify => "verify",
            Check::Lifetime => "lifetime",
            Check::Carried => "carried",
        }
    }
}

impl Action {
    /// The name used in the JSON (`report`, `poweroff`, `reboot`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Report => "report",
            Action::Poweroff => "poweroff",
            Action::Reboot => "reboot",
            Action::None => "none",
        }
    }
}

impl Finding {
    /// The `kind` tag (`mount`, `root`, `verity-corruption`, `max-age`).
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Mount { .. } => "mount",
            Finding::Root { .. } => "root",
            Finding::VerityCorruption { .. } => "verity-corruption",
            Finding::MaxAge { .. } => "max-age",
        }
    }
}

impl Incident {
    /// A phoenix rotation rather than drift: the lifetime check, or (carried over) only a
    /// max-age finding and no drift.
    pub fn is_rotation(&self) -> bool {
        self.event.check == Check::Lifetime
            || (self.drift.is_none()
                && !self.findings.is_empty()
                && self
                    .findings
                    .iter()
                    .all(|f| matches!(f, Finding::MaxAge { .. })))
    }

    /// A title for people and SIEMs, from the check.
    pub fn title(&self) -> &'static str {
        match self.event.check {
            Check::Mounts => "Sealed root mounts changed",
            Check::Verity => "dm-verity corruption on the sealed root",
            Check::Verify => "Sealed root drifted",
            Check::Lifetime => "Maximum age reached (phoenix rotation)",
            Check::Carried if self.is_rotation() => {
                "Rotation report carried over from an earlier instance"
            }
            Check::Carried => "Drift report carried over from an earlier instance",
        }
    }

    /// `event.time` as milliseconds since the Unix epoch; the error says what is wrong.
    pub fn time_ms(&self) -> Result<i64, String> {
        crate::sys::time::parse_rfc3339_ms(&self.event.time)
            .ok_or_else(|| format!("at event.time: not an RFC 3339 time: {:?}", self.event.time))
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("an incident always serializes");
        v.push(b'\n');
        v
    }

    /// Parse a stored report; the error names what was wrong (path and reason).
    pub fn from_json(bytes: &[u8]) -> Result<Incident, String> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let inc: Incident = serde_path_to_error::deserialize(de)
            .map_err(|e| format!("at {}: {}", e.path(), e.inner()))?;
        if inc.kind != KIND {
            return Err(format!("kind is {:?}, not {KIND:?}", inc.kind));
        }
        Ok(inc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Incident {
        Incident {
            report_version: REPORT_VERSION,
            kind: KIND.into(),
            event: Event {
                id: "20261123T101502Z-bb161606-mounts".into(),
                time: "2026-11-23T10:15:02.120Z".into(),
                check: Check::Mounts,
                reason: "a mount over sealed /usr/bin/ls".into(),
                action: Action::Poweroff,
                grace_s: 30,
            },
            instance: Instance {
                id: Some("i-0123".into()),
                provider: Some("aws".into()),
                hostname: Some("web-1".into()),
                image_id: None,
                manifest_digest: "sha256:00".into(),
                boot_id: Some("bb161606-cbaa".into()),
                agent_version: "0.1.0".into(),
            },
            host: HostFacts::default(),
            findings: vec![Finding::Mount {
                path: "/usr/bin/ls".into(),
                fstype: "ext4".into(),
                source: "/dev/vdb".into(),
                sealed: "/usr/bin/ls".into(),
            }],
            drift: None,
        }
    }

    #[test]
    fn round_trips_and_names_its_kind() {
        let inc = sample();
        let json = inc.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains("\"kind\": \"pyre.incident\""), "{text}");
        assert!(text.contains("\"check\": \"mounts\""), "{text}");
        assert!(text.contains("\"kind\": \"mount\""), "{text}");
        assert_eq!(Incident::from_json(&json).unwrap(), inc);
    }

    #[test]
    fn a_wrong_document_is_named() {
        let err = Incident::from_json(br#"{"report_version":1,"kind":"x"}"#).unwrap_err();
        assert!(err.contains("event"), "{err}");
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["kind"] = "other".into();
        let err = Incident::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.contains("not \"pyre.incident\""), "{err}");
    }

    #[test]
    fn host_facts_are_read() {
        let h = HostFacts::collect();
        assert!(h.memory_total_bytes > 0 && h.cpus >= 1);
    }
}

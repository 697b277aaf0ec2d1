//! What `pyre daemon` publishes in `/run/pyre/status.json` (atomically, 0644) after each
//! check, and `pyre status` reads: the checks (last run, result, duration, next run), the
//! root's mount and verity state, the config source, the log sinks, the lifetime left, the
//! identity and versions, and host facts. Our own format: versioned; readers ignore fields
//! they do not know, so fields may be added.
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::checks::RootState;
use super::report::{Action, Check, HostFacts, Instance};

pub const STATUS_VERSION: u32 = 1;
/// The file's name in pyre's run directory.
pub const FILE_NAME: &str = "status.json";

/// The whole published state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: u32,
    /// When this state was written (RFC 3339 UTC).
    pub published: String,
    pub pid: u32,
    pub agent_version: String,
    pub instance: Instance,
    pub config: ConfigState,
    /// What drift leads to (`drift.action`) and the grace before acting, in seconds.
    pub action: Action,
    pub grace_s: u64,
    #[serde(default)]
    pub checks: Vec<CheckStatus>,
    #[serde(default)]
    pub root: RootState,
    #[serde(default)]
    pub sinks: Vec<SinkStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<LifetimeState>,
    pub host: HostFacts,
}

/// Where the applied config came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigState {
    /// The applied config's path, and whether it was there.
    pub path: String,
    pub present: bool,
    /// The provider it came from (`/run/pyre/instance.json`), e.g. `aws`, `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// One check's schedule and last run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    pub check: Check,
    /// Its period, in seconds.
    pub every_s: u64,
    pub runs: u64,
    /// Runs that could not check.
    pub failures: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<LastRun>,
    /// When it runs next (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The event id of the last incident it raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_incident: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    /// When it started (RFC 3339 UTC).
    pub at: String,
    pub result: RunResult,
    /// What it saw, or why it could not check.
    pub detail: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    Clean,
    /// Drift or corruption: an incident.
    Found,
    /// The check could not be made (never clean, never drift).
    Failed,
    NotApplicable,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Clean => "clean",
            RunResult::Found => "FOUND",
            RunResult::Failed => "COULD NOT CHECK",
            RunResult::NotApplicable => "not applicable",
        }
    }
}

/// One log pipeline (source → sink).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkStatus {
    pub name: String,
    pub read: u64,
    pub acked: u64,
    /// Records read and not yet acknowledged.
    pub backlog: u64,
    pub connected: bool,
    /// When the daemon last saw the acknowledged count grow (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `lifetime` of the config against the uptime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifetimeState {
    pub max_age_s: u64,
    pub jitter_s: u64,
    pub uptime_s: u64,
    /// `max-age` − uptime (the jitter, taken off at random, may end it earlier).
    pub left_s: i64,
}

impl Status {
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a status always serializes");
        v.push(b'\n');
        v
    }

    pub fn from_json(bytes: &[u8]) -> Result<Status, String> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| format!("at {}: {}", e.path(), e.inner()))
    }

    /// Whether any check's last run found something.
    pub fn found(&self) -> bool {
        self.checks.iter().any(|c| {
            c.last
                .as_ref()
                .is_some_and(|l| l.result == RunResult::Found)
        })
    }

    /// The text `pyre status` prints.
    pub fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let i = &self.instance;
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "pyre {} (daemon pid {}), state of {}",
            self.agent_version, self.pid, self.published
        )?;
        writeln!(
            out,
            "instance:  {} on {}, host {}, boot {}",
            opt(&i.id),
            opt(&i.provider),
            opt(&i.hostname),
            opt(&i.boot_id)
        )?;
        writeln!(
            out,
            "image:     {} manifest {}",
            opt(&i.image_id),
            i.manifest_digest
        )?;
        let c = &self.config;
        writeln!(
            out,
            "config:    {} ({}), provider {}",
            c.path,
            if c.present { "applied" } else { "none" },
            opt(&c.provider)
        )?;
        let r = &self.root;
        writeln!(
            out,
            "root:      {} {} on {}{}, {}; verity: {}",
            opt(&r.fstype),
            opt(&r.source),
            opt(&r.device),
            r.dm_name
                .as_ref()
                .map_or(String::new(), |n| format!(" (dm {n})")),
            match r.read_only {
                Some(true) => "read-only",
                Some(false) => "READ-WRITE",
                None => "unknown",
            },
            opt(&r.verity)
        )?;
        writeln!(
            out,
            "on drift:  {:?} after at most {}s",
            self.action, self.grace_s
        )?;
        writeln!(out, "checks:")?;
        for ch in &self.checks {
            let name = serde_json::to_value(ch.check).ok();
            let name = name.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
            match &ch.last {
                Some(l) => writeln!(
                    out,
                    "  {name:<7} every {}s: {} at {} ({} ms): {}",
                    ch.every_s,
                    l.result.as_str(),
                    l.at,
                    l.duration_ms,
                    l.detail
                )?,
                None => writeln!(out, "  {name:<7} every {}s: not run yet", ch.every_s)?,
            }
            writeln!(
                out,
                "          runs {}, could not check {}, next {}{}",
                ch.runs,
                ch.failures,
                opt(&ch.next),
                ch.last_incident
                    .as_ref()
                    .map_or(String::new(), |e| format!(", last incident {e}"))
            )?;
        }
        if self.sinks.is_empty() {
            writeln!(out, "logs:      nothing shipped")?;
        }
        for s in &self.sinks {
            writeln!(
                out,
                "logs:      {}: {} backlog, {} acknowledged (last {}), {}{}",
                s.name,
                s.backlog,
                s.acked,
                opt(&s.last_ack),
                if s.connected {
                    "connected"
                } else {
                    "not connected"
                },
                s.last_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(": {e}"))
            )?;
        }
        match &self.lifetime {
            Some(l) => writeln!(
                out,
                "lifetime:  {}s left of max-age {}s (jitter up to {}s), up {}s",
                l.left_s, l.max_age_s, l.jitter_s, l.uptime_s
            )?,
            None => writeln!(out, "lifetime:  unlimited")?,
        }
        let h = &self.host;
        writeln!(
            out,
            "host:      kernel {}, {}, up {}s, {} CPUs, load {:.2} {:.2} {:.2}, memory {} / {} MiB",
            opt(&h.kernel),
            opt(&h.os),
            h.uptime_s,
            h.cpus,
            h.load[0],
            h.load[1],
            h.load[2],
            h.memory_used_bytes >> 20,
            h.memory_total_bytes >> 20
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Status {
        Status {
            version: STATUS_VERSION,
            published: "2026-01-02T03:04:05.000Z".into(),
            pid: 42,
            agent_version: "0.1.0".into(),
            instance: Instance {
                id: Some("i-1".into()),
                manifest_digest: "sha256:aa".into(),
                agent_version: "0.1.0".into(),
                ..Instance::default()
            },
            config: ConfigState {
                path: "/run/pyre/config.json".into(),
                present: true,
                provider: Some("aws".into()),
            },
            action: Action::Poweroff,
            grace_s: 30,
            checks: vec![CheckStatus {
                check: Check::Mounts,
                every_s: 5,
                runs: 3,
                failures: 1,
                last: Some(LastRun {
                    at: "2026-01-02T03:04:04.000Z".into(),
                    result: RunResult::Failed,
                    detail: "reading the mount table /proc/1/mountinfo: denied".into(),
                    duration_ms: 1,
                }),
                next: Some("2026-01-02T03:04:09.000Z".into()),
                last_incident: None,
            }],
            root: RootState {
                read_only: Some(true),
                ..RootState::default()
            },
            sinks: vec![SinkStatus {
                name: "journal → syslog+tcp://h:514".into(),
                read: 10,
                acked: 7,
                backlog: 3,
                connected: true,
                last_ack: None,
                last_error: None,
            }],
            lifetime: Some(LifetimeState {
                max_age_s: 86400,
                jitter_s: 600,
                uptime_s: 400,
                left_s: 86000,
            }),
            host: HostFacts::default(),
        }
    }

    #[test]
    fn round_trips_and_renders() {
        let s = sample();
        assert_eq!(Status::from_json(&s.to_json()).unwrap(), s);
        assert!(!s.found());
        let mut text = Vec::new();
        s.render_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        for want in [
            "mounts  every 5s: COULD NOT CHECK at 2026-01-02T03:04:04.000Z (1 ms): reading",
            "runs 3, could not check 1, next 2026-01-02T03:04:09.000Z",
            "logs:      journal → syslog+tcp://h:514: 3 backlog, 7 acknowledged",
            "lifetime:  86000s left of max-age 86400s",
            "config:    /run/pyre/config.json (applied), provider aws",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
        assert!(Status::from_json(b"{}")
            .unwrap_err()
            .contains("missing field"));
    }
}

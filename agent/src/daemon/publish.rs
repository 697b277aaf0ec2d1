//! `/run/pyre/status.json`: what `pyre status` reads. The daemon writes it (atomically, 0644:
//! reading it needs no privilege) at start and after each check, joining the checks' state
//! with what does not change (identity, config source, action) and what the log pipelines and
//! the host say at that moment.
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::Lifetime;
use crate::enforce::report::{Action, HostFacts, Instance};
use crate::enforce::schedule::ChecksState;
use crate::enforce::status::{self, ConfigState, LifetimeState, SinkStatus, Status};
use crate::logship::PipelineHandle;
use crate::sys::atomic;
use crate::sys::time::rfc3339;

/// Writes the status file; one per daemon, owned by the checks' thread.
pub struct Publisher {
    path: PathBuf,
    instance: Instance,
    config: ConfigState,
    action: Action,
    grace_s: u64,
    lifetime: Option<Lifetime>,
    sinks: Vec<PipelineHandle>,
    /// Per sink: the acknowledged count last seen, and when it last grew.
    acks: Vec<(u64, Option<String>)>,
    facts: fn() -> HostFacts,
}

impl Publisher {
    /// A publisher of `<run>/status.json`.
    pub fn new(
        run: &Path,
        instance: Instance,
        config: ConfigState,
        (action, grace_s): (Action, u64),
        lifetime: Option<Lifetime>,
        sinks: Vec<PipelineHandle>,
    ) -> Publisher {
        let acks = vec![(0, None); sinks.len()];
        Publisher {
            path: run.join(status::FILE_NAME),
            instance,
            config,
            action,
            grace_s,
            lifetime,
            sinks,
            acks,
            facts: HostFacts::collect,
        }
    }

    /// Host facts from `facts` (tests use a fixed one).
    pub fn with_facts(mut self, facts: fn() -> HostFacts) -> Publisher {
        self.facts = facts;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The status as of now, with the checks' `state`.
    pub fn status(&mut self, state: &ChecksState) -> Status {
        let now = rfc3339(SystemTime::now());
        let host = (self.facts)();
        let sinks = self
            .sinks
            .iter()
            .zip(self.acks.iter_mut())
            .map(|(h, (seen, last_ack))| {
                let s = h.status();
                if s.acked > *seen {
                    *seen = s.acked;
                    *last_ack = Some(now.clone());
                }
                SinkStatus {
                    name: s.name,
                    read: s.read,
                    acked: s.acked,
                    backlog: s.read.saturating_sub(s.acked),
                    connected: s.connected,
                    last_ack: last_ack.clone(),
                    last_error: s.last_error,
                }
            })
            .collect();
        Status {
            version: status::STATUS_VERSION,
            published: now,
            pid: std::process::id(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            instance: self.instance.clone(),
            config: self.config.clone(),
            action: self.action,
            grace_s: self.grace_s,
            checks: state.checks.clone(),
            root: state.root.clone(),
            sinks,
            lifetime: self.lifetime.as_ref().map(|l| lifetime(l, host.uptime_s)),
            host,
        }
    }

    /// Write the status file for `state`.
    pub fn publish(&mut self, state: &ChecksState) -> io::Result<()> {
        let json = self.status(state).to_json();
        atomic::write(&self.path, &json, atomic::Options::replace_with_mode(0o644))
    }
}

/// The lifetime left at `uptime_s` (the jitter is drawn by the lifetime timer, not here).
pub fn lifetime(l: &Lifetime, uptime_s: u64) -> LifetimeState {
    let max_age_s = l.max_age.get().as_secs();
    LifetimeState {
        max_age_s,
        jitter_s: l.jitter.get().as_secs(),
        uptime_s,
        left_s: max_age_s as i64 - uptime_s as i64,
    }
}

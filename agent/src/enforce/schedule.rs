//! The scheduler: every check on its own period, one at a time on one thread (so they never
//! overlap), the earliest due first. After each run it updates the check's status, publishes
//! the state, and when a check found something new (a [`Found::key`] it has not reported
//! since the check was last clean) builds the incident and hands it to the [`Respond`]er.
//! It sleeps on the injected clock in short slices, so a stop request is seen within
//! [`STOP_POLL`] unless a check is running (a full re-verification finishes its scan first).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::checks::{Check, Found, Outcome, RootState};
use super::incident::{self, IncidentContext};
use super::report::{Check as Kind, HostFacts, Incident};
use super::status::{CheckStatus, LastRun, RunResult};
use super::Respond;
use crate::host::Clock;
use crate::sys::time::rfc3339;

/// Longest sleep between looks at the stop flag.
pub const STOP_POLL: Duration = Duration::from_millis(200);

/// The checks' part of the published state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChecksState {
    pub checks: Vec<CheckStatus>,
    pub root: RootState,
}

/// A check and its period.
pub struct Scheduled {
    pub check: Box<dyn Check>,
    pub every: Duration,
    /// Delay before the first run.
    pub first: Duration,
}

struct Entry {
    check: Box<dyn Check>,
    every: Duration,
    /// Clock time of the next run.
    next: Duration,
    status: CheckStatus,
    /// The key of the last incident reported, until the check is clean again.
    reported: Option<String>,
}

/// Called with the state after each run (the daemon writes status.json).
pub type Publish = Box<dyn FnMut(&ChecksState) + Send>;

pub struct Scheduler {
    entries: Vec<Entry>,
    clock: Arc<dyn Clock + Send + Sync>,
    respond: Arc<dyn Respond>,
    ctx: IncidentContext,
    publish: Publish,
    facts: fn() -> HostFacts,
}

impl Scheduler {
    pub fn new(
        checks: Vec<Scheduled>,
        clock: Arc<dyn Clock + Send + Sync>,
        respond: Arc<dyn Respond>,
        ctx: IncidentContext,
        publish: Publish,
    ) -> Scheduler {
        let now = clock.now();
        let entries = checks
            .into_iter()
            .map(|s| Entry {
                status: CheckStatus {
                    check: s.check.kind(),
                    every_s: s.every.as_secs(),
                    runs: 0,
                    failures: 0,
                    last: None,
                    next: None,
                    last_incident: None,
                },
                check: s.check,
                every: s.every.max(Duration::from_millis(100)),
                next: now + s.first,
                reported: None,
            })
            .collect();
        Scheduler {
            entries,
            clock,
            respond,
            ctx,
            publish,
            facts: HostFacts::collect,
        }
    }

    /// Host facts for incidents from `facts` (tests use a fixed one).
    pub fn with_facts(mut self, facts: fn() -> HostFacts) -> Scheduler {
        self.facts = facts;
        self
    }

    /// The state as it is now.
    pub fn state(&self) -> ChecksState {
        let now_mono = self.clock.now();
        let now = SystemTime::now();
        let mut root = RootState::default();
        let checks = self
            .entries
            .iter()
            .map(|e| {
                e.check.root_state(&mut root);
                let mut s = e.status.clone();
                s.next = Some(rfc3339(now + e.next.saturating_sub(now_mono)));
                s
            })
            .collect();
        ChecksState { checks, root }
    }

    fn publish_now(&mut self) {
        let state = self.state();
        (self.publish)(&state);
    }

    /// Run checks as they fall due until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) {
        self.publish_now();
        while !stop.load(Ordering::SeqCst) {
            let wait = self.due_in();
            if wait.is_zero() {
                self.run_next();
            } else {
                self.clock.sleep(wait.min(STOP_POLL));
            }
        }
    }

    /// Time until the next check is due (zero: now).
    pub fn due_in(&self) -> Duration {
        let now = self.clock.now();
        self.entries
            .iter()
            .map(|e| e.next.saturating_sub(now))
            .min()
            .unwrap_or(STOP_POLL)
    }

    /// Run the check that is due first (even if not yet due), publish, respond.
    pub fn run_next(&mut self) -> Option<Kind> {
        let i = (0..self.entries.len()).min_by_key(|&i| self.entries[i].next)?;
        let started_wall = SystemTime::now();
        let started = self.clock.now();
        let outcome = self.entries[i].check.run();
        let took = self.clock.now().saturating_sub(started);
        let e = &mut self.entries[i];
        e.next = self.clock.now() + e.every;
        e.status.runs += 1;
        let (result, detail) = match &outcome {
            Outcome::Clean(s) => (RunResult::Clean, s.clone()),
            Outcome::Found(f) => (RunResult::Found, f.reason.clone()),
            Outcome::Failed(s) => (RunResult::Failed, s.clone()),
            Outcome::NotApplicable(s) => (RunResult::NotApplicable, s.clone()),
        };
        let kind = e.status.check;
        if result == RunResult::Failed {
            e.status.failures += 1;
            let first = e
                .status
                .last
                .as_ref()
                .map(|l| (l.result, l.detail.as_str()))
                != Some((RunResult::Failed, detail.as_str()));
            // Loud, but once per distinct failure rather than every few seconds.
            if first {
                log::error!("check {kind:?} could not run (neither clean nor drift): {detail}");
            } else {
                log::debug!("check {kind:?} still cannot run: {detail}");
            }
        }
        if result == RunResult::Clean {
            e.reported = None;
        }
        e.status.last = Some(LastRun {
            at: rfc3339(started_wall),
            result,
            detail,
            duration_ms: took.as_millis() as u64,
        });
        if let Outcome::Found(found) = outcome {
            if e.reported.as_deref() != Some(found.key.as_str()) {
                let inc = self.incident(kind, &found);
                let e = &mut self.entries[i];
                e.reported = Some(found.key.clone());
                e.status.last_incident = Some(inc.event.id.clone());
                self.publish_now();
                self.respond.respond(&inc);
            }
        }
        self.publish_now();
        Some(kind)
    }

    fn incident(&self, kind: Kind, found: &Found) -> Incident {
        incident::build(&self.ctx, kind, found, SystemTime::now(), (self.facts)())
    }
}

/// The re-verification's period: `interval` moved by a fixed fraction in ±`spread` (e.g.
/// 0.1), the same for every run of one instance and different between instances (seeded by
/// `seed`, e.g. the boot id), so a fleet does not re-read its disks at once.
pub fn jittered(interval: Duration, spread: f64, seed: &str) -> Duration {
    // FNV-1a: stable across builds and platforms.
    let h = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let unit = (h >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    interval.mul_f64(1.0 + spread * (2.0 * unit - 1.0))
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;

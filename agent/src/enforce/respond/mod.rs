//! What `pyre daemon` does once a check fired (or the instance reached its maximum age):
//! persist the report, ship it as a security event, POST it, wait for both acknowledgements
//! (bounded by `drift.grace`), then act — `report` (keep serving), `poweroff` (the default) or
//! `reboot`, through an orderly shutdown with a bound and reboot(2) after it.
//!
//! The order and its reasons (docs/enforcement.md, "When a check fires"):
//! 1. the action is settled first (lifetime always powers off; a `reboot` beyond the
//!    drift-reboot bound on the data volume becomes a power-off), so the report says what is
//!    about to happen;
//! 2. the report is written to /run/pyre/reports and every data volume before anything goes
//!    over the network, so an instance that dies next still leaves it for its successor;
//! 3. the security event is logged, then the POST and the log drain run side by side, each
//!    bounded by the same deadline (`grace` from the start): a dead endpoint costs at most the
//!    grace;
//! 4. a 2xx (or, without a `report-url`, a completed drain) marks the volume copies
//!    acknowledged (`<id>.acked.json`); the next instance ships only the others
//!    ([`Responder::carry_over`]).
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::types::{Config, DriftAction};
use crate::enforce::report::{Action, Check, Incident};
use crate::host::{Clock, Power, Shutdown, Stop};
use crate::logging::MsgId;

pub mod post;
pub mod store;

pub use post::{redact, Posted};

/// Where reports go on every instance.
pub const RUN_DIR: &str = "/run/pyre/reports";
/// Where reports go on a data volume, below its mountpoint.
pub const VOLUME_SUBDIR: &str = "pyre/reports";
/// How long the orderly shutdown has before reboot(2) forces it.
pub const DEFAULT_STOP_BOUND: Duration = Duration::from_secs(90);
/// Bound of one POST attempt (the grace bounds them all).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The grace when the config has no `drift` section (lifetime alone).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// How to respond; built from the applied config by [`RespondConfig::from_config`].
#[derive(Debug, Clone)]
pub struct RespondConfig {
    pub action: DriftAction,
    pub grace: Duration,
    pub report_url: Option<String>,
    pub run_dir: PathBuf,
    /// `<mountpoint>/pyre/reports` of every data volume.
    pub volume_dirs: Vec<PathBuf>,
    pub stop_bound: Duration,
    pub attempt_timeout: Duration,
    /// Never power off or reboot (`pyre daemon --report-only`): every incident, rotation
    /// included, is reported and the instance keeps serving.
    pub report_only: bool,
}

impl RespondConfig {
    /// From the applied config (none: the defaults, no URL, no volumes). Only volumes mounted
    /// now (`mountinfo`: the text of `/proc/self/mountinfo`) get reports: an absent optional
    /// volume's empty mountpoint is not the volume.
    pub fn from_config(config: Option<&Config>, mountinfo: &[u8]) -> RespondConfig {
        use std::os::unix::ffi::OsStrExt;
        let mounted = crate::sys::mountinfo::parse(mountinfo);
        let drift = config.and_then(|c| c.drift.as_ref());
        RespondConfig {
            action: drift.map_or(DriftAction::Poweroff, |d| d.action),
            grace: drift.map_or(DEFAULT_GRACE, |d| d.grace.get()),
            report_url: drift.and_then(|d| d.report_url.clone()),
            run_dir: PathBuf::from(RUN_DIR),
            volume_dirs: config.map_or_else(Vec::new, |c| {
                c.volumes
                    .iter()
                    .filter(|v| {
                        let mp = std::path::Path::new(&v.mountpoint).as_os_str().as_bytes();
                        mounted.iter().any(|m| m.mount_point == mp)
                    })
                    .map(|v| PathBuf::from(&v.mountpoint).join(VOLUME_SUBDIR))
                    .collect()
            }),
            stop_bound: DEFAULT_STOP_BOUND,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            report_only: false,
        }
    }
}

/// The side effects a response needs: time, sync(2), and ending the system.
pub trait ResponseHost: Clock + Power + Stop + Send + Sync {}
impl<T: Clock + Power + Stop + Send + Sync + ?Sized> ResponseHost for T {}

/// A security event: one log record with a stable message id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub msgid: MsgId,
    /// syslog severity: 2 (crit) for drift, 5 (notice) for rotation.
    pub severity: u8,
    /// The report's id (its file stem).
    pub report_id: String,
    /// One line: `PYRE_DRIFT: incident <id> (check …): <reason>; action …`.
    pub message: String,
}

/// Log shipping as the responder sees it (the daemon implements it over its pipelines).
pub trait ShipEvents: Send + Sync {
    /// Log `event` where the log sources read it.
    fn log_event(&self, event: &SecurityEvent) -> Result<(), String>;
    /// Return once everything logged so far (that event included) is acknowledged by every
    /// sink, or fail after `within`. Ok: records acknowledged.
    fn drain(&self, within: Duration) -> Result<u64, String>;
}

/// How the system was asked to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// `report` (or a carried report): nothing to stop.
    NotAsked,
    /// reboot(2) after the orderly shutdown did not end this process within the bound (or
    /// could not be queued: `queued` false). On a real machine this is never returned when
    /// reboot(2) works.
    Forced { queued: bool },
    /// reboot(2) failed too (e.g. no CAP_SYS_BOOT).
    Failed { error: String },
}

/// What a response did (for `pyre status`, logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub id: String,
    pub check: Check,
    pub action: Action,
    /// Where the report was written.
    pub persisted: Vec<PathBuf>,
    pub posted: Posted,
    /// Ok: records acknowledged by the sinks; Err: what was pending.
    pub drained: Result<u64, String>,
    /// From the start of the response until the acknowledgements (or the grace) ended.
    pub waited: Duration,
    pub stopped: Stopped,
}

/// Persists, ships, posts, waits, acts.
pub struct Responder {
    cfg: RespondConfig,
    host: Arc<dyn ResponseHost>,
    ship: Arc<dyn ShipEvents>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn event_of(inc: &Incident, original: Check) -> SecurityEvent {
    let (msgid, severity) = match original {
        Check::Lifetime => (MsgId::Rotation, 5),
        _ => (MsgId::Drift, 2),
    };
    let mut reason: String = inc.event.reason.chars().take(512).collect();
    reason = reason.replace('\n', " ");
    let message = format!(
        "{msgid}: incident {} (check {}): {reason}; action {}",
        inc.event.id,
        check_name(inc.event.check),
        action_name(inc.event.action)
    );
    SecurityEvent {
        msgid,
        severity,
        report_id: store::file_stem(&inc.event.id),
        message,
    }
}

fn check_name(c: Check) -> &'static str {
    match c {
        Check::Mounts => "mounts",
        Check::Verity => "verity",
        Check::Verify => "verify",
        Check::Lifetime => "lifetime",
        Check::Carried => "carried",
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Report => "report",
        Action::Poweroff => "poweroff",
        Action::Reboot => "reboot",
        Action::None => "none",
    }
}

/// What delivering a report gave.
struct Delivery {
    persisted: Vec<PathBuf>,
    posted: Posted,
    drained: Result<u64, String>,
    waited: Duration,
}

impl Delivery {
    /// The report endpoint took it; without a `report-url`, the log sinks took the event.
    fn acknowledged(&self) -> bool {
        match self.posted {
            Posted::Acknowledged { .. } => true,
            Posted::NotConfigured => self.drained.is_ok(),
            Posted::Failed { .. } => false,
        }
    }
}

impl Responder {
    pub fn new(
        cfg: RespondConfig,
        host: Arc<dyn ResponseHost>,
        ship: Arc<dyn ShipEvents>,
    ) -> Responder {
        Responder { cfg, host, ship }
    }

    /// The action this incident leads to: lifetime always powers off; `reboot` becomes a
    /// power-off once the drift-reboot bound on the data volume is reached.
    fn settle_action(&self, check: Check, history: &[u64], now: u64) -> Action {
        match (check, self.cfg.action) {
            _ if self.cfg.report_only => Action::Report,
            (Check::Lifetime, _) => Action::Poweroff,
            (_, DriftAction::Report) => Action::Report,
            (_, DriftAction::Poweroff) => Action::Poweroff,
            (_, DriftAction::Reboot) if store::reboot_allowed(history, now) => Action::Reboot,
            (_, DriftAction::Reboot) => {
                log::warn!(
                    "{}: {} drift reboots within {}h recorded on the data volume: powering off instead of rebooting",
                    MsgId::Drift,
                    store::MAX_DRIFT_REBOOTS,
                    store::REBOOT_WINDOW.as_secs() / 3600
                );
                Action::Poweroff
            }
        }
    }

    /// Persist, ship, post, wait (≤ grace), then act. Returns what was done; with `poweroff`
    /// or `reboot` on a real machine it returns only if reboot(2) failed.
    pub fn respond(&self, incident: &Incident) -> Outcome {
        let history = store::reboot_history(&self.cfg.volume_dirs);
        let now = unix_now();
        let mut inc = incident.clone();
        inc.event.action = self.settle_action(inc.event.check, &history, now);
        inc.event.grace_s = self.cfg.grace.as_secs();
        let mut dirs = vec![self.cfg.run_dir.clone()];
        dirs.extend(self.cfg.volume_dirs.iter().cloned());
        let event = event_of(&inc, inc.event.check);
        let d = self.deliver(&inc, &event, &dirs);
        if d.acknowledged() {
            for dir in &self.cfg.volume_dirs {
                self.acknowledge(dir, &event.report_id);
            }
        }
        self.log_delivery(&inc, &d);
        if inc.event.action == Action::Reboot {
            store::record_reboot(&self.cfg.volume_dirs, &history, now);
        }
        let stopped = match inc.event.action {
            Action::Poweroff => self.stop(Shutdown::PowerOff),
            Action::Reboot => self.stop(Shutdown::Reboot),
            Action::Report | Action::None => Stopped::NotAsked,
        };
        Outcome {
            id: event.report_id,
            check: inc.event.check,
            action: inc.event.action,
            persisted: d.persisted,
            posted: d.posted,
            drained: d.drained,
            waited: d.waited,
            stopped,
        }
    }

    /// At daemon start: the reports an earlier instance left unacknowledged on a data volume
    /// are shipped and posted again, marked carried (check `carried`, the original check in
    /// the reason, action `none`), and renamed acknowledged on a 2xx. Nothing is stopped.
    pub fn carry_over(&self) -> Vec<Outcome> {
        let mut out = Vec::new();
        for dir in &self.cfg.volume_dirs {
            let (found, problems) = store::unacked(dir);
            for p in problems {
                log::error!(
                    "{}: a stored report cannot be carried over: {p}",
                    MsgId::Drift
                );
            }
            for stored in found {
                // A report already carried once and still unacknowledged is sent as it is.
                let original = stored.incident.event.check;
                let mut inc = stored.incident;
                if original != Check::Carried {
                    inc.event.reason = format!(
                        "carried over from an earlier instance (check {}, action {}): {}",
                        check_name(original),
                        action_name(inc.event.action),
                        inc.event.reason
                    );
                }
                inc.event.check = Check::Carried;
                inc.event.action = Action::None;
                let event = event_of(&inc, original);
                let d = self.deliver(&inc, &event, std::slice::from_ref(&self.cfg.run_dir));
                if d.acknowledged() {
                    self.acknowledge(dir, &event.report_id);
                }
                self.log_delivery(&inc, &d);
                out.push(Outcome {
                    id: event.report_id,
                    check: Check::Carried,
                    action: Action::None,
                    persisted: d.persisted,
                    posted: d.posted,
                    drained: d.drained,
                    waited: d.waited,
                    stopped: Stopped::NotAsked,
                });
            }
        }
        out
    }

    /// Write to `dirs`, log the event, then POST and drain side by side until both are done or
    /// the grace has passed.
    fn deliver(&self, inc: &Incident, event: &SecurityEvent, dirs: &[PathBuf]) -> Delivery {
        let clock: &dyn ResponseHost = &*self.host;
        let start = clock.now();
        let deadline = start + self.cfg.grace;
        let json = inc.to_json();
        let mut persisted = Vec::new();
        for (path, r) in store::persist(dirs, &event.report_id, &json) {
            match r {
                Ok(()) => persisted.push(path),
                Err(e) => log::error!("writing the report {}: {e}", path.display()),
            }
        }
        if let Err(e) = self.ship.log_event(event) {
            log::error!("logging the security event of {}: {e}", event.report_id);
        }
        let (posted, drained) = std::thread::scope(|s| {
            let poster = self.cfg.report_url.as_deref().map(|url| {
                let json = &json;
                let per = self.cfg.attempt_timeout;
                s.spawn(move || post::post_until(url, json, clock, deadline, per))
            });
            let drained = self.ship.drain(deadline.saturating_sub(clock.now()));
            let posted = match poster {
                None => Posted::NotConfigured,
                Some(t) => t.join().unwrap_or_else(|_| Posted::Failed {
                    last: "the posting thread panicked".into(),
                    attempts: 0,
                }),
            };
            (posted, drained)
        });
        Delivery {
            persisted,
            posted,
            drained,
            waited: clock.now().saturating_sub(start),
        }
    }

    fn acknowledge(&self, dir: &std::path::Path, stem: &str) {
        match store::mark_acked(dir, stem) {
            Ok(p) => log::info!("report acknowledged: {}", p.display()),
            Err(e) => log::error!(
                "marking the report {stem} acknowledged in {}: {e}",
                dir.display()
            ),
        }
    }

    fn log_delivery(&self, inc: &Incident, d: &Delivery) {
        let url = self.cfg.report_url.as_deref().map(redact);
        let posted = match (&d.posted, &url) {
            (Posted::NotConfigured, _) => "no report-url".to_string(),
            (Posted::Acknowledged { status, .. }, Some(u)) => format!("posted to {u} ({status})"),
            (Posted::Failed { last, attempts }, _) => {
                format!("not acknowledged after {attempts} attempt(s): {last}")
            }
            (p, None) => format!("{p:?}"),
        };
        let drained = match &d.drained {
            Ok(n) => format!("logs drained ({n} records acknowledged)"),
            Err(e) => format!("logs not drained: {e}"),
        };
        log::warn!(
            "incident {}: written to {} place(s); {posted}; {drained}; after {:.1}s: action {}",
            inc.event.id,
            d.persisted.len(),
            d.waited.as_secs_f64(),
            action_name(inc.event.action)
        );
    }

    /// An orderly shutdown, `stop_bound` for it to end this process, then sync + reboot(2).
    fn stop(&self, how: Shutdown) -> Stopped {
        let queued = match self.host.request_shutdown(how) {
            Ok(()) => {
                log::warn!(
                    "{} requested from systemd; forcing it in {}s if pyre is still running",
                    how.verb(),
                    self.cfg.stop_bound.as_secs()
                );
                self.host.sleep(self.cfg.stop_bound);
                log::error!(
                    "the orderly {} did not end pyre within {}s: forcing it with reboot(2)",
                    how.verb(),
                    self.cfg.stop_bound.as_secs()
                );
                true
            }
            Err(e) => {
                log::error!("systemctl {}: {e}; forcing it with reboot(2)", how.verb());
                false
            }
        };
        self.host.sync();
        match self.host.force_shutdown(how) {
            Ok(()) => Stopped::Forced { queued },
            Err(e) => {
                log::error!("reboot(2) for {}: {e}", how.verb());
                Stopped::Failed {
                    error: e.to_string(),
                }
            }
        }
    }
}

/// The daemon's checks hand their incidents here.
impl super::Respond for Responder {
    fn respond(&self, incident: &Incident) {
        let o = Responder::respond(self, incident);
        log::info!("incident {}: {:?}, action {:?}", o.id, o.stopped, o.action);
    }
}

#[cfg(test)]
mod tests;

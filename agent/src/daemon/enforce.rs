//! The daemon's enforcement: the run-time checks (`crate::enforce`) built from the applied
//! config's `drift` section, run by the scheduler on one thread of their own at lowered CPU and
//! I/O priority, their incidents handed to the [`Respond`] seam, and `/run/pyre/status.json`
//! published after each check ([`super::publish`]).
//!
//! Without a `drift` section the checks still run, with the defaults of docs/config.md
//! (`interval` 1h, `action` poweroff, `grace` 30s): a sealed image is enforced unless its
//! config says otherwise (`"action": "report"` keeps it serving).
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::publish::Publisher;
use crate::config::Config;
use crate::drift;
use crate::enforce::checks::mounts::{self, MountsCheck};
use crate::enforce::checks::verify::{VerifyCheck, VerifyPaths};
use crate::enforce::checks::verity::{VerityCheck, VerityPaths};
use crate::enforce::checks::{Check, Outcome, Sealed};
use crate::enforce::incident::IncidentContext;
use crate::enforce::report::{Check as Kind, Instance};
use crate::enforce::schedule::{jittered, Scheduled, Scheduler};
use crate::enforce::status::ConfigState;
use crate::enforce::{priority, Respond};
use crate::host::RealHost;
use crate::logship::{Identity, PipelineHandle};

/// How often the cheap checks run.
pub const MOUNTS_EVERY: Duration = Duration::from_secs(5);
pub const VERITY_EVERY: Duration = Duration::from_secs(10);
/// `drift.interval` is moved by up to ±10 % per instance (seeded by the boot id).
pub const JITTER_SPREAD: f64 = 0.1;
/// `drift.interval` when the config has no `drift` section (docs/config.md).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

/// Every host path the checks read; [`EnforcePaths::standard`] is the real layout.
#[derive(Debug, Clone)]
pub struct EnforcePaths {
    /// The live root (`/`).
    pub root: PathBuf,
    /// Where the full re-verification reads the root filesystem (`/`, or in pyre.service a
    /// non-recursive bind of it that the unit's own mounts do not cover).
    pub verify_root: PathBuf,
    /// The image's pyre directory: `manifest`, `manifest.sig`, `keys/`.
    pub etc: PathBuf,
    /// PID 1's mount table (the host's namespace, not the unit's).
    pub mountinfo: PathBuf,
    pub sys: PathBuf,
    pub dm_control: PathBuf,
    pub kmsg: PathBuf,
    /// pyre's run directory: `boot.json`, `instance.json`, `status.json`, `reports/`.
    pub run: PathBuf,
}

impl EnforcePaths {
    pub fn standard(run: &Path, kmsg: &Path) -> EnforcePaths {
        EnforcePaths {
            root: "/".into(),
            verify_root: "/".into(),
            etc: "/etc/pyre".into(),
            mountinfo: "/proc/1/mountinfo".into(),
            sys: "/sys".into(),
            dm_control: "/dev/mapper/control".into(),
            kmsg: kmsg.into(),
            run: run.into(),
        }
    }
}

/// Whether `pyre init` set up this boot (its record says it verified the root): then the root
/// must be pyre's dm-verity device. pyre-verified.service has already cross-checked the record
/// against the command line and the root device before the daemon starts.
pub fn verity_boot(boot_record: &Path) -> bool {
    std::fs::read(boot_record)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("verified").and_then(|x| x.as_bool()))
        .unwrap_or(false)
}

/// The provider the config came from (`provider` of `<run>/instance.json`), if recorded.
pub fn provider(run: &Path) -> Option<String> {
    let bytes = std::fs::read(run.join("instance.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("provider")?.as_str().map(str::to_string)
}

/// The incident reports' instance section.
pub fn instance(id: &Identity, provider: Option<String>) -> Instance {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Instance {
        id: some(&id.instance),
        provider,
        hostname: some(&id.hostname),
        image_id: some(&id.image),
        manifest_digest: id.manifest.clone(),
        boot_id: some(&id.boot_id),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// A check that cannot be set up (no readable manifest): every run says why, so status shows
/// "could not check" and the log says so, never "clean".
struct Unavailable {
    kind: Kind,
    why: String,
}

impl Check for Unavailable {
    fn kind(&self) -> Kind {
        self.kind
    }
    fn run(&mut self) -> Outcome {
        Outcome::Failed(self.why.clone())
    }
}

/// The three checks with their periods, for `config` on the host at `paths`; `id` gives the
/// manifest digest this boot pinned (boot record or command line) and the jitter's seed.
pub fn checks(config: Option<&Config>, paths: &EnforcePaths, id: &Identity) -> Vec<Scheduled> {
    let manifest = paths.etc.join("manifest");
    // The signature is checked by every full verification; the cheap checks need only the
    // paths, and fail (loudly, in status) when there is no manifest to take them from.
    let sealed = match drift::load_manifest(&manifest, None) {
        Ok((m, _, _)) => Ok(Arc::new(Sealed::from_manifest(&m))),
        Err(e) => Err(format!("no sealed paths to check against: {e}")),
    };
    let verity_boot = verity_boot(&paths.run.join("boot.json"));
    let volumes: Vec<String> = config
        .map(|c| c.volumes.iter().map(|v| v.mountpoint.clone()).collect())
        .unwrap_or_default();
    let mounts: Box<dyn Check> = match &sealed {
        Ok(s) => Box::new(MountsCheck::new(
            paths.mountinfo.clone(),
            paths.sys.clone(),
            s.clone(),
            mounts::declared(&paths.root, s, &volumes),
            verity_boot,
        )),
        Err(why) => Box::new(Unavailable {
            kind: Kind::Mounts,
            why: why.clone(),
        }),
    };
    let verity = VerityCheck::new(
        Arc::new(RealHost),
        VerityPaths {
            dm_control: paths.dm_control.clone(),
            kmsg: paths.kmsg.clone(),
            sys: paths.sys.clone(),
            root: paths.root.clone(),
        },
        sealed.clone().unwrap_or_default(),
        verity_boot,
    );
    let pinned = (!id.manifest.is_empty()).then(|| id.manifest.clone());
    let verify = VerifyCheck::new(
        VerifyPaths {
            root: paths.verify_root.clone(),
            etc: paths.etc.clone(),
            mountinfo: paths.mountinfo.clone(),
        },
        pinned,
    );
    let interval = config
        .and_then(|c| c.drift.as_ref())
        .map_or(DEFAULT_INTERVAL, |d| d.interval.get());
    let every = jittered(interval, JITTER_SPREAD, &id.boot_id);
    vec![
        Scheduled {
            check: mounts,
            every: MOUNTS_EVERY,
            first: Duration::ZERO,
        },
        Scheduled {
            check: Box::new(verity),
            every: VERITY_EVERY,
            first: Duration::ZERO,
        },
        Scheduled {
            check: Box::new(verify),
            every,
            first: every,
        },
    ]
}

/// The checks' thread.
pub struct Enforcement {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Enforcement {
    /// Start the scheduler on a thread of its own, at lowered CPU and I/O priority (its scan
    /// workers inherit it). It publishes the status at once and after every check.
    pub fn start(
        checks: Vec<Scheduled>,
        ctx: IncidentContext,
        mut publisher: Publisher,
        respond: Arc<dyn Respond>,
    ) -> std::io::Result<Enforcement> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("pyre-checks".into())
            .spawn(move || {
                match priority::lower_this_thread() {
                    Ok(()) => {
                        log::debug!("checks at nice {} and the idle I/O class", priority::NICE)
                    }
                    // pyre.service denies these syscalls and lowers the whole daemon instead.
                    Err(e) => {
                        log::info!("checks at the daemon's own priority (lowering the thread: {e})")
                    }
                }
                let mut failing: Option<String> = None;
                let publish = Box::new(move |state: &_| {
                    let now = publisher.publish(state).err().map(|e| e.to_string());
                    if now != failing {
                        match &now {
                            Some(e) => log::error!(
                                "cannot publish the status {}: {e}",
                                publisher.path().display()
                            ),
                            None => {
                                log::info!("status published to {}", publisher.path().display())
                            }
                        }
                        failing = now;
                    }
                });
                Scheduler::new(checks, Arc::new(RealHost), respond, ctx, publish).run(&flag);
            })?;
        Ok(Enforcement { stop, thread })
    }

    /// Ask the thread to stop and wait up to `wait` for it (a full verification in progress
    /// finishes its scan first; past `wait` the thread is left to end with the process).
    pub fn stop(self, wait: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let until = std::time::Instant::now() + wait;
        while !self.thread.is_finished() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
        } else {
            log::warn!("checks still running after {wait:?} (a full verification): not waited for");
        }
    }
}

/// Start enforcement for `config` on the host at `paths`: the checks, the status publisher and
/// the responder; `sinks` are the log pipelines whose backlog the status shows. With
/// `report_only` (`pyre daemon --report-only`) the action is `report` whatever the config says.
pub fn start(
    config: Option<&Config>,
    config_path: &Path,
    paths: &EnforcePaths,
    id: &Identity,
    sinks: Vec<PipelineHandle>,
    respond: Arc<dyn Respond>,
    report_only: bool,
) -> std::io::Result<Enforcement> {
    let provider = provider(&paths.run);
    let drift = config.and_then(|c| c.drift.as_ref());
    let mut ctx = IncidentContext::new(instance(id, provider.clone()), drift);
    if report_only {
        ctx.action = crate::enforce::report::Action::Report;
    }
    let publisher = Publisher::new(
        &paths.run,
        ctx.instance.clone(),
        ConfigState {
            path: config_path.display().to_string(),
            present: config.is_some(),
            provider,
        },
        (ctx.action, ctx.grace_s),
        config.and_then(|c| c.lifetime.clone()),
        sinks,
    );
    let checks = checks(config, paths, id);
    log::info!(
        "enforcing: mounts every {}s, dm-verity every {}s, full verification every {}s; on \
         drift {:?} after at most {}s",
        MOUNTS_EVERY.as_secs(),
        VERITY_EVERY.as_secs(),
        checks[2].every.as_secs(),
        ctx.action,
        ctx.grace_s
    );
    Enforcement::start(checks, ctx, publisher, respond)
}

#[cfg(test)]
#[path = "enforce_tests.rs"]
mod tests;

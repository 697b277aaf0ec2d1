//! The daemon's side of phoenix rotation: the responder it hands incidents to, and a timer
//! thread that raises the rotation incident when `lifetime.max-age` (less the instance's
//! jitter, [`crate::enforce::lifetime`]) has passed since boot.
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::ship::{JournalEvents, JOURNAL_SOCKET};
use crate::config::{Config, Lifetime};
use crate::enforce::lifetime::{self, Rotation};
use crate::enforce::report::{HostFacts, Instance};
use crate::enforce::respond::{RespondConfig, Responder};
use crate::enforce::Respond;
use crate::host::RealHost;
use crate::logship::PipelineHandle;

/// The responder of this daemon: reports to `<run>/reports` and to every data volume of the
/// config mounted now (read from `mountinfo`), the security event through the journal and
/// `sinks`, then the action (none at all with `report_only`).
pub fn responder(
    config: Option<&Config>,
    run: &Path,
    mountinfo: &Path,
    sinks: Vec<PipelineHandle>,
    journalctl: &Path,
    report_only: bool,
) -> Arc<Responder> {
    let mounts = std::fs::read(mountinfo).unwrap_or_else(|e| {
        log::warn!(
            "reading {} for the data volumes: {e}; reports go to {} only",
            mountinfo.display(),
            run.join("reports").display()
        );
        Vec::new()
    });
    let mut cfg = RespondConfig::from_config(config, &mounts);
    cfg.run_dir = run.join("reports");
    cfg.report_only = report_only;
    let ship = Arc::new(JournalEvents::new(
        sinks,
        Path::new(JOURNAL_SOCKET),
        journalctl,
    ));
    Arc::new(Responder::new(cfg, Arc::new(RealHost), ship))
}

/// Time since boot (CLOCK_BOOTTIME: suspend included, as an instance's age should).
pub fn uptime() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_default()
}

/// The rotation timer's thread.
pub struct RotationTimer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl RotationTimer {
    /// Start the timer for `lifetime`; when due it hands the rotation incident to `respond`
    /// once and ends. `uptime` is the time since boot (a parameter for the tests).
    pub fn start(
        lifetime: &Lifetime,
        instance: Instance,
        respond: Arc<dyn Respond>,
        uptime: fn() -> Duration,
    ) -> std::io::Result<RotationTimer> {
        let seed = lifetime::seed(instance.id.as_deref(), instance.boot_id.as_deref());
        let rotation = Rotation::new(lifetime, &seed);
        log::info!(
            "lifetime: this instance is retired {}s after boot ({}s left)",
            rotation.deadline.as_secs(),
            rotation.left(uptime()).as_secs()
        );
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("pyre-lifetime".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    let up = uptime();
                    if rotation.due(up) {
                        let inc = rotation.incident(
                            up,
                            SystemTime::now(),
                            instance,
                            HostFacts::collect(),
                        );
                        respond.respond(&inc);
                        return;
                    }
                    std::thread::sleep(rotation.left(up).min(Duration::from_millis(200)));
                }
            })?;
        Ok(RotationTimer { stop, thread })
    }

    /// Stop waiting (a response in progress is left to finish with the process).
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if self.thread.is_finished() {
            let _ = self.thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Duration as CfgDuration;
    use crate::enforce::report::{Check, Incident};
    use std::sync::Mutex;

    struct Seen(Mutex<Vec<Incident>>);
    impl Respond for Seen {
        fn respond(&self, i: &Incident) {
            self.0.lock().unwrap().push(i.clone());
        }
    }

    fn long_up() -> Duration {
        Duration::from_secs(3600)
    }

    #[test]
    fn a_due_lifetime_raises_one_rotation_incident() {
        let seen = Arc::new(Seen(Mutex::new(Vec::new())));
        let lifetime = Lifetime {
            max_age: CfgDuration(Duration::from_secs(60)),
            jitter: CfgDuration(Duration::from_secs(10)),
        };
        let instance = Instance {
            id: Some("i-1".into()),
            boot_id: Some("b".into()),
            manifest_digest: "sha256:00".into(),
            ..Instance::default()
        };
        let t = RotationTimer::start(&lifetime, instance, seen.clone(), long_up).unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while seen.0.lock().unwrap().is_empty() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        t.stop();
        let got = seen.0.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event.check, Check::Lifetime);
        assert_eq!(got[0].instance.id.as_deref(), Some("i-1"));
    }

    #[test]
    fn a_lifetime_not_yet_due_raises_nothing() {
        let seen = Arc::new(Seen(Mutex::new(Vec::new())));
        let lifetime = Lifetime {
            max_age: CfgDuration(Duration::from_secs(7200)),
            jitter: CfgDuration(Duration::from_secs(0)),
        };
        let t =
            RotationTimer::start(&lifetime, Instance::default(), seen.clone(), long_up).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        t.stop();
        assert!(seen.0.lock().unwrap().is_empty());
    }
}

//! The full responder behind the checks: joins `enforce::respond::Responder` (persist, ship,
//! post, wait, act) to the checks' [`Respond`] seam, ships its security events through the
//! daemon's journal pipelines ([`JournalEvents`]), and runs the two things the responder does
//! outside a check: the carry-over of reports an earlier instance left unacknowledged on a
//! data volume (at start), and phoenix rotation (`lifetime`: at the deadline, the same
//! response as drift).
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use crate::config::types::{Config, Lifetime};
use crate::enforce::lifetime::{self, Rotation};
use crate::enforce::report::{HostFacts, Incident, Instance};
use crate::enforce::respond::{Outcome, RespondConfig, Responder};
use crate::enforce::Respond;
use crate::host::Clock;
use crate::host::RealHost;
use crate::logship::PipelineHandle;

use super::ship::{JournalEvents, JOURNAL_SOCKET};

/// The responder as the checks call it.
pub struct Plugged(pub Arc<Responder>);

impl Respond for Plugged {
    fn respond(&self, incident: &Incident) {
        log_outcome(&self.0.respond(incident));
    }
}

fn log_outcome(o: &Outcome) {
    log::info!(
        "incident {} ({:?}): written to {:?}, post {:?}, logs {:?}, waited {:?}, stop {:?}",
        o.id,
        o.check,
        o.persisted,
        o.posted,
        o.drained,
        o.waited,
        o.stopped
    );
}

/// The responder for `config`, shipping through `handles`; volumes count when mounted now
/// (`mountinfo`: this process's mount table).
pub fn responder(
    config: Option<&Config>,
    mountinfo: &Path,
    handles: Vec<PipelineHandle>,
    journalctl: &Path,
) -> Arc<Responder> {
    let table = std::fs::read(mountinfo).unwrap_or_else(|e| {
        log::warn!(
            "reading {}: {e}; no data volume gets reports",
            mountinfo.display()
        );
        Vec::new()
    });
    let cfg = RespondConfig::from_config(config, &table);
    let ship = JournalEvents::new(handles, Path::new(JOURNAL_SOCKET), journalctl);
    Arc::new(Responder::new(cfg, Arc::new(RealHost), Arc::new(ship)))
}

/// Ship the reports an earlier instance left unacknowledged, on a thread of its own (each
/// waits up to the grace; the daemon is ready meanwhile).
pub fn carry_over(r: Arc<Responder>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("carry-over".into())
        .spawn(move || {
            for o in r.carry_over() {
                log_outcome(&o);
            }
        })
}

/// Retire the instance at its (jittered) maximum age: sleep until the deadline, then respond
/// with the rotation incident (which powers off). `None` without a `lifetime` section.
pub fn rotate_at_max_age(
    r: Arc<Responder>,
    lifetime: Option<&Lifetime>,
    instance: Instance,
) -> std::io::Result<Option<JoinHandle<()>>> {
    let Some(l) = lifetime else {
        return Ok(None);
    };
    let seed = lifetime::seed(instance.id.as_deref(), instance.boot_id.as_deref());
    let rotation = Rotation::new(l, &seed);
    log::info!(
        "lifetime: retiring the instance {}s after boot",
        rotation.deadline.as_secs()
    );
    let t = std::thread::Builder::new()
        .name("lifetime".into())
        .spawn(move || {
            let host = RealHost;
            while !rotation.due(host.now()) {
                host.sleep(rotation.left(host.now()));
            }
            let inc = rotation.incident(
                host.now(),
                SystemTime::now(),
                instance,
                HostFacts::collect(),
            );
            log_outcome(&r.respond(&inc));
        })?;
    Ok(Some(t))
}

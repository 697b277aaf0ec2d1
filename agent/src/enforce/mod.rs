//! Run-time enforcement: the checks `pyre daemon` runs on the live root (mounts, dm-verity
//! status, full re-verification), the instance lifetime ("phoenix" rotation), and what happens
//! when one of them fires: an [`report::Incident`] is written, shipped, posted, acknowledged
//! (bounded by the grace) and the configured action is taken.
//!
//! `respond` is what happens after a check fired (persist, ship, post, wait, act) and
//! `lifetime` says when the instance has lived long enough.
//!
//! `report` is the contract every part shares: the incident report's JSON (docs/drift-report.md,
//! "Incident reports"), built by the checks, rendered by `pyre report`, read by `pyre status`.
//! [`checks`] are the checks, [`schedule`] runs them, [`incident`] builds the report,
//! [`status`] is what the daemon publishes for `pyre status`, and [`Respond`] is the seam to
//! what happens next.
use std::path::PathBuf;

use crate::logging::MsgId;
use crate::sys::atomic;

pub mod checks;
pub mod incident;
pub mod lifetime;
pub mod priority;
pub mod render;
pub mod report;
pub mod respond;
pub mod schedule;
pub mod status;

use report::Incident;

/// What the daemon does with an incident a check raised: persist it, ship it, post it, wait
/// for the acknowledgements (bounded by the grace), then act. The daemon holds one as
/// `Arc<dyn Respond>`, called from the checks' thread.
pub trait Respond: Send + Sync {
    fn respond(&self, incident: &Incident);
}

/// The plain responder: writes the report to `<reports>/<event id>.json` (atomically, 0640)
/// and logs it as a security event (`PYRE_DRIFT:`), which the log sinks ship like any journal
/// line. It does not act: until the full responder (persist on the data volume, POST, wait
/// for acknowledgements, power off) is plugged in, an incident is reported only.
pub struct LogResponder {
    pub reports: PathBuf,
}

impl Respond for LogResponder {
    fn respond(&self, inc: &Incident) {
        let path = self.reports.join(format!("{}.json", inc.event.id));
        let written = std::fs::create_dir_all(&self.reports).and_then(|()| {
            atomic::write(
                &path,
                &inc.to_json(),
                atomic::Options::replace_with_mode(0o640),
            )
        });
        let stored = match written {
            Ok(()) => format!("report {}", path.display()),
            Err(e) => format!("report NOT written to {}: {e}", path.display()),
        };
        log::error!(
            "{}: incident {} ({:?} check): {}; {stored}; action {:?} not taken (report only)",
            MsgId::Drift,
            inc.event.id,
            inc.event.check,
            inc.event.reason,
            inc.event.action,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::report::*;

    #[test]
    fn the_log_responder_writes_the_report_by_its_id() {
        let d = tempfile::tempdir().unwrap();
        let r = LogResponder {
            reports: d.path().join("reports"),
        };
        let inc = Incident {
            report_version: REPORT_VERSION,
            kind: KIND.into(),
            event: Event {
                id: "20260101T000000Z-ab-mounts".into(),
                time: "2026-01-01T00:00:00.000Z".into(),
                check: Check::Mounts,
                reason: "r".into(),
                action: Action::Poweroff,
                grace_s: 30,
            },
            instance: Instance::default(),
            host: HostFacts::default(),
            findings: vec![],
            drift: None,
        };
        r.respond(&inc);
        let path = d.path().join("reports/20260101T000000Z-ab-mounts.json");
        let back = Incident::from_json(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, inc);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }
}

//! The response to a fired check, end to end on this machine: a real HTTP collector on
//! 127.0.0.1, real log shipping (a file-source pipeline into Debian's rsyslogd over TCP) for
//! the security event and the drain barrier, and the recording host for the shutdown, which
//! is recorded and never done.
//!
//! The sequence shown: persisted → posted (the collector has the exact JSON, and the report
//! was on disk before it arrived) → drained (rsyslog has the event before anything is
//! stopped) → power-off requested → after the stop bound, sync + reboot(2).
mod logship_common;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logship_common::*;
use pyre::config::types::DriftAction;
use pyre::enforce::lifetime::Rotation;
use pyre::enforce::report::{Action, Check, Finding, HostFacts, Incident, Instance};
use pyre::enforce::respond::{
    Outcome, Posted, RespondConfig, Responder, SecurityEvent, ShipEvents, Stopped,
};
use pyre::host::{Op, RecordingHost, Shutdown};
use pyre::logship::drain::drain_all;
use pyre::logship::{SinkSpec, SourceSpec};
use pyre_tests::rsyslog::{Input, Rsyslog};
use pyre_tests::server::{HttpServer, Response};

/// Security events appended to a log file that a real pipeline ships; the drain is the real
/// barrier over it. Notes what the host had done by the time each step ran.
struct FileShip {
    log: PathBuf,
    run: Running,
    host: Arc<RecordingHost>,
    steps: Arc<Mutex<Vec<String>>>,
}

impl ShipEvents for FileShip {
    fn log_event(&self, e: &SecurityEvent) -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.log)
            .map_err(|e| e.to_string())?;
        writeln!(f, "{}", e.message).map_err(|e| e.to_string())
    }
    fn drain(&self, within: Duration) -> Result<u64, String> {
        let r = drain_all(
            std::slice::from_ref(&self.run.handle),
            Instant::now() + within,
        )
        .map_err(|e| e.to_string());
        self.steps.lock().unwrap().push(format!(
            "drained, host ops so far: {}",
            self.host.ops().len()
        ));
        r
    }
}

fn mounts_incident() -> Incident {
    let rotation = Rotation {
        deadline: Duration::from_secs(60),
    };
    let mut inc = rotation.incident(
        Duration::from_secs(61),
        std::time::SystemTime::now(),
        Instance {
            id: Some("i-0123".into()),
            boot_id: Some("bb161606-cbaa".into()),
            manifest_digest: "sha256:abcd".into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            ..Instance::default()
        },
        HostFacts::collect(),
    );
    inc.event.id = inc.event.id.replace("-lifetime", "-mounts");
    inc.event.check = Check::Mounts;
    inc.event.reason = "a mount over sealed /usr/bin/ls".into();
    inc.findings = vec![Finding::Mount {
        path: "/usr/bin/ls".into(),
        fstype: "tmpfs".into(),
        source: "tmpfs".into(),
        sealed: "/usr/bin/ls".into(),
    }];
    inc
}

#[test]
fn persisted_posted_drained_then_powered_off_and_forced_after_the_bound() {
    if no_rsyslog() {
        return;
    }
    let (t, rx, state) = dirs("respond");
    let r = Rsyslog::start(&rx, Input::Tcp).unwrap();
    let events = t.path().join("events.log");
    std::fs::write(&events, b"").unwrap();
    let run = ship(
        SourceSpec::File(events.clone()),
        SinkSpec::new(&format!("syslog+tcp://127.0.0.1:{}", r.port())),
        &state,
        fast_opts(),
    );

    let run_dir = t.path().join("run/pyre/reports");
    let volume = t.path().join("data/pyre/reports");
    let steps = Arc::new(Mutex::new(Vec::new()));
    let host = Arc::new(RecordingHost::new());
    let (seen_run_dir, seen_steps, seen_host) = (run_dir.clone(), steps.clone(), host.clone());
    let collector = HttpServer::start(move |req| {
        let on_disk = std::fs::read_dir(&seen_run_dir).map_or(0, |d| d.count());
        seen_steps.lock().unwrap().push(format!(
            "posted, reports on disk: {on_disk}, host ops so far: {}",
            seen_host.ops().len()
        ));
        assert_eq!(req.path, "/reports");
        Response::new(201, "")
    })
    .unwrap();

    let cfg = RespondConfig {
        action: DriftAction::Poweroff,
        grace: Duration::from_secs(30),
        report_url: Some(collector.host_url("/reports")),
        run_dir: run_dir.clone(),
        volume_dirs: vec![volume.clone()],
        stop_bound: Duration::from_secs(90),
        attempt_timeout: Duration::from_secs(5),
        report_only: false,
    };
    let ship = Arc::new(FileShip {
        log: events,
        run,
        host: host.clone(),
        steps: steps.clone(),
    });
    let start = host.elapsed();
    let inc = mounts_incident();
    let out: Outcome = Responder::new(cfg, host.clone(), ship).respond(&inc);

    // Persisted, to /run and the volume (then marked acknowledged there).
    let id = inc.event.id.clone();
    let stored = std::fs::read(run_dir.join(format!("{id}.json"))).unwrap();
    let back = Incident::from_json(&stored).unwrap();
    assert_eq!(back.event.action, Action::Poweroff);
    assert_eq!(back.event.grace_s, 30);
    assert_eq!(back.findings, inc.findings);
    assert!(volume.join(format!("{id}.acked.json")).exists());
    // Posted: the exact JSON.
    let reqs = collector.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body, stored);
    assert_eq!(
        out.posted,
        Posted::Acknowledged {
            status: 201,
            attempts: 1
        }
    );
    // Drained: rsyslog has the security event.
    assert!(out.drained.is_ok(), "{:?}", out.drained);
    let want = format!("PYRE_DRIFT: incident {id} (check mounts)");
    wait_until("rsyslog to write the event", 10, || {
        r.lines().iter().any(|l| l.contains(&want))
    });
    let got = r.lines();
    let event = got
        .iter()
        .find(|l| l.contains(&want))
        .unwrap_or_else(|| panic!("the event in {got:?}"));
    assert!(event.ends_with("action poweroff"), "{event}");
    // In that order, before anything was stopped.
    let steps = steps.lock().unwrap().clone();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(
        steps.contains(&"posted, reports on disk: 1, host ops so far: 0".to_string()),
        "{steps:?}"
    );
    assert!(
        steps.contains(&"drained, host ops so far: 0".to_string()),
        "{steps:?}"
    );
    // Then the orderly power-off, and reboot(2) once the bound passed.
    assert_eq!(
        host.ops(),
        [
            Op::RequestShutdown(Shutdown::PowerOff),
            Op::Sync,
            Op::ForceShutdown(Shutdown::PowerOff)
        ]
    );
    assert_eq!(out.stopped, Stopped::Forced { queued: true });
    assert_eq!(host.elapsed() - start - out.waited, Duration::from_secs(90));
}

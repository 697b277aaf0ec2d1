use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;

use pyre_tests::server::{HttpServer, Response};

use super::*;
use crate::enforce::report::{Event, Finding, HostFacts, Instance, KIND, REPORT_VERSION};
use crate::host::{Op, RecordingHost};

/// The log shipping side, recorded: events in order, and each drain's bound.
#[derive(Default)]
struct Ship {
    events: Mutex<Vec<SecurityEvent>>,
    drains: Mutex<Vec<Duration>>,
    /// Drains fail with this when set.
    pending: Option<String>,
}

impl ShipEvents for Ship {
    fn log_event(&self, event: &SecurityEvent) -> Result<(), String> {
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
    fn drain(&self, within: Duration) -> Result<u64, String> {
        self.drains.lock().unwrap().push(within);
        match &self.pending {
            Some(p) => Err(p.clone()),
            None => Ok(7),
        }
    }
}

fn incident(check: Check, id: &str) -> Incident {
    Incident {
        report_version: REPORT_VERSION,
        kind: KIND.into(),
        event: Event {
            id: id.into(),
            time: "2026-11-23T10:15:02.120Z".into(),
            check,
            reason: "a mount over sealed /usr/bin/ls".into(),
            action: Action::Poweroff,
            grace_s: 0,
        },
        instance: Instance {
            id: Some("i-0123".into()),
            manifest_digest: "sha256:00".into(),
            boot_id: Some("bb161606".into()),
            agent_version: "0.1.0".into(),
            ..Instance::default()
        },
        host: HostFacts::default(),
        findings: vec![Finding::Root {
            detail: "root is rw".into(),
        }],
        drift: None,
    }
}

struct Rig {
    _tmp: tempfile::TempDir,
    cfg: RespondConfig,
    host: Arc<RecordingHost>,
    ship: Arc<Ship>,
}

impl Rig {
    fn new(url: Option<String>) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = RespondConfig {
            action: DriftAction::Poweroff,
            grace: Duration::from_secs(30),
            report_url: url,
            run_dir: tmp.path().join("run/pyre/reports"),
            volume_dirs: vec![
                tmp.path().join("data/pyre/reports"),
                tmp.path().join("logs/pyre/reports"),
            ],
            stop_bound: Duration::from_secs(90),
            attempt_timeout: Duration::from_millis(150),
            report_only: false,
        };
        Rig {
            _tmp: tmp,
            cfg,
            host: Arc::new(RecordingHost::new()),
            ship: Arc::new(Ship::default()),
        }
    }
    fn responder(&self) -> Responder {
        Responder::new(self.cfg.clone(), self.host.clone(), self.ship.clone())
    }
}

/// A listener that accepts and never answers (kept open by the returned value).
fn silent_endpoint() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://tok:s3cret@{}/r?key=abc", l.local_addr().unwrap());
    (l, url)
}

fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/r")
}

fn assert_powered_off_after_the_bound(host: &RecordingHost, stop_bound: Duration) {
    let ops = host.ops();
    assert_eq!(
        ops,
        [
            Op::RequestShutdown(Shutdown::PowerOff),
            Op::Sync,
            Op::ForceShutdown(Shutdown::PowerOff)
        ]
    );
    assert!(host.elapsed() >= stop_bound);
}

#[test]
fn a_silent_endpoint_delays_the_power_off_by_at_most_the_grace() {
    let (_listener, url) = silent_endpoint();
    let rig = Rig::new(Some(url));
    let real = std::time::Instant::now();
    let out = rig
        .responder()
        .respond(&incident(Check::Mounts, "a-mounts"));
    assert!(
        real.elapsed() < Duration::from_secs(10),
        "{:?}",
        real.elapsed()
    );
    let Posted::Failed { last, attempts } = &out.posted else {
        panic!("{:?}", out.posted)
    };
    assert!(*attempts >= 2, "retried: {attempts}");
    assert!(
        !last.contains("s3cret") && !last.contains("key=abc"),
        "{last}"
    );
    assert!(
        last.contains("timed out") || last.contains("timeout"),
        "{last}"
    );
    assert!(out.waited <= rig.cfg.grace, "{:?}", out.waited);
    assert!(
        out.waited >= rig.cfg.grace - post::BACKOFF_MAX,
        "{:?}",
        out.waited
    );
    assert_eq!(out.action, Action::Poweroff);
    assert_eq!(out.stopped, Stopped::Forced { queued: true });
    assert_powered_off_after_the_bound(&rig.host, rig.cfg.stop_bound);
    assert!(rig.host.elapsed() <= rig.cfg.grace + rig.cfg.stop_bound + Duration::from_secs(2));
}

#[test]
fn a_closed_port_is_retried_until_the_grace_then_the_machine_powers_off() {
    let rig = Rig::new(Some(closed_port_url()));
    let out = rig
        .responder()
        .respond(&incident(Check::Verify, "b-verify"));
    let Posted::Failed { last, attempts } = &out.posted else {
        panic!("{:?}", out.posted)
    };
    assert!(*attempts >= 5, "{attempts}");
    assert!(last.to_lowercase().contains("connect"), "{last}");
    assert!(out.waited <= rig.cfg.grace && out.waited >= rig.cfg.grace - post::BACKOFF_MAX);
    assert_powered_off_after_the_bound(&rig.host, rig.cfg.stop_bound);
    // The drain had the whole grace (nothing else had taken time yet).
    assert_eq!(*rig.ship.drains.lock().unwrap(), [rig.cfg.grace]);
}

#[test]
fn persisted_to_run_and_every_volume_and_one_failure_stops_nothing() {
    let mut rig = Rig::new(None);
    // The first volume's reports directory cannot be made: a file is in the way.
    let blocked = rig.cfg.volume_dirs[0].clone();
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, b"in the way").unwrap();
    rig.cfg.action = DriftAction::Report;
    let out = rig
        .responder()
        .respond(&incident(Check::Verity, "c/../verity"));
    assert_eq!(out.id, "c_.._verity", "a file stem, never a path");
    let want = [
        rig.cfg.run_dir.join("c_.._verity.json"),
        rig.cfg.volume_dirs[1].join("c_.._verity.json"),
    ];
    assert_eq!(out.persisted, want);
    // No report-url and a drained log: acknowledged, so the volume copy is renamed.
    let now = [
        want[0].clone(),
        rig.cfg.volume_dirs[1].join("c_.._verity.acked.json"),
    ];
    for p in &now {
        let stored = Incident::from_json(&std::fs::read(p).unwrap()).unwrap();
        assert_eq!(stored.event.action, Action::Report);
        assert_eq!(stored.event.grace_s, 30);
        assert_eq!(
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let dir_mode = std::fs::metadata(p.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }
    // report: logged, shipped, drained, nothing stopped.
    assert_eq!(out.stopped, Stopped::NotAsked);
    assert!(rig.host.ops().is_empty());
    let events = rig.ship.events.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].msgid, MsgId::Drift);
    assert_eq!(events[0].severity, 2);
    assert_eq!(
        events[0].message,
        "PYRE_DRIFT: incident c/../verity (check verity): a mount over sealed /usr/bin/ls; action report"
    );
    assert_eq!(out.drained, Ok(7));
}

#[test]
fn an_acknowledged_report_is_marked_on_the_volume_and_never_carried() {
    let collector = HttpServer::start(|_| Response::new(202, "")).unwrap();
    let mut rig = Rig::new(Some(collector.host_url("/reports")));
    rig.cfg.action = DriftAction::Report;
    let out = rig
        .responder()
        .respond(&incident(Check::Mounts, "d-mounts"));
    assert_eq!(
        out.posted,
        Posted::Acknowledged {
            status: 202,
            attempts: 1
        }
    );
    let reqs = collector.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].headers["content-type"], "application/json");
    let stored = std::fs::read(rig.cfg.run_dir.join("d-mounts.json")).unwrap();
    assert_eq!(reqs[0].body, stored, "the collector has the exact JSON");
    for dir in &rig.cfg.volume_dirs {
        assert!(dir.join("d-mounts.acked.json").exists());
        assert!(!dir.join("d-mounts.json").exists());
    }
    assert!(rig.responder().carry_over().is_empty());
    assert_eq!(collector.requests().len(), 1);
}

#[test]
fn carry_over_ships_an_earlier_unacknowledged_report_exactly_once() {
    let collector = HttpServer::start(|_| Response::ok("")).unwrap();
    let rig = Rig::new(Some(collector.host_url("/r")));
    // An earlier instance left a report (its endpoint was down), and a broken file.
    let earlier = incident(Check::Lifetime, "e-lifetime");
    let vol = &rig.cfg.volume_dirs[0];
    std::fs::create_dir_all(vol).unwrap();
    std::fs::write(vol.join("e-lifetime.json"), earlier.to_json()).unwrap();
    std::fs::write(vol.join("broken.json"), b"{not json").unwrap();
    std::fs::write(vol.join("old.acked.json"), earlier.to_json()).unwrap();

    let outs = rig.responder().carry_over();
    assert_eq!(outs.len(), 1, "{outs:?}");
    assert_eq!(outs[0].check, Check::Carried);
    assert_eq!(outs[0].stopped, Stopped::NotAsked);
    assert!(
        rig.host.ops().is_empty(),
        "carrying never stops the machine"
    );
    let reqs = collector.requests();
    assert_eq!(reqs.len(), 1);
    let sent = Incident::from_json(&reqs[0].body).unwrap();
    assert_eq!(sent.event.id, "e-lifetime");
    assert_eq!(sent.event.check, Check::Carried);
    assert_eq!(sent.event.action, Action::None);
    assert!(
        sent.event.reason.starts_with(
            "carried over from an earlier instance (check lifetime, action poweroff): "
        ),
        "{}",
        sent.event.reason
    );
    assert_eq!(
        sent.instance, earlier.instance,
        "which instance it was stays"
    );
    let events = rig.ship.events.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].msgid, events[0].severity), (MsgId::Rotation, 5));
    assert!(vol.join("e-lifetime.acked.json").exists());
    assert!(
        vol.join("broken.json").exists(),
        "left for people to look at"
    );
    assert!(rig.cfg.run_dir.join("e-lifetime.json").exists());

    assert!(rig.responder().carry_over().is_empty(), "exactly once");
    assert_eq!(collector.requests().len(), 1);
    assert_eq!(rig.ship.events.lock().unwrap().len(), 1);
}

#[test]
fn an_unacknowledged_carry_stays_for_the_next_boot() {
    let collector = HttpServer::start(|_| Response::new(400, "no")).unwrap();
    let rig = Rig::new(Some(collector.host_url("/r")));
    let vol = &rig.cfg.volume_dirs[1];
    std::fs::create_dir_all(vol).unwrap();
    std::fs::write(
        vol.join("f-verify.json"),
        incident(Check::Verify, "f-verify").to_json(),
    )
    .unwrap();
    let outs = rig.responder().carry_over();
    assert!(
        matches!(&outs[0].posted, Posted::Failed { attempts: 1, last } if last.contains("400"))
    );
    assert!(vol.join("f-verify.json").exists());
}

#[test]
fn lifetime_always_powers_off_and_reboot_is_bounded_by_the_volume_history() {
    let mut rig = Rig::new(None);
    rig.cfg.action = DriftAction::Report;
    let out = rig
        .responder()
        .respond(&incident(Check::Lifetime, "g-lifetime"));
    assert_eq!(out.action, Action::Poweroff);

    for n in 0..store::MAX_DRIFT_REBOOTS {
        let mut rig = Rig::new(None);
        rig.cfg.action = DriftAction::Reboot;
        let now = unix_now();
        // n drift reboots in the last hours, and one long ago that no longer counts.
        let mut history: Vec<u64> = (0..n as u64).map(|i| now - 3600 * (i + 1)).collect();
        history.push(now - 3 * 24 * 3600);
        store::record_reboot(
            &rig.cfg.volume_dirs[..1],
            &history[..history.len() - 1],
            now - 1,
        );
        let out = rig
            .responder()
            .respond(&incident(Check::Verify, "h-verify"));
        let allowed = n + 1 < store::MAX_DRIFT_REBOOTS;
        let (action, how) = if allowed {
            (Action::Reboot, Shutdown::Reboot)
        } else {
            (Action::Poweroff, Shutdown::PowerOff)
        };
        assert_eq!(out.action, action, "{n} earlier");
        assert_eq!(rig.host.ops()[0], Op::RequestShutdown(how));
        // The history on every volume counts this reboot too.
        let after = store::reboot_history(&rig.cfg.volume_dirs[1..]);
        assert_eq!(
            after.len(),
            if allowed { n + 2 } else { 0 },
            "{n}: {after:?}"
        );
    }
}

#[test]
fn the_reboot_bound_table() {
    let now = 10 * 24 * 3600;
    let h = |ago: &[u64]| ago.iter().map(|a| now - a).collect::<Vec<_>>();
    for (history, allowed) in [
        (h(&[]), true),
        (h(&[60, 120]), true),
        (h(&[60, 120, 180]), false),
        (h(&[60, 120, 25 * 3600]), true),
        (h(&[60, 120, 24 * 3600]), true),
    ] {
        assert_eq!(store::reboot_allowed(&history, now), allowed, "{history:?}");
    }
}

#[test]
fn an_orderly_shutdown_that_cannot_be_queued_is_forced_at_once() {
    let rig = Rig::new(None);
    rig.host
        .fail_when(|op| matches!(op, Op::RequestShutdown(_)).then_some(libc::ENOENT));
    rig.host
        .fail_when(|op| matches!(op, Op::ForceShutdown(_)).then_some(libc::EPERM));
    let start = rig.host.elapsed();
    let out = rig
        .responder()
        .respond(&incident(Check::Mounts, "i-mounts"));
    assert_eq!(rig.host.elapsed(), start, "no bound waited, no grace used");
    assert!(
        matches!(out.stopped, Stopped::Failed { ref error } if error.contains("EPERM") || error.contains("not permitted"))
    );
    assert_eq!(
        rig.host.ops(),
        [
            Op::RequestShutdown(Shutdown::PowerOff),
            Op::Sync,
            Op::ForceShutdown(Shutdown::PowerOff)
        ]
    );
}

#[test]
fn a_drain_that_misses_the_grace_does_not_hold_the_action() {
    let mut rig = Rig::new(None);
    rig.ship = Arc::new(Ship {
        pending: Some("3 records pending".into()),
        ..Ship::default()
    });
    let out = rig
        .responder()
        .respond(&incident(Check::Verify, "j-verify"));
    assert_eq!(out.drained, Err("3 records pending".into()));
    assert_powered_off_after_the_bound(&rig.host, rig.cfg.stop_bound);
}

#[test]
fn from_config_takes_drift_and_the_volumes() {
    let c: Config = serde_json::from_value(serde_json::json!({
        "version": 1,
        "volumes": [
            {"name": "data", "device": {"label": "data"}, "filesystem": "ext4",
             "mountpoint": "/var/lib/data"},
            {"name": "absent", "device": {"label": "more"}, "filesystem": "ext4",
             "mountpoint": "/var/lib/more", "required": false}
        ],
        "drift": {"action": "reboot", "grace": "5s", "report-url": "https://c.example/r"}
    }))
    .unwrap();
    let mountinfo = b"22 1 254:0 / / ro,relatime - erofs /dev/mapper/root ro\n\
        40 22 8:16 / /var/lib/data rw,nodev,noexec - ext4 /dev/vdb rw\n";
    let r = RespondConfig::from_config(Some(&c), mountinfo);
    assert_eq!(r.action, DriftAction::Reboot);
    assert_eq!(r.grace, Duration::from_secs(5));
    assert_eq!(r.report_url.as_deref(), Some("https://c.example/r"));
    assert_eq!(r.volume_dirs, [Path::new("/var/lib/data/pyre/reports")]);
    assert_eq!(r.run_dir, Path::new(RUN_DIR));
    let d = RespondConfig::from_config(None, mountinfo);
    assert_eq!(
        (d.action, d.grace, d.report_url),
        (DriftAction::Poweroff, DEFAULT_GRACE, None)
    );
}

#[test]
fn without_a_report_url_the_drain_is_the_acknowledgement() {
    let mut rig = Rig::new(None);
    rig.cfg.action = DriftAction::Report;
    rig.responder()
        .respond(&incident(Check::Verify, "k-verify"));
    for dir in &rig.cfg.volume_dirs {
        assert!(dir.join("k-verify.acked.json").exists());
    }
    rig.ship = Arc::new(Ship {
        pending: Some("sink down".into()),
        ..Ship::default()
    });
    rig.responder()
        .respond(&incident(Check::Verify, "l-verify"));
    for dir in &rig.cfg.volume_dirs {
        assert!(
            dir.join("l-verify.json").exists(),
            "kept for the next instance"
        );
    }
}

use super::*;
use crate::enforce::report::Finding;
use crate::host::RecordingHost;
use std::sync::Mutex;

/// A check that plays a script of outcomes (then repeats the last) and logs when it ran.
struct Scripted {
    kind: Kind,
    script: Vec<Outcome>,
    ran: Arc<Mutex<Vec<(Kind, Duration)>>>,
    clock: Arc<RecordingHost>,
    /// How long a run takes on the fake clock.
    takes: Duration,
}

impl Check for Scripted {
    fn kind(&self) -> Kind {
        self.kind
    }
    fn run(&mut self) -> Outcome {
        self.ran.lock().unwrap().push((self.kind, self.clock.now()));
        self.clock.sleep(self.takes);
        if self.script.len() > 1 {
            self.script.remove(0)
        } else {
            self.script[0].clone()
        }
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<Incident>>);

impl Respond for Collect {
    fn respond(&self, i: &Incident) {
        self.0.lock().unwrap().push(i.clone());
    }
}

fn found(key: &str) -> Outcome {
    Outcome::Found(Found {
        reason: format!("found {key}"),
        findings: vec![Finding::Root { detail: key.into() }],
        drift: None,
        key: key.into(),
    })
}

struct Rig {
    clock: Arc<RecordingHost>,
    ran: Arc<Mutex<Vec<(Kind, Duration)>>>,
    responded: Arc<Collect>,
    published: Arc<Mutex<Vec<ChecksState>>>,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            clock: Arc::new(RecordingHost::new()),
            ran: Arc::default(),
            responded: Arc::default(),
            published: Arc::default(),
        }
    }

    fn check(&self, kind: Kind, every: u64, script: Vec<Outcome>, takes: u64) -> Scheduled {
        Scheduled {
            check: Box::new(Scripted {
                kind,
                script,
                ran: self.ran.clone(),
                clock: self.clock.clone(),
                takes: Duration::from_secs(takes),
            }),
            every: Duration::from_secs(every),
            first: Duration::from_secs(every),
        }
    }

    fn scheduler(&self, checks: Vec<Scheduled>) -> Scheduler {
        let published = self.published.clone();
        Scheduler::new(
            checks,
            self.clock.clone(),
            self.responded.clone(),
            IncidentContext::new(Default::default(), None),
            Box::new(move |s| published.lock().unwrap().push(s.clone())),
        )
        .with_facts(HostFacts::default)
    }
}

#[test]
fn each_check_on_its_own_period_one_at_a_time() {
    let rig = Rig::new();
    let t0 = rig.clock.now();
    let mut s = rig.scheduler(vec![
        rig.check(Kind::Mounts, 5, vec![Outcome::Clean("ok".into())], 0),
        rig.check(Kind::Verify, 12, vec![Outcome::Clean("ok".into())], 4),
    ]);
    while rig.clock.now() < t0 + Duration::from_secs(30) {
        let wait = s.due_in();
        if wait.is_zero() {
            s.run_next();
        } else {
            rig.clock.sleep(wait);
        }
    }
    let ran: Vec<(Kind, u64)> = rig
        .ran
        .lock()
        .unwrap()
        .iter()
        .map(|(k, t)| (*k, (*t - t0).as_secs()))
        .collect();
    // The verify run at 12 takes 4 s: the mounts check due at 15 waits for it (no overlap),
    // then keeps its period from when it ran; the next verification is a period after the
    // last one ended (16 + 12), never back to back.
    assert_eq!(
        ran,
        [
            (Kind::Mounts, 5),
            (Kind::Mounts, 10),
            (Kind::Verify, 12),
            (Kind::Mounts, 16),
            (Kind::Mounts, 21),
            (Kind::Mounts, 26),
            (Kind::Verify, 28),
        ]
    );
    let last = rig.published.lock().unwrap().last().cloned().unwrap();
    let verify = last
        .checks
        .iter()
        .find(|c| c.check == Kind::Verify)
        .unwrap();
    assert_eq!((verify.runs, verify.every_s), (2, 12));
    assert_eq!(verify.last.as_ref().unwrap().duration_ms, 4000);
    assert!(rig.responded.0.lock().unwrap().is_empty());
}

#[test]
fn an_incident_is_reported_once_until_the_check_is_clean_again() {
    let rig = Rig::new();
    let script = vec![
        Outcome::Clean("ok".into()),
        found("a"),
        found("a"),
        found("b"),
        Outcome::Failed("unreadable".into()),
        found("b"),
        Outcome::Clean("ok".into()),
        found("b"),
    ];
    let mut s = rig.scheduler(vec![rig.check(Kind::Mounts, 5, script, 0)]);
    for _ in 0..8 {
        s.run_next();
    }
    let got: Vec<String> = rig
        .responded
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|i| i.event.reason.clone())
        .collect();
    assert_eq!(got, ["found a", "found b", "found b"]);
    let st = s.state();
    assert_eq!((st.checks[0].runs, st.checks[0].failures), (8, 1));
    let inc = &rig.responded.0.lock().unwrap()[0];
    assert!(inc.event.id.ends_with("-noboot-mounts"), "{}", inc.event.id);
    assert_eq!(
        st.checks[0]
            .last_incident
            .as_deref()
            .map(|s| s.ends_with("mounts")),
        Some(true)
    );
}

#[test]
fn a_failed_check_is_neither_clean_nor_drift() {
    let rig = Rig::new();
    let mut s = rig.scheduler(vec![rig.check(
        Kind::Mounts,
        5,
        vec![Outcome::Failed("no table".into())],
        0,
    )]);
    s.run_next();
    s.run_next();
    let st = s.state();
    let last = st.checks[0].last.as_ref().unwrap();
    assert_eq!(
        (last.result, last.detail.as_str()),
        (RunResult::Failed, "no table")
    );
    assert_eq!(st.checks[0].failures, 2);
    assert!(rig.responded.0.lock().unwrap().is_empty());
}

#[test]
fn run_stops_promptly() {
    let rig = Rig::new();
    let s = rig.scheduler(vec![rig.check(
        Kind::Verify,
        3600,
        vec![Outcome::Clean("ok".into())],
        0,
    )]);
    let stop = Arc::new(AtomicBool::new(false));
    let real = std::time::Instant::now();
    let t = {
        let stop = stop.clone();
        std::thread::spawn(move || s.run(&stop))
    };
    stop.store(true, Ordering::SeqCst);
    t.join().unwrap();
    assert!(real.elapsed() < Duration::from_secs(5));
    assert!(
        !rig.published.lock().unwrap().is_empty(),
        "published at start"
    );
}

#[test]
fn jitter_is_bounded_and_per_instance() {
    let h = Duration::from_secs(3600);
    let a = jittered(h, 0.1, "boot-a");
    let b = jittered(h, 0.1, "boot-b");
    assert_eq!(a, jittered(h, 0.1, "boot-a"));
    assert_ne!(a, b);
    for seed in ["", "x", "boot-a", "0123456789abcdef"] {
        let j = jittered(h, 0.1, seed);
        assert!(
            j >= Duration::from_secs(3240) && j <= Duration::from_secs(3960),
            "{j:?}"
        );
    }
}

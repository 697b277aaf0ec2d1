use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Mutex;

use super::*;
use crate::logship::clock::SystemClock;
use crate::logship::{SinkSpec, SourceSpec};

fn identity() -> Identity {
    Identity {
        hostname: "web-1".into(),
        image: "img".into(),
        manifest: "sha256:aa".into(),
        instance: "i-1".into(),
        boot_id: "boot-1".into(),
    }
}

fn start(logs: &LogsSpec, state: &Path) -> Daemon {
    let opts = PipelineOptions {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..PipelineOptions::default()
    };
    Daemon::start(
        logs,
        &identity(),
        state,
        &SourcePaths::default(),
        &opts,
        Arc::new(SystemClock::new()),
    )
    .unwrap()
}

#[test]
fn config_missing_invalid_or_without_logs() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("config.json");
    assert_eq!(load_config(&path).unwrap(), None);
    assert!(logs_of(None, &path).unwrap().sinks.is_empty());
    std::fs::write(&path, r#"{"version":1,"hostname":"a"}"#).unwrap();
    let c = load_config(&path).unwrap();
    assert_eq!(logs_of(c.as_ref(), &path).unwrap(), LogsSpec::default());
    std::fs::write(&path, r#"{"version":2}"#).unwrap();
    let e = load_config(&path).unwrap_err().to_string();
    assert!(e.starts_with("the applied config "), "{e}");
    std::fs::write(
        &path,
        r#"{"version":1,"logs":{"sources":["file:rel"],"sinks":[{"url":"relp://h:1"}]}}"#,
    )
    .unwrap();
    if let Ok(c) = load_config(&path) {
        assert!(logs_of(c.as_ref(), &path).is_err());
    }
}

#[test]
fn idle_daemon_serves_drain_and_stops() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state/logs");
    let daemon = start(&LogsSpec::default(), &state);
    assert_eq!(daemon.summary(), "idle: no logs to ship");
    assert_eq!(drain::request(&state, Duration::from_secs(2)).unwrap(), 0);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let stop = AtomicBool::new(true);
    daemon.run_until(&stop, &Notifier::new(None).unwrap(), None);
    assert_eq!(daemon.shutdown(Instant::now()).unwrap(), 0);
}

#[test]
fn ships_a_file_and_drains_on_shutdown() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    std::fs::write(&log, "one\ntwo\n").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::<String>::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let (c, _) = listener.accept().unwrap();
        for line in BufReader::new(c).lines() {
            g.lock().unwrap().push(line.unwrap());
        }
    });
    let mut sink = SinkSpec::new(&format!("syslog+tcp://127.0.0.1:{port}"));
    sink.framing = Some(crate::logship::Framing::Newline);
    let mut bad = SinkSpec::new("syslog+tls://127.0.0.1:1");
    bad.ca = Some(d.path().join("no-such-ca.pem"));
    let logs = LogsSpec {
        sources: vec![SourceSpec::File(log.clone())],
        sinks: vec![sink, bad],
    };
    let daemon = start(&logs, &d.path().join("state"));
    assert_eq!(daemon.handles().len(), 1);
    assert_eq!(
        daemon.summary(),
        "shipping logs: 1 pipeline(s), 1 could not be opened"
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"three\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let acked = daemon
        .shutdown(Instant::now() + Duration::from_secs(10))
        .unwrap();
    assert_eq!(acked, 3);
    let lines = got.lock().unwrap().clone();
    for (line, want) in lines.iter().zip(["one", "two", "three"]) {
        assert!(line.contains("web-1") && line.ends_with(want), "{line}");
    }
}

#[test]
fn watchdog_pings_until_stopped() {
    let d = tempfile::tempdir().unwrap();
    let sock = std::os::unix::net::UnixDatagram::bind(d.path().join("n")).unwrap();
    sock.set_nonblocking(true).unwrap();
    let notifier = Notifier::new(Some(d.path().join("n").as_os_str())).unwrap();
    let daemon = start(&LogsSpec::default(), &d.path().join("state"));
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(250));
        s.store(true, Ordering::SeqCst);
    });
    daemon.run_until(&stop, &notifier, Some(Duration::from_millis(40)));
    t.join().unwrap();
    let mut n = 0;
    let mut buf = [0u8; 64];
    while let Ok(len) = sock.recv(&mut buf) {
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        n += 1;
    }
    assert!(n >= 3, "{n} pings");
    daemon.shutdown(Instant::now()).unwrap();
}

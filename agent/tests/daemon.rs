//! `pyre daemon` as a process against a real rsyslog (imtcp, octet-counted) on 127.0.0.1: it
//! reads an applied config with a file source, says READY=1 on $NOTIFY_SOCKET, ships every line
//! with the configured hostname and the manifest digest of the boot record, pings the watchdog,
//! and on SIGTERM drains before it exits 0.
mod logship_common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use logship_common::*;
use pyre_tests::rsyslog::{Input, Rsyslog};

const N: u64 = 500;

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn daemon_ships_to_rsyslog_and_drains_on_sigterm() {
    if no_rsyslog() {
        return;
    }
    let (t, rx, state) = dirs("daemon");
    let r = Rsyslog::start(&rx, Input::Tcp).unwrap();
    let run = t.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let src = t.path().join("app.log");
    write_lines(&src, 1..=N / 2);
    let config = run.join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"version":1,"hostname":"web-9","logs":{{"sources":["file:{}"],
               "sinks":[{{"url":"syslog+tcp://127.0.0.1:{}"}}]}}}}"#,
            src.display(),
            r.port()
        ),
    )
    .unwrap();
    std::fs::write(
        run.join("boot.json"),
        r#"{"version":1,"manifest-digest":"sha256:feed"}"#,
    )
    .unwrap();
    std::fs::write(run.join("instance.json"), r#"{"instance-id":"i-77"}"#).unwrap();
    let boot_id = t.path().join("boot_id");
    std::fs::write(&boot_id, "boot-d\n").unwrap();
    let notify = t.path().join("notify");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pyre"))
        // Never act on the host.
        .args(["daemon", "--report-only", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .arg("--run")
        .arg(&run)
        .arg("--boot-id-file")
        .arg(&boot_id)
        .args(["--cmdline", "/dev/null", "--os-release", "/dev/null"])
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let ready = recv(&sock);
    assert!(
        ready.starts_with("READY=1\nSTATUS=shipping logs: 1 pipeline(s)"),
        "{ready}"
    );
    assert_eq!(recv(&sock), "WATCHDOG=1");
    write_lines(&src, N / 2 + 1..=N);
    // Drain while running, as `pyre logs drain` would.
    let out = Command::new(env!("CARGO_BIN_EXE_pyre"))
        .args(["logs", "drain", "--deadline", "20s", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut last = String::new();
    while let Ok(m) = recv_nonblocking(&sock) {
        last = m;
    }
    assert!(last.starts_with("STOPPING=1"), "{last}");
    wait_until("rsyslog to write everything", 10, || {
        count_by_seq(r.lines().iter().map(String::as_str)).len() as u64 == N
    });
    let lines = r.lines();
    let counts = count_by_seq(lines.iter().map(String::as_str));
    assert_eq!((missing(&counts, N).len(), duplicates(&counts)), (0, 0));
    let first = lines.iter().find(|l| l.contains("seq=\"1\"")).unwrap();
    assert!(
        first.contains(" web-9 - - - [pyre@32473 manifest=\"sha256:feed\" instance=\"i-77\" boot_id=\"boot-d\" source=\"file:")
            && first.ends_with("line 000001"),
        "{first}"
    );
}

fn recv_nonblocking(sock: &UnixDatagram) -> std::io::Result<String> {
    sock.set_nonblocking(true)?;
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

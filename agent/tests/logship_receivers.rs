//! Log shipping against real receivers started here on 127.0.0.1: Debian's rsyslogd (imtcp,
//! imtcp over gnutls, imrelp) and a Loki push API receiver.
mod logship_common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use logship_common::*;
use pyre::logship::sink::{self, SinkError};
use pyre::logship::source::SourcePaths;
use pyre::logship::{Framing, SinkSpec, SourceSpec};
use pyre_tests::certs::{TestPki, SERVER_NAME};
use pyre_tests::loki::LokiReceiver;
use pyre_tests::rsyslog::{Input, Rsyslog, ServerTls};

const N: u64 = 2000;

fn deliver_exactly_once(
    name: &str,
    input: impl Fn(&std::path::Path) -> Input,
    sink: impl Fn(u16) -> SinkSpec,
) {
    let (t, rx, state) = dirs(name);
    let r = Rsyslog::start(&rx, input(t.path())).unwrap();
    let src = t.path().join("app.log");
    write_lines(&src, 1..=N);
    let run = ship(SourceSpec::File(src), sink(r.port()), &state, fast_opts());
    run.drain(30);
    wait_until("rsyslog to write everything", 10, || {
        count_by_seq(r.lines().iter().map(String::as_str)).len() as u64 == N
    });
    let lines = r.lines();
    let counts = count_by_seq(lines.iter().map(String::as_str));
    assert_eq!(
        (missing(&counts, N).len(), duplicates(&counts)),
        (0, 0),
        "{name}"
    );
    let first = lines.iter().find(|l| l.contains("seq=\"1\"")).unwrap();
    assert!(
        first.starts_with("<14>1 ")
            && first.contains(" web-1 - - - [pyre@32473 image=\"img-7\" manifest=\"sha256:abcd\" instance=\"i-0123\" boot_id=\"boot-a\" source=\"file:")
            && first.ends_with("seq=\"1\"] line 000001"),
        "{first}"
    );
}

fn pki(dir: &std::path::Path) -> TestPki {
    TestPki::make(&dir.join("pki")).unwrap()
}

fn tls_input(dir: &std::path::Path, require_client_cert: bool) -> Input {
    let p = pki(dir);
    Input::Tls(ServerTls {
        ca: p.ca,
        cert: p.server_cert,
        key: p.server_key,
        require_client_cert,
    })
}

#[test]
fn rsyslog_tcp_octet_counted_and_newline() {
    if no_rsyslog() {
        return;
    }
    deliver_exactly_once(
        "tcp",
        |_| Input::Tcp,
        |port| SinkSpec::new(&format!("syslog+tcp://127.0.0.1:{port}")),
    );
    deliver_exactly_once(
        "tcp-lf",
        |_| Input::Tcp,
        |port| SinkSpec {
            framing: Some(Framing::Newline),
            ..SinkSpec::new(&format!("syslog+tcp://127.0.0.1:{port}"))
        },
    );
}

#[test]
fn rsyslog_relp() {
    if no_rsyslog() {
        return;
    }
    deliver_exactly_once(
        "relp",
        |_| Input::Relp,
        |port| SinkSpec::new(&format!("relp://127.0.0.1:{port}")),
    );
}

#[test]
fn rsyslog_tls_and_mutual_tls() {
    if no_rsyslog() {
        return;
    }
    let spec = |dir: &std::path::Path, port: u16, client: bool| SinkSpec {
        ca: Some(dir.join("pki/ca.pem")),
        server_name: Some(SERVER_NAME.into()),
        client_cert: client.then(|| dir.join("pki/client.pem")),
        client_key: client.then(|| dir.join("pki/client.key")),
        ..SinkSpec::new(&format!("syslog+tls://127.0.0.1:{port}"))
    };
    // The tests' directories are made inside deliver_exactly_once; the PKI goes beside them.
    let base = tempfile::tempdir().unwrap();
    let b = base.path().to_path_buf();
    deliver_exactly_once(
        "tls",
        |_| tls_input(&b, false),
        |port| spec(&b, port, false),
    );
    let base2 = tempfile::tempdir().unwrap();
    let b2 = base2.path().to_path_buf();
    deliver_exactly_once(
        "mtls",
        |_| tls_input(&b2, true),
        |port| spec(&b2, port, true),
    );
}

#[test]
fn tls_with_the_wrong_ca_or_name_is_refused_clearly() {
    if no_rsyslog() {
        return;
    }
    let (t, rx, _state) = dirs("tls-refused");
    let p = pki(t.path());
    let input = Input::Tls(ServerTls {
        ca: p.ca.clone(),
        cert: p.server_cert.clone(),
        key: p.server_key.clone(),
        require_client_cert: false,
    });
    let r = Rsyslog::start(&rx, input).unwrap();
    let url = format!("syslog+tls://127.0.0.1:{}", r.port());
    let cases = [
        (
            Some(p.other_ca.clone()),
            SERVER_NAME,
            "invalid peer certificate: UnknownIssuer",
        ),
        (
            Some(p.ca.clone()),
            "other.test",
            "invalid peer certificate: certificate not valid for name \"other.test\"",
        ),
    ];
    for (ca, name, want) in cases {
        let spec = SinkSpec {
            ca,
            server_name: Some(name.into()),
            ..SinkSpec::new(&url)
        };
        let mut s = sink::open(&spec).unwrap();
        let e = s.connect().unwrap_err();
        assert!(matches!(e, SinkError::Tls { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("tls handshake with {url} (server name {name}): "))
                && text.contains(want.split(':').next().unwrap()),
            "{text}"
        );
        eprintln!("refused as expected: {text}");
    }
    // A missing CA file is named.
    let spec = SinkSpec {
        ca: Some(t.path().join("nope.pem")),
        ..SinkSpec::new(&url)
    };
    let e = sink::open(&spec).err().unwrap().to_string();
    assert!(
        e.contains("nope.pem") && e.contains("reading ca file"),
        "{e}"
    );
}

#[test]
fn loki_push_carries_labels_and_every_line() {
    let (t, _rx, state) = dirs("loki");
    let rx = LokiReceiver::start().unwrap();
    let src = t.path().join("app.log");
    write_lines(&src, 1..=N);
    let url = format!("loki+http://127.0.0.1:{}", rx.port());
    let run = ship(
        SourceSpec::File(src.clone()),
        SinkSpec::new(&url),
        &state,
        fast_opts(),
    );
    run.drain(30);
    let e = rx.entries();
    assert_eq!(e.len() as u64, N);
    let want = format!("source=file:{}", src.display());
    assert_eq!(e[0].labels, ["host=web-1", "image=img-7", want.as_str()]);
    assert_eq!(e[41].line, "line 000042");
    // NDJSON over HTTP to the same receiver (any other path).
    let (t2, _rx2, state2) = dirs("ndjson");
    let src2 = t2.path().join("b.log");
    write_lines(&src2, 1..=10);
    let url = format!("http://127.0.0.1:{}/ingest", rx.port());
    let run = ship(
        SourceSpec::File(src2),
        SinkSpec::new(&url),
        &state2,
        fast_opts(),
    );
    run.drain(30);
    let v: serde_json::Value = serde_json::from_str(&rx.entries().last().unwrap().line).unwrap();
    assert_eq!(
        (v["seq"].as_u64(), v["message"].as_str(), v["host"].as_str()),
        (Some(10), Some("line 000010"), Some("web-1"))
    );
}

fn export_entry(seqnum: u64, message: &[u8], extra: &str) -> Vec<u8> {
    let mut v = format!(
        "__CURSOR=s=feed;i={seqnum:x};b=b1;m=1;t=1;x=1\n__REALTIME_TIMESTAMP=1700000000000000\n\
         PRIORITY=3\nSYSLOG_FACILITY=4\nSYSLOG_IDENTIFIER=sshd\n_PID=4242\n_SYSTEMD_UNIT=ssh.service\n{extra}"
    )
    .into_bytes();
    v.extend_from_slice(b"MESSAGE\n");
    v.extend_from_slice(&(message.len() as u64).to_le_bytes());
    v.extend_from_slice(message);
    v.extend_from_slice(b"\n\n");
    v
}

/// A stand-in for journalctl: `--sync` succeeds, `--output=export --lines=1` prints the
/// prepared stream and its late part (the reader keeps the last entry); a follower records its
/// arguments, prints the prepared stream, after `lag` the late part, then "follows" (sleeps).
fn fake_journalctl_lagging(
    dir: &std::path::Path,
    export: &[u8],
    late: &[u8],
    lag: &str,
) -> std::path::PathBuf {
    fs::write(dir.join("export.bin"), export).unwrap();
    fs::write(dir.join("late.bin"), late).unwrap();
    let script = dir.join("journalctl");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nd={d}\ncase \"$1 $2\" in\n\
             '--sync '*) exit 0 ;;\n\
             '--output=export --lines=1') cat $d/export.bin $d/late.bin; exit 0 ;;\n\
             esac\n\
             echo \"$@\" >> $d/args\ncat $d/export.bin\nsleep {lag}\ncat $d/late.bin\n\
             exec sleep 600\n",
            d = dir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn fake_journalctl(dir: &std::path::Path, export: &[u8]) -> std::path::PathBuf {
    fake_journalctl_lagging(dir, export, b"", "0")
}

/// journald and the follower lag behind (entries 3 and 4 reach the follower 2 s after the
/// first two, long past the follower's quiet time): the drain still waits for the last entry
/// `journalctl --lines=1` showed when it was asked, as at a shutdown under load.
#[test]
fn a_drain_waits_for_the_journal_entries_logged_before_it() {
    if no_rsyslog() {
        return;
    }
    let (t, rx, state) = dirs("journal-lag");
    let r = Rsyslog::start(&rx, Input::Relp).unwrap();
    let mut export = export_entry(1, b"one", "");
    export.extend(export_entry(2, b"two", ""));
    let mut late = export_entry(3, b"three", "");
    late.extend(export_entry(4, b"Stopping pyre.service", ""));
    let paths = SourcePaths {
        journalctl: fake_journalctl_lagging(t.path(), &export, &late, "2"),
        ..SourcePaths::default()
    };
    let sink = SinkSpec::new(&format!("relp://127.0.0.1:{}", r.port()));
    let run = ship_with(SourceSpec::Journal, sink, &state, fast_opts(), paths);
    run.drain(30);
    assert_eq!(run.handle.status().acked, 4, "{:?}", run.handle.status());
    wait_until("four records at rsyslog", 10, || r.lines().len() >= 4);
    assert!(r.lines()[3].ends_with("seq=\"4\"] Stopping pyre.service"));
}

#[test]
fn journal_fields_and_a_rotated_journal_gap_reach_rsyslog() {
    if no_rsyslog() {
        return;
    }
    let (t, rx, state) = dirs("journal");
    let r = Rsyslog::start(&rx, Input::Relp).unwrap();
    let mut export = export_entry(1, b"first", "");
    export.extend(export_entry(2, b"two\nlines", ""));
    // The journal was vacuumed past entries 3..=9 while pyre was behind.
    export.extend(export_entry(10, b"tenth", "_TRANSPORT=syslog\n"));
    let paths = SourcePaths {
        journalctl: fake_journalctl(t.path(), &export),
        ..SourcePaths::default()
    };
    let sink = SinkSpec::new(&format!("relp://127.0.0.1:{}", r.port()));
    let run = ship_with(SourceSpec::Journal, sink, &state, fast_opts(), paths);
    run.drain(30);
    wait_until("four records at rsyslog", 10, || r.lines().len() >= 4);
    let lines = r.lines();
    assert!(
        lines[0].starts_with("<35>1 2023-11-14T22:13:20.000000Z web-1 sshd 4242 - [pyre@32473 "),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with("source=\"journal\" seq=\"1\"] first"),
        "{}",
        lines[0]
    );
    // The newline arrived inside the record; rsyslog's file shows it as #012.
    assert!(
        lines[1].ends_with("seq=\"2\"] two#012lines"),
        "{}",
        lines[1]
    );
    let gap = &lines[2];
    assert!(
        gap.contains(" PYRE_LOG_GAP [") && gap.contains("seq=\"3\" gap=\"7\"]"),
        "{gap}"
    );
    assert!(
        gap.contains("7 log records lost before they were read: the journal was rotated past"),
        "{gap}"
    );
    assert!(lines[3].ends_with("seq=\"4\"] tenth"), "{}", lines[3]);
    let args = fs::read_to_string(t.path().join("args")).unwrap();
    assert!(
        args.starts_with("--output=export --follow --no-tail --no-pager --boot"),
        "{args}"
    );
    drop(run);
    // Restarted, it resumes after the last acknowledged cursor.
    let run = ship_with(
        SourceSpec::Journal,
        SinkSpec::new(&format!("relp://127.0.0.1:{}", r.port())),
        &state,
        fast_opts(),
        SourcePaths {
            journalctl: t.path().join("journalctl"),
            ..SourcePaths::default()
        },
    );
    wait_until("the second journalctl", 10, || {
        fs::read_to_string(t.path().join("args"))
            .unwrap()
            .lines()
            .count()
            == 2
    });
    let args = fs::read_to_string(t.path().join("args")).unwrap();
    assert!(
        args.lines()
            .nth(1)
            .unwrap()
            .ends_with("--after-cursor=s=feed;i=a;b=b1;m=1;t=1;x=1"),
        "{args}"
    );
    drop(run);
}

#[test]
fn udp_datagrams_one_record_each() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let (t, _rx, state) = dirs("udp");
    let src = t.path().join("app.log");
    write_lines(&src, 1..=100);
    let url = format!(
        "syslog+udp://127.0.0.1:{}",
        sock.local_addr().unwrap().port()
    );
    let run = ship(
        SourceSpec::File(src),
        SinkSpec::new(&url),
        &state,
        fast_opts(),
    );
    run.drain(30);
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < 100 {
        let n = sock.recv(&mut buf).unwrap();
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let counts = count_by_seq(got.iter().map(String::as_str));
    assert_eq!(missing(&counts, 100), Vec::<u64>::new());
    assert!(got[0].starts_with("<14>1 "), "{}", got[0]);
}

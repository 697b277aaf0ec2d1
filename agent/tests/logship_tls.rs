//! The TLS sinks beyond syslog+tls against real peers on 127.0.0.1: RELP over TLS to Debian's
//! rsyslogd imrelp (librelp's openssl back end with a server certificate only, and its gnutls
//! back end with mutual TLS), and HTTPS (Loki push API and NDJSON) to the test Loki receiver
//! over rustls; a receiver certificate from an unknown CA, or without the configured server
//! name, is refused, saying so.
mod logship_common;

use std::path::Path;

use logship_common::*;
use pyre::logship::sink::{self, SinkError};
use pyre::logship::{SinkSpec, SourceSpec};
use pyre_tests::certs::{TestPki, SERVER_NAME};
use pyre_tests::loki::LokiReceiver;
use pyre_tests::rsyslog::{Input, RelpTlsLib, Rsyslog, ServerTls};

const N: u64 = 2000;

fn relp_tls_input(p: &TestPki, lib: RelpTlsLib, require_client_cert: bool) -> Input {
    Input::RelpTls(
        ServerTls {
            ca: p.ca.clone(),
            cert: p.server_cert.clone(),
            key: p.server_key.clone(),
            require_client_cert,
        },
        lib,
    )
}

fn relp_tls_spec(port: u16, ca: &Path, client: Option<&TestPki>) -> SinkSpec {
    SinkSpec {
        ca: Some(ca.to_path_buf()),
        server_name: Some(SERVER_NAME.into()),
        client_cert: client.map(|p| p.client_cert.clone()),
        client_key: client.map(|p| p.client_key.clone()),
        ..SinkSpec::new(&format!("relp+tls://127.0.0.1:{port}"))
    }
}

fn every_line_once_at_rsyslog(name: &str, input: impl Fn(&TestPki) -> Input, client: bool) {
    let (t, rx, state) = dirs(name);
    let p = TestPki::make(&t.path().join("pki")).unwrap();
    let r = Rsyslog::start(&rx, input(&p)).unwrap();
    let src = t.path().join("app.log");
    write_lines(&src, 1..=N);
    let spec = relp_tls_spec(r.port(), &p.ca, client.then_some(&p));
    let run = ship(SourceSpec::File(src), spec, &state, fast_opts());
    run.drain(30);
    wait_until("rsyslog to write everything", 10, || {
        count_by_seq(r.lines().iter().map(String::as_str)).len() as u64 == N
    });
    let counts = count_by_seq(r.lines().iter().map(String::as_str));
    assert_eq!(
        (missing(&counts, N).len(), duplicates(&counts)),
        (0, 0),
        "{name}"
    );
}

#[test]
fn relp_over_tls_to_rsyslog_imrelp() {
    if no_rsyslog() {
        return;
    }
    every_line_once_at_rsyslog(
        "relp-tls-openssl",
        |p| relp_tls_input(p, RelpTlsLib::Openssl, false),
        false,
    );
    every_line_once_at_rsyslog(
        "relp-tls-gnutls-mutual",
        |p| relp_tls_input(p, RelpTlsLib::Gnutls, true),
        true,
    );
}

#[test]
fn relp_over_tls_with_the_wrong_ca_is_refused_clearly() {
    if no_rsyslog() {
        return;
    }
    let (t, rx, _state) = dirs("relp-tls-refused");
    let p = TestPki::make(&t.path().join("pki")).unwrap();
    let r = Rsyslog::start(&rx, relp_tls_input(&p, RelpTlsLib::Openssl, false)).unwrap();
    let spec = relp_tls_spec(r.port(), &p.other_ca, None);
    let mut s = sink::open(&spec).unwrap();
    let e = s.connect().unwrap_err();
    assert!(matches!(e, SinkError::Tls { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "tls handshake with relp+tls://127.0.0.1:{} (server name {SERVER_NAME}): \
             invalid peer certificate: UnknownIssuer",
            r.port()
        )
    );
}

fn https_spec(url: &str, ca: &Path) -> SinkSpec {
    SinkSpec {
        ca: Some(ca.to_path_buf()),
        ..SinkSpec::new(url)
    }
}

#[test]
fn loki_over_https_with_a_ca_file() {
    let (t, _rx, state) = dirs("loki-https");
    let p = TestPki::make(&t.path().join("pki")).unwrap();
    let rx = LokiReceiver::start_tls(&p.server_cert, &p.server_key).unwrap();
    let src = t.path().join("app.log");
    write_lines(&src, 1..=N);
    // `localhost` is not in the certificate (logs.test and 127.0.0.1 are): the server name
    // configured is what is checked.
    let url = format!("loki+https://localhost:{}", rx.port());
    let spec = SinkSpec {
        server_name: Some(SERVER_NAME.into()),
        ..https_spec(&url, &p.ca)
    };
    let run = ship(SourceSpec::File(src), spec, &state, fast_opts());
    run.drain(30);
    let e = rx.entries();
    assert_eq!(e.len() as u64, N);
    assert_eq!(e[N as usize - 1].line, format!("line {N:06}"));
}

#[test]
fn ndjson_over_https_with_a_ca_file_and_the_wrong_ca_refused() {
    let (t, _rx, state) = dirs("ndjson-https");
    let p = TestPki::make(&t.path().join("pki")).unwrap();
    let rx = LokiReceiver::start_tls(&p.server_cert, &p.server_key).unwrap();
    let src = t.path().join("app.log");
    write_lines(&src, 1..=N);
    let url = format!("https://127.0.0.1:{}/ingest", rx.port());
    let run = ship(
        SourceSpec::File(src.clone()),
        https_spec(&url, &p.ca),
        &state,
        fast_opts(),
    );
    run.drain(30);
    let e = rx.entries();
    assert_eq!(e.len() as u64, N);
    let v: serde_json::Value = serde_json::from_str(&e[N as usize - 1].line).unwrap();
    assert_eq!(v["seq"].as_u64(), Some(N));
    drop(run);

    // A receiver certificate from another CA: nothing is delivered, the error says why.
    let before = rx.requests();
    let run = ship(
        SourceSpec::File(src),
        https_spec(&url, &p.other_ca),
        &t.path().join("state-other"),
        fast_opts(),
    );
    wait_until("the refusal", 10, || {
        run.handle.status().last_error.is_some()
    });
    let err = run.handle.status().last_error.unwrap();
    assert!(
        err.starts_with(&format!("{url}: POST {url}: "))
            && err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    assert_eq!((rx.requests(), run.handle.status().acked), (before, 0));
    drop(run);

    // The right CA but a server name the certificate does not carry.
    let spec = SinkSpec {
        server_name: Some("other.test".into()),
        ..https_spec(&url, &p.ca)
    };
    let run = ship(
        SourceSpec::File(t.path().join("app.log")),
        spec,
        &t.path().join("state-name"),
        fast_opts(),
    );
    wait_until("the refusal", 10, || {
        run.handle.status().last_error.is_some()
    });
    let err = run.handle.status().last_error.unwrap();
    assert!(
        err.contains("invalid peer certificate: certificate not valid for name \"other.test\""),
        "{err}"
    );
    assert_eq!(rx.requests(), before);
}

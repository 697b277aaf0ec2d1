//! `pyre report`: the fixture reports (agent/tests/fixtures/report) rendered as text and OCSF
//! must equal the expected files beside them, so a change of either rendering shows in review.
//! `PYRE_BLESS=1 cargo test -p pyre --test report_cli` rewrites the expected files.
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::pyre;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report")
}

fn report(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = pyre();
    c.arg("report").args(args).stdin(Stdio::piped());
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn golden(name: &str, format: &str, expected: &str) {
    let input = fixtures().join(format!("{name}.json"));
    let o = report(&[input.to_str().unwrap(), "--format", format], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{name} {format}: {err}");
    let got = String::from_utf8(o.stdout).unwrap();
    let path = fixtures().join(expected);
    if std::env::var_os("PYRE_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (PYRE_BLESS=1 writes it)", path.display()));
    assert_eq!(
        got,
        want,
        "{name} --format {format} differs from {}",
        path.display()
    );
}

#[test]
fn incidents_render_as_the_expected_text_and_ocsf() {
    for name in ["incident-verify", "incident-mounts", "incident-lifetime"] {
        golden(name, "text", &format!("{name}.txt"));
        golden(name, "ocsf", &format!("{name}.ocsf.json"));
    }
    golden("drift", "text", "drift.txt");
}

#[test]
fn json_re_emits_the_document_and_stdin_is_read() {
    let bytes = std::fs::read(fixtures().join("incident-mounts.json")).unwrap();
    let o = report(&["-", "--format", "json"], Some(&bytes));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let want: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(got, want);
}

#[test]
fn what_is_not_a_report_exits_2_naming_the_file_and_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        br#"{"report_version":1,"kind":"pyre.incident","event":{}}"#,
    )
    .unwrap();
    let drift = fixtures().join("drift.json");
    // (arguments, stdin, what stderr must say)
    type Case<'a> = (Vec<&'a str>, Option<&'a [u8]>, String);
    let cases: [Case; 4] = [
        (
            vec![bad.to_str().unwrap()],
            None,
            format!(
                "{} is not a pyre report: at event: missing field `id`",
                bad.display()
            ),
        ),
        (
            vec!["-"],
            Some(b"not json"),
            "stdin is not a pyre report: not JSON: expected ident".to_string(),
        ),
        (
            vec![drift.to_str().unwrap(), "--format", "ocsf"],
            None,
            format!("{}: a plain drift report", drift.display()),
        ),
        (
            vec!["/nonexistent/report.json"],
            None,
            "failed to read /nonexistent/report.json".to_string(),
        ),
    ];
    for (args, stdin, want) in cases {
        let o = report(&args, stdin);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&want), "{args:?}: {err}\nwanted: {want}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

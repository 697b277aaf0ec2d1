//! `pyre config validate|schema|sign` end to end: exit codes, one-line summaries, message ids,
//! and no secret on stdout or stderr.
mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::pyre;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = pyre();
    for a in args {
        c.arg(a);
    }
    c.output().expect("run pyre")
}

fn text(o: &Output) -> (i32, String, String) {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    for s in ["s3cr3t-db", "secret-line2", "tok-"] {
        assert!(
            !out.contains(s) || out.contains("\"signed\""),
            "stdout shows {s}: {out}"
        );
        assert!(!err.contains(s), "stderr shows {s}: {err}");
    }
    (o.status.code().unwrap(), out, err)
}

#[test]
fn validate_good_and_bad() {
    let (code, out, _) = text(&run(&[&"config", &"validate", &fixture("good_full.json")]));
    assert_eq!(code, 0);
    assert!(
        out.contains(": valid, not signed; config v1: hostname web-1, 3 file(s)"),
        "{out}"
    );
    let (code, _, err) = text(&run(&[
        &"config",
        &"validate",
        &fixture("bad_env_newline.json"),
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("PYRE_CONFIG_INVALID: "), "{err}");
    assert!(
        err.contains("environment.X: the value contains a NUL or a line break"),
        "{err}"
    );
    let (code, _, err) = text(&run(&[&"config", &"validate", &"/nonexistent/c.json"]));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn sign_then_validate_with_keys_and_policy() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("k");
    assert_eq!(text(&run(&[&"keygen", &"-o", &key])).0, 0);
    let keys = d.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::copy(d.path().join("k.pub"), keys.join("k.pub")).unwrap();
    let env = d.path().join("env.json");
    let good = fixture("good_full.json");
    assert_eq!(
        text(&run(&[
            &"config", &"sign", &"--key", &key, &good, &"-o", &env
        ]))
        .0,
        0
    );
    let (code, out, _) = text(&run(&[&"config", &"validate", &"--keys", &keys, &env]));
    assert_eq!(code, 0);
    assert!(out.contains("valid, signed by key "), "{out}");

    let tampered = d.path().join("tampered.json");
    let t = std::fs::read_to_string(&env)
        .unwrap()
        .replace("web-1", "web-2");
    std::fs::write(&tampered, t).unwrap();
    let (code, _, err) = text(&run(&[&"config", &"validate", &"--keys", &keys, &tampered]));
    assert_eq!(code, 1);
    assert!(
        err.contains("PYRE_CONFIG_SIGNATURE: ") && err.contains("does not match"),
        "{err}"
    );

    let policy = d.path().join("image.json");
    std::fs::write(&policy, r#"{"version": 1, "signature-required": true}"#).unwrap();
    let (code, _, err) = text(&run(&[&"config", &"validate", &"--policy", &policy, &good]));
    assert_eq!(code, 1);
    assert!(err.contains("the config is not signed"), "{err}");

    // Signing refuses an invalid config and an envelope.
    let (code, _, err) = text(&run(&[
        &"config",
        &"sign",
        &"--key",
        &key,
        &fixture("bad_hostname.json"),
    ]));
    assert_eq!(code, 2);
    assert!(
        err.contains("refusing to sign") && err.contains("hostname: "),
        "{err}"
    );
    let (code, _, err) = text(&run(&[&"config", &"sign", &"--key", &key, &env]));
    assert_eq!(code, 2);
    assert!(err.contains("already a signed envelope"), "{err}");
}

#[test]
fn schema_is_the_published_one() {
    let o = run(&[&"config", &"schema"]);
    assert_eq!(o.status.code(), Some(0));
    let published = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.schema.json");
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        std::fs::read_to_string(published).unwrap()
    );
}

//! `pyre boot` as a process against the fake metadata server, each run in private UTS, mount
//! and PID namespaces (`unshare`), so its sethostname never reaches the machine running the
//! tests, with `--run` a temp dir. Every run uses an image policy with `on-failure: debug`:
//! a failing boot only exits non-zero (and, inside its own PID namespace, even a mistaken
//! reboot(2) could only end that namespace). The power actions themselves are tested at the
//! library level with the recording host (`agent/src/boot/tests.rs`). Needs root.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pyre_tests::metadata::MetadataServer;

const SECRET: &str = "s3cret-Pa55word-never-logged";

fn config() -> Vec<u8> {
    format!(
        r#"{{"version":1,"hostname":"web-7",
        "files":[{{"path":"/run/app/db.env","mode":"0600","content":"DB_PASSWORD={SECRET}\n"}}],
        "environment":{{"APP_TOKEN":"{SECRET}"}}}}"#
    )
    .into_bytes()
}

fn can_unshare() -> bool {
    let ok = nix::unistd::Uid::effective().is_root()
        && Command::new("unshare")
            .args(["--uts", "--mount", "--pid", "--fork", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: needs root and unshare (private UTS, mount and PID namespaces)");
    }
    ok
}

struct Boot {
    dir: tempfile::TempDir,
    code: i32,
    /// The hostname inside the namespace after `pyre boot`.
    hostname: String,
    stderr: String,
    took: Duration,
}

impl Boot {
    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn record(&self) -> serde_json::Value {
        let bytes = std::fs::read(self.run_dir().join("pyre/boot.json")).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET),
            "a secret in boot.json"
        );
        serde_json::from_slice(&bytes).unwrap()
    }
}

/// `pyre boot` with this kernel command line and extra image-policy fields, in its namespaces.
fn boot(cmdline: &str, policy_extra: &str, keys: Option<&Path>) -> Boot {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("cmdline"), cmdline).unwrap();
    std::fs::write(
        d.join("image.json"),
        format!(r#"{{"version":1,"on-failure":"debug"{policy_extra}}}"#),
    )
    .unwrap();
    let keys = keys.map_or(d.join("keys"), Path::to_path_buf);
    let s = |p: PathBuf| p.to_str().unwrap().to_string();
    let script = r#""$@"; rc=$?; hostname; exit $rc"#;
    let t0 = Instant::now();
    let out = Command::new("unshare")
        .args([
            "--uts", "--mount", "--pid", "--fork", "sh", "-c", script, "sh",
        ])
        .arg(env!("CARGO_BIN_EXE_pyre"))
        .args(["boot", "--cmdline", &s(d.join("cmdline"))])
        .args(["--policy", &s(d.join("image.json")), "--keys", &s(keys)])
        .args(["--run", &s(d.join("run")), "--sys", &s(d.join("sys"))])
        .args(["--dev", &s(d.join("dev")), "--dmi", &s(d.join("dmi"))])
        .args(["--ca", &s(d.join("ca")), "--modules", &s(d.join("modules"))])
        .output()
        .unwrap();
    let b = Boot {
        code: out.status.code().unwrap_or(-1),
        hostname: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: t0.elapsed(),
        dir,
    };
    assert!(
        !b.stderr.contains(SECRET),
        "a secret on stderr: {}",
        b.stderr
    );
    b
}

fn aws(srv: &MetadataServer, deadline: u64) -> String {
    format!(
        "ro pyre.provider=aws pyre.metadata.url={} pyre.config.deadline={deadline}",
        srv.url()
    )
}

fn assert_applied(b: &Boot) {
    assert_eq!(b.code, 0, "{}", b.stderr);
    assert_eq!(b.hostname, "web-7", "hostname set in the namespace");
    let run = b.run_dir();
    let file = std::fs::read_to_string(run.join("app/db.env")).unwrap();
    assert_eq!(file, format!("DB_PASSWORD={SECRET}\n"));
    let env = std::fs::read_to_string(run.join("pyre/env")).unwrap();
    assert!(env.contains("APP_TOKEN="), "{env}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&run.join("pyre/config.json")), 0o600);
    assert_eq!(mode(&run.join("app/db.env")), 0o600);
    let id: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("pyre/instance.json")).unwrap()).unwrap();
    assert_eq!(id["provider"], "aws");
    assert_eq!(id["instance-id"], "i-0fake0pyre0000001", "{id}");
    let rec = b.record();
    assert_eq!(rec["boot"]["outcome"], "applied");
    let stages: Vec<&str> = rec["boot"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["settings", "fetch", "verify", "prepare", "hostname", "volumes", "files", "commit"]
    );
    assert!(b
        .stderr
        .contains("pyre boot: applied (provider aws); stages: settings"));
}

#[test]
fn applies_a_config_from_the_metadata_server() {
    if !can_unshare() {
        return;
    }
    let srv = MetadataServer::start(Some(config())).unwrap();
    assert_applied(&boot(&aws(&srv, 10), "", None));
}

#[test]
fn retries_a_burst_of_503_then_applies() {
    if !can_unshare() {
        return;
    }
    let srv = MetadataServer::start(Some(config())).unwrap();
    srv.inject("503*3").unwrap();
    let b = boot(&aws(&srv, 20), "", None);
    assert_applied(&b);
    assert_eq!(
        b.stderr.matches("/latest/user-data: 503").count(),
        3,
        "{}",
        b.stderr
    );
}

#[test]
fn unreachable_endpoint_fails_the_boot_within_the_deadline() {
    if !can_unshare() {
        return;
    }
    // A port nothing listens on: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b = boot(
        &format!(
            "pyre.provider=aws pyre.metadata.url=http://127.0.0.1:{port} pyre.config.deadline=2"
        ),
        "",
        None,
    );
    assert_eq!(b.code, 4, "{}", b.stderr);
    assert!(b.took < Duration::from_secs(2 + 5), "took {:?}", b.took);
    assert!(b
        .stderr
        .contains("pyre: error: PYRE_CONFIG_UNREACHABLE: PUT http://127.0.0.1:"));
    assert!(b
        .stderr
        .contains("PYRE_BOOT_FAILED: boot-critical failure (PYRE_CONFIG_UNREACHABLE); pyre-ready.target will not be reached; staying up for debugging"));
    assert_ne!(b.hostname, "web-7");
    assert!(!b.run_dir().join("pyre/config.json").exists());
    let rec = b.record();
    assert_eq!(rec["boot"]["outcome"], "failed");
    assert_eq!(rec["boot"]["message-id"], "PYRE_CONFIG_UNREACHABLE");
    assert_eq!(rec["boot"]["action"], "debug");
}

#[test]
fn a_config_signed_by_an_untrusted_key_is_refused() {
    if !can_unshare() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let k = |n: &str| keys.path().join(n).to_str().unwrap().to_string();
    let pyre = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pyre"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    std::fs::create_dir(keys.path().join("trusted")).unwrap();
    pyre(&["keygen", "-o", &k("trusted/image.key")]);
    pyre(&["keygen", "-o", &k("stranger.key")]);
    std::fs::write(k("config.json"), config()).unwrap();
    pyre(&[
        "config",
        "sign",
        &k("config.json"),
        "--key",
        &k("stranger.key"),
        "-o",
        &k("env"),
    ]);
    let srv = MetadataServer::start(Some(std::fs::read(k("env")).unwrap())).unwrap();
    let trusted = keys.path().join("trusted");
    let b = boot(
        &aws(&srv, 10),
        r#","signature-required":true"#,
        Some(&trusted),
    );
    assert_eq!(b.code, 5, "{}", b.stderr);
    assert!(
        b.stderr
            .contains("pyre: error: PYRE_CONFIG_SIGNATURE: config signed with unknown key"),
        "{}",
        b.stderr
    );
    assert_ne!(b.hostname, "web-7");
    assert!(!b.run_dir().join("app").exists(), "nothing applied");
    assert_eq!(b.record()["boot"]["message-id"], "PYRE_CONFIG_SIGNATURE");

    // Signed by the trusted key instead: applied.
    pyre(&[
        "config",
        "sign",
        &k("config.json"),
        "--key",
        &k("trusted/image.key"),
        "-o",
        &k("ok"),
    ]);
    std::fs::remove_file(k("trusted/image.key")).unwrap();
    srv.set_config(Some(std::fs::read(k("ok")).unwrap()));
    let b = boot(
        &aws(&srv, 10),
        r#","signature-required":true"#,
        Some(&trusted),
    );
    assert_applied(&b);
    assert!(b.record()["boot"]["signed-by"].is_string());
}

//! `pyre fetch` against the fake metadata server, one test per fault: the outcome (fetched,
//! retried then fetched, refused with the right message, unreachable) and that it ends within
//! the deadline. Everything stays on 127.0.0.1: every run passes --metadata-url, an empty
//! kernel command line and empty DMI/sysfs directories.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pyre_tests::metadata::MetadataServer;

const CONFIG: &[u8] = b"{\"version\": 1, \"hostname\": \"web-1\"}\n";
/// Slack over a deadline for process start-up and a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(3);

struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
    took: Duration,
}

impl Run {
    /// The last stderr line: the one-line reason on failure.
    fn reason(&self) -> &str {
        self.stderr.lines().last().unwrap_or("")
    }
}

fn empty_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn pyre_fetch(args: &[&str]) -> Run {
    let dir = empty_dir();
    let d = dir.path().to_str().unwrap();
    let t0 = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pyre"));
    cmd.args(["fetch", "--dmi-dir", d, "--sysfs", d, "--ca-dir", d]);
    // No image policy (the defaults) and no trusted keys, unless the test gives its own.
    if !args.contains(&"--policy") {
        cmd.args(["--policy", &format!("{d}/no-policy.json")]);
    }
    if !args.contains(&"--keys") {
        cmd.args(["--keys", d]);
    }
    if !args.contains(&"--cmdline") {
        cmd.args(["--cmdline", "/dev/null"]);
    }
    let out = cmd.args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: t0.elapsed(),
    }
}

fn fetch(srv: &MetadataServer, provider: &str, deadline: u64) -> Run {
    let url = srv.url();
    let secs = deadline.to_string();
    pyre_fetch(&[
        "--provider",
        provider,
        "--metadata-url",
        &url,
        "--deadline",
        &secs,
    ])
}

fn server(faults: &[&str]) -> MetadataServer {
    let srv = MetadataServer::start(Some(CONFIG.to_vec())).unwrap();
    for f in faults {
        srv.inject(f).unwrap();
    }
    srv
}

/// `pyre fetch` prints the verified config as JSON: compare documents, not bytes.
fn assert_fetched(r: &Run, want: &[u8]) {
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let got: serde_json::Value = serde_json::from_slice(&r.stdout)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&r.stdout)));
    let want: serde_json::Value = serde_json::from_slice(want).unwrap();
    assert_eq!(got, want, "stderr: {}", r.stderr);
}

fn assert_within(r: &Run, deadline: u64) {
    let bound = Duration::from_secs(deadline) + MARGIN;
    assert!(r.took <= bound, "took {:?} > {bound:?}", r.took);
}

/// How often the server answered (or reset) `path`.
fn hits(srv: &MetadataServer, path: &str) -> Vec<u16> {
    srv.served()
        .iter()
        .filter(|s| s.target.split('?').next() == Some(path))
        .map(|s| s.status)
        .collect()
}

#[test]
fn every_protocol_serves_the_config() {
    for p in ["aws", "gcp", "azure", "openstack"] {
        let srv = server(&[]);
        let r = fetch(&srv, p, 10);
        assert_fetched(&r, CONFIG);
    }
    let srv = server(&[]);
    let url = format!("{}/config.json", srv.url());
    let r = pyre_fetch(&["--provider", "url", "--config-url", &url, "--allow-http"]);
    assert_fetched(&r, CONFIG);
}

#[test]
fn every_protocol_gives_an_identity() {
    for (p, id) in [
        ("aws", "i-0fake0pyre0000001"),
        ("gcp", "4520031799277581759"),
        ("azure", "02aab8a4-74ef-476e-8182-f6d2ba4166a6"),
        ("openstack", "83679162-1378-4288-a2d4-70e13ec132aa"),
    ] {
        let srv = server(&[]);
        let url = srv.url();
        let r = pyre_fetch(&["--provider", p, "--metadata-url", &url, "--identity"]);
        assert_eq!(r.code, 0, "{p}: {}", r.stderr);
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(v["instance-id"], id, "{p}");
        assert_eq!(v["provider"], p);
    }
}

#[test]
fn delay_before_headers_is_waited_for() {
    let srv = server(&["delay=700"]);
    let r = fetch(&srv, "aws", 10);
    assert_fetched(&r, CONFIG);
    assert!(r.took >= Duration::from_millis(700));
}

#[test]
fn delay_past_the_deadline_is_unreachable() {
    let srv = server(&["delay=30000"]);
    let r = fetch(&srv, "aws", 2);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.reason()
            .contains("/latest/user-data: not answered within the 2s deadline"),
        "{}",
        r.reason()
    );
    assert!(r.reason().contains("timed out"), "{}", r.reason());
    assert_within(&r, 2);
}

#[test]
fn trickled_body_is_read_whole() {
    let srv = server(&["trickle=20"]);
    let r = fetch(&srv, "gcp", 10);
    assert_fetched(&r, CONFIG);
}

#[test]
fn burst_of_5xx_then_success() {
    let srv = server(&["503*3"]);
    let r = fetch(&srv, "aws", 10);
    assert_fetched(&r, CONFIG);
    assert_eq!(hits(&srv, "/latest/user-data"), [503, 503, 503, 200]);
    assert_within(&r, 10);
}

#[test]
fn endless_5xx_ends_at_the_deadline() {
    let srv = server(&["500"]);
    let r = fetch(&srv, "azure", 3);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.reason().contains(" attempts; last: GET "),
        "{}",
        r.reason()
    );
    assert!(r.reason().ends_with("status 500)"), "{}", r.reason());
    assert!(
        r.took >= Duration::from_secs(2),
        "gave up early: {:?}",
        r.took
    );
    assert_within(&r, 3);
}

#[test]
fn too_many_requests_honours_retry_after() {
    let srv = server(&["429=1*1"]);
    let r = fetch(&srv, "openstack", 10);
    assert_fetched(&r, CONFIG);
    assert_eq!(hits(&srv, "/openstack/latest/user_data"), [429, 200]);
    assert!(r.took >= Duration::from_secs(1));
}

#[test]
fn retry_after_beyond_the_deadline_fails_at_once() {
    let srv = server(&["429=600"]);
    let r = fetch(&srv, "aws", 30);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.reason().ends_with("asked to retry after 600s)"),
        "{}",
        r.reason()
    );
    assert!(r.took < Duration::from_secs(5), "{:?}", r.took);
}

#[test]
fn token_expiry_mid_boot_refreshes_the_token() {
    let srv = server(&["token-expiry"]);
    let r = fetch(&srv, "aws", 10);
    assert_fetched(&r, CONFIG);
    let seq: Vec<String> = srv.served().iter().map(|s| s.to_string()).collect();
    assert_eq!(
        seq,
        [
            "PUT /latest/api/token 200",
            "GET /latest/user-data 401",
            "PUT /latest/api/token 200",
            "GET /latest/user-data 200",
        ]
    );
}

#[test]
fn forbidden_is_imds_disabled() {
    for fault in ["403", "403@token"] {
        let srv = server(&[fault]);
        let r = fetch(&srv, "aws", 10);
        assert_eq!(r.code, 5, "{fault}: {}", r.stderr);
        assert!(
            r.reason().ends_with("status 403 (IMDS is disabled)"),
            "{}",
            r.reason()
        );
        assert!(r.took < Duration::from_secs(5), "403 must not be retried");
    }
}

#[test]
fn not_found_is_no_config() {
    let srv = server(&["404"]);
    let r = fetch(&srv, "gcp", 10);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(
        r.reason(),
        "pyre: error: no config: provider gcp has none for this instance"
    );
    // No config at all: every protocol says so definitely.
    let srv = MetadataServer::start(None).unwrap();
    for p in ["aws", "gcp", "azure", "openstack"] {
        assert_eq!(fetch(&srv, p, 10).code, 3, "{p}");
    }
}

#[test]
fn connection_reset_is_retried() {
    let srv = server(&["reset*2"]);
    let r = fetch(&srv, "aws", 10);
    assert_fetched(&r, CONFIG);
    assert_eq!(hits(&srv, "/latest/user-data"), [0, 0, 200]);
}

#[test]
fn truncated_body_is_retried() {
    let srv = server(&["truncate*1"]);
    let r = fetch(&srv, "openstack", 10);
    assert_fetched(&r, CONFIG);
    assert_eq!(hits(&srv, "/openstack/latest/user_data"), [200, 200]);
    assert!(r.stderr.contains("body truncated"), "{}", r.stderr);
}

#[test]
fn oversize_body_is_refused_while_streaming() {
    let srv = server(&["oversize=4194304"]);
    let r = fetch(&srv, "aws", 10);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.reason()
            .ends_with("/latest/user-data: body larger than 1048576 bytes"),
        "{}",
        r.reason()
    );
}

#[test]
fn redirect_to_another_host_is_refused() {
    let srv = server(&[]);
    // Another host name for the same machine: refused before any request reaches it.
    srv.inject(&format!(
        "redirect=http://localhost:{}/latest/user-data",
        srv.port()
    ))
    .unwrap();
    let r = fetch(&srv, "aws", 10);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.reason()
            .contains("redirect refused: to another host (http://localhost:"),
        "{}",
        r.reason()
    );
    assert_eq!(hits(&srv, "/latest/user-data"), [302]);
}

#[test]
fn wrong_content_type_still_serves_the_bytes() {
    // The content type is not the fetcher's business: the config layer judges the bytes.
    let srv = server(&["content-type=text/html"]);
    assert_fetched(&fetch(&srv, "aws", 10), CONFIG);
}

#[test]
fn endpoint_down_is_unreachable_by_the_deadline() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let r = pyre_fetch(&[
        "--provider",
        "aws",
        "--metadata-url",
        &url,
        "--deadline",
        "2",
    ]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.reason().starts_with(&format!(
            "pyre: error: config source not reached: PUT {url}/latest/api/token: not answered within the 2s deadline"
        )),
        "{}",
        r.reason()
    );
    assert_within(&r, 2);
}

fn fixture(name: &str) -> Vec<u8> {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    std::fs::read(p.join(name)).unwrap()
}

fn pyre(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_pyre"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {:?}", out);
}

/// A trusted key in `dir/keys/`, an untrusted one in `dir/`, and envelopes of the valid fixture
/// signed by each.
struct Signed {
    dir: tempfile::TempDir,
    trusted: Vec<u8>,
    untrusted: Vec<u8>,
}

fn signed() -> Signed {
    let dir = empty_dir();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    pyre(&["keygen", "-o", &p("keys/trusted.key")]);
    std::fs::rename(p("keys/trusted.key"), p("trusted.key")).unwrap();
    pyre(&["keygen", "-o", &p("other.key")]);
    std::fs::write(p("valid.json"), fixture("valid.json")).unwrap();
    for (key, out) in [("trusted.key", "trusted.env"), ("other.key", "other.env")] {
        pyre(&[
            "config",
            "sign",
            &p("valid.json"),
            "--key",
            &p(key),
            "-o",
            &p(out),
        ]);
    }
    Signed {
        trusted: std::fs::read(p("trusted.env")).unwrap(),
        untrusted: std::fs::read(p("other.env")).unwrap(),
        dir,
    }
}

fn fetch_with_keys(srv: &MetadataServer, keys: &Path, policy: Option<&Path>) -> Run {
    let url = srv.url();
    let none = keys.join("no-policy.json");
    pyre_fetch(&[
        "--provider",
        "azure",
        "--metadata-url",
        &url,
        "--deadline",
        "10",
        "--keys",
        keys.to_str().unwrap(),
        "--policy",
        policy.unwrap_or(&none).to_str().unwrap(),
    ])
}

fn assert_refused(r: &Run, id: &str, why: &str) {
    assert_eq!(r.code, 5, "stderr: {}", r.stderr);
    assert!(r.stdout.is_empty(), "nothing printed on refusal");
    let want = format!("pyre: error: {id}: config refused: ");
    assert!(
        r.reason().starts_with(&want) && r.reason().contains(why),
        "want {want}…{why}, got {}",
        r.reason()
    );
    assert_eq!(
        r.stderr
            .lines()
            .filter(|l| l.contains("pyre: error:"))
            .count(),
        1,
        "one clear line: {}",
        r.stderr
    );
}

/// The fetched bytes go through the config layer: invalid JSON, an unknown field, a signature
/// that does not verify, a key the image does not trust and an unsigned config where the
/// policy requires a signature are refused with their message id (exit 5); a config signed by
/// a trusted key is printed verified.
#[test]
fn refuses_what_the_config_layer_refuses() {
    let keys = empty_dir();
    let cases = [
        (
            "invalid-json.json",
            "PYRE_CONFIG_INVALID",
            "EOF while parsing",
        ),
        (
            "unknown-field.json",
            "PYRE_CONFIG_INVALID",
            "unknown field `hostnmae`",
        ),
    ];
    for (name, id, why) in cases {
        let srv = MetadataServer::start(Some(fixture(name))).unwrap();
        assert_refused(&fetch_with_keys(&srv, keys.path(), None), id, why);
    }

    let s = signed();
    let trusted = s.dir.path().join("keys");
    let srv = MetadataServer::start(Some(s.trusted.clone())).unwrap();
    assert_fetched(
        &fetch_with_keys(&srv, &trusted, None),
        &fixture("valid.json"),
    );

    srv.set_config(Some(s.untrusted.clone()));
    let r = fetch_with_keys(&srv, &trusted, None);
    assert_refused(&r, "PYRE_CONFIG_SIGNATURE", "signed with unknown key");

    // The trusted envelope with its signed text altered: the signature no longer matches.
    let text = String::from_utf8(s.trusted.clone()).unwrap();
    let altered = text.replacen("web-1", "web-2", 1);
    assert_ne!(altered, text);
    srv.set_config(Some(altered.into_bytes()));
    let r = fetch_with_keys(&srv, &trusted, None);
    assert_refused(&r, "PYRE_CONFIG_SIGNATURE", "does not match");

    let policy = s.dir.path().join("image.json");
    std::fs::write(&policy, r#"{"version":1,"signature-required":true}"#).unwrap();
    srv.set_config(Some(fixture("valid.json")));
    let r = fetch_with_keys(&srv, &trusted, Some(&policy));
    assert_refused(&r, "PYRE_CONFIG_SIGNATURE", "not signed");

    std::fs::write(&policy, r#"{"version":1,"providers":["qemu"]}"#).unwrap();
    let r = fetch_with_keys(&srv, &trusted, Some(&policy));
    assert_refused(&r, "PYRE_CONFIG_POLICY", "provider azure is not allowed");
}

#[test]
fn provider_from_the_kernel_command_line() {
    let srv = server(&[]);
    let dir = empty_dir();
    let cmdline = dir.path().join("cmdline");
    std::fs::write(
        &cmdline,
        format!(
            "ro pyre.provider=gcp pyre.metadata.url={} pyre.config.deadline=5\n",
            srv.url()
        ),
    )
    .unwrap();
    let r = pyre_fetch(&["--cmdline", cmdline.to_str().unwrap()]);
    assert_fetched(&r, CONFIG);
    assert_eq!(
        hits(&srv, "/computeMetadata/v1/instance/attributes/pyre-config"),
        [200]
    );
}

#[test]
fn no_provider_and_no_dmi_match_is_a_setup_error() {
    let r = pyre_fetch(&[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.reason()
            .contains("no pyre.provider= given and none detected from DMI"),
        "{}",
        r.reason()
    );
}

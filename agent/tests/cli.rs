//! The command line: exit codes (0 clean, 1 drift, 2 could not check, 3 no boot record),
//! signatures, keys, JSON output, diff, and verification as an unprivileged user (unreadable
//! entries).
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Output;

use common::*;

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = pyre();
    for a in args {
        c.arg(a);
    }
    c.output().expect("run pyre")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn keygen(t: &Tree, name: &str) -> std::path::PathBuf {
    let k = t.file(name);
    let o = run(&[&"keygen", &"-o", &k]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    k
}

fn pubkey(k: &Path) -> std::path::PathBuf {
    let mut s = k.as_os_str().to_os_string();
    s.push(".pub");
    s.into()
}

#[test]
fn keygen_writes_private_secret_and_refuses_overwrite() {
    let t = Tree::empty();
    let k = keygen(&t, "key");
    assert_eq!(
        fs::metadata(&k).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = fs::read_to_string(&k).unwrap();
    assert!(text.starts_with("pyre-secret-key ed25519 ") && text.len() == 24 + 64 + 1);
    let pubtext = fs::read_to_string(pubkey(&k)).unwrap();
    assert!(pubtext.starts_with("pyre-public-key ed25519 "));
    let o = run(&[&"keygen", &"-o", &k]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
    assert_eq!(code(&run(&[&"keygen", &"-o", &k, &"--force"])), 0);
    assert_ne!(fs::read_to_string(&k).unwrap(), text);
}

#[test]
fn signed_seal_verify_and_signature_failures() {
    let t = base_tree();
    let k = keygen(&t, "key");
    let other = keygen(&t, "other");
    let m = t.manifest();
    let o = run(&[&"seal", &t.root, &"-o", &m, &"--key", &k]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let digest = String::from_utf8(o.stdout).unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.trim().len() == 71,
        "{digest}"
    );

    let o = run(&[
        &"verify",
        &t.root,
        &"-m",
        &m,
        &"--pubkey",
        &pubkey(&k),
        &"--format",
        &"json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verdict"], "clean");
    assert_eq!(v["signature"], "verified");
    assert_eq!(v["manifest_digest"], digest.trim());
    for key in [
        "root",
        "started",
        "finished",
        "counts",
        "changes",
        "agent_version",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }

    // Another key: could not check, never clean.
    let o = run(&[&"verify", &t.root, &"-m", &m, &"--pubkey", &pubkey(&other)]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("PYRE_SIGNATURE: could not check"));
    assert!(
        stderr(&o).contains("not with the trusted key"),
        "{}",
        stderr(&o)
    );

    // Edited manifest under a valid signature file.
    let text = fs::read_to_string(&m).unwrap();
    fs::write(&m, text.replace("mode=0640", "mode=0644")).unwrap();
    let o = run(&[&"verify", &t.root, &"-m", &m, &"--pubkey", &pubkey(&k)]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("does not match the manifest"),
        "{}",
        stderr(&o)
    );
    // Re-signing the edited manifest makes the signature good and the drift visible.
    assert_eq!(code(&run(&[&"sign", &m, &"--key", &k])), 0);
    let o = run(&[&"verify", &t.root, &"-m", &m, &"--pubkey", &pubkey(&k)]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("DRIFT: "));

    // Missing signature.
    fs::remove_file(t.file("manifest.sig")).unwrap();
    let o = run(&[&"verify", &t.root, &"-m", &m, &"--pubkey", &pubkey(&k)]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no signature file"), "{}", stderr(&o));
    // Garbage signature.
    fs::write(t.file("manifest.sig"), "pyre-signature ed25519 00 11\n").unwrap();
    assert_eq!(
        code(&run(&[
            &"verify",
            &t.root,
            &"-m",
            &m,
            &"--pubkey",
            &pubkey(&k)
        ])),
        2
    );
}

#[test]
fn drift_and_could_not_check_exit_codes() {
    let t = base_tree();
    let m = t.manifest();
    assert_eq!(code(&run(&[&"seal", &t.root, &"-o", &m])), 0);
    let o = run(&[&"verify", &t.root, &"-m", &m]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("CLEAN: "));
    fs::write(t.path("etc/passwd"), "x").unwrap();
    let o = run(&[&"verify", &t.root, &"-m", &m]);
    assert_eq!(code(&o), 1);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("DRIFT: ") && out.contains("modified (1):\n  /etc/passwd  content: "),
        "{out}"
    );
    // Truncated manifest.
    let bytes = fs::read(&m).unwrap();
    fs::write(t.file("short"), &bytes[..bytes.len() / 2]).unwrap();
    let o = run(&[&"verify", &t.root, &"-m", &t.file("short")]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
    // Missing manifest, missing root, bad arguments.
    assert_eq!(code(&run(&[&"verify", &t.root, &"-m", &t.file("nope")])), 2);
    assert_eq!(code(&run(&[&"verify", &t.file("nope"), &"-m", &m])), 2);
    assert_eq!(code(&run(&[&"verify", &t.root])), 2);
    assert_eq!(
        code(&run(&[
            &"seal",
            &t.root,
            &"-o",
            &m,
            &"--exclude",
            &"relative"
        ])),
        2
    );
}

#[test]
fn excludes_are_recorded_and_applied() {
    let t = base_tree();
    let m = t.manifest();
    let o = run(&[
        &"seal",
        &t.root,
        &"-o",
        &m,
        &"--exclude",
        &"/run",
        &"--exclude",
        &"/tmp/",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = fs::read_to_string(&m).unwrap();
    assert!(
        text.starts_with("pyre-manifest 1\nexclude /run\nexclude /tmp\n/ dir "),
        "{text}"
    );
    assert!(!text.contains("/run/fifo"));
    write(&t.path("run/new"), b"runtime state", 0o644);
    write(&t.path("tmp/x"), b"scratch", 0o644);
    // An excluded path is checked for existence and type only.
    fs::set_permissions(t.path("run"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(code(&run(&[&"verify", &t.root, &"-m", &m])), 0);
    fs::remove_dir_all(t.path("run")).unwrap();
    assert_eq!(code(&run(&[&"verify", &t.root, &"-m", &m])), 1);
}

#[test]
fn diff_reports_changes_between_manifests() {
    let t = base_tree();
    let (a, b) = (t.file("a"), t.file("b"));
    assert_eq!(code(&run(&[&"seal", &t.root, &"-o", &a])), 0);
    let o = run(&[&"diff", &a, &a]);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("IDENTICAL: "));
    fs::remove_file(t.path("etc/shadow")).unwrap();
    write(&t.path("etc/new"), b"new", 0o644);
    fs::set_permissions(t.path("etc/passwd"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(code(&run(&[&"seal", &t.root, &"-o", &b])), 0);
    let o = run(&[&"diff", &a, &b, &"--format", &"json"]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kinds: Vec<(String, String)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("/etc/new", "added"),
        ("/etc/passwd", "modified"),
        ("/etc/shadow", "removed"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(p, k)| (p.to_string(), k.to_string()))
        .collect();
    assert_eq!(kinds, want);
    assert_eq!(v["verdict"], "changed");
    let o = run(&[&"diff", &a, &t.file("missing")]);
    assert_eq!(code(&o), 2);
}

/// As an unprivileged user, a file and a directory without read permission are unreadable:
/// reported as such (never clean), and the directory's sealed children are not "removed".
#[test]
fn unreadable_entries_as_unprivileged_user() {
    // The tree and a copy of the binary sit where uid 65534 can reach them, wherever the
    // checkout lives (a clone under a 0700 directory must pass too).
    let t = base_tree_reachable();
    // Everything readable by others, except what the test makes unreadable.
    fs::set_permissions(t.path("etc/shadow"), fs::Permissions::from_mode(0o644)).unwrap();
    for p in ["var/lib/app", "var/lib/app/state", "var/lib/app/more"] {
        let mode = if p.ends_with("app") { 0o755 } else { 0o644 };
        fs::set_permissions(t.path(p), fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::set_permissions(t.path("run/fifo"), fs::Permissions::from_mode(0o644)).unwrap();
    t.seal(&[]);
    fs::set_permissions(t.manifest(), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(t.path("etc/shadow"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(t.path("var/lib/app"), fs::Permissions::from_mode(0o000)).unwrap();
    let o = output_retrying_etxtbsy(|| {
        let mut c = t.pyre_copy();
        c.args(["verify", "--format", "json", "-m"])
            .arg(t.manifest())
            .arg(&t.root)
            .uid(65534)
            .gid(65534);
        c
    });
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let changes: Vec<(String, String)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = vec![
        ("/etc/shadow".to_string(), "unreadable".to_string()),
        ("/var/lib/app".to_string(), "unreadable".to_string()),
    ];
    assert_eq!(changes, want, "{v}");
    let error = v["changes"][0]["error"].as_str().unwrap();
    assert!(error.contains("Permission denied"), "{error}");
    assert_eq!(v["counts"]["unreadable"], 2);
    assert_eq!(v["verdict"], "drift");
}

#[test]
fn boot_report_without_a_record_checks_the_live_root_and_fails_closed() {
    let t = Tree::empty();
    let missing = t.file("boot.json");
    let cmdline = t.file("cmdline");
    fs::write(&cmdline, b"root=/dev/vda ro\n").unwrap();
    let etc = t.file("etc-pyre");
    let args = |record: &Path| {
        run(&[
            &"boot-report",
            &"--record",
            &record,
            &"--root",
            &t.root,
            &"--etc",
            &etc,
            &"--cmdline",
            &cmdline,
        ])
    };
    // No record (not pyre's initramfs) and no baked manifest: readiness must not pass.
    let o = args(&missing);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("no signed manifest"), "{}", stderr(&o));
    fs::write(&missing, b"{").unwrap();
    let o = args(&missing);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("not valid JSON"), "{}", stderr(&o));
}

/// Run a freshly copied binary. Another test thread may fork while the copy's write descriptor
/// is still open; the child holds it until its own exec, and exec of the copy then fails with
/// ETXTBSY for that moment. Retry briefly instead of failing the test on that race.
fn output_retrying_etxtbsy(make: impl Fn() -> std::process::Command) -> Output {
    for _ in 0..100 {
        match make().output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            r => return r.unwrap(),
        }
    }
    panic!("the copied pyre binary stayed busy (ETXTBSY)")
}

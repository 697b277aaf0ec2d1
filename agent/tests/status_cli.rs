//! `pyre daemon`'s checks as a process over a sealed fixture image (no VM): a bind mount over a
//! sealed binary in the host's mount table is found by the mounts check at start, its incident
//! report stored under the run directory, and `pyre status` (text and JSON) shows it with exit
//! 1; nothing published is exit 2.
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn pyre(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pyre"));
    for a in args {
        c.arg(a);
    }
    c.output().expect("run pyre")
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A root sealed and signed like image/build.sh does it: manifest and signature inside
/// `etc/pyre/`, sealed as empty files and excluded.
fn image(dir: &Path) {
    let root = dir.join("root");
    let etc = root.join("etc/pyre");
    for d in ["usr/bin", "proc", "run", "etc/pyre/keys"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("usr/bin/tool"), "#!/bin/true\n").unwrap();
    let key = dir.join("build.key");
    ok(&pyre(&[&"keygen", &"-o", &key]));
    std::fs::copy(dir.join("build.key.pub"), etc.join("keys/build.pub")).unwrap();
    for f in ["manifest", "manifest.sig"] {
        std::fs::write(etc.join(f), "").unwrap();
    }
    let m = dir.join("manifest");
    ok(&pyre(&[
        &"seal",
        &root,
        &"-o",
        &m,
        &"--key",
        &key,
        &"--exclude",
        &"/proc",
        &"--exclude",
        &"/run",
        &"--exclude",
        &"/etc/pyre/manifest",
        &"--exclude",
        &"/etc/pyre/manifest.sig",
    ]));
    std::fs::copy(&m, etc.join("manifest")).unwrap();
    std::fs::copy(dir.join("manifest.sig"), etc.join("manifest.sig")).unwrap();
}

#[test]
fn nothing_published_is_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let o = pyre(&[&"status", &"--run", &t.path()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("has not published one"), "{err}");
}

#[test]
fn the_daemon_finds_a_bind_mount_and_status_shows_it() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    image(d);
    let run = d.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(d.join("boot_id"), "boot-s\n").unwrap();
    std::fs::write(
        d.join("mountinfo"),
        "22 1 8:1 / / ro,relatime - ext4 /dev/vda1 ro\n\
         23 22 0:21 / /proc rw - proc proc rw\n\
         41 22 8:1 /tmp/evil /usr/bin/tool rw - ext4 /dev/vda1 rw\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pyre"))
        .arg("daemon")
        // Never act on the host: the report is stored, nothing is powered off.
        .arg("--report-only")
        .args(["--config".as_ref(), d.join("none.json").as_os_str()])
        .args(["--state-dir".as_ref(), d.join("state").as_os_str()])
        .args(["--run".as_ref(), run.as_os_str()])
        .args(["--boot-id-file".as_ref(), d.join("boot_id").as_os_str()])
        .args([
            "--cmdline",
            "/dev/null",
            "--os-release",
            "/dev/null",
            "--kmsg",
            "/dev/null",
        ])
        .args(["--root".as_ref(), d.join("root").as_os_str()])
        .args(["--pyre-etc".as_ref(), d.join("root/etc/pyre").as_os_str()])
        .args(["--mountinfo".as_ref(), d.join("mountinfo").as_os_str()])
        .args(["--sys".as_ref(), d.join("sys").as_os_str()])
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let o = pyre(&[&"status", &"--run", &run]);
        if o.status.code() == Some(1) {
            break String::from_utf8_lossy(&o.stdout).into_owned();
        }
        assert!(
            Instant::now() < until,
            "status never showed the mount: {o:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        text.contains("mounts  every 5s: FOUND at ")
            && text.contains("ext4 /dev/vda1 mounted over sealed /usr/bin/tool"),
        "{text}"
    );
    assert!(
        text.contains("config:    ") && text.contains("(none)"),
        "{text}"
    );
    let o = pyre(&[&"status", &"--run", &run, &"--format", &"json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["checks"][0]["last"]["result"], "found");
    assert_eq!(v["action"], "report");
    let id = v["checks"][0]["last_incident"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(id.ends_with("-boots-mounts"), "{id}");
    let report = std::fs::read_to_string(run.join("reports").join(format!("{id}.json"))).unwrap();
    assert!(report.contains("\"kind\": \"pyre.incident\""), "{report}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let started = Instant::now();
    assert!(child.wait().unwrap().success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

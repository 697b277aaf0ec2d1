//! apply() against a temp dir standing in for /run, with the recording fake for sethostname,
//! chown and user lookups.
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use super::fake::{FakeApplyHost, Op};
use super::*;
use crate::config::parse;

const CONFIG: &str = r#"{
  "version": 1,
  "hostname": "web-1",
  "files": [
    {"path": "/run/app/db.env", "mode": "0640", "owner": "app:root", "content": "PASSWORD=secret-content-xyz\n"},
    {"path": "/run/app/blob", "mode": "0644", "content": "AAEC/w==", "encoding": "base64"},
    {"path": "/var/lib/data/seed", "owner": "1000:1000", "content": "seed"}
  ],
  "environment": {"APP_ENV": "prod", "TOKEN": "secret-line2"},
  "volumes": [{"name": "data", "device": {"serial": "S1"}, "filesystem": "ext4",
               "mountpoint": "/var/lib/data"}]
}"#;

fn setup() -> (tempfile::TempDir, ApplyPaths, FakeApplyHost, Config) {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    fs::create_dir(&run).unwrap();
    (
        dir,
        ApplyPaths { run },
        FakeApplyHost::new(),
        parse(CONFIG.as_bytes()).unwrap(),
    )
}

fn mode_of(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn applies_files_environment_hostname_and_records() {
    let (_d, paths, host, config) = setup();
    let report = apply(&config, &host, &paths).unwrap();
    let run = &paths.run;
    assert_eq!(
        fs::read_to_string(run.join("app/db.env")).unwrap(),
        "PASSWORD=secret-content-xyz\n"
    );
    assert_eq!(mode_of(&run.join("app/db.env")), 0o640);
    assert_eq!(fs::read(run.join("app/blob")).unwrap(), [0, 1, 2, 255]);
    assert_eq!(mode_of(&run.join("app/blob")), 0o644);
    assert_eq!(mode_of(&run.join("app")), 0o755);
    assert_eq!(
        fs::read_to_string(run.join("pyre/env")).unwrap(),
        "# Written by pyre boot from the instance config. Do not edit.\nAPP_ENV=\"prod\"\nTOKEN=\"secret-line2\"\n"
    );
    assert_eq!(mode_of(&run.join("pyre/env")), 0o600);
    assert_eq!(
        fs::read_to_string(run.join("pyre/hostname")).unwrap(),
        "web-1\n"
    );
    assert_eq!(mode_of(&run.join("pyre/config.json")), 0o600);
    assert_eq!(
        parse(&fs::read(run.join("pyre/config.json")).unwrap()).unwrap(),
        config
    );
    assert!(
        !run.join("var").exists(),
        "volume files wait for their volume"
    );
    // Lookups (volume files' owners included) all come before the first side effect.
    assert_eq!(
        host.ops(),
        vec![
            Op::UserId("app".into()),
            Op::GroupId("root".into()),
            Op::Chown {
                path: run.join("app/db.env"),
                uid: 1000,
                gid: 0
            },
            Op::SetHostname("web-1".into()),
        ]
    );
    assert_eq!(
        report,
        ApplyReport {
            hostname: Some("web-1".into()),
            files: vec!["/run/app/db.env".into(), "/run/app/blob".into()],
            deferred_files: vec!["/var/lib/data/seed".into()],
            environment: vec!["APP_ENV".into(), "TOKEN".into()],
        }
    );
    let shown = format!("{report:?} {config:?}");
    assert!(
        !shown.contains("secret-content-xyz") && !shown.contains("secret-line2"),
        "{shown}"
    );
    // Applying again replaces the files in place.
    apply(&config, &host, &paths).unwrap();
    let leftovers: Vec<_> = fs::read_dir(run.join("app"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "no temp files left: {leftovers:?}");
}

#[test]
fn volume_files_are_written_under_the_mounted_volume() {
    let (d, _paths, host, config) = setup();
    let mnt = d.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let written = apply_volume_files(&config, &host, "/var/lib/data", &mnt).unwrap();
    assert_eq!(written, vec!["/var/lib/data/seed".to_string()]);
    assert_eq!(fs::read_to_string(mnt.join("seed")).unwrap(), "seed");
    assert_eq!(mode_of(&mnt.join("seed")), 0o600, "the default mode");
    assert_eq!(
        host.ops(),
        vec![Op::Chown {
            path: mnt.join("seed"),
            uid: 1000,
            gid: 1000
        }]
    );
    let e = apply_volume_files(&config, &host, "/srv/other", &mnt).unwrap_err();
    assert_eq!(
        e.to_string(),
        "\"/srv/other\" is not the mountpoint of a configured volume"
    );
}

#[test]
fn unknown_owner_fails_before_any_write() {
    let (_d, paths, host, _) = setup();
    // The unresolvable owner is on a volume file: it still stops the whole apply up front.
    let config = parse(CONFIG.replace("1000:1000", "nobody-here:app").as_bytes()).unwrap();
    let e = apply(&config, &host, &paths).unwrap_err();
    assert_eq!(
        e.to_string(),
        "files[2].owner: no user \"nobody-here\" in this image"
    );
    assert_eq!(e.message_id(), "PYRE_CONFIG_APPLY");
    assert_eq!(
        fs::read_dir(&paths.run).unwrap().count(),
        0,
        "nothing written"
    );
    assert!(!host
        .ops()
        .iter()
        .any(|o| matches!(o, Op::SetHostname(_) | Op::Chown { .. })));
}

#[test]
fn a_symlink_in_the_path_is_refused_not_followed() {
    let (d, paths, host, config) = setup();
    let outside = d.path().join("outside");
    fs::create_dir(&outside).unwrap();
    symlink(&outside, paths.run.join("app")).unwrap();
    let e = apply(&config, &host, &paths).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("writing /run/app/db.env: \"app\" is a symlink or not a directory"),
        "{e}"
    );
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written through the link"
    );
    assert!(!paths.run.join("pyre/config.json").exists());
}

#[test]
fn a_symlink_at_the_target_is_replaced_not_followed() {
    let (d, paths, host, config) = setup();
    let victim = d.path().join("victim");
    fs::write(&victim, "untouched").unwrap();
    fs::create_dir(paths.run.join("app")).unwrap();
    symlink(&victim, paths.run.join("app/db.env")).unwrap();
    apply(&config, &host, &paths).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
    let meta = fs::symlink_metadata(paths.run.join("app/db.env")).unwrap();
    assert!(meta.file_type().is_file());
}

#[test]
fn injected_failures_name_what_failed() {
    let (_d, paths, host, config) = setup();
    host.fail_when(|op| matches!(op, Op::SetHostname(_)).then_some(libc::EPERM));
    let e = apply(&config, &host, &paths).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("setting the hostname to \"web-1\": "),
        "{e}"
    );
    assert!(
        !paths.run.join("pyre/config.json").exists(),
        "config.json marks a complete apply"
    );

    let (_d, paths, host, config) = setup();
    host.fail_when(|op| matches!(op, Op::Chown { .. }).then_some(libc::EPERM));
    let e = apply(&config, &host, &paths).unwrap_err();
    assert!(
        e.to_string().starts_with("writing /run/app/db.env: "),
        "{e}"
    );
    assert!(
        !paths.run.join("app/db.env").exists(),
        "the temp file is removed, the target never appears"
    );
    assert_eq!(fs::read_dir(paths.run.join("app")).unwrap().count(), 0);
}

#[test]
fn an_invalid_config_is_not_applied() {
    let (_d, paths, host, mut config) = setup();
    config.files[0].path = "/etc/shadow".into();
    let e = apply(&config, &host, &paths).unwrap_err();
    assert!(e.to_string().contains("files[0].path"), "{e}");
    assert!(host.ops().is_empty());
}

/// The real sethostname, in a private UTS namespace of one test thread (skipped when not
/// allowed to unshare). The thread proves its namespace differs before touching anything, so
/// the host's name can never change.
#[test]
fn real_sethostname_in_a_private_uts_namespace() {
    use nix::sched::{unshare, CloneFlags};
    let ns = || fs::read_link("/proc/thread-self/ns/uts").ok();
    let host_ns = ns();
    let host_name = nix::unistd::gethostname().unwrap();
    let got = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWUTS).ok()?;
        let mine = ns();
        if mine.is_none() || mine == host_ns {
            return None;
        }
        NixApplyHost.set_hostname("pyre-uts-test").unwrap();
        Some(nix::unistd::gethostname().unwrap())
    })
    .join()
    .unwrap();
    let Some(got) = got else {
        eprintln!("skipped: cannot unshare a UTS namespace here");
        return;
    };
    assert_eq!(got, "pyre-uts-test");
    assert_eq!(
        nix::unistd::gethostname().unwrap(),
        host_name,
        "the host's name is untouched"
    );
}

#[test]
fn real_user_database_lookups() {
    assert_eq!(NixApplyHost.user_id("root").unwrap(), Some(0));
    assert_eq!(NixApplyHost.group_id("root").unwrap(), Some(0));
    assert_eq!(NixApplyHost.user_id("no-such-user-pyre").unwrap(), None);
}

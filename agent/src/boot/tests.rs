//! The boot sequence against recording fakes: the apply host (sethostname, owners), the volume
//! host (in-memory disks, fake clock), the host (modules, shutdown, fake clock) and a recording
//! reporter. Files under the temp `run` are written for real. Nothing here can power off,
//! reboot or rename the machine running the tests.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::*;
use crate::config::apply::fake::{FakeApplyHost, Op as ApplyOp};
use crate::host::{Op, RecordingHost, Shutdown};
use crate::init::record::BootRecord;
use crate::volumes::fake::{FakeSys, RecordingVolumeHost};

const SECRET: &str = "hunter2-do-not-log";

#[derive(Default)]
struct Posts(Mutex<Vec<(String, Vec<u8>)>>);

impl Reporter for Posts {
    fn post(&self, url: &str, body: &[u8]) -> Result<u16, String> {
        self.0.lock().unwrap().push((url.into(), body.to_vec()));
        Ok(204)
    }
}

struct Rig {
    dir: tempfile::TempDir,
    paths: BootPaths,
    apply: FakeApplyHost,
    volumes: RecordingVolumeHost,
    sys: FakeSys,
    host: Arc<RecordingHost>,
    posts: Posts,
}

impl Rig {
    fn new(cmdline: &str, policy: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("cmdline"), cmdline).unwrap();
        std::fs::write(d.join("image.json"), policy).unwrap();
        let sys = FakeSys::new();
        let paths = BootPaths {
            cmdline: d.join("cmdline"),
            policy: d.join("image.json"),
            keys: d.join("keys"),
            run: d.join("run"),
            sys: sys.paths.sys.clone(),
            dev: sys.paths.dev.clone(),
            dmi: d.join("dmi"),
            ca: d.join("ca"),
            modules: d.join("modules"),
            config_file: None,
        };
        Rig {
            dir,
            paths,
            apply: FakeApplyHost::new(),
            volumes: RecordingVolumeHost::new(),
            sys,
            host: Arc::new(RecordingHost::new()),
            posts: Posts::default(),
        }
    }

    fn with_config(mut self, json: &str) -> Rig {
        let f = self.dir.path().join("config.json");
        std::fs::write(&f, json).unwrap();
        self.paths.config_file = Some(f);
        self
    }

    fn run(&self) -> Outcome {
        let out = self.run_inner();
        if let Ok(b) = std::fs::read(self.paths.record("boot.json")) {
            eprintln!("{}", String::from_utf8_lossy(&b));
        }
        out
    }

    fn run_inner(&self) -> Outcome {
        let caps = Capabilities {
            apply: &self.apply,
            volumes: &self.volumes,
            modules: &*self.host,
            lifecycle: &*self.host,
            reporter: &self.posts,
            clock: self.host.clone(),
        };
        run(&caps, &self.paths)
    }

    fn shutdowns(&self) -> Vec<Shutdown> {
        self.host
            .ops()
            .into_iter()
            .filter_map(|o| match o {
                Op::ShutDown(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn record(&self) -> serde_json::Value {
        let bytes = std::fs::read(self.paths.record("boot.json")).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(SECRET));
        serde_json::from_slice(&bytes).unwrap()
    }
}

fn config_with_secrets() -> String {
    format!(
        r#"{{"version":1,"hostname":"web-1",
        "files":[{{"path":"/run/app/db.env","mode":"0640","owner":"app:app","content":"PASSWORD={SECRET}"}}],
        "environment":{{"DB_PASSWORD":"{SECRET}"}}}}"#
    )
}

#[test]
fn applies_hostname_files_env_and_records_the_stages() {
    let rig = Rig::new("ro", r#"{"version":1}"#).with_config(&config_with_secrets());
    assert_eq!(rig.run(), Outcome::Applied);
    assert!(rig.shutdowns().is_empty());
    let ops = rig.apply.ops();
    assert_eq!(
        ops[0],
        ApplyOp::UserId("app".into()),
        "owners resolved first"
    );
    let first_write = ops
        .iter()
        .position(|o| matches!(o, ApplyOp::SetHostname(_)))
        .unwrap();
    assert!(
        ops[first_write..]
            .iter()
            .all(|o| !matches!(o, ApplyOp::UserId(_) | ApplyOp::GroupId(_))),
        "everything is resolved before the first change: {ops:?}"
    );
    let run = &rig.paths.run;
    let content = std::fs::read_to_string(run.join("app/db.env")).unwrap();
    assert_eq!(content, format!("PASSWORD={SECRET}"));
    let env = std::fs::read_to_string(run.join("pyre/env")).unwrap();
    assert!(env.contains("DB_PASSWORD="), "{env}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&run.join("pyre/config.json")), 0o600);
    assert_eq!(mode(&run.join("pyre/env")), 0o600);
    let id: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("pyre/instance.json")).unwrap()).unwrap();
    assert_eq!(id["provider"], "file");

    let rec = rig.record();
    let boot = &rec["boot"];
    assert_eq!(boot["outcome"], "applied");
    let stages: Vec<&str> = boot["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["settings", "fetch", "verify", "prepare", "hostname", "volumes", "files", "commit"]
    );
    assert_eq!(boot["details"]["files"][0], "/run/app/db.env");
    assert_eq!(boot["details"]["environment"][0], "DB_PASSWORD");
}

#[test]
fn keeps_init_s_record() {
    let rig = Rig::new("ro", r#"{"version":1}"#).with_config(r#"{"version":1}"#);
    std::fs::create_dir_all(rig.paths.run.join("pyre")).unwrap();
    let init = br#"{"version":1,"verified":true,"manifest-digest":"sha256:ab","entries":1,
        "bytes-hashed":1,"root-hash":"cd","root-device":"/dev/vda","started-at":1.0,
        "stages":[],"total-seconds":2.0}"#;
    std::fs::write(rig.paths.record("boot.json"), init).unwrap();
    assert_eq!(rig.run(), Outcome::Applied);
    let r = BootRecord::from_json(&std::fs::read(rig.paths.record("boot.json")).unwrap()).unwrap();
    assert!(r.verified);
    assert_eq!(r.boot.unwrap().outcome, "applied");
}

#[test]
fn unreachable_endpoint_reports_and_powers_off() {
    // Nothing listens on port 9 of 127.0.0.1; the fake clock makes the deadline pass at once.
    let rig = Rig::new(
        "pyre.provider=aws pyre.metadata.url=http://127.0.0.1:9 pyre.config.deadline=20 \
         pyre.report.url=http://127.0.0.1:9/report",
        r#"{"version":1}"#,
    );
    let out = rig.run();
    assert_eq!(
        out,
        Outcome::Failed {
            class: Class::Unreachable,
            message_id: msgid::UNREACHABLE,
            action: OnFailure::Poweroff
        }
    );
    assert_eq!(rig.shutdowns(), [Shutdown::PowerOff]);
    let rec = rig.record();
    assert_eq!(rec["boot"]["message-id"], msgid::UNREACHABLE);
    assert_eq!(rec["boot"]["action"], "poweroff");
    assert!(rec["boot"]["reason"]
        .as_str()
        .unwrap()
        .contains("not answered within the 20s deadline"));
    let posts = rig.posts.0.lock().unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].0, "http://127.0.0.1:9/report");
    let body: serde_json::Value = serde_json::from_slice(&posts[0].1).unwrap();
    assert_eq!(body["boot"]["message-id"], msgid::UNREACHABLE);
}

#[test]
fn the_policy_decides_the_action() {
    let cases = [
        ("reboot", vec![Shutdown::Reboot]),
        ("halt", vec![Shutdown::Halt]),
        ("debug", vec![]),
    ];
    for (action, want) in cases {
        let rig = Rig::new(
            "ro",
            &format!(r#"{{"version":1,"signature-required":true,"on-failure":"{action}"}}"#),
        )
        .with_config(&config_with_secrets());
        let Outcome::Failed {
            class, message_id, ..
        } = rig.run()
        else {
            panic!("an unsigned config must be refused")
        };
        assert_eq!(
            (class, message_id),
            (Class::Refused, "PYRE_CONFIG_SIGNATURE")
        );
        assert_eq!(rig.shutdowns(), want, "{action}");
        assert!(rig.apply.ops().is_empty(), "nothing applied");
        assert!(!rig.paths.run.join("app").exists());
        rig.record();
    }
}

#[test]
fn no_config_is_fine_unless_required() {
    let rig = Rig::new("pyre.provider=none", r#"{"version":1}"#);
    assert_eq!(rig.run(), Outcome::NoConfig);
    assert!(rig.shutdowns().is_empty());
    assert_eq!(rig.record()["boot"]["outcome"], "no-config");

    let rig = Rig::new(
        "pyre.provider=none",
        r#"{"version":1,"config-required":true}"#,
    );
    let out = rig.run();
    assert!(
        matches!(
            out,
            Outcome::Failed {
                class: Class::Missing,
                message_id: "PYRE_CONFIG_MISSING",
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(rig.shutdowns(), [Shutdown::PowerOff]);
}

#[test]
fn a_provider_the_policy_forbids_is_refused_before_fetching() {
    let rig =
        Rig::new("ro", r#"{"version":1,"providers":["aws"]}"#).with_config(r#"{"version":1}"#);
    let out = rig.run();
    assert!(
        matches!(
            out,
            Outcome::Failed {
                class: Class::Refused,
                message_id: "PYRE_CONFIG_POLICY",
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(rig.shutdowns(), [Shutdown::PowerOff]);
}

#[test]
fn a_broken_policy_still_ends_the_boot() {
    let rig = Rig::new("ro", "{not json").with_config(r#"{"version":1}"#);
    let out = rig.run();
    assert!(
        matches!(
            out,
            Outcome::Failed {
                class: Class::Setup,
                action: OnFailure::Poweroff,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(rig.shutdowns(), [Shutdown::PowerOff]);
}

#[test]
fn a_missing_required_volume_applies_nothing() {
    let config = format!(
        r#"{{"version":1,"hostname":"web-1",
        "files":[{{"path":"/run/app/a","content":"{SECRET}"}},
                 {{"path":"/var/lib/data/b","content":"x"}}],
        "volumes":[{{"name":"data","device":{{"serial":"vol-0abc"}},"filesystem":"ext4",
                     "mountpoint":"/var/lib/data","wait":"2s"}}]}}"#
    );
    let rig = Rig::new("ro", r#"{"version":1}"#).with_config(&config);
    let out = rig.run();
    assert!(
        matches!(
            out,
            Outcome::Failed {
                class: Class::NotApplied,
                message_id: "PYRE_VOLUME_MISSING",
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(rig.shutdowns(), [Shutdown::PowerOff]);
    assert!(
        !rig.paths.run.join("app").exists(),
        "no /run file before volumes"
    );
    assert!(!rig.paths.record("config.json").exists());
    let rec = rig.record();
    assert_eq!(
        rec["boot"]["details"]["volumes"]["volumes"][0]["outcome"],
        "failed"
    );
    let _ = &rig.sys;
}

#[test]
fn an_unwritable_file_is_boot_critical() {
    let rig = Rig::new("ro", r#"{"version":1}"#)
        .with_config(r#"{"version":1,"files":[{"path":"/run/app/a","content":"x"}]}"#);
    // A plain file where the directory must go.
    std::fs::create_dir_all(&rig.paths.run).unwrap();
    std::fs::write(rig.paths.run.join("app"), "in the way").unwrap();
    let out = rig.run();
    assert!(
        matches!(
            out,
            Outcome::Failed {
                class: Class::NotApplied,
                message_id: "PYRE_CONFIG_APPLY",
                ..
            }
        ),
        "{out:?}"
    );
    assert!(!rig.paths.record("config.json").exists());
}

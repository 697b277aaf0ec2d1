//! pyre init's failures: each is named with its code and reason, and powers off (or halts
//! with `pyre.debug`), driven through the recording host.
use std::path::Path;
use std::time::Duration;

use super::boot_tests::{add_disk, clean, failing, fixture, host_with_disk, ROOT_HASH, UUID};
use super::verify::VerifyFailure;
use super::*;
use crate::host::dm::DmRequest;
use crate::host::{Op, RecordingHost};

fn rewrite(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from));
    std::fs::write(path, text.replace(from, to)).unwrap();
}

type Setup = fn(&RecordingHost, &InitPaths) -> Option<VerifyFailure>;

fn fail_on(h: &RecordingHost, errno: i32, pred: impl Fn(&Op) -> bool + Send + Sync + 'static) {
    h.fail_when(move |op| pred(op).then_some(errno));
}

#[test]
fn every_failure_is_named_and_powers_off() {
    let cases: &[(&str, Setup, &str, &str)] = &[
        ("proc", |h, _| { fail_on(h, libc::EPERM, |o| matches!(o, Op::Mount { fstype: Some(t), .. } if t == "proc")); None },
            "PYRE-INIT-SETUP", "mounting proc on "),
        ("cmdline", |_, p| { rewrite(&p.cmdline, &format!("pyre.verity.roothash={ROOT_HASH}"), ""); None },
            "PYRE-INIT-CMDLINE", "kernel command line lacks pyre.verity.roothash"),
        ("module", |h, _| { fail_on(h, libc::ENOEXEC, |o| matches!(o, Op::FinitModule(p) if p.ends_with("dm-verity.ko"))); None },
            "PYRE-INIT-MODULES", "loading dm-verity (/lib/modules/dm-verity.ko) failed: ENOEXEC"),
        ("no disk", |_, p| { rewrite(&p.cmdline, UUID, "22222222-2222-2222-2222-222222222222"); None },
            "PYRE-INIT-ROOT-DEVICE", "no block device carries this image's verity superblock (uuid 22222222-2222-2222-2222-222222222222) within 30s; seen: vda (254:0, 0.4 MiB): verity superblock of another image (uuid 11111111-"),
        ("two roots", |_, p| { add_disk(p, "vdb", 16, true); None },
            "PYRE-INIT-ROOT-DEVICE", "/dev/vda and "),
        ("table", |h, _| { fail_on(h, libc::EINVAL, |o| matches!(o, Op::Dm { request: DmRequest::LoadTable { .. }, .. })); None },
            "PYRE-INIT-VERITY", "device-mapper verity table load for pyre-root: EINVAL (Invalid argument) (the kernel log"),
        ("bad hash", |h, _| { fail_on(h, libc::EIO, |o| matches!(o, Op::Mount { fstype: Some(t), .. } if t == "erofs")); None },
            "PYRE-INIT-ROOT-MOUNT", "EIO (Input/output error) (dm-verity rejected a block"),
        ("digest", |_, p| { std::fs::write(p.manifest(), b"another manifest").unwrap(); None },
            "PYRE-INIT-MANIFEST-DIGEST", "manifest digest mismatch: "),
        ("no keys", |_, p| { std::fs::remove_file(p.keys().join("build.pub")).unwrap(); None },
            "PYRE-INIT-SIGNATURE", "no trusted public keys (*.pub) in "),
        ("wrong key", |_, _| Some(VerifyFailure::Signature("no trusted key verifies it".into())),
            "PYRE-INIT-SIGNATURE", "manifest signature rejected: no trusted key verifies it"),
        ("drift", |_, p| { rewrite(&p.cmdline, " ro", " ro pyre.verify=metadata"); Some(VerifyFailure::Drift { changes: 1, report: "modified /usr/bin/ls\n  sha256: a -> b".into() }) },
            "PYRE-INIT-DRIFT", "root differs from the signed manifest (1 changes)"),
        ("exec", |h, _| { fail_on(h, libc::ENOENT, |o| matches!(o, Op::Execv { .. })); None },
            "PYRE-INIT-HANDOVER", "switch_root: exec /sbin/init: ENOENT"),
    ];
    for debug in [false, true] {
        for (name, setup, code, message) in cases {
            let f = fixture(if debug { "pyre.debug" } else { "" });
            let h = host_with_disk();
            let verifier = match setup(&h, &f.paths) {
                Some(failure) => failing(failure),
                None => clean(),
            };
            let err = boot(&h, &f.paths, &verifier, &[]).expect_err(name);
            assert_eq!(err.code(), *code, "{name}: {err}");
            let outcome = refuse_boot(&h, &err, debug_from(&f.paths.cmdline));
            let lines = h.lines();
            let refused = lines
                .iter()
                .find(|l| l.contains("BOOT REFUSED"))
                .unwrap_or_else(|| panic!("{name}: {lines:?}"));
            assert!(
                refused.starts_with(&format!("pyre init: BOOT REFUSED [{code}]: ")),
                "{name}: {refused}"
            );
            assert!(
                refused.contains(message),
                "{name}: {refused:?} lacks {message:?}"
            );
            let ops = h.ops();
            if debug {
                assert_eq!(outcome, Refusal::Halted, "{name}");
                assert_eq!(ops.last(), Some(&Op::Sync), "{name}");
                assert!(
                    lines.last().unwrap().contains("pyre.debug is set"),
                    "{name}"
                );
            } else {
                assert_eq!(outcome, Refusal::PoweredOff, "{name}");
                assert_eq!(ops[ops.len() - 2..], [Op::Sync, Op::PowerOff], "{name}");
            }
            let failed_stage = lines
                .iter()
                .filter(|l| l.contains(": failed after "))
                .count();
            let in_a_stage = usize::from(*name != "exec"); // switch_root comes after the stages
            assert_eq!(failed_stage, in_a_stage, "{name}: {lines:?}");
            if *name == "drift" {
                assert!(
                    lines.iter().any(|l| l == "modified /usr/bin/ls"),
                    "{lines:?}"
                );
            }
            if *name == "no disk" {
                assert!(
                    h.elapsed() >= Duration::from_secs(30),
                    "waited the whole deadline"
                );
            }
            let switched = ops.iter().any(|o| matches!(o, Op::Chroot(_)));
            assert_eq!(
                switched,
                *name == "exec",
                "{name}: only a failed exec gets past chroot"
            );
        }
    }
}

#[test]
fn a_failed_power_off_is_reported() {
    let h = RecordingHost::new();
    h.fail_when(|o| matches!(o, Op::PowerOff).then_some(libc::EPERM));
    let err = InitError::NoKeys("/etc/pyre/keys".into());
    assert_eq!(refuse_boot(&h, &err, false), Refusal::PowerOffFailed);
    assert!(h
        .lines()
        .last()
        .unwrap()
        .contains("power off failed: EPERM"));
}

#[test]
fn a_long_drift_report_is_cut_on_the_console() {
    let h = RecordingHost::new();
    let report: String = (0..500).map(|i| format!("modified /f{i}\n")).collect();
    let err = InitError::Verify(VerifyFailure::Drift {
        changes: 500,
        report,
    });
    refuse_boot(&h, &err, false);
    let lines = h.lines();
    assert!(lines.contains(&"... 300 more report lines not shown".to_string()));
    assert!(lines.len() < MAX_REPORT_LINES + 5);
}

//! The boot scenarios as reusable steps, shared by tests/tests/boot.rs and `pyre-demo`.
use std::time::{Duration, Instant};

use crate::markers::{self, line_with, present, stage_times};
use crate::qemu::{QemuBuilder, QemuError};
use crate::vm::{Exited, Vm};

/// Deadlines, stated once. TCG on 2 shared cores; multiply with `PYRE_E2E_SLOWDOWN` (e.g. 2)
/// on slower machines.
pub const MULTI_USER_DEADLINE: Duration = Duration::from_secs(300);
/// From QEMU start to QEMU gone, for a boot pyre refuses.
pub const REFUSAL_DEADLINE: Duration = Duration::from_secs(240);
/// For the guest to shut down cleanly after each way of asking (power button, Ctrl-Alt-Del).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// `d` scaled by `PYRE_E2E_SLOWDOWN` (default 1).
pub fn scaled(d: Duration) -> Duration {
    let factor = std::env::var("PYRE_E2E_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|f| *f >= 1.0)
        .unwrap_or(1.0);
    d.mul_f64(factor)
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Qemu(#[from] QemuError),
    #[error("[{scenario}] {what}; {console}")]
    Check {
        scenario: String,
        what: String,
        console: String,
    },
}

fn check(vm: &Vm, ok: bool, what: impl FnOnce() -> String) -> Result<(), ScenarioError> {
    if ok {
        Ok(())
    } else {
        Err(ScenarioError::Check {
            scenario: vm.scenario.clone(),
            what: what(),
            console: vm.console_context(),
        })
    }
}

/// A boot that reached multi-user with a verified root.
pub struct CleanBoot {
    pub vm: Vm,
    /// When pyre init's verified-root line arrived (since QEMU start).
    pub verified_at: Duration,
    /// When systemd reached multi-user.
    pub multi_user_at: Duration,
    /// pyre init's verified-root line.
    pub verified_line: String,
    /// Stage name → seconds, as pyre init reported them.
    pub stages: Vec<(String, f64)>,
}

/// Boot and wait for multi-user; check pyre's verified-root line names `digest` (hex) and
/// carries the stage times, and that pyre-verified.service repeated it after switch_root.
pub fn boot_clean(builder: QemuBuilder, digest: &str) -> Result<CleanBoot, ScenarioError> {
    let vm = builder.spawn()?;
    let (_, multi_user_at) = vm.wait_for_any(markers::MULTI_USER, scaled(MULTI_USER_DEADLINE))?;
    let verified = format!("{}{digest}", markers::VERIFIED);
    let verified_at = vm.wait_for(&verified, Duration::from_secs(5))?;
    let text = vm.console().text();
    let line = line_with(&text, &verified).unwrap_or_default().to_string();
    let stages = stage_times(&line);
    check(
        &vm,
        stages.iter().any(|(n, _)| n == "total") && stages.len() >= 2,
        || format!("the verified-root line carries no stage times: {line:?}"),
    )?;
    // After switch_root the line comes through the journal, tagged `pyre[<pid>]: `.
    let service_said = text.lines().any(|l| {
        l.split_once(&verified)
            .is_some_and(|(pre, _)| pre.ends_with("]: "))
    });
    check(&vm, service_said, || {
        "pyre-verified.service did not repeat the verified-root line after switch_root".into()
    })?;
    check(&vm, !text.contains(markers::REFUSED), || {
        "pyre refused something on a clean boot".into()
    })?;
    Ok(CleanBoot {
        vm,
        verified_at,
        multi_user_at,
        verified_line: line,
        stages,
    })
}

/// A root whose content pyre-content.service rejected after switch_root.
pub struct Rejected {
    pub vm: Vm,
    /// The line naming the tampered file.
    pub line: String,
    /// When it arrived (since QEMU start).
    pub rejected_at: Duration,
    pub exited: Exited,
}

/// Boot, expect pyre init to hand over (no refusal in the initramfs), pyre-content.service to
/// name `file` as tampered, pyre-ready.target never to be reached, and the guest to power
/// itself off (QEMU exits by itself) within the refusal deadline.
pub fn boot_rejected_after_switch_root(
    builder: QemuBuilder,
    file: &str,
) -> Result<Rejected, ScenarioError> {
    let mut vm = builder.spawn()?;
    let deadline = scaled(REFUSAL_DEADLINE);
    let mut any = vec![markers::CONTENT_REJECTED, markers::REFUSED];
    any.extend(markers::PYRE_READY);
    let (i, rejected_at) = vm.wait_for_any(&any, deadline)?;
    let line = vm
        .console()
        .complete_line(any[i], Instant::now() + Duration::from_secs(10))
        .unwrap_or_default();
    check(&vm, i == 0 && line.contains(file), || {
        format!("expected pyre-content.service to name {file} as tampered; saw {line:?}")
    })?;
    let exited = vm.wait_exit(deadline.saturating_sub(vm.elapsed()))?;
    check(&vm, exited.by_itself(), || {
        format!("QEMU did not exit by itself with status 0: {exited:?}")
    })?;
    let text = vm.console().text();
    let ready = present(&text, markers::PYRE_READY);
    check(
        &vm,
        ready.is_empty() && !text.contains(markers::REFUSED),
        || format!("pyre-ready.target reached or pyre init refused: {ready:?}"),
    )?;
    Ok(Rejected {
        vm,
        line,
        rejected_at,
        exited,
    })
}

/// A boot pyre refused.
pub struct Refused {
    pub vm: Vm,
    /// The refusal line.
    pub reason: String,
    /// When the refusal line arrived.
    pub refused_at: Duration,
    /// How QEMU ended (by itself: the guest powered off).
    pub exited: Exited,
}

/// Boot, expect pyre init to refuse with one of `codes`, print its power-off line, never start
/// systemd, and QEMU to exit by itself (guest power off) within the refusal deadline.
pub fn boot_refused(builder: QemuBuilder, codes: &[&str]) -> Result<Refused, ScenarioError> {
    let mut vm = builder.spawn()?;
    let deadline = scaled(REFUSAL_DEADLINE);
    // A refusal (of any kind), or systemd starting, ends the wait.
    let mut any = vec![markers::REFUSED];
    any.extend(markers::SYSTEMD_STARTED);
    let (i, refused_at) = vm.wait_for_any(&any, deadline)?;
    // The markers are line prefixes: judge the whole line.
    let line = vm
        .console()
        .complete_line(any[i], Instant::now() + Duration::from_secs(10))
        .unwrap_or_default();
    let wanted: Vec<String> = codes.iter().map(|c| markers::refused(c)).collect();
    check(
        &vm,
        wanted.iter().any(|w| line.contains(w.as_str())),
        || format!("expected a refusal with one of {codes:?}; saw {line:?}"),
    )?;
    let reason = line;
    let exited = vm.wait_exit(deadline.saturating_sub(vm.elapsed()))?;
    check(&vm, exited.by_itself(), || {
        format!("QEMU did not exit by itself with status 0: {exited:?}")
    })?;
    let text = vm.console().text();
    check(&vm, text.contains(markers::INIT_POWEROFF), || {
        format!("no {:?} line before QEMU exited", markers::INIT_POWEROFF)
    })?;
    let started = present(&text, markers::SYSTEMD_STARTED);
    check(&vm, started.is_empty(), || {
        format!("systemd started after the refusal: saw {started:?}")
    })?;
    Ok(Refused {
        vm,
        reason,
        refused_at,
        exited,
    })
}

/// A boot without pyre init whose pyre-ready.target was reached through pyre-verified.service's
/// own check of the live root.
pub struct ReadyBoot {
    pub vm: Vm,
    /// When pyre-verified.service's live-verified line arrived.
    pub verified_at: Duration,
    /// When the boot finished with pyre-ready.target's job done.
    pub ready_at: Duration,
    /// The live-verified line (journal-tagged).
    pub line: String,
}

/// The console line showing `marker` after the journal's `pyre[<pid>]: ` tag (so it came from
/// pyre-verified.service, not from pyre init).
fn from_service(text: &str, marker: &str) -> Option<String> {
    text.lines()
        .find(|l| {
            l.split_once(marker)
                .is_some_and(|(pre, _)| pre.contains("pyre[") && pre.contains("]: "))
        })
        .map(|l| l.trim_end_matches('\r').to_string())
}

fn no_pyre_init(vm: &Vm, text: &str) -> Result<(), ScenarioError> {
    check(vm, text.contains(crate::plain::MARKER), || {
        "the plain initramfs did not say it mounted the root".into()
    })?;
    check(vm, !text.contains(markers::PYRE_INIT), || {
        "pyre init ran, though the initramfs is not pyre's".into()
    })
}

/// The two ends of pyre-ready.target's start job on a plain boot, in systemd's log: the job
/// queue ran empty with the target's job done, or its job failed for a dependency. (systemd
/// 252 logs the failure at notice level but "Reached target" only as a status line, which it
/// no longer prints once the getty is up, and the live check ends after that.)
const READY_VERDICTS: [&str; 2] = [markers::STARTUP_FINISHED, markers::READY_DEPENDENCY_FAILED];

/// Boot with an initramfs that is not pyre's and expect exactly one outcome: pyre-verified
/// verifies the live root against manifest `digest` (hex), and the boot finishes with
/// pyre-ready.target's job done (no failure of the unit or the target's job in the log).
pub fn boot_ready_live(builder: QemuBuilder, digest: &str) -> Result<ReadyBoot, ScenarioError> {
    let vm = builder.spawn()?;
    let (i, ready_at) = vm.wait_for_any(&READY_VERDICTS, scaled(MULTI_USER_DEADLINE))?;
    check(&vm, i == 0, || {
        format!(
            "expected {:?}, saw {:?}",
            READY_VERDICTS[0], READY_VERDICTS[i]
        )
    })?;
    let text = vm.console().text();
    no_pyre_init(&vm, &text)?;
    check(&vm, !text.contains("pyre-verified.service: Failed"), || {
        "pyre-verified.service failed".into()
    })?;
    let marker = format!("{}{digest}", markers::LIVE_VERIFIED);
    let line = from_service(&text, &marker);
    check(&vm, line.is_some(), || {
        format!("pyre-verified.service did not print {marker:?} before pyre-ready.target")
    })?;
    let verified_at = vm.console().find(&marker).unwrap_or_default();
    Ok(ReadyBoot {
        vm,
        verified_at,
        ready_at,
        line: line.unwrap_or_default(),
    })
}

/// A boot whose pyre-ready.target stayed down.
pub struct NotReady {
    pub vm: Vm,
    /// When systemd said the target's dependency failed.
    pub failed_at: Duration,
    /// pyre's drift line (journal-tagged).
    pub drift_line: String,
}

/// Boot with an initramfs that is not pyre's on a drifted root and expect exactly one outcome:
/// pyre-verified.service fails with pyre's drift message naming `file`, pyre-ready.target's
/// dependency fails, and by multi-user the target was never reached.
pub fn boot_not_ready(builder: QemuBuilder, file: &str) -> Result<NotReady, ScenarioError> {
    let vm = builder.spawn()?;
    let deadline = scaled(MULTI_USER_DEADLINE);
    let (i, failed_at) = vm.wait_for_any(&READY_VERDICTS, deadline)?;
    check(&vm, i == 1, || {
        format!(
            "expected {:?}, saw {:?}",
            READY_VERDICTS[1], READY_VERDICTS[i]
        )
    })?;
    // The rest of the boot goes on to its end; nothing may reach the target in it.
    vm.wait_for(
        markers::STARTUP_FINISHED,
        deadline.saturating_sub(vm.elapsed()),
    )?;
    let text = vm.console().text();
    no_pyre_init(&vm, &text)?;
    check(&vm, text.contains(markers::VERIFIED_UNIT_DRIFT), || {
        format!("no {:?} line", markers::VERIFIED_UNIT_DRIFT)
    })?;
    let drift_line = from_service(&text, markers::DRIFT_ID);
    check(&vm, drift_line.is_some(), || {
        format!(
            "pyre-verified.service printed no {:?} line",
            markers::DRIFT_ID
        )
    })?;
    check(&vm, text.contains(file), || {
        format!("the drift report does not name {file}")
    })?;
    check(&vm, !text.contains(markers::READY_REACHED), || {
        "pyre-ready.target was reached on a drifted root".into()
    })?;
    Ok(NotReady {
        vm,
        failed_at,
        drift_line: drift_line.unwrap_or_default(),
    })
}

//! The config-and-volume scenarios as reusable steps, shared by tests/tests/config_volumes.rs
//! and `pyre-demo`: hand a machine its config (fw_cfg or a metadata endpoint on the kernel
//! command line), look inside a configured guest once pyre-ready.target is reached, and judge
//! a boot that `pyre boot` must end.
use std::path::Path;
use std::time::{Duration, Instant};

use crate::markers::{self, line_with, stage_times};
use crate::qemu::QemuBuilder;
use crate::scenario::{scaled, ScenarioError, MULTI_USER_DEADLINE, SHUTDOWN_GRACE};
use crate::vm::{Exited, Shutdown, Vm};

/// The fw_cfg name the qemu provider reads (docs/providers.md).
pub const FW_CFG_CONFIG: &str = "opt/org.pyre/config";

/// The prefix of every line the guest-side check prints (after the journal's `bash[PID]: `).
pub const CHECK: &str = "pyre-e2e-check: ";

/// The config in `file` through fw_cfg, read by the qemu provider (`pyre.provider=qemu`).
pub fn config_fw_cfg(b: QemuBuilder, file: &Path) -> QemuBuilder {
    b.fw_cfg(FW_CFG_CONFIG, file)
        .kernel_arg("pyre.provider", "qemu")
}

/// The config from `provider`'s metadata protocol at `base_url` (`http://10.0.2.2:PORT`).
pub fn config_metadata(b: QemuBuilder, provider: &str, base_url: &str) -> QemuBuilder {
    b.kernel_arg("pyre.provider", provider)
        .kernel_arg("pyre.metadata.url", base_url)
}

/// `pyre.config.deadline=SECS`: the one deadline for fetching the config.
pub fn config_deadline(b: QemuBuilder, secs: u64) -> QemuBuilder {
    b.kernel_arg("pyre.config.deadline", &secs.to_string())
}

/// A test-only look inside the guest, next to the normal boot (multi-user stays the default
/// target): systemd-run-generator's `kernel-command-line.service` waits for
/// pyre-ready.target, runs each command of `commands` with its output prefixed by [`CHECK`]
/// and the command's index, then leaves the machine running (the harness shuts it down).
/// Commands may contain neither `$`, `%`, `"` nor `'` (kernel-parameter quoting and systemd's
/// expansions).
pub fn guest_check(b: QemuBuilder, commands: &[&str]) -> Result<QemuBuilder, String> {
    let mut script =
        String::from("until systemctl -q is-active pyre-ready.target; do sleep 1; done");
    script.push_str(&format!("; echo {CHECK}ready"));
    for (i, c) in commands.iter().enumerate() {
        if c.contains(['$', '%', '"', '\'']) {
            return Err(format!("guest command {c:?} contains $, % or quotes"));
        }
        script.push_str(&format!(
            "; {{ {c}; }} 2>&1 | sed s/^/{}{i}:/",
            CHECK.trim()
        ));
    }
    script.push_str(&format!("; echo {CHECK}done"));
    Ok(b.kernel_arg("systemd.wants", "kernel-command-line.service")
        .kernel_arg("systemd.run", &format!("\"/bin/bash -c '{script}'\""))
        .kernel_arg("systemd.run_success_action", "none")
        .kernel_arg("systemd.run_failure_action", "none"))
}

/// The output lines of guest command `i` (see [`guest_check`]), in order.
pub fn check_output(text: &str, i: usize) -> Vec<String> {
    let tag = format!("{}{i}:", CHECK.trim());
    // Only the journal's lines (`bash[PID]: TAG…`): the kernel echoes its command line, which
    // holds the script and so every tag, on the console too.
    text.lines()
        .filter_map(|l| {
            let (pre, rest) = l.split_once(&tag)?;
            pre.ends_with("]: ").then(|| rest.trim_end().to_string())
        })
        .collect()
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

/// A boot whose config `pyre boot` applied.
pub struct Configured {
    pub vm: Vm,
    /// When pyre-ready.target was reached (since QEMU start).
    pub ready_at: Duration,
    /// When the getty's `HOSTNAME login:` prompt arrived.
    pub login_at: Duration,
    /// `pyre boot`'s line with its stage times.
    pub stages_line: String,
    /// Stage name → seconds, as `pyre boot` reported them.
    pub stages: Vec<(String, f64)>,
    /// The guest check's output, per command.
    pub checks: Vec<Vec<String>>,
    /// The clean shutdown after the check (the ACPI power button).
    pub shutdown: Shutdown,
}

/// Boot a machine built with [`guest_check`] (`commands` as given there) and expect exactly
/// one outcome: `pyre boot` applies the config — pyre-ready.target is reached, the login prompt
/// shows `hostname`, `pyre boot` prints its stage times, nothing is refused — and the check
/// runs; then the machine shuts down cleanly on the ACPI power button (volumes unmounted).
pub fn boot_configured(
    builder: QemuBuilder,
    hostname: &str,
    commands: usize,
) -> Result<Configured, ScenarioError> {
    let mut vm = builder.monitor(true).spawn()?;
    let deadline = scaled(MULTI_USER_DEADLINE);
    let (_, ready_at) = vm.wait_for_any(markers::PYRE_READY, deadline)?;
    let login = format!("{hostname} login: ");
    let login_at = vm.wait_for(&login, scaled(Duration::from_secs(60)))?;
    vm.wait_for(&format!("]: {CHECK}done"), scaled(Duration::from_secs(60)))?;
    let shutdown = vm.powerdown(scaled(SHUTDOWN_GRACE))?;
    check(&vm, !shutdown.exited.killed, || {
        format!("the guest did not shut down cleanly: {shutdown:?}")
    })?;
    let text = vm.console().text();
    let failed = markers::present(&text, markers::BOOT_FAILURES);
    check(&vm, failed.is_empty(), || {
        format!("pyre boot reported a failure: {failed:?}")
    })?;
    let stages_line = line_with(&text, markers::BOOT_STAGES)
        .unwrap_or_default()
        .to_string();
    let stages = stage_times(&stages_line);
    check(&vm, stages.iter().any(|(n, _)| n == "total"), || {
        format!(
            "no {:?} line with stage times from pyre boot",
            markers::BOOT_STAGES
        )
    })?;
    let checks = (0..commands).map(|i| check_output(&text, i)).collect();
    Ok(Configured {
        vm,
        ready_at,
        login_at,
        stages_line,
        stages,
        checks,
        shutdown,
    })
}

/// A boot `pyre boot` ended.
pub struct Ended {
    pub vm: Vm,
    /// The failure line (with its message id).
    pub reason: String,
    /// When it arrived (since QEMU start).
    pub reason_at: Duration,
    /// When pyre-boot.service started (since QEMU start), if seen.
    pub boot_started_at: Option<Duration>,
    /// How QEMU ended (by itself: the guest powered off).
    pub exited: Exited,
}

/// Boot and expect exactly one outcome: `pyre boot` fails with message id `id` (its line also
/// containing every one of `words`) and says it powers off (the default image policy),
/// pyre-ready.target is never reached, and the machine powers itself off (QEMU exits by
/// itself) within `exit_within` of the failure line.
pub fn boot_ended(
    builder: QemuBuilder,
    id: &str,
    words: &[&str],
    exit_within: Duration,
) -> Result<Ended, ScenarioError> {
    let mut vm = builder.spawn()?;
    let marker = format!("{id}: ");
    let mut any = vec![marker.as_str()];
    any.extend(markers::PYRE_READY);
    let (i, reason_at) = vm.wait_for_any(&any, scaled(MULTI_USER_DEADLINE))?;
    check(&vm, i == 0, || {
        format!("pyre-ready.target was reached; expected {marker:?}")
    })?;
    let reason = vm
        .console()
        .complete_line(&marker, Instant::now() + Duration::from_secs(10))
        .unwrap_or_default();
    let missing: Vec<&&str> = words.iter().filter(|w| !reason.contains(**w)).collect();
    check(&vm, missing.is_empty(), || {
        format!("the failure line does not say {missing:?}: {reason:?}")
    })?;
    let exited = vm.wait_exit(scaled(exit_within))?;
    check(&vm, exited.by_itself(), || {
        format!("QEMU did not exit by itself with status 0: {exited:?}")
    })?;
    let text = vm.console().text();
    let action = format!("{}: boot-critical failure ({id})", markers::BOOT_FAILED_ID);
    let said = text
        .lines()
        .any(|l| l.contains(&action) && l.contains("powering off"));
    check(&vm, said, || {
        format!("no {action:?} line saying pyre boot is powering off")
    })?;
    check(&vm, text.contains(markers::KERNEL_POWER_DOWN), || {
        format!("the kernel did not say {:?}", markers::KERNEL_POWER_DOWN)
    })?;
    check(&vm, !text.contains(markers::READY_REACHED), || {
        "pyre-ready.target was reached".into()
    })?;
    let boot_started_at = vm.console().find(markers::BOOT_STARTED);
    Ok(Ended {
        vm,
        reason,
        reason_at,
        boot_started_at,
        exited,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Cmdline, Image};

    fn builder() -> QemuBuilder {
        let image = Image {
            dir: "/img".into(),
            vmlinuz: "/img/vmlinuz".into(),
            initrd: "/img/initrd.img".into(),
            rootfs: "/img/rootfs.img".into(),
            manifest: "/img/manifest".into(),
            manifest_sig: "/img/manifest.sig".into(),
            cmdline: Cmdline::parse("ro"),
        };
        QemuBuilder::new(&image, "t")
    }

    #[test]
    fn config_sources_go_on_the_kernel_command_line() {
        let b = config_fw_cfg(builder(), Path::new("/w/c.json"));
        assert_eq!(b.cmdline.to_string(), "ro pyre.provider=qemu");
        let args: Vec<String> = b
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into())
            .collect();
        assert!(args.ends_with(&[
            "-fw_cfg".to_string(),
            "name=opt/org.pyre/config,file=/w/c.json".to_string()
        ]));
        let b = config_deadline(
            config_metadata(builder(), "aws", "http://10.0.2.2:8080"),
            20,
        );
        assert_eq!(
            b.cmdline.to_string(),
            "ro pyre.provider=aws pyre.metadata.url=http://10.0.2.2:8080 pyre.config.deadline=20"
        );
    }

    #[test]
    fn the_guest_check_waits_for_readiness_and_tags_its_output() {
        let b = guest_check(builder(), &["hostname", "cat /run/x"]).unwrap();
        assert_eq!(
            b.cmdline.to_string(),
            "ro systemd.wants=kernel-command-line.service systemd.run=\"/bin/bash -c 'until \
             systemctl -q is-active pyre-ready.target; do sleep 1; done; echo pyre-e2e-check: \
             ready; { hostname; } 2>&1 | sed s/^/pyre-e2e-check:0:/; { cat /run/x; } 2>&1 | sed \
             s/^/pyre-e2e-check:1:/; echo pyre-e2e-check: done'\" \
             systemd.run_success_action=none systemd.run_failure_action=none"
        );
        assert!(guest_check(builder(), &["echo $HOME"]).is_err());
        assert!(guest_check(builder(), &["date +%s"]).is_err());
        let console = "Command line: ro systemd.run=... sed s/^/pyre-e2e-check:0:/; ...\r\n\
                       [  9.1] bash[310]: pyre-e2e-check:0:web-1\r\n\
                       [  9.2] bash[310]: pyre-e2e-check:1:hello\r\n\
                       [  9.2] bash[310]: pyre-e2e-check:1:world\r\n";
        assert_eq!(check_output(console, 0), ["web-1"]);
        assert_eq!(check_output(console, 1), ["hello", "world"]);
        assert!(check_output(console, 2).is_empty());
    }
}

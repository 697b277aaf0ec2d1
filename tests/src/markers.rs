//! Console strings the scenarios wait for. pyre's own lines come from agent/src/init/ and
//! agent/src/cmd/boot_report.rs; systemd's from systemd 252 (Debian 12).

/// systemd reached multi-user (its status line, colours stripped, or the getty prompt).
pub const MULTI_USER: &[&str] = &["Reached target multi-user.target", " login: "];

/// systemd reached pyre-ready.target: this boot's root was verified, workloads may start.
/// (systemd shortens the unit name with `…` when the status line is too long for 80 columns.)
pub const PYRE_READY: &[&str] = &[
    "Reached target pyre-ready.target",
    "Reached target pyre-ready.…",
];

/// pyre init's root-device stage line; the device it chose follows.
pub const ROOT_DEVICE: &str = "pyre init: root-device: ";

/// Any of these means systemd (PID 1 after switch_root) started.
pub const SYSTEMD_STARTED: &[&str] = &["systemd[1]:", "Welcome to "];

/// The verified-root line, from `pyre init` (with stage times) and again from
/// pyre-verified.service after switch_root; the manifest digest follows.
pub const VERIFIED: &str = "pyre: root verified: manifest sha256:";

/// pyre-content.service (after switch_root) naming a file whose blocks dm-verity rejected
/// (agent/src/init/content.rs); the file and the drift report line follow.
pub const CONTENT_REJECTED: &str = "PYRE_ROOT_CONTENT: tampered file: ";
/// pyre-content.service's line after comparing the root's tree with the manifest (agent/src/cmd/
/// content_check.rs).
pub const CONTENT_METADATA: &str = "pyre: metadata: ";
/// pyre-content.service's line after reading every block of the root (agent/src/cmd/
/// content_check.rs).
pub const CONTENT_READ: &str = "pyre: content-read: ";

/// pyre init's refusal line: `pyre init: BOOT REFUSED [<code>]: <reason>`.
pub const REFUSED: &str = "pyre init: BOOT REFUSED [";

/// pyre init's last line before it asks the kernel to power off.
pub const INIT_POWEROFF: &str = "pyre init: powering off";

/// Refusal codes (stable ids printed between the brackets of [`REFUSED`]).
pub const CODE_DRIFT: &str = "PYRE-INIT-DRIFT";
pub const CODE_VERIFY: &str = "PYRE-INIT-VERIFY";
pub const CODE_ROOT_MOUNT: &str = "PYRE-INIT-ROOT-MOUNT";
pub const CODE_VERITY: &str = "PYRE-INIT-VERITY";
pub const CODE_SIGNATURE: &str = "PYRE-INIT-SIGNATURE";

/// `pyre init: BOOT REFUSED [<code>]`
pub fn refused(code: &str) -> String {
    format!("{REFUSED}{code}]")
}

/// systemd reached pyre-ready.target (its status line, while systemd prints them).
pub const READY_REACHED: &str = "Reached target pyre-ready.target";
/// systemd's log: the boot's job queue is empty, every start job (pyre-ready.target's
/// included) has a result.
pub const STARTUP_FINISHED: &str = "Startup finished in ";
/// systemd's log (`systemd.log_target=console`): pyre-verified.service exited 1 (drift), and so
/// pyre-ready.target did not start (systemd 252 wording).
pub const VERIFIED_UNIT_DRIFT: &str =
    "pyre-verified.service: Main process exited, code=exited, status=1/FAILURE";
pub const READY_DEPENDENCY_FAILED: &str =
    "Job pyre-ready.target/start failed with result 'dependency'";

/// pyre-verified.service's line after verifying the live root itself (no record from pyre
/// init); the manifest digest follows. From agent/src/init/ready.rs.
pub const LIVE_VERIFIED: &str =
    "pyre: root verified at run time (pyre init did not verify this boot): manifest sha256:";

/// pyre's message id for drift (agent/src/cmd/boot_report.rs, agent/src/cmd/verify.rs).
pub const DRIFT_ID: &str = "PYRE_DRIFT: ";

/// The start of pyre init's console lines.
pub const PYRE_INIT: &str = "pyre init: ";

/// The kernel's last words on a power off.
pub const KERNEL_POWER_DOWN: &str = "reboot: Power down";

/// `pyre boot`'s summary line after applying a config, with its stage times
/// (`pyre boot: applied (provider qemu); stages: settings 0.001s, fetch 0.120s, …, total 1.900s`;
/// agent/src/init/record.rs).
pub const BOOT_STAGES: &str = "pyre boot: applied";
/// pyre-boot.service starting (systemd's status line; the unit name may be cut with `…`).
pub const BOOT_STARTED: &str = "Starting pyre-boot.service";
/// Message ids of `pyre boot`'s failures (agent/src/config/mod.rs, agent/src/volumes/).
pub const CONFIG_SIGNATURE_ID: &str = "PYRE_CONFIG_SIGNATURE";
/// The config source was not reached by the deadline (agent/src/boot/mod.rs).
pub const CONFIG_UNREACHABLE_ID: &str = "PYRE_CONFIG_UNREACHABLE";
/// `pyre boot`'s summary of every boot-critical failure, with the action taken.
pub const BOOT_FAILED_ID: &str = "PYRE_BOOT_FAILED";
pub const VOLUME_MISSING_ID: &str = "PYRE_VOLUME_MISSING";
/// A blank volume being formatted (agent/src/volumes/apply.rs).
pub const VOLUME_FORMATTED_ID: &str = "PYRE_VOLUME_FORMATTED";
/// Any of these on a configured boot means something was refused or failed.
pub const BOOT_FAILURES: &[&str] = &[
    "PYRE_BOOT_FAILED",
    "PYRE_BOOT_SETUP",
    "PYRE_CONFIG_UNREACHABLE",
    "PYRE_CONFIG_REFUSED",
    "PYRE_CONFIG_SIGNATURE",
    "PYRE_CONFIG_INVALID",
    "PYRE_CONFIG_MISSING",
    "PYRE_CONFIG_POLICY",
    "PYRE_CONFIG_APPLY",
    "PYRE_VOLUME_MISSING",
    "PYRE_VOLUME_AMBIGUOUS",
    "PYRE_VOLUME_FAILED",
    "PYRE_VOLUME_WRONG_TYPE",
    "PYRE_FORMAT_REFUSED",
    "pyre-boot.service: Failed",
];

/// Which of `markers` occur in `text`.
pub fn present<'a>(text: &str, markers: &[&'a str]) -> Vec<&'a str> {
    markers
        .iter()
        .copied()
        .filter(|m| text.contains(m))
        .collect()
}

/// The first console line containing `marker`, without the trailing CR.
pub fn line_with<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.contains(marker))
        .map(|l| l.trim_end_matches('\r'))
}

/// `stages: modules 0.21s, verify 12.30s, total 12.90s` → [("modules", 0.21), …, ("total", 12.9)].
pub fn stage_times(line: &str) -> Vec<(String, f64)> {
    let Some((_, stages)) = line.split_once("stages: ") else {
        return Vec::new();
    };
    // The checks follow the stages after a `; ` (`…, total 0.90s; metadata passed in …`).
    let stages = stages.split("; ").next().unwrap_or_default();
    stages
        .split(", ")
        .filter_map(|part| {
            let (name, secs) = part.trim().rsplit_once(' ')?;
            let secs = secs.strip_suffix('s')?.parse().ok()?;
            Some((name.to_string(), secs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_stage_times_of_the_verified_line() {
        let text = "[    3.1] x\r\npyre: root verified: manifest sha256:ab, 9912 entries, \
                    226.4 MB hashed; stages: modules 0.21s, verify 12.30s, total 12.90s; \
                    metadata passed in initramfs 0.40s (0.0 MB)\r\nok";
        let line = line_with(text, VERIFIED).unwrap();
        assert!(line.ends_with("(0.0 MB)"));
        assert_eq!(
            stage_times(line),
            [
                ("modules".to_string(), 0.21),
                ("verify".to_string(), 12.3),
                ("total".to_string(), 12.9)
            ]
        );
        assert!(stage_times("no stages here").is_empty());
        assert_eq!(
            refused(CODE_DRIFT),
            "pyre init: BOOT REFUSED [PYRE-INIT-DRIFT]"
        );
        assert_eq!(present(text, &["x", "qq"]), ["x"]);
        let ready = "[  OK  ] Reached target pyre-ready.…verified and the server may serve.";
        assert_eq!(present(ready, PYRE_READY).len(), 1);
    }
}

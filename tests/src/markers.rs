//! Console strings the scenarios wait for. pyre's own lines come from agent/src/init/ and
//! agent/src/cmd/boot_report.rs; systemd's from systemd 252 (Debian 12).

/// systemd reached multi-user (status line or the getty prompt).
pub const MULTI_USER: &[&str] = &[
    "Reached target multi-user.target",
    "Reached target Multi-User System",
    " login: ",
];

/// Any of these means systemd (PID 1 after switch_root) started.
pub const SYSTEMD_STARTED: &[&str] = &["systemd[1]:", "Welcome to "];

/// pyre-verified.service's line after switch_root; followed by `sha256:<digest>`.
pub const VERIFIED_SERVICE: &str = "pyre: root verified: manifest sha256:";

/// pyre init's verified-root line, followed by the manifest digest.
pub const INIT_VERIFIED: &str = "pyre: root verified";

/// pyre init's failure line: the reason follows.
pub const INIT_FAILED: &str = "pyre: boot refused";

/// pyre init's last line before it powers the machine off.
pub const INIT_POWEROFF: &str = "pyre: powering off";

/// The kernel's last words on a power off.
pub const KERNEL_POWER_DOWN: &str = "reboot: Power down";

/// Which of `markers` occur in `text`.
pub fn present<'a>(text: &str, markers: &[&'a str]) -> Vec<&'a str> {
    markers
        .iter()
        .copied()
        .filter(|m| text.contains(m))
        .collect()
}

//! Drift made while a machine runs, for the run-time enforcement scenarios:
//! - [`LiveRoot`]: the machine runs on a copy of rootfs.img; one byte of a chosen file's data
//!   is changed in that copy from the host, under the running guest (QEMU reads the file
//!   through the host's page cache, so the guest's next read of that block sees it — and
//!   dm-verity refuses it);
//! - [`guest_trigger`]: a test-only hook on the (trusted) kernel command line — the same
//!   systemd-run-generator mechanism as `instance::guest_check` — that waits for
//!   pyre-ready.target, optionally prints `pyre status --format json` every few seconds, and
//!   runs a root shell action (e.g. a bind mount over a baked binary) once the host fires a
//!   [`Trigger`].
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use crate::image::Image;
use crate::qemu::QemuBuilder;
use crate::server::GUEST_HOST_ADDR;
use crate::tamper::{self, FileByte, TamperError};

/// The prefix of every line the guest trigger prints (after the journal's `bash[PID]: `).
pub const TAG: &str = "pyre-e2e-live:";
/// Printed once pyre-ready.target is active and the trigger is armed.
pub const ARMED: &str = "pyre-e2e-live: armed";
/// Printed right before the action runs, and after it.
pub const FIRED: &str = "pyre-e2e-live: fired";
pub const ACTED: &str = "pyre-e2e-live: acted";

/// pyre.service's cgroup (cgroup v2): its CPU time and peak memory, printed with each status.
pub const CGROUP: &str = "/sys/fs/cgroup/system.slice/pyre.service";
/// Between the status document and the cgroup files in a printed sample.
const SPLIT: &str = "--cgroup--";

/// One sample the trigger printed: `pyre status --format json` and pyre.service's cgroup.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub status: Value,
    /// `usage_usec` of the service's cpu.stat: its CPU time so far.
    pub cpu_usec: Option<u64>,
    /// memory.peak: the service's peak memory (all its processes), bytes.
    pub memory_peak: Option<u64>,
}

/// A copy of rootfs.img for one machine, with one file's byte located for a change at run time.
#[derive(Debug, Clone)]
pub struct LiveRoot {
    pub rootfs: PathBuf,
    pub at: FileByte,
}

impl LiveRoot {
    /// Copy `image`'s rootfs.img to `dest` and locate a data byte of the first of `candidates`.
    pub fn copy(image: &Image, candidates: &[&str], dest: &Path) -> Result<LiveRoot, TamperError> {
        let at = tamper::locate(image, candidates)?;
        tamper::copy_rootfs(image, dest)?;
        Ok(LiveRoot {
            rootfs: dest.to_path_buf(),
            at,
        })
    }

    /// Invert the located byte in the copy (the machine may be running on it); returns
    /// (before, after).
    pub fn tamper(&self) -> Result<(u8, u8), TamperError> {
        tamper::flip_byte(&self.rootfs, self.at.offset)
    }
}

/// A host-side switch the guest polls: a port nothing listens on until [`Trigger::fire`].
pub struct Trigger {
    port: u16,
    listener: Option<TcpListener>,
}

impl Trigger {
    pub fn new() -> Trigger {
        Trigger {
            port: crate::rsyslog::free_port(),
            listener: None,
        }
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Start listening: the guest's next poll connects, and it runs its action.
    pub fn fire(&mut self) -> std::io::Result<()> {
        if self.listener.is_none() {
            self.listener = Some(TcpListener::bind(("127.0.0.1", self.port))?);
        }
        Ok(())
    }
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger::new()
    }
}

/// A bind mount of a file from /run over `binary` (a sealed path): what an intruder shadowing
/// a baked program would do.
pub fn bind_over(binary: &str) -> String {
    format!(
        "echo pyre-e2e-shadow >/run/pyre-e2e-shadow && mount --bind /run/pyre-e2e-shadow {binary}"
    )
}

/// The guest script of [`guest_trigger`].
pub fn trigger_script(port: u16, status_every: Option<u32>, action: &str) -> String {
    let mut s = String::from("until systemctl -q is-active pyre-ready.target; do sleep 1; done");
    s.push_str(&format!(
        "; echo {ARMED}; until (echo >/dev/tcp/{GUEST_HOST_ADDR}/{port}) 2>/dev/null; do "
    ));
    match status_every {
        Some(secs) => s.push_str(&format!(
            "{{ pyre status --format json; echo {SPLIT}; cat {CGROUP}/cpu.stat {CGROUP}/memory.peak; }} \
             2>&1 | base64 -w0 | sed s/^/{TAG}status:/; echo; sleep {secs}"
        )),
        None => s.push_str("sleep 1"),
    }
    s.push_str(&format!("; done; echo {FIRED}; {action}; echo {ACTED}"));
    s
}

/// Add the trigger to `b`: after pyre-ready.target, poll the host's [`Trigger`] on `port` (once
/// a second, or with `pyre status --format json` printed every `status_every` seconds), then
/// run `action` as root in the host's mount namespace. The machine keeps running afterwards.
/// `action` may contain neither `$`, `%`, `"` nor `'`.
pub fn guest_trigger(
    b: QemuBuilder,
    port: u16,
    status_every: Option<u32>,
    action: &str,
) -> Result<QemuBuilder, String> {
    if action.contains(['$', '%', '"', '\'']) {
        return Err(format!("guest action {action:?} contains $, % or quotes"));
    }
    let script = trigger_script(port, status_every, action);
    Ok(b.kernel_arg("systemd.wants", "kernel-command-line.service")
        .kernel_arg("systemd.run", &format!("\"/bin/bash -c '{script}'\""))
        .kernel_arg("systemd.run_success_action", "none")
        .kernel_arg("systemd.run_failure_action", "none"))
}

/// The samples the trigger printed, in order (a sample whose status is not JSON is skipped:
/// printed before the daemon published, or cut).
pub fn samples(console: &str) -> Vec<Sample> {
    let tag = format!("{TAG}status:");
    console
        .lines()
        .filter_map(|l| {
            // Only the journal's lines: the kernel echoes its command line (the script) too.
            let (pre, rest) = l.split_once(&tag)?;
            if !pre.ends_with("]: ") {
                return None;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(rest.trim_end())
                .ok()?;
            let text = String::from_utf8_lossy(&bytes);
            let (status, cgroup) = text
                .split_once(&format!("\n{SPLIT}\n"))
                .unwrap_or((&text, ""));
            let status = serde_json::from_str(status).ok()?;
            let cpu_usec = cgroup
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok());
            let memory_peak = cgroup.lines().find_map(|l| l.trim().parse().ok());
            Some(Sample {
                status,
                cpu_usec,
                memory_peak,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erofs::tests::{build_image, read_file};
    use crate::image::Cmdline;

    #[test]
    fn the_script_polls_the_trigger_then_acts() {
        let s = trigger_script(4242, None, &bind_over("/usr/bin/ls"));
        assert!(!s.contains(['$', '%', '"', '\'']), "{s}");
        assert!(s.contains("until (echo >/dev/tcp/10.0.2.2/4242) 2>/dev/null; do sleep 1; done"));
        assert!(s.ends_with(
            "echo pyre-e2e-live: fired; echo pyre-e2e-shadow >/run/pyre-e2e-shadow && \
             mount --bind /run/pyre-e2e-shadow /usr/bin/ls; echo pyre-e2e-live: acted"
        ));
        let s = trigger_script(1, Some(5), "true");
        assert!(
            s.contains("pyre status --format json; echo --cgroup--; cat "),
            "{s}"
        );
        assert!(
            s.contains("| base64 -w0 | sed s/^/pyre-e2e-live:status:/; echo; sleep 5; done"),
            "{s}"
        );
        assert!(!s.contains(['$', '%', '"', '\'']), "{s}");
        let image = Image {
            dir: "/i".into(),
            vmlinuz: "/i/v".into(),
            initrd: "/i/r".into(),
            rootfs: "/i/f".into(),
            manifest: "/i/m".into(),
            manifest_sig: "/i/s".into(),
            cmdline: Cmdline::parse("ro"),
        };
        let b = guest_trigger(QemuBuilder::new(&image, "t"), 7, None, "true").unwrap();
        let line = b.cmdline.to_string();
        assert!(
            line.contains("systemd.run=\"/bin/bash -c 'until systemctl"),
            "{line}"
        );
        assert!(guest_trigger(b, 7, None, "echo $HOME").is_err());
    }

    #[test]
    fn samples_come_from_journal_lines_only() {
        let enc = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let full = enc("{\"a\": 1}\n--cgroup--\nusage_usec 1500\nuser_usec 1000\n4096\n");
        let bare = enc("{\"a\": 2}\n");
        let text = format!(
            "[    0.0] Command line: ... sed s/^/{TAG}status:/\n\
             bash[301]: {TAG}status:{full}\r\n\
             bash[301]: {TAG}status:bm90IGpzb24=\n\
             bash[301]: {TAG}status:{bare}\n"
        );
        let got = samples(&text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].status, serde_json::json!({"a": 1}));
        assert_eq!(
            (got[0].cpu_usec, got[0].memory_peak),
            (Some(1500), Some(4096))
        );
        assert_eq!(got[1].status, serde_json::json!({"a": 2}));
        assert_eq!((got[1].cpu_usec, got[1].memory_peak), (None, None));
    }

    #[test]
    fn changes_the_located_byte_of_the_copy_only() {
        let (dir, rootfs, tree) = build_image();
        let image = Image {
            dir: dir.path().into(),
            vmlinuz: "/none".into(),
            initrd: "/none".into(),
            rootfs: rootfs.clone(),
            manifest: "/none".into(),
            manifest_sig: "/none".into(),
            cmdline: Cmdline::parse("ro"),
        };
        let live =
            LiveRoot::copy(&image, &["/usr/lib/big.bin"], &dir.path().join("w/r.img")).unwrap();
        assert_eq!(
            std::fs::read(&rootfs).unwrap(),
            std::fs::read(&live.rootfs).unwrap()
        );
        let (before, after) = live.tamper().unwrap();
        assert_ne!(before, after);
        let want = std::fs::read(tree.join("usr/lib/big.bin")).unwrap();
        let got = read_file(&live.rootfs, "/usr/lib/big.bin");
        let changed: Vec<usize> = (0..want.len()).filter(|&i| want[i] != got[i]).collect();
        assert_eq!(changed, [live.at.file_offset as usize]);
        assert_eq!(read_file(&rootfs, "/usr/lib/big.bin"), want);
    }
}

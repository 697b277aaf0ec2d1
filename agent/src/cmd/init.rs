//! `pyre init` and the kernel's plain `/init`: the PID 1 edge. Wires the real host, the real
//! paths and the drift library into `init::boot`, installs a panic hook that powers off, and
//! never returns (PID 1 exiting panics the kernel).
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::exit::{CmdError, Exit};
use super::InitArgs;
use crate::host::{Clock, Console, Power, RealHost};
use crate::init::{self, InitError, InitPaths};

/// True when the kernel started us as its init: argv[0] is `/init` (or any `.../init`) and
/// we are PID 1. Decided before clap, since the kernel passes no subcommand.
pub fn is_kernel_init(argv: &[String], pid: i32) -> bool {
    let base = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|b| b.to_str());
    base == Some("init") && pid == 1
}

/// Arguments the kernel passed to init that systemd should see (e.g. `single`).
pub fn forwarded_args(argv: &[String]) -> Vec<String> {
    argv.iter().skip(1).cloned().collect()
}

pub fn run(args: InitArgs) -> Result<Exit, CmdError> {
    let pid = std::process::id();
    if pid != 1 {
        return Err(anyhow::anyhow!(
            "pyre init runs only as PID 1 in the initramfs (it mounts, switches root and powers off); this is PID {pid}"
        )
        .into());
    }
    pid1(&args.cmdline, &[])
}

/// The PID 1 main loop: boot, or refuse and power off; then wait forever.
pub fn pid1(cmdline: &Path, init_args: &[String]) -> ! {
    let paths = InitPaths {
        cmdline: cmdline.to_path_buf(),
        ..InitPaths::standard()
    };
    install_panic_hook(paths.cmdline.clone());
    let verifier = verifier();
    let err = match init::boot(&RealHost, &paths, verifier.as_ref(), init_args) {
        Err(e) => e,
        Ok(()) => InitError::SwitchRoot {
            step: "exec".into(),
            reason: "returned without error".into(),
        },
    };
    init::refuse_boot(&RealHost, &err, init::debug_from(&paths.cmdline));
    halt()
}

fn halt() -> ! {
    loop {
        RealHost.sleep(Duration::from_secs(3600));
    }
}

fn install_panic_hook(cmdline: PathBuf) {
    std::panic::set_hook(Box::new(move |info| {
        let host = RealHost;
        host.console(&format!(
            "pyre init: BOOT REFUSED [PYRE-INIT-PANIC]: internal error: {info}"
        ));
        host.sync();
        if !init::debug_from(&cmdline) {
            host.console("pyre init: powering off");
            let _ = host.power_off();
        }
        halt()
    }));
}

fn verifier() -> Box<dyn init::verify::RootVerifier> {
    Box::new(crate::init::verify::DriftVerifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pid_1_named_init_is_the_kernel_init() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_kernel_init(&v(&["/init"]), 1));
        assert!(is_kernel_init(&v(&["/init", "single"]), 1));
        assert!(
            !is_kernel_init(&v(&["/init"]), 4242),
            "never on a running system"
        );
        assert!(!is_kernel_init(&v(&["/usr/bin/pyre", "init"]), 1));
        assert!(!is_kernel_init(&v(&["/usr/bin/pyre"]), 1));
        assert!(!is_kernel_init(&[], 1));
        assert_eq!(forwarded_args(&v(&["/init", "single"])), ["single"]);
    }

    #[test]
    fn refuses_to_run_outside_pid_1() {
        let err = run(InitArgs {
            cmdline: "/proc/cmdline".into(),
        })
        .unwrap_err();
        assert!(err.to_string().contains("runs only as PID 1"), "{err}");
    }
}

//! `pyre daemon`: the shell of pyre.service. Reads the applied config, gathers the identity,
//! starts the daemon (`crate::daemon`: log shipping, then the enforcement checks), notifies
//! systemd, and on SIGTERM/SIGINT stops the checks and drains within `--stop-deadline` before
//! exiting (0: drained; 1: records still pending at the deadline).
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::exit::Exit;
use crate::daemon::enforce::{self as enf, EnforcePaths};
use crate::daemon::identity::{self, IdentityPaths};
use crate::daemon::notify::{self, Notifier};
use crate::daemon::rotate::{self, RotationTimer};
use crate::daemon::{self as d, Daemon};
use crate::enforce::Respond;
use crate::logship::clock::SystemClock;
use crate::logship::source::SourcePaths;
use crate::logship::PipelineOptions;
use crate::sys::duration;

fn parse_duration(s: &str) -> Result<Duration, String> {
    duration::parse(s).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The applied config (written by `pyre boot`); missing: nothing to ship, run idle.
    #[arg(long, default_value = "/run/pyre/config.json")]
    pub config: PathBuf,
    /// Checkpoints and the drain socket (control.sock); kept across restarts.
    #[arg(long, default_value = "/var/lib/pyre/logs")]
    pub state_dir: PathBuf,
    /// pyre's run directory: boot.json, instance.json.
    #[arg(long, default_value = "/run/pyre")]
    pub run: PathBuf,
    /// On SIGTERM/SIGINT, how long to try delivering what is pending before exiting.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub stop_deadline: Duration,
    #[arg(long, default_value = "/proc/cmdline", hide = true)]
    pub cmdline: PathBuf,
    #[arg(long, default_value = "/proc/sys/kernel/random/boot_id", hide = true)]
    pub boot_id_file: PathBuf,
    #[arg(long, default_value = "/etc/os-release", hide = true)]
    pub os_release: PathBuf,
    #[arg(long, default_value = "journalctl", hide = true)]
    pub journalctl: PathBuf,
    #[arg(long, default_value = "/dev/kmsg", hide = true)]
    pub kmsg: PathBuf,
    /// Where the full re-verification reads the root filesystem. pyre.service passes
    /// /run/pyre/root, a non-recursive read-only bind of / that the unit's own mounts
    /// (ProtectHome=, ProtectKernelModules=) do not cover.
    #[arg(long, default_value = "/")]
    pub verify_root: PathBuf,
    /// Never power off or reboot: every incident (rotation included) is stored, shipped and
    /// posted, and the instance keeps serving, whatever `drift.action` says. For trying the
    /// daemon on a machine that must stay up.
    #[arg(long)]
    pub report_only: bool,
    /// The live root (sealed unit files and /etc/fstab for the mounts check; block mapping).
    #[arg(long, default_value = "/", hide = true)]
    pub root: PathBuf,
    /// The image's manifest, signature and keys.
    #[arg(long, default_value = "/etc/pyre", hide = true)]
    pub pyre_etc: PathBuf,
    /// The host's mount table (PID 1's namespace).
    #[arg(long, default_value = "/proc/1/mountinfo", hide = true)]
    pub mountinfo: PathBuf,
    #[arg(long, default_value = "/sys", hide = true)]
    pub sys: PathBuf,
}

/// How long a stop waits for a check in progress (a full verification) before draining.
const CHECKS_STOP_WAIT: Duration = Duration::from_secs(2);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

pub fn run(a: DaemonArgs) -> anyhow::Result<Exit> {
    // SAFETY: the handler only stores to an atomic. Installed first: a SIGTERM during start-up
    // still ends in a drain.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let notifier = Notifier::from_env().context("failed to open $NOTIFY_SOCKET")?;
    let config = d::load_config(&a.config)?;
    if config.is_none() {
        log::info!(
            "no applied config at {}: nothing to ship",
            a.config.display()
        );
    }
    let logs = d::logs_of(config.as_ref(), &a.config)?;
    let hostname = match config.as_ref().and_then(|c| c.hostname.clone()) {
        Some(h) => h,
        None => nix::unistd::gethostname()
            .context("failed to read the hostname")?
            .to_string_lossy()
            .into_owned(),
    };
    let paths = IdentityPaths {
        cmdline: a.cmdline,
        os_release: a.os_release,
        boot_id: a.boot_id_file,
        ..IdentityPaths::standard(&a.run)
    };
    let identity = identity::gather(hostname, &paths).context("failed to gather the identity")?;
    let sources = SourcePaths {
        journalctl: a.journalctl.clone(),
        kmsg: a.kmsg.clone(),
    };
    let daemon = Daemon::start(
        &logs,
        &identity,
        &a.state_dir,
        &sources,
        &PipelineOptions::default(),
        Arc::new(SystemClock::new()),
    )?;
    let responder = rotate::responder(
        config.as_ref(),
        &a.run,
        &a.mountinfo,
        daemon.handles().to_vec(),
        &a.journalctl,
        a.report_only,
    );
    {
        let r = responder.clone();
        std::thread::spawn(move || r.carry_over());
    }
    let respond: Arc<dyn Respond> = responder;
    let checks = enf::start(
        config.as_ref(),
        &a.config,
        &EnforcePaths {
            root: a.root,
            verify_root: a.verify_root,
            etc: a.pyre_etc,
            mountinfo: a.mountinfo,
            sys: a.sys,
            ..EnforcePaths::standard(&a.run, &a.kmsg)
        },
        &identity,
        daemon.handles().to_vec(),
        respond.clone(),
        a.report_only,
    )
    .context("failed to start the enforcement checks")?;
    let rotation = match config.as_ref().and_then(|c| c.lifetime.as_ref()) {
        Some(l) => Some(
            RotationTimer::start(
                l,
                enf::instance(&identity, enf::provider(&a.run)),
                respond.clone(),
                rotate::uptime,
            )
            .context("failed to start the lifetime timer")?,
        ),
        None => None,
    };
    let summary = daemon.summary();
    log::info!("pyre daemon: {summary}");
    if let Err(e) = notifier.notify(&format!("READY=1\nSTATUS={summary}")) {
        log::warn!("sd_notify READY=1: {e}");
    }
    daemon.run_until(&STOP, &notifier, notify::watchdog_from_env());
    let _ = notifier.notify("STOPPING=1\nSTATUS=draining logs");
    checks.stop(CHECKS_STOP_WAIT);
    if let Some(r) = rotation {
        r.stop();
    }
    log::info!(
        "pyre daemon: stopping, draining logs (at most {:?})",
        a.stop_deadline
    );
    match daemon.shutdown(Instant::now() + a.stop_deadline) {
        Ok(n) => {
            log::info!("pyre daemon: drained ({n} records acknowledged)");
            Ok(Exit::Clean)
        }
        Err(e) => {
            log::warn!("pyre daemon: stopping: {e}");
            Ok(Exit::Drift)
        }
    }
}

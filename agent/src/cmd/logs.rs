//! `pyre logs ship`: run log pipelines in the foreground (operators, tests) until SIGTERM or
//! SIGINT, serving drain requests on STATE_DIR/control.sock; `pyre logs drain`: ask it to
//! deliver everything logged so far within a deadline.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use super::exit::Exit;
use crate::logship::clock::SystemClock;
use crate::logship::drain::{self, ControlServer, DrainError};
use crate::logship::source::SourcePaths;
use crate::sys::duration;

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    duration::parse(s).map_err(|e| e.to_string())
}
use crate::logship::{Framing, Identity, Pipeline, PipelineOptions, SinkSpec, SourceSpec};

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(subcommand)]
    pub command: LogsCommand,
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Ship logs from sources to sinks in the foreground (one pipeline per source and sink).
    Ship(Box<ShipArgs>),
    /// Wait until a running `pyre logs ship` has delivered everything logged before now.
    /// Exit 0: delivered; 1: records still pending at the deadline; 2: could not ask.
    Drain(DrainArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FramingArg {
    OctetCounting,
    Newline,
}

#[derive(Debug, Args)]
pub struct ShipArgs {
    /// journal, kmsg or file:PATH (repeatable).
    #[arg(long = "source", required = true, value_name = "SOURCE")]
    pub sources: Vec<SourceSpec>,
    /// syslog+tcp://H:P, syslog+tls://H:P, syslog+udp://H:P, relp://H:P, relp+tls://H:P,
    /// loki+http(s)://H:P, http(s)://URL (repeatable).
    #[arg(long = "sink", required = true, value_name = "URL")]
    pub sinks: Vec<String>,
    /// Where checkpoints and the control socket live (kept across restarts).
    #[arg(long)]
    pub state_dir: PathBuf,
    /// CA certificates (PEM) for TLS sinks.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Name the receiver's certificate must carry (default: the URL's host).
    #[arg(long)]
    pub server_name: Option<String>,
    /// Client certificate chain (PEM) for mutual TLS.
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub framing: Option<FramingArg>,
    /// RFC 5424 HOSTNAME (default: this host's name).
    #[arg(long)]
    pub hostname: Option<String>,
    #[arg(long, default_value = "")]
    pub image: String,
    #[arg(long, default_value = "")]
    pub manifest: String,
    #[arg(long, default_value = "")]
    pub instance: String,
    #[arg(long, default_value = "/proc/sys/kernel/random/boot_id")]
    pub boot_id_file: PathBuf,
    #[arg(long, default_value = "journalctl")]
    pub journalctl: PathBuf,
    #[arg(long, default_value = "/dev/kmsg")]
    pub kmsg: PathBuf,
    /// Longest reconnect delay.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub backoff_max: Duration,
    /// First reconnect delay.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub backoff_initial: Duration,
    /// On SIGTERM/SIGINT, how long to try delivering what is pending before exiting.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub stop_deadline: Duration,
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The state directory of the running `pyre logs ship`.
    #[arg(long)]
    pub state_dir: PathBuf,
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub deadline: Duration,
}

pub fn run(args: LogsArgs) -> anyhow::Result<Exit> {
    match args.command {
        LogsCommand::Ship(a) => ship(*a),
        LogsCommand::Drain(a) => match drain::request(&a.state_dir, a.deadline) {
            Ok(n) => {
                println!("drained: {n} records acknowledged");
                Ok(Exit::Clean)
            }
            Err(e @ DrainError::Pending { .. }) => {
                log::error!("{e}");
                Ok(Exit::Drift)
            }
            Err(e) => Err(e.into()),
        },
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn ship(a: ShipArgs) -> anyhow::Result<Exit> {
    let boot_id = std::fs::read_to_string(&a.boot_id_file)
        .with_context(|| {
            format!(
                "failed to read the boot id from {}",
                a.boot_id_file.display()
            )
        })?
        .trim()
        .to_string();
    let hostname = match a.hostname {
        Some(h) => h,
        None => nix::unistd::gethostname()
            .context("failed to read the hostname")?
            .to_string_lossy()
            .into_owned(),
    };
    let identity = Identity {
        hostname,
        image: a.image,
        manifest: a.manifest,
        instance: a.instance,
        boot_id,
    };
    let paths = SourcePaths {
        journalctl: a.journalctl,
        kmsg: a.kmsg,
    };
    let opts = PipelineOptions {
        backoff_initial: a.backoff_initial,
        backoff_max: a.backoff_max,
        ..PipelineOptions::default()
    };
    let clock = Arc::new(SystemClock::new());
    let mut handles = Vec::new();
    let mut threads = Vec::new();
    for url in &a.sinks {
        let spec = SinkSpec {
            url: url.clone(),
            ca: a.ca.clone(),
            server_name: a.server_name.clone(),
            client_cert: a.client_cert.clone(),
            client_key: a.client_key.clone(),
            framing: a.framing.map(|f| match f {
                FramingArg::OctetCounting => Framing::OctetCounting,
                FramingArg::Newline => Framing::Newline,
            }),
        };
        for source in &a.sources {
            let p = Pipeline::new(
                source,
                &spec,
                &identity,
                &a.state_dir,
                &paths,
                opts.clone(),
                clock.clone(),
            )
            .with_context(|| {
                format!(
                    "failed to start shipping {source} to {}",
                    crate::logship::spec::redact(url)
                )
            })?;
            let (h, t) = p.spawn()?;
            handles.push(h);
            threads.push(t);
        }
    }
    let control = ControlServer::start(&a.state_dir, handles.clone()).with_context(|| {
        format!(
            "failed to open the control socket in {}",
            a.state_dir.display()
        )
    })?;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(control);
    let code = match drain::drain_all(&handles, Instant::now() + a.stop_deadline) {
        Ok(_) => Exit::Clean,
        Err(e) => {
            log::warn!("stopping: {e}");
            Exit::Drift
        }
    };
    handles.iter().for_each(|h| h.stop());
    for t in threads {
        let _ = t.join();
    }
    Ok(code)
}

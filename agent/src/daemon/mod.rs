//! `pyre daemon`: the long-running service of a booted instance (`pyre.service`). It ships
//! logs (one [`Pipeline`] per source and sink of the applied config's `logs` section), serves
//! drain requests on STATE_DIR/control.sock, runs the enforcement checks on the live root and
//! publishes its state for `pyre status` ([`enforce`], [`publish`]), tells systemd it is ready
//! and alive ([`notify`]), and drains before it stops.
//!
//! Nothing to ship (no applied config, no `logs` section, or no sinks) is not an error: the
//! daemon then runs idle. A pipeline that cannot be opened is logged and left out; the others
//! run.
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{self, Config, ConfigError};
use crate::logship::clock::Clock;
use crate::logship::drain::{self, ControlServer, DrainError};
use crate::logship::source::SourcePaths;
use crate::logship::spec::{redact, SpecError};
use crate::logship::{Identity, LogsSpec, Pipeline, PipelineHandle, PipelineOptions};

pub mod enforce;
pub mod identity;
pub mod notify;
pub mod publish;
pub mod rotate;
pub mod ship;

use notify::Notifier;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("reading the applied config {path}: {source}")]
    ReadConfig { path: PathBuf, source: io::Error },
    #[error("the applied config {path} is not valid: {source}")]
    Config { path: PathBuf, source: ConfigError },
    #[error("the logs section of {path}: {source}")]
    Logs { path: PathBuf, source: SpecError },
    #[error("creating the state directory {path}: {source}")]
    StateDir { path: PathBuf, source: io::Error },
    #[error("opening the control socket in {path}: {source}")]
    Control { path: PathBuf, source: io::Error },
}

/// The applied config at `path`; a missing file is `None` (nothing to do yet).
pub fn load_config(path: &Path) -> Result<Option<Config>, DaemonError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DaemonError::ReadConfig {
                path: path.into(),
                source,
            })
        }
    };
    config::parse(&bytes)
        .map(Some)
        .map_err(|source| DaemonError::Config {
            path: path.into(),
            source,
        })
}

/// The pipelines the config asks for (empty: nothing to ship).
pub fn logs_of(config: Option<&Config>, path: &Path) -> Result<LogsSpec, DaemonError> {
    match config.and_then(|c| c.logs.as_ref()) {
        Some(l) => LogsSpec::from_config(l).map_err(|source| DaemonError::Logs {
            path: path.into(),
            source,
        }),
        None => Ok(LogsSpec::default()),
    }
}

/// A started daemon: its pipelines and the control socket.
pub struct Daemon {
    handles: Vec<PipelineHandle>,
    threads: Vec<JoinHandle<()>>,
    control: Option<ControlServer>,
    /// Pipelines the config asked for that could not be opened.
    pub failed: usize,
}

impl Daemon {
    /// Open one pipeline per (source, sink) of `logs` and the control socket in `state_dir`.
    pub fn start(
        logs: &LogsSpec,
        identity: &Identity,
        state_dir: &Path,
        paths: &SourcePaths,
        opts: &PipelineOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Daemon, DaemonError> {
        create_private_dir(state_dir).map_err(|source| DaemonError::StateDir {
            path: state_dir.into(),
            source,
        })?;
        let mut d = Daemon {
            handles: Vec::new(),
            threads: Vec::new(),
            control: None,
            failed: 0,
        };
        for sink in &logs.sinks {
            for source in &logs.sources {
                let started = Pipeline::new(
                    source,
                    sink,
                    identity,
                    state_dir,
                    paths,
                    opts.clone(),
                    clock.clone(),
                )
                .and_then(Pipeline::spawn);
                match started {
                    Ok((h, t)) => {
                        log::info!("shipping {}", h.name());
                        d.handles.push(h);
                        d.threads.push(t);
                    }
                    Err(e) => {
                        log::error!("not shipping {source} to {}: {e}", redact(&sink.url));
                        d.failed += 1;
                    }
                }
            }
        }
        let control = ControlServer::start(state_dir, d.handles.clone()).map_err(|source| {
            DaemonError::Control {
                path: state_dir.into(),
                source,
            }
        })?;
        d.control = Some(control);
        Ok(d)
    }

    pub fn handles(&self) -> &[PipelineHandle] {
        &self.handles
    }

    /// One line for `STATUS=` and the journal.
    pub fn summary(&self) -> String {
        match (self.handles.len(), self.failed) {
            (0, 0) => "idle: no logs to ship".to_string(),
            (n, 0) => format!("shipping logs: {n} pipeline(s)"),
            (n, f) => format!("shipping logs: {n} pipeline(s), {f} could not be opened"),
        }
    }

    /// Until `stop` is set: send `WATCHDOG=1` every `watchdog` (when given).
    pub fn run_until(&self, stop: &AtomicBool, notifier: &Notifier, watchdog: Option<Duration>) {
        let tick = Duration::from_millis(100);
        let mut last = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(watchdog.map_or(tick, |w| w.min(tick)));
            if let Some(w) = watchdog {
                if last.elapsed() >= w {
                    if let Err(e) = notifier.notify("WATCHDOG=1") {
                        log::warn!("sd_notify WATCHDOG=1: {e}");
                    }
                    last = Instant::now();
                }
            }
        }
    }

    /// Stop serving drain requests, deliver what is pending by `deadline`, stop the pipelines.
    /// Ok: the records acknowledged; Err: what was still pending at the deadline.
    pub fn shutdown(mut self, deadline: Instant) -> Result<u64, DrainError> {
        drop(self.control.take());
        let drained = drain::drain_all(&self.handles, deadline);
        self.handles.iter().for_each(PipelineHandle::stop);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        drained
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests;

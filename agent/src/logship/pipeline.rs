//! One pipeline: one source to one sink on its own thread, at least once.
//!
//! Records read from the source wait in a bounded queue (records and bytes) until the sink
//! acknowledged them; only then does the checkpoint move past them. A full queue stops reading
//! (the journal and files wait; the kernel ring buffer may overwrite, which becomes a gap
//! marker). A failed connection or send drops the connection, and after a capped exponential
//! backoff on the injected clock everything unacknowledged is sent again. The thread never
//! touches the boot: a daemon starts pipelines and goes on.
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::logship::checkpoint::{self, Checkpoint, CheckpointError, CheckpointStore};
use crate::logship::clock::{Backoff, Clock};
use crate::logship::record::{Identity, Record, Renderer};
use crate::logship::sink::{self, Sink, SinkError};
use crate::logship::source::{self, Source, SourceError, SourcePaths};
use crate::logship::spec::{SinkSpec, SourceSpec};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("starting the pipeline thread for {name}: {source}")]
    Thread {
        name: String,
        source: std::io::Error,
    },
}

/// Limits and timings of a pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Records held unacknowledged at most.
    pub max_records: usize,
    /// Message bytes held unacknowledged at most (about; see [`crate::logship::Entry::weight`]).
    pub max_bytes: usize,
    /// First reconnect delay; it doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How often the checkpoint is written while records keep being acknowledged.
    pub checkpoint_every: Duration,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            max_records: 8192,
            max_bytes: 4 * 1024 * 1024,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            checkpoint_every: Duration::from_secs(1),
        }
    }
}

/// Wait for new lines when there is nothing else to do.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Wait for acknowledgements when nothing more can be sent.
const ACK_WAIT: Duration = Duration::from_millis(50);
/// Records read per turn before sending again.
const READ_TURN: usize = 1024;

#[derive(Debug, Default)]
struct Progress {
    /// Records read (gap markers included) since the pipeline started.
    read: u64,
    /// Of those, acknowledged by the sink.
    acked: u64,
    /// Drain requests made, and the last one the pipeline has caught up with.
    drain_asked: u64,
    drain_caught: u64,
    /// `read` when the pipeline caught up with `drain_caught`.
    drain_target: u64,
    stop: bool,
    connected: bool,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a pipeline has done so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    pub read: u64,
    pub acked: u64,
    pub connected: bool,
    pub last_error: Option<String>,
}

/// A drain barrier not reached by its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub name: String,
    /// Records read but not acknowledged.
    pub records: u64,
    /// Whether the pipeline had read everything logged before the drain.
    pub caught_up: bool,
    pub last_error: Option<String>,
}

/// Control of a running pipeline from other threads (clonable).
#[derive(Debug, Clone)]
pub struct PipelineHandle {
    name: String,
    shared: Arc<Shared>,
}

impl PipelineHandle {
    /// `source → sink`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ask the pipeline to catch up with its source; the ticket is for [`wait_drained`].
    ///
    /// [`wait_drained`]: PipelineHandle::wait_drained
    pub fn request_drain(&self) -> u64 {
        let mut p = self.shared.lock();
        p.drain_asked += 1;
        self.shared.changed.notify_all();
        p.drain_asked
    }

    /// Wait until everything read before the catch-up of `ticket` is acknowledged.
    pub fn wait_drained(&self, ticket: u64, deadline: Instant) -> Result<(), Pending> {
        let mut p = self.shared.lock();
        loop {
            if p.drain_caught >= ticket && p.acked >= p.drain_target {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline || p.stop {
                return Err(Pending {
                    name: self.name.clone(),
                    records: p.read - p.acked,
                    caught_up: p.drain_caught >= ticket,
                    last_error: p.last_error.clone(),
                });
            }
            p = self
                .shared
                .changed
                .wait_timeout(p, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The drain barrier for this pipeline alone.
    pub fn drain(&self, deadline: Instant) -> Result<(), Pending> {
        let t = self.request_drain();
        self.wait_drained(t, deadline)
    }

    /// Ask the pipeline to stop (it writes its checkpoint and closes the connection).
    pub fn stop(&self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
    }

    pub fn status(&self) -> Status {
        let p = self.shared.lock();
        Status {
            name: self.name.clone(),
            read: p.read,
            acked: p.acked,
            connected: p.connected,
            last_error: p.last_error.clone(),
        }
    }
}

pub struct Pipeline {
    name: String,
    source: Box<dyn Source>,
    sink: Box<dyn Sink>,
    renderer: Renderer,
    store: CheckpointStore,
    checkpoint: Checkpoint,
    clock: Arc<dyn Clock>,
    opts: PipelineOptions,
    shared: Arc<Shared>,
}

impl Pipeline {
    /// The pipeline from `source` to `sink`, resuming from its checkpoint under `state_dir`.
    pub fn new(
        source: &SourceSpec,
        sink: &SinkSpec,
        identity: &Identity,
        state_dir: &Path,
        paths: &SourcePaths,
        opts: PipelineOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Pipeline, PipelineError> {
        let sink_box = sink::open(sink)?;
        let store = CheckpointStore::open(state_dir, source, &sink.url)?;
        let cp = checkpoint::resume(store.load()?, source, &sink.url, &identity.boot_id);
        let src = source::open(source, paths, cp.position.clone(), &identity.boot_id)?;
        let renderer = Renderer {
            identity: identity.clone(),
            source: source.to_string(),
        };
        Ok(Pipeline::from_parts(
            src, sink_box, renderer, store, cp, opts, clock,
        ))
    }

    /// A pipeline from parts already made (tests; sources of other kinds).
    pub fn from_parts(
        source: Box<dyn Source>,
        sink: Box<dyn Sink>,
        renderer: Renderer,
        store: CheckpointStore,
        checkpoint: Checkpoint,
        opts: PipelineOptions,
        clock: Arc<dyn Clock>,
    ) -> Pipeline {
        Pipeline {
            name: format!("{} -> {}", renderer.source, sink.name()),
            source,
            sink,
            renderer,
            store,
            checkpoint,
            clock,
            opts,
            shared: Arc::default(),
        }
    }

    pub fn handle(&self) -> PipelineHandle {
        PipelineHandle {
            name: self.name.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Run on a thread of its own.
    pub fn spawn(self) -> Result<(PipelineHandle, JoinHandle<()>), PipelineError> {
        let h = self.handle();
        let name = self.name.clone();
        let t = std::thread::Builder::new()
            .name("pyre-logship".into())
            .spawn(move || self.run())
            .map_err(|e| PipelineError::Thread { name, source: e })?;
        Ok((h, t))
    }

    /// Run until [`PipelineHandle::stop`].
    pub fn run(mut self) {
        let seed = std::process::id() as u64 ^ self.clock.now().as_nanos() as u64;
        let mut st = Run {
            queue: VecDeque::new(),
            bytes: 0,
            sent: 0,
            next_seq: self.checkpoint.next_seq,
            next_attempt: Duration::ZERO,
            backoff: Backoff::new(self.opts.backoff_initial, self.opts.backoff_max, seed),
            dirty: false,
            last_save: self.clock.now(),
            drain_seen: 0,
            drain_marked: 0,
        };
        log::info!("logs: {} starting at sequence {}", self.name, st.next_seq);
        loop {
            let (stop, drain_asked) = {
                let p = self.shared.lock();
                (p.stop, p.drain_asked)
            };
            if stop {
                break;
            }
            let draining = drain_asked > st.drain_seen;
            self.fill(&mut st, draining, drain_asked);
            self.connect_if_due(&mut st);
            if self.sink.connected() {
                if let Err(e) = self.exchange(&mut st, draining) {
                    self.failed(&mut st, &e);
                }
            } else if !st.queue.is_empty() {
                let left = st.next_attempt.saturating_sub(self.clock.now());
                self.clock.sleep(left.min(IDLE_WAIT));
            }
        }
        self.save(&mut st, true);
        self.sink.disconnect();
        log::info!("logs: {} stopped", self.name);
    }

    fn fill(&mut self, st: &mut Run, draining: bool, drain_asked: u64) {
        let mut took = 0;
        while st.queue.len() < self.opts.max_records
            && st.bytes < self.opts.max_bytes
            && took < READ_TURN
        {
            let idle = took == 0 && st.queue.is_empty() && !draining;
            let wait = if idle { IDLE_WAIT } else { Duration::ZERO };
            if draining && st.drain_marked < drain_asked {
                self.source.mark();
                st.drain_marked = drain_asked;
            }
            let mut got = self.source.next(wait);
            if draining && matches!(got, Ok(None)) {
                got = self.source.next(self.source.settle());
                if matches!(got, Ok(None)) && self.source.at_mark() {
                    // Everything logged before the drain request is in the queue.
                    let mut p = self.shared.lock();
                    p.read += took as u64;
                    p.drain_caught = drain_asked;
                    p.drain_target = p.read;
                    st.drain_seen = drain_asked;
                    self.shared.changed.notify_all();
                    return;
                }
            }
            match got {
                Ok(Some((entry, pos))) => {
                    st.bytes += entry.weight();
                    st.queue.push_back(Record {
                        seq: st.next_seq,
                        entry,
                        pos,
                    });
                    st.next_seq += 1;
                    took += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!("logs: {}: {e}", self.name);
                    self.shared.lock().last_error = Some(e.to_string());
                    self.clock.sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
        if took > 0 {
            self.shared.lock().read += took as u64;
        }
    }

    fn connect_if_due(&mut self, st: &mut Run) {
        if self.sink.connected() || st.queue.is_empty() || self.clock.now() < st.next_attempt {
            return;
        }
        match self.sink.connect() {
            Ok(()) => {
                log::info!(
                    "logs: {}: connected; {} records to send",
                    self.name,
                    st.queue.len()
                );
                st.backoff.reset();
                st.sent = 0;
                let mut p = self.shared.lock();
                p.connected = true;
                p.last_error = None;
            }
            Err(e) => self.failed(st, &e),
        }
    }

    /// Send what is unsent and take in acknowledgements.
    fn exchange(&mut self, st: &mut Run, draining: bool) -> Result<(), SinkError> {
        let mut took = 0;
        if st.sent < st.queue.len() {
            let (a, b) = st.queue.as_slices();
            let rest = if st.sent < a.len() {
                &a[st.sent..]
            } else {
                &b[st.sent - a.len()..]
            };
            took = self.sink.send(rest, &self.renderer)?;
            st.sent += took;
        }
        let wait = if took > 0 && st.sent < st.queue.len() {
            Duration::ZERO
        } else {
            ACK_WAIT
        };
        let n = self.sink.poll_acked(wait)?.min(st.sent);
        if n > 0 {
            let mut last = None;
            for _ in 0..n {
                let r = st
                    .queue
                    .pop_front()
                    .expect("acknowledged records are queued");
                st.bytes = st.bytes.saturating_sub(r.entry.weight());
                last = Some(r);
            }
            st.sent -= n;
            let last = last.expect("n > 0");
            self.checkpoint.position = last.pos;
            self.checkpoint.next_seq = last.seq + 1;
            st.dirty = true;
            self.save(st, draining || st.queue.is_empty());
            let mut p = self.shared.lock();
            p.acked += n as u64;
            self.shared.changed.notify_all();
        }
        Ok(())
    }

    fn failed(&mut self, st: &mut Run, e: &SinkError) {
        let delay = st.backoff.next_delay();
        st.next_attempt = self.clock.now() + delay;
        log::warn!(
            "logs: {}: {e}; {} records unacknowledged, retrying in {:.1}s",
            self.name,
            st.queue.len(),
            delay.as_secs_f32()
        );
        self.sink.disconnect();
        st.sent = 0;
        let mut p = self.shared.lock();
        p.connected = false;
        p.last_error = Some(e.to_string());
    }

    fn save(&mut self, st: &mut Run, now: bool) {
        let t = self.clock.now();
        if !st.dirty || (!now && t.saturating_sub(st.last_save) < self.opts.checkpoint_every) {
            return;
        }
        match self.store.save(&self.checkpoint) {
            Ok(()) => {
                st.dirty = false;
                st.last_save = t;
            }
            Err(e) => {
                log::warn!("logs: {}: {e}", self.name);
                self.shared.lock().last_error = Some(e.to_string());
            }
        }
    }
}

/// The running state of [`Pipeline::run`].
struct Run {
    queue: VecDeque<Record>,
    bytes: usize,
    /// Records at the front of `queue` sent on the current connection.
    sent: usize,
    next_seq: u64,
    next_attempt: Duration,
    backoff: Backoff,
    dirty: bool,
    last_save: Duration,
    drain_seen: u64,
    /// The last drain request the source was asked to [`Source::mark`] for.
    drain_marked: u64,
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;

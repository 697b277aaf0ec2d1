//! The pipeline against a scripted source and sink, on the fake clock.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::logship::checkpoint::Position;
use crate::logship::clock::fake::FakeClock;
use crate::logship::record::Entry;

struct FakeSource(VecDeque<u64>);

impl Source for FakeSource {
    fn next(
        &mut self,
        _wait: Duration,
    ) -> Result<Option<(crate::logship::Entry, Position)>, SourceError> {
        Ok(self.0.pop_front().map(|i| {
            (
                Entry::new(format!("line {i}")),
                Position::Kmsg {
                    boot_id: "b".into(),
                    seq: i,
                },
            )
        }))
    }
}

#[derive(Default)]
struct SinkLog {
    connects: Vec<Duration>,
    fail_connects: usize,
    /// Fail the acknowledgement poll this many times (after a send).
    fail_acks: usize,
    hold_acks: bool,
    received: Vec<u64>,
    unacked: usize,
}

struct FakeSink {
    log: Arc<Mutex<SinkLog>>,
    clock: Arc<FakeClock>,
    up: bool,
}

impl Sink for FakeSink {
    fn name(&self) -> &str {
        "fake://"
    }
    fn connect(&mut self) -> Result<(), SinkError> {
        let mut l = self.log.lock().unwrap();
        l.connects.push(self.clock.now());
        if l.fail_connects > 0 {
            l.fail_connects -= 1;
            return Err(SinkError::Closed {
                sink: "fake://".into(),
            });
        }
        self.up = true;
        Ok(())
    }
    fn connected(&self) -> bool {
        self.up
    }
    fn send(&mut self, recs: &[Record], _r: &Renderer) -> Result<usize, SinkError> {
        let mut l = self.log.lock().unwrap();
        let n = recs.len().min(100);
        l.received.extend(recs[..n].iter().map(|r| r.seq));
        l.unacked += n;
        Ok(n)
    }
    fn poll_acked(&mut self, _wait: Duration) -> Result<usize, SinkError> {
        let mut l = self.log.lock().unwrap();
        if l.unacked > 0 && l.fail_acks > 0 {
            l.fail_acks -= 1;
            return Err(SinkError::Closed {
                sink: "fake://".into(),
            });
        }
        if l.hold_acks {
            return Ok(0);
        }
        Ok(std::mem::take(&mut l.unacked))
    }
    fn disconnect(&mut self) {
        self.up = false;
        self.log.lock().unwrap().unacked = 0;
    }
}

struct Setup {
    pipeline: Pipeline,
    log: Arc<Mutex<SinkLog>>,
    store: CheckpointStore,
    _dir: tempfile::TempDir,
}

fn setup(lines: u64, opts: PipelineOptions, log: SinkLog) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::default());
    let log = Arc::new(Mutex::new(log));
    let sink = FakeSink {
        log: log.clone(),
        clock: clock.clone(),
        up: false,
    };
    let store = CheckpointStore::open(dir.path(), &SourceSpec::Kmsg, "fake://").unwrap();
    let cp = checkpoint::resume(None, &SourceSpec::Kmsg, "fake://", "b");
    let renderer = Renderer {
        identity: Identity::default(),
        source: "kmsg".into(),
    };
    let pipeline = Pipeline::from_parts(
        Box::new(FakeSource((1..=lines).collect())),
        Box::new(sink),
        renderer,
        store.clone(),
        cp,
        opts,
        clock,
    );
    Setup {
        pipeline,
        log,
        store,
        _dir: dir,
    }
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn reconnects_with_capped_backoff_then_delivers_everything() {
    let opts = PipelineOptions {
        backoff_initial: Duration::from_millis(500),
        backoff_max: Duration::from_secs(8),
        ..PipelineOptions::default()
    };
    let s = setup(
        1000,
        opts,
        SinkLog {
            fail_connects: 8,
            ..SinkLog::default()
        },
    );
    let (h, t) = s.pipeline.spawn().unwrap();
    h.drain(Instant::now() + Duration::from_secs(20)).unwrap();
    h.stop();
    t.join().unwrap();
    let l = s.log.lock().unwrap();
    assert_eq!(l.received, (1..=1000).collect::<Vec<_>>());
    // Nine attempts; the gaps double from 0.5 s and stop at the 8 s cap (each with jitter
    // down to half).
    assert_eq!(l.connects.len(), 9);
    let caps = [500, 1000, 2000, 4000, 8000, 8000, 8000, 8000];
    for (w, cap) in l.connects.windows(2).zip(caps) {
        let gap = w[1] - w[0];
        let cap = Duration::from_millis(cap);
        assert!(
            gap >= cap / 2 && gap <= cap + IDLE_WAIT,
            "gap {gap:?}, cap {cap:?}"
        );
    }
    let cp = s.store.load().unwrap().unwrap();
    assert_eq!(cp.next_seq, 1001);
    assert_eq!(
        cp.position,
        Position::Kmsg {
            boot_id: "b".into(),
            seq: 1000
        }
    );
}

#[test]
fn unacknowledged_records_are_sent_again_after_a_failure() {
    let s = setup(
        250,
        PipelineOptions::default(),
        SinkLog {
            fail_acks: 2,
            ..SinkLog::default()
        },
    );
    let (h, t) = s.pipeline.spawn().unwrap();
    h.drain(Instant::now() + Duration::from_secs(20)).unwrap();
    h.stop();
    t.join().unwrap();
    let l = s.log.lock().unwrap();
    let mut uniq = l.received.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq, (1..=250).collect::<Vec<_>>());
    assert!(l.received.len() > 250, "the failed batches were sent twice");
    assert_eq!(s.store.load().unwrap().unwrap().next_seq, 251);
}

#[test]
fn memory_is_bounded_and_drain_reports_what_is_pending() {
    let opts = PipelineOptions {
        max_records: 300,
        ..PipelineOptions::default()
    };
    let s = setup(
        100_000,
        opts,
        SinkLog {
            hold_acks: true,
            ..SinkLog::default()
        },
    );
    let (h, t) = s.pipeline.spawn().unwrap();
    wait_until("the queue to fill", || h.status().read == 300);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(h.status().read, 300, "reading stops at the bound");
    let e = h
        .drain(Instant::now() + Duration::from_millis(200))
        .unwrap_err();
    assert_eq!((e.records, e.caught_up), (300, false));
    s.log.lock().unwrap().hold_acks = false;
    h.drain(Instant::now() + Duration::from_secs(20)).unwrap();
    assert_eq!(h.status().acked, 100_000);
    h.stop();
    t.join().unwrap();
}

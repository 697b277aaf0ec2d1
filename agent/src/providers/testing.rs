//! Test doubles for providers: a fake clock that only moves when slept on (or when a scripted
//! request "takes time"), and a transport answering from a closure while recording every
//! request in order.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fetch::{Fetcher, RetryPolicy};
use super::http::{HttpError, HttpErrorKind, Request, Response, Transport};

#[derive(Default)]
pub struct FakeClock {
    now: Mutex<Duration>,
    pub sleeps: Mutex<Vec<Duration>>,
}

impl FakeClock {
    pub fn advance(&self, d: Duration) {
        *self.now.lock().unwrap() += d;
    }
}

impl crate::host::Clock for FakeClock {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap()
    }
    fn sleep(&self, d: Duration) {
        self.sleeps.lock().unwrap().push(d);
        self.advance(d);
    }
}

type Answer = dyn Fn(&Request, usize) -> Result<Response, HttpErrorKind> + Send + Sync;

/// Answers request number `n` (0-based, across all requests) with `answer(req, n)`.
pub struct Script {
    answer: Box<Answer>,
    pub seen: Mutex<Vec<Request>>,
    clock: Arc<FakeClock>,
    /// Fake time each request takes.
    cost: Duration,
}

impl Script {
    pub fn send_count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// "METHOD URL" of every request, in order.
    pub fn lines(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect()
    }
}

impl Transport for Script {
    fn send(&self, req: &Request, timeout: Duration) -> Result<Response, HttpError> {
        let n = {
            let mut seen = self.seen.lock().unwrap();
            seen.push(req.clone());
            seen.len() - 1
        };
        self.clock.advance(self.cost.min(timeout));
        (self.answer)(req, n).map_err(|k| req.error(k))
    }
}

pub struct Rig {
    pub clock: Arc<FakeClock>,
    pub script: Arc<Script>,
    pub fetcher: Fetcher,
}

/// A fetcher over a scripted transport and a fake clock, with `deadline`.
pub fn rig<F>(deadline: Duration, answer: F) -> Rig
where
    F: Fn(&Request, usize) -> Result<Response, HttpErrorKind> + Send + Sync + 'static,
{
    rig_costly(deadline, Duration::ZERO, answer)
}

pub fn rig_costly<F>(deadline: Duration, cost: Duration, answer: F) -> Rig
where
    F: Fn(&Request, usize) -> Result<Response, HttpErrorKind> + Send + Sync + 'static,
{
    let clock = Arc::new(FakeClock::default());
    let script = Arc::new(Script {
        answer: Box::new(answer),
        seen: Mutex::new(Vec::new()),
        clock: clock.clone(),
        cost,
    });
    let fetcher = Fetcher::new(
        script.clone(),
        clock.clone(),
        deadline,
        RetryPolicy::default(),
    );
    Rig {
        clock,
        script,
        fetcher,
    }
}

pub fn ok(body: &str) -> Result<Response, HttpErrorKind> {
    Ok(Response::new(200, body.as_bytes()))
}

pub fn status(code: u16) -> Result<Response, HttpErrorKind> {
    Ok(Response::new(code, Vec::new()))
}

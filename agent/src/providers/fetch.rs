//! Retrying with one overall deadline, on an injected clock (pyre's way: `init/boot.rs` waits on
//! the host's clock), so a 30 s deadline is tested without waiting 30 s.
//!
//! Decision table: a transport error that can heal (connect, timeout, reset, truncated body),
//! a 5xx and a 429 are retried with exponential backoff and jitter (a 429's `Retry-After` is
//! honoured when it fits in the deadline); every other answer (2xx, 3xx, 4xx) goes back to the
//! provider, which decides what a 404 or a 403 means. When the deadline passes, the error is
//! [`FetchError::Deadline`]: the endpoint was not reached, so nobody knows whether a config exists.
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::{HttpError, Method, Request, Response, Transport};

/// The host's clock capability ([`crate::host::Clock`]: monotonic time and sleeping), shared
/// with the racing threads, hence `Send + Sync`. Real clocks: [`SystemClock`] or
/// `host::RealHost`; tests advance a fake.
pub trait Clock: crate::host::Clock + Send + Sync {}

impl<T: crate::host::Clock + Send + Sync + ?Sized> Clock for T {}

pub struct SystemClock(Instant);

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock(Instant::now())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl crate::host::Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff; doubled per retry up to `max_backoff`, then jittered into [d/2, d].
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// One request's budget (always cut to what is left of the deadline).
    pub per_request: Duration,
    /// Below this much time left, no new attempt is started.
    pub min_attempt: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            per_request: Duration::from_secs(10),
            min_attempt: Duration::from_millis(20),
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `n` (1-based), with jitter `r` in [0, 1).
    pub fn backoff(&self, n: u32, r: f64) -> Duration {
        let exp = self.initial_backoff.saturating_mul(
            1u32.checked_shl(n.saturating_sub(1).min(16))
                .unwrap_or(u32::MAX),
        );
        let d = exp.min(self.max_backoff);
        d / 2 + d.mul_f64(r.clamp(0.0, 1.0) / 2.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error(
        "{method} {uri}: not answered within the {}s deadline ({attempts} attempts; last: {last})",
        deadline.as_secs_f64()
    )]
    Deadline {
        method: Method,
        uri: String,
        deadline: Duration,
        attempts: u32,
        last: String,
    },
    /// A transport failure that retrying cannot fix (redirect off-host, oversize body, TLS).
    #[error(transparent)]
    Http(#[from] HttpError),
}

enum Outcome {
    Answer(usize, Response),
    Retry {
        why: String,
        after: Option<Duration>,
    },
    Final(HttpError),
}

/// Sends requests for one provider under one shared deadline.
#[derive(Clone)]
pub struct Fetcher {
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    policy: RetryPolicy,
    deadline: Duration,
    ends_at: Duration,
    rng: Arc<Mutex<u64>>,
}

impl Fetcher {
    /// The deadline starts now (on `clock`).
    pub fn new(
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        deadline: Duration,
        policy: RetryPolicy,
    ) -> Fetcher {
        let mut seed = [0u8; 8];
        let _ = getrandom::getrandom(&mut seed);
        let ends_at = clock.now().saturating_add(deadline);
        Fetcher {
            transport,
            clock,
            policy,
            deadline,
            ends_at,
            rng: Arc::new(Mutex::new(u64::from_le_bytes(seed) | 1)),
        }
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    pub fn remaining(&self) -> Duration {
        self.ends_at.saturating_sub(self.clock.now())
    }

    /// xorshift64*: jitter needs spread, not secrecy.
    fn random(&self) -> f64 {
        let mut s = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Send `req` until it gets a definite answer or the deadline passes.
    pub fn send(&self, req: &Request) -> Result<Response, FetchError> {
        self.race(std::slice::from_ref(req)).map(|(_, r)| r)
    }

    /// Send all `reqs` at once per attempt (e.g. IPv4 and IPv6 bases); the first definite
    /// answer wins and its index is returned.
    pub fn race(&self, reqs: &[Request]) -> Result<(usize, Response), FetchError> {
        let first = reqs.first().expect("race needs at least one request");
        let mut attempts = 0;
        let mut last = String::from("no attempt made");
        loop {
            let left = self.remaining();
            if left < self.policy.min_attempt {
                return Err(self.deadline_error(first, attempts, last));
            }
            attempts += 1;
            let timeout = self.policy.per_request.min(left);
            let (why, after) = match self.attempt(reqs, timeout, attempts) {
                Outcome::Answer(i, r) => return Ok((i, r)),
                Outcome::Final(e) => return Err(e.into()),
                Outcome::Retry { why, after } => (why, after),
            };
            last = why;
            let left = self.remaining();
            if let Some(after) = after.filter(|a| *a > left) {
                last = format!("{last}, asked to retry after {}s", after.as_secs());
                return Err(self.deadline_error(first, attempts, last));
            }
            let wait = self
                .policy
                .backoff(attempts, self.random())
                .max(after.unwrap_or_default());
            self.clock.sleep(wait.min(left));
        }
    }

    fn deadline_error(&self, req: &Request, attempts: u32, last: String) -> FetchError {
        FetchError::Deadline {
            method: req.method,
            uri: req.shown.clone(),
            deadline: self.deadline,
            attempts,
            last,
        }
    }

    fn attempt(&self, reqs: &[Request], timeout: Duration, n: u32) -> Outcome {
        if let [req] = reqs {
            return judge(0, req, self.timed(req, timeout, n));
        }
        // Race: one thread per request; a loser is left to finish within its timeout.
        let (tx, rx) = mpsc::channel();
        for (i, req) in reqs.iter().enumerate() {
            let (tx, me, req) = (tx.clone(), self.clone(), req.clone());
            std::thread::spawn(move || {
                let _ = tx.send(judge(i, &req, me.timed(&req, timeout, n)));
            });
        }
        drop(tx);
        let mut worst = None;
        for outcome in rx {
            match outcome {
                Outcome::Answer(..) => return outcome,
                Outcome::Retry { .. } => worst = Some(outcome),
                Outcome::Final(_) if worst.is_none() => worst = Some(outcome),
                Outcome::Final(_) => {}
            }
        }
        worst.unwrap_or(Outcome::Retry {
            why: "no answer".into(),
            after: None,
        })
    }

    /// One exchange, logged with its outcome and elapsed time.
    fn timed(&self, req: &Request, timeout: Duration, n: u32) -> Result<Response, HttpError> {
        let t0 = self.clock.now();
        let result = self.transport.send(req, timeout);
        let ms = self.clock.now().saturating_sub(t0).as_millis();
        match &result {
            Ok(r) => log::info!(
                "{} {}: {} ({} bytes) in {ms} ms, attempt {n}",
                req.method,
                req.shown,
                r.status,
                r.body.len()
            ),
            Err(e) => log::info!("{e} in {ms} ms, attempt {n}"),
        }
        result
    }
}

fn retry_after(r: &Response) -> Option<Duration> {
    r.header("retry-after")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn judge(i: usize, req: &Request, result: Result<Response, HttpError>) -> Outcome {
    match result {
        Ok(r) if r.status == 429 => Outcome::Retry {
            why: format!("{} {}: status 429", req.method, req.shown),
            after: retry_after(&r),
        },
        Ok(r) if r.status >= 500 => Outcome::Retry {
            why: format!("{} {}: status {}", req.method, req.shown, r.status),
            after: None,
        },
        Ok(r) => Outcome::Answer(i, r),
        Err(e) if e.kind.retryable() => Outcome::Retry {
            why: e.to_string(),
            after: None,
        },
        Err(e) => Outcome::Final(e),
    }
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;

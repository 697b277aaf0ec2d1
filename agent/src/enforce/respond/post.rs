//! POSTing a report to `drift.report-url`: reqwest's blocking client (rustls, no proxy, no
//! redirects), retried with a capped backoff on the host's clock until a deadline; each
//! attempt is bounded by what is left of it, so a dead endpoint costs at most the grace.
//!
//! A 2xx is the acknowledgement. 408, 429 and 5xx, and no answer at all, are tried again;
//! any other status is the collector refusing the report, which a retry does not change.
use std::time::Duration;

use crate::host::Clock;

/// First delay between attempts; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(250);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// An attempt with less time than this left is not made.
const MIN_ATTEMPT: Duration = Duration::from_millis(20);

/// How the POST ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// No `drift.report-url`.
    NotConfigured,
    /// A 2xx.
    Acknowledged { status: u16, attempts: u32 },
    /// No 2xx by the deadline, or a refusal; `last` says what happened last.
    Failed { last: String, attempts: u32 },
}

impl Posted {
    pub fn acknowledged(&self) -> bool {
        matches!(self, Posted::Acknowledged { .. })
    }
}

/// `url` with what may be a secret removed: user and password, query and fragment
/// (`https://user:token@host/path?key=…` → `https://host/path?…`).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority
        .rfind('@')
        .map_or(authority, |at| &authority[at + 1..]);
    let tail = &rest[end..];
    let cut = tail.find(['?', '#']);
    let path = cut.map_or(tail, |i| &tail[..i]);
    let more = if cut.is_some() { "?…" } else { "" };
    format!("{scheme}://{host}{path}{more}")
}

/// One attempt: the HTTP status, or why there was none. Errors never carry the URL (reqwest
/// puts it in its messages), only the redacted form.
fn attempt(url: &str, body: &[u8], timeout: Duration) -> Result<u16, String> {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("pyre/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("building the http client: {}", e.without_url()))?;
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .map_err(|e| describe(&e.without_url()))?;
    Ok(resp.status().as_u16())
}

/// reqwest's error and its sources, one line.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// POST `body` to `url` until a 2xx, a refusal, or `deadline` (on `clock`). Each attempt is
/// bounded by `per_attempt` and by the time left.
pub fn post_until<C: Clock + ?Sized>(
    url: &str,
    body: &[u8],
    clock: &C,
    deadline: Duration,
    per_attempt: Duration,
) -> Posted {
    let shown = redact(url);
    if reqwest::Url::parse(url).is_err()
        || !(url.starts_with("http://") || url.starts_with("https://"))
    {
        let last = format!("{shown} is not an http(s) URL");
        log::error!("not posting the report: {last}");
        return Posted::Failed { last, attempts: 0 };
    }
    let mut delay = BACKOFF_INITIAL;
    let mut attempts = 0;
    let mut last = "no attempt was made: the deadline had passed".to_string();
    loop {
        let left = deadline.saturating_sub(clock.now());
        if left < MIN_ATTEMPT {
            return Posted::Failed { last, attempts };
        }
        attempts += 1;
        match attempt(url, body, per_attempt.min(left)) {
            Ok(status) if (200..300).contains(&status) => {
                log::info!("report posted to {shown}: status {status} (attempt {attempts})");
                return Posted::Acknowledged { status, attempts };
            }
            Ok(status) if !retryable(status) => {
                last = format!("{shown} refused the report: status {status}");
                log::error!("{last}");
                return Posted::Failed { last, attempts };
            }
            Ok(status) => last = format!("{shown}: status {status}"),
            Err(e) => last = format!("{shown}: {e}"),
        }
        log::warn!("posting the report, attempt {attempts}: {last}");
        let left = deadline.saturating_sub(clock.now());
        if left < MIN_ATTEMPT {
            return Posted::Failed { last, attempts };
        }
        clock.sleep(delay.min(left));
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_credentials_query_and_fragment() {
        for (url, want) in [
            ("https://collector.example/r", "https://collector.example/r"),
            (
                "https://user:s3cret@collector.example:8443/in?token=abc#x",
                "https://collector.example:8443/in?…",
            ),
            ("http://tok@10.0.2.2:9000", "http://10.0.2.2:9000"),
            ("http://h/p#frag", "http://h/p?…"),
            ("no scheme token=abc", "(not a URL)"),
        ] {
            assert_eq!(redact(url), want, "{url}");
            for secret in ["s3cret", "token=abc", "abc", "tok@"] {
                assert!(!redact(url).contains(secret), "{url}");
            }
        }
    }

    #[test]
    fn what_is_tried_again() {
        for s in [408, 429, 500, 502, 503] {
            assert!(retryable(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413] {
            assert!(!retryable(s), "{s}");
        }
    }
}

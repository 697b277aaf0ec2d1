//! The optional failure report: the boot record (with pyre boot's section: the reason and its
//! message id) POSTed as JSON to `pyre.report.url=` / the policy's `report-url`, so a fleet sees
//! why an instance ended. Bounded (one attempt and one retry, 5 s each) and best effort: a
//! report that cannot be delivered is logged and the failure action goes ahead.
use std::time::Duration;

/// Sends one report. The real one is [`ReqwestReporter`]; tests record.
pub trait Reporter {
    /// POST `body` (JSON) to `url`; the HTTP status, or why nothing was answered.
    fn post(&self, url: &str, body: &[u8]) -> Result<u16, String>;
}

/// Per-attempt bound of the real reporter.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// reqwest's blocking client: no proxy, no redirects, a short timeout.
pub struct ReqwestReporter;

impl Reporter for ReqwestReporter {
    fn post(&self, url: &str, body: &[u8]) -> Result<u16, String> {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(TIMEOUT)
            .user_agent(concat!("pyre/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the http client: {e}"))?;
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .map_err(|e| e.to_string())?;
        Ok(resp.status().as_u16())
    }
}

/// Deliver the report: a 2xx ends it; a failure or a 5xx is tried once more.
pub(super) fn send(reporter: &dyn Reporter, url: &str, body: &[u8]) {
    let shown = url.split('?').next().unwrap_or(url);
    for attempt in 1..=2 {
        match reporter.post(url, body) {
            Ok(s) if (200..300).contains(&s) => {
                log::info!("boot record reported to {shown} (status {s})");
                return;
            }
            Ok(s) if s < 500 => {
                log::warn!("reporting the boot record to {shown}: status {s}");
                return;
            }
            Ok(s) => {
                log::warn!("reporting the boot record to {shown}: status {s}, attempt {attempt}")
            }
            Err(e) => log::warn!("reporting the boot record to {shown}: {e}, attempt {attempt}"),
        }
    }
}

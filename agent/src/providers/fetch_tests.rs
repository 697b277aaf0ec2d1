use crate::host::Clock as _;
use std::time::Duration;

use super::*;
use crate::providers::http::HttpErrorKind;
use crate::providers::testing::{ok, rig, rig_costly, status};

const URL: &str = "http://127.0.0.1:9/latest/user-data";

#[test]
fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
    let p = RetryPolicy::default();
    assert_eq!(p.backoff(1, 0.0), Duration::from_millis(100));
    assert_eq!(p.backoff(1, 1.0), Duration::from_millis(200));
    assert_eq!(p.backoff(3, 0.0), Duration::from_millis(400));
    assert_eq!(p.backoff(30, 1.0), Duration::from_secs(5));
    assert_eq!(p.backoff(30, 0.0), Duration::from_millis(2500));
}

#[test]
fn retry_decision_table() {
    // (first answer, retried?)
    let cases: Vec<(Result<Response, HttpErrorKind>, bool)> = vec![
        (status(500), true),
        (status(503), true),
        (status(429), true),
        (Err(HttpErrorKind::Connect("refused".into())), true),
        (Err(HttpErrorKind::Lost("reset".into())), true),
        (Err(HttpErrorKind::Truncated("eof".into())), true),
        (Err(HttpErrorKind::Timeout(Duration::from_secs(1))), true),
        (status(200), false),
        (status(404), false),
        (status(403), false),
        (status(401), false),
        (Err(HttpErrorKind::Redirect("elsewhere".into())), false),
        (Err(HttpErrorKind::TooLarge(1)), false),
    ];
    for (first, retried) in cases {
        let label = format!("{first:?}");
        let first = std::sync::Mutex::new(Some(first));
        let r = rig(Duration::from_secs(30), move |_, n| {
            if n == 0 {
                first.lock().unwrap().take().unwrap()
            } else {
                ok("late")
            }
        });
        let _ = r.fetcher.send(&Request::get(URL));
        let want = if retried { 2 } else { 1 };
        assert_eq!(r.script.send_count(), want, "{label}");
    }
}

#[test]
fn a_burst_of_503s_then_success_is_fetched() {
    let r = rig(Duration::from_secs(30), |_, n| {
        if n < 3 {
            status(503)
        } else {
            ok("cfg")
        }
    });
    let resp = r.fetcher.send(&Request::get(URL)).unwrap();
    assert_eq!(resp.body, b"cfg");
    assert_eq!(r.script.send_count(), 4);
    assert_eq!(r.clock.sleeps.lock().unwrap().len(), 3);
}

#[test]
fn a_30s_deadline_is_kept_without_waiting() {
    let started = std::time::Instant::now();
    let r = rig(Duration::from_secs(30), |_, _| status(503));
    let err = r.fetcher.send(&Request::get(URL)).unwrap_err();
    let FetchError::Deadline {
        attempts, ref last, ..
    } = err
    else {
        panic!("{err}")
    };
    assert!(
        r.clock.now() <= Duration::from_secs(30),
        "{:?}",
        r.clock.now()
    );
    assert!(
        r.clock.now() >= Duration::from_secs(29),
        "{:?}",
        r.clock.now()
    );
    // 200 ms doubling to 5 s: roughly 10 attempts fit in 30 s, never hundreds.
    assert!((6..=20).contains(&attempts), "{attempts}");
    assert_eq!(last, &format!("GET {URL}: status 503"));
    assert!(err
        .to_string()
        .starts_with(&format!("GET {URL}: not answered within the 30s deadline")));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn slow_requests_count_against_the_deadline() {
    // Each request burns its whole timeout (fake time): the deadline still holds.
    let r = rig_costly(Duration::from_secs(30), Duration::from_secs(60), |_, _| {
        Err(HttpErrorKind::Timeout(Duration::from_secs(10)))
    });
    let err = r.fetcher.send(&Request::get(URL)).unwrap_err();
    assert!(matches!(err, FetchError::Deadline { .. }), "{err}");
    assert!(r.clock.now() <= Duration::from_secs(30));
    // Per-request timeout 10 s: about three attempts.
    assert!(r.script.send_count() <= 4, "{}", r.script.send_count());
}

#[test]
fn retry_after_is_honoured_within_the_deadline() {
    let r = rig(Duration::from_secs(30), |_, n| {
        if n == 0 {
            Ok(Response::new(429, Vec::new()).with_header("Retry-After", "3"))
        } else {
            ok("cfg")
        }
    });
    r.fetcher.send(&Request::get(URL)).unwrap();
    assert_eq!(
        *r.clock.sleeps.lock().unwrap(),
        vec![Duration::from_secs(3)]
    );
}

#[test]
fn retry_after_beyond_the_deadline_fails_at_once() {
    let r = rig(Duration::from_secs(30), |_, _| {
        Ok(Response::new(429, Vec::new()).with_header("Retry-After", "300"))
    });
    let err = r.fetcher.send(&Request::get(URL)).unwrap_err();
    assert!(
        err.to_string().ends_with("asked to retry after 300s)"),
        "{err}"
    );
    assert_eq!(r.clock.now(), Duration::ZERO);
}

#[test]
fn a_final_transport_error_is_not_retried() {
    let r = rig(Duration::from_secs(30), |_, _| {
        Err(HttpErrorKind::Redirect(
            "to another host (http://x/)".into(),
        ))
    });
    let err = r.fetcher.send(&Request::get(URL)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("GET {URL}: redirect refused: to another host (http://x/)")
    );
}

#[test]
fn race_takes_the_base_that_answers() {
    let r = rig(Duration::from_secs(30), |req, _| {
        if req.url.contains("[fd00:ec2::254]") {
            Err(HttpErrorKind::Connect("network unreachable".into()))
        } else {
            ok("tok")
        }
    });
    let reqs = [
        Request::put("http://[fd00:ec2::254]/latest/api/token"),
        Request::put("http://127.0.0.1:9/latest/api/token"),
    ];
    let (i, resp) = r.fetcher.race(&reqs).unwrap();
    assert_eq!((i, resp.body.as_slice()), (1, b"tok".as_slice()));
}

#[test]
fn zero_deadline_makes_no_attempt() {
    let r = rig(Duration::ZERO, |_, _| ok("x"));
    let err = r.fetcher.send(&Request::get(URL)).unwrap_err();
    assert!(err
        .to_string()
        .contains("(0 attempts; last: no attempt made)"));
    assert_eq!(r.script.send_count(), 0);
}

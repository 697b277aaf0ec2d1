use std::time::Duration;

use super::*;
use crate::providers::http::HttpErrorKind;
use crate::providers::testing::{ok, rig, status};
use crate::providers::Failure;

const BASE: &str = "http://127.0.0.1:9";

fn aws(r: &crate::providers::testing::Rig) -> Aws {
    Aws::new(r.fetcher.clone(), Some(BASE.into()))
}

/// IMDSv2 as a closure: tokens "t1", "t2", … ; `valid` says which token a GET accepts.
fn imds(
    valid: &'static str,
    user_data: Result<Response, HttpErrorKind>,
) -> impl Fn(&Request, usize) -> Result<Response, HttpErrorKind> + Send + Sync {
    let tokens = std::sync::atomic::AtomicUsize::new(0);
    move |req, _| {
        if req.url.ends_with(TOKEN_PATH) {
            assert_eq!(req.method, crate::providers::http::Method::Put);
            assert!(req
                .headers
                .iter()
                .any(|(n, v)| *n == TTL_HEADER && v == "300"));
            let n = tokens.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            return ok(&format!("t{n}"));
        }
        let tok = req.headers.iter().find(|(n, _)| *n == TOKEN_HEADER);
        match tok {
            Some((_, t)) if t == valid => user_data.clone(),
            _ => status(401),
        }
    }
}

#[test]
fn fetches_user_data_with_a_token() {
    let r = rig(Duration::from_secs(30), imds("t1", ok("{\"version\":1}")));
    let got = aws(&r).config().unwrap();
    assert_eq!(got.as_deref(), Some(b"{\"version\":1}".as_slice()));
    assert_eq!(
        r.script.lines(),
        [
            format!("PUT {BASE}/latest/api/token"),
            format!("GET {BASE}/latest/user-data"),
        ]
    );
}

#[test]
fn an_expired_token_is_refreshed_once() {
    let r = rig(Duration::from_secs(30), imds("t2", ok("cfg")));
    assert_eq!(
        aws(&r).config().unwrap().as_deref(),
        Some(b"cfg".as_slice())
    );
    assert_eq!(r.script.send_count(), 4, "{:?}", r.script.lines());
}

#[test]
fn a_token_refused_twice_is_final() {
    let r = rig(Duration::from_secs(30), imds("never", ok("cfg")));
    let e = aws(&r).config().unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("GET {BASE}/latest/user-data: status 401 (a fresh token was refused)")
    );
    assert_eq!(e.failure(), Failure::Refused);
}

#[test]
fn forbidden_means_imds_disabled() {
    let r = rig(Duration::from_secs(30), |_, _| status(403));
    let e = aws(&r).config().unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("PUT {BASE}/latest/api/token: status 403 (IMDS is disabled)")
    );
    assert_eq!(r.script.send_count(), 1);
}

#[test]
fn no_user_data_is_none() {
    for answer in [status(404), ok(""), ok("\n")] {
        let r = rig(Duration::from_secs(30), imds("t1", answer));
        assert_eq!(aws(&r).config().unwrap(), None);
    }
}

#[test]
fn unreachable_by_the_deadline() {
    let r = rig(Duration::from_secs(30), |_, _| {
        Err(HttpErrorKind::Connect("connection refused".into()))
    });
    let e = aws(&r).config().unwrap_err();
    assert_eq!(e.failure(), Failure::Unreachable);
    assert!(e.to_string().starts_with(&format!(
        "PUT {BASE}/latest/api/token: not answered within the 30s deadline"
    )));
}

#[test]
fn races_ipv4_and_ipv6_without_an_override() {
    let r = rig(Duration::from_secs(30), |req, _| {
        if req.url.starts_with("http://[fd00:ec2::254]") {
            if req.method == crate::providers::http::Method::Put {
                return ok("t6");
            }
            return ok("from-v6");
        }
        Err(HttpErrorKind::Connect("unreachable".into()))
    });
    let a = Aws::new(r.fetcher.clone(), None);
    assert_eq!(a.config().unwrap().as_deref(), Some(b"from-v6".as_slice()));
    let lines = r.script.lines();
    assert!(lines.contains(&"PUT http://169.254.169.254/latest/api/token".to_string()));
    // The IPv4 loser's thread may record its request after the winner's GET: check presence.
    assert!(lines.contains(&"GET http://[fd00:ec2::254]/latest/user-data".to_string()));
}

#[test]
fn identity_document_is_read_leniently() {
    let doc = r#"{"accountId":"1","instanceId":"i-0abc","region":"eu-west-1",
                 "availabilityZone":"eu-west-1b","instanceType":"t3.micro","extra":{"x":1}}"#;
    let r = rig(Duration::from_secs(30), imds("t1", ok(doc)));
    let id = aws(&r).identity().unwrap();
    assert_eq!(id.instance_id.as_deref(), Some("i-0abc"));
    assert_eq!(id.region.as_deref(), Some("eu-west-1"));
    assert_eq!(id.zone.as_deref(), Some("eu-west-1b"));
    assert_eq!(id.instance_type.as_deref(), Some("t3.micro"));
    assert!(parse_identity(b"[1]").is_none());
    assert!(parse_identity(b"not json").is_none());
}

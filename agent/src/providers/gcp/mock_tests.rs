use std::time::Duration;

use super::*;
use crate::providers::http::Response;
use crate::providers::testing::{rig, status};
use crate::providers::Failure;

const B: &str = "http://127.0.0.1:9";

fn google(body: &str) -> Result<Response, crate::providers::http::HttpErrorKind> {
    Ok(Response::new(200, body.as_bytes()).with_header("Metadata-Flavor", "Google"))
}

#[test]
fn reads_the_attribute_with_the_flavor_header() {
    let r = rig(Duration::from_secs(30), |req, _| {
        assert!(req.headers.contains(&("Metadata-Flavor", "Google".into())));
        google("cfg")
    });
    let g = Gcp::new(r.fetcher.clone(), Some(B.into()));
    assert_eq!(g.config().unwrap().as_deref(), Some(b"cfg".as_slice()));
    assert_eq!(r.script.lines(), [format!("GET {B}{CONFIG_PATH}")]);
}

#[test]
fn an_answer_without_the_flavor_header_is_refused() {
    let r = rig(Duration::from_secs(30), |_, _| status(200));
    let e = Gcp::new(r.fetcher.clone(), Some(B.into()))
        .config()
        .unwrap_err();
    assert_eq!(e.failure(), Failure::Refused);
    assert!(
        e.to_string().contains("lacks Metadata-Flavor: Google"),
        "{e}"
    );
}

#[test]
fn missing_or_empty_attribute_is_none() {
    for answer in [
        Ok(Response::new(404, Vec::new()).with_header("Metadata-Flavor", "Google")),
        google(""),
    ] {
        let r = rig(Duration::from_secs(30), move |_, _| answer.clone());
        let g = Gcp::new(r.fetcher.clone(), Some(B.into()));
        assert_eq!(g.config().unwrap(), None);
    }
}

#[test]
fn identity_from_the_recursive_instance_document() {
    let doc = r#"{"id": 4520031799277581759, "zone": "projects/123/zones/europe-west1-b",
                  "machineType": "projects/123/machineTypes/e2-small", "hostname": "web-1.c.p.internal",
                  "attributes": {"pyre-config": "…"}}"#;
    let r = rig(Duration::from_secs(30), move |_, _| google(doc));
    let id = Gcp::new(r.fetcher.clone(), Some(B.into()))
        .identity()
        .unwrap();
    assert_eq!(id.instance_id.as_deref(), Some("4520031799277581759"));
    assert_eq!(id.zone.as_deref(), Some("europe-west1-b"));
    assert_eq!(id.region.as_deref(), Some("europe-west1"));
    assert_eq!(id.instance_type.as_deref(), Some("e2-small"));
    assert_eq!(r.script.lines(), [format!("GET {B}{INSTANCE_PATH}")]);
}

use std::time::Duration;

use super::*;
use crate::providers::testing::{ok, rig, status};
use crate::providers::Failure;

const B: &str = "http://127.0.0.1:9";

#[test]
fn decodes_base64_user_data() {
    let r = rig(Duration::from_secs(30), |req, _| {
        assert!(req.headers.contains(&("Metadata", "true".into())));
        ok("eyJ2ZXJzaW9uIjox\nfQ==\n")
    });
    let a = Azure::new(r.fetcher.clone(), Some(B.into()));
    assert_eq!(
        a.config().unwrap().as_deref(),
        Some(b"{\"version\":1}".as_slice())
    );
    assert_eq!(r.script.lines(), [format!("GET {B}{USER_DATA_PATH}")]);
}

#[test]
fn empty_or_missing_user_data_is_none() {
    for answer in [ok(""), status(404)] {
        let r = rig(Duration::from_secs(30), move |_, _| answer.clone());
        assert_eq!(
            Azure::new(r.fetcher.clone(), Some(B.into()))
                .config()
                .unwrap(),
            None
        );
    }
}

#[test]
fn bad_base64_is_refused() {
    let r = rig(Duration::from_secs(30), |_, _| ok("{not base64}"));
    let e = Azure::new(r.fetcher.clone(), Some(B.into()))
        .config()
        .unwrap_err();
    assert_eq!(e.failure(), Failure::Refused);
    assert!(e.to_string().contains("user data is not base64"), "{e}");
}

#[test]
fn identity_from_compute() {
    let doc = r#"{"compute":{"vmId":"02aab8a4","location":"westeurope","zone":"2",
                 "vmSize":"Standard_B1s","name":"web-1","userData":"x"},"network":{}}"#;
    let r = rig(Duration::from_secs(30), move |_, _| ok(doc));
    let id = Azure::new(r.fetcher.clone(), Some(B.into()))
        .identity()
        .unwrap();
    assert_eq!(id.instance_id.as_deref(), Some("02aab8a4"));
    assert_eq!(id.region.as_deref(), Some("westeurope"));
    assert_eq!(id.zone.as_deref(), Some("2"));
    assert_eq!(id.instance_type.as_deref(), Some("Standard_B1s"));
    assert_eq!(id.hostname.as_deref(), Some("web-1"));
    assert_eq!(r.script.lines(), [format!("GET {B}{INSTANCE_PATH}")]);
}

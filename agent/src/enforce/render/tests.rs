use serde_json::{json, Value};

use super::*;

const VERIFY: &[u8] = include_bytes!("../../../tests/fixtures/report/incident-verify.json");
const MOUNTS: &[u8] = include_bytes!("../../../tests/fixtures/report/incident-mounts.json");
const LIFETIME: &[u8] = include_bytes!("../../../tests/fixtures/report/incident-lifetime.json");
const DRIFT: &[u8] = include_bytes!("../../../tests/fixtures/report/drift.json");

fn ocsf_of(bytes: &[u8]) -> Value {
    ocsf(&load(bytes).unwrap()).unwrap()
}

fn int(v: &Value, path: &str) -> i64 {
    v.pointer(path)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("{path} is not an integer in {v:#}"))
}

fn string<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{path} is not a string in {v:#}"))
}

#[test]
fn ocsf_has_the_required_attributes_of_a_detection_finding() {
    for bytes in [VERIFY, MOUNTS, LIFETIME] {
        let v = ocsf_of(bytes);
        assert_eq!(int(&v, "/class_uid"), 2004);
        assert_eq!(int(&v, "/category_uid"), 2);
        assert_eq!(int(&v, "/activity_id"), 1);
        assert_eq!(int(&v, "/type_uid"), 200401);
        assert!((1..=5).contains(&int(&v, "/severity_id")));
        assert!(int(&v, "/time") > 1_700_000_000_000);
        assert_eq!(string(&v, "/metadata/version"), OCSF_VERSION);
        assert_eq!(string(&v, "/metadata/product/name"), "pyre");
        assert_eq!(string(&v, "/metadata/product/vendor_name"), "pyre");
        let id = string(&v, "/finding_info/uid");
        assert_eq!(string(&v, "/metadata/uid"), id);
        assert!(!string(&v, "/finding_info/title").is_empty());
        assert!(int(&v, "/finding_info/analytic/type_id") >= 0);
        // Every evidence carries one of the objects OCSF requires of it.
        for e in v["evidences"].as_array().into_iter().flatten() {
            assert!(e.get("data").is_some() || e.get("file").is_some(), "{e}");
            if let Some(f) = e.get("file") {
                assert!(f["name"].is_string() && f["type_id"].is_u64(), "{f}");
            }
        }
        for o in v["observables"].as_array().unwrap() {
            assert!(o["name"].is_string() && o["type_id"].is_u64(), "{o}");
        }
    }
}

#[test]
fn severity_action_and_disposition_follow_what_was_found() {
    // (fixture, severity_id, action_id, disposition_id); rotation has no security control.
    let cases = [
        (VERIFY, 5, Some(2), Some(4)),
        (MOUNTS, 5, Some(1), Some(19)),
        (LIFETIME, 1, None, None),
    ];
    for (bytes, sev, action, disposition) in cases {
        let v = ocsf_of(bytes);
        assert_eq!(int(&v, "/severity_id"), sev, "{v:#}");
        assert_eq!(v["action_id"].as_i64(), action, "{v:#}");
        assert_eq!(v["disposition_id"].as_i64(), disposition, "{v:#}");
        let profiles = &v["metadata"]["profiles"];
        assert_eq!(
            profiles
                .as_array()
                .unwrap()
                .contains(&json!("security_control")),
            action.is_some()
        );
    }
    // Verity corruption alone is High; a reboot is a custom action.
    let mut inc: Value = serde_json::from_slice(MOUNTS).unwrap();
    inc["findings"].as_array_mut().unwrap().remove(0);
    inc["event"]["action"] = "reboot".into();
    let v = ocsf_of(&serde_json::to_vec(&inc).unwrap());
    assert_eq!(
        (int(&v, "/severity_id"), int(&v, "/disposition_id")),
        (4, 7)
    );
}

#[test]
fn drift_changes_become_file_evidences_and_observables() {
    let v = ocsf_of(VERIFY);
    let ev = v["evidences"].as_array().unwrap();
    assert_eq!(ev.len(), 5);
    let ls = ev
        .iter()
        .find(|e| e["file"]["path"] == "/usr/bin/ls")
        .unwrap();
    assert_eq!(ls["file"]["name"], "ls");
    assert_eq!(ls["file"]["type_id"], 1);
    assert_eq!(ls["data"]["kind"], "modified");
    let hashes: Vec<&str> = v["observables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type_id"] == 8)
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    // The added file and the modified binary as they are now; not the removed /etc/passwd.
    assert_eq!(hashes.len(), 2, "{hashes:?}");
    assert!(hashes.iter().all(|h| !h.starts_with("037d")), "{hashes:?}");
    assert_eq!(string(&v, "/device/instance_uid"), "i-0123456789abcdef0");
    assert_eq!(int(&v, "/device/type_id"), 6);
    assert_eq!(string(&v, "/device/image/uid"), "ami-0fedcba9876543210");
    assert!(v["unmapped"]["drift"]["counts"].is_object());
    assert!(v["unmapped"]["drift"].get("changes").is_none());
}

#[test]
fn a_huge_drift_is_capped_and_counted() {
    let mut inc: Value = serde_json::from_slice(VERIFY).unwrap();
    let one = inc["drift"]["changes"][0].clone();
    inc["drift"]["changes"] = Value::Array(vec![one; 250]);
    let v = ocsf_of(&serde_json::to_vec(&inc).unwrap());
    assert_eq!(
        v["evidences"].as_array().unwrap().len(),
        evidence::MAX_ITEMS
    );
    assert_eq!(int(&v, "/unmapped/evidences_omitted"), 150);
}

#[test]
fn bad_documents_are_named() {
    let mut wrong_check: Value = serde_json::from_slice(VERIFY).unwrap();
    wrong_check["event"]["check"] = "cron".into();
    let mut bad_time: Value = serde_json::from_slice(VERIFY).unwrap();
    bad_time["event"]["time"] = "yesterday".into();
    let mut bad_drift: Value = serde_json::from_slice(VERIFY).unwrap();
    bad_drift["drift"]["changes"][1]["path"] = json!(7);
    let mut no_verdict: Value = serde_json::from_slice(DRIFT).unwrap();
    no_verdict["verdict"] = json!(null);
    let cases: [(Vec<u8>, &str); 7] = [
        (b"{".to_vec(), "not JSON: EOF while parsing"),
        (b"[1]".to_vec(), "not a JSON object"),
        (
            b"{\"verdict\":\"drift\"}".to_vec(),
            "neither an incident report",
        ),
        (
            serde_json::to_vec(&wrong_check).unwrap(),
            "at event.check: unknown variant `cron`",
        ),
        (
            serde_json::to_vec(&bad_time).unwrap(),
            "at event.time: not an RFC 3339 time: \"yesterday\"",
        ),
        (
            serde_json::to_vec(&bad_drift).unwrap(),
            "at drift.changes[1].path: missing or not a string",
        ),
        (serde_json::to_vec(&no_verdict).unwrap(), "at verdict"),
    ];
    for (bytes, want) in cases {
        let err = load(&bytes).unwrap_err();
        assert!(err.starts_with(want), "{err} (wanted {want})");
    }
}

#[test]
fn plain_drift_reports_render_as_text_and_json_but_not_ocsf() {
    let doc = load(DRIFT).unwrap();
    let mut text = Vec::new();
    super::text(&doc, &mut text).unwrap();
    assert!(String::from_utf8(text)
        .unwrap()
        .starts_with("DRIFT: / differs from sha256:3fe0"));
    let mut out = Vec::new();
    json(&doc, &mut out).unwrap();
    let back: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(back, serde_json::from_slice::<Value>(DRIFT).unwrap());
    assert!(ocsf(&doc).unwrap_err().contains("names no event"));
}

#[test]
fn json_keeps_fields_this_version_does_not_know() {
    let mut inc: Value = serde_json::from_slice(MOUNTS).unwrap();
    inc["event"]["escalation"] = "page".into();
    let doc = load(&serde_json::to_vec(&inc).unwrap()).unwrap();
    let mut out = Vec::new();
    json(&doc, &mut out).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), inc);
}

#[test]
fn spans_read_at_a_glance() {
    let cases = [
        (0, "0 s"),
        (45, "45 s"),
        (245, "4 min 5 s"),
        (11_520, "3 h 12 min"),
        (86_400, "1 d 0 h"),
    ];
    for (s, want) in cases {
        assert_eq!(super::text::span(s), want);
    }
}

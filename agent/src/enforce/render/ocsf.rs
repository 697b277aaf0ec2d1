//! An incident as an OCSF Detection Finding (class 2004, category 2 Findings), schema 1.3.0,
//! that a SIEM ingests as is. Every attribute name and enum value is OCSF's own; the mapping,
//! and why each choice, is in docs/drift-report.md ("OCSF mapping").
use serde_json::{json, Map, Value};

use super::evidence;
use crate::enforce::report::{Action, Check, Finding, Incident};

/// The OCSF schema version the event conforms to (`metadata.version`).
pub const OCSF_VERSION: &str = "1.3.0";

const CLASS_UID: u32 = 2004;
const CATEGORY_UID: u32 = 2;
/// `activity_id` 1 Create: every report is a new finding.
const ACTIVITY_CREATE: u32 = 1;

/// Providers whose instances are virtual machines (`device.type_id` 6 Virtual).
const VIRTUAL: [&str; 5] = ["aws", "gcp", "azure", "openstack", "qemu"];

pub fn detection_finding(inc: &Incident, time_ms: i64) -> Value {
    let rotation = inc.is_rotation();
    let (severity_id, severity) = severity(inc);
    let items = evidence::items(inc);
    let mut ev = Map::new();
    let mut put = |k: &str, v: Value| {
        ev.insert(k.to_string(), v);
    };
    put("class_uid", json!(CLASS_UID));
    put("class_name", json!("Detection Finding"));
    put("category_uid", json!(CATEGORY_UID));
    put("category_name", json!("Findings"));
    put("activity_id", json!(ACTIVITY_CREATE));
    put("activity_name", json!("Create"));
    put("type_uid", json!(CLASS_UID * 100 + ACTIVITY_CREATE));
    put("type_name", json!("Detection Finding: Create"));
    put("time", json!(time_ms));
    put("severity_id", json!(severity_id));
    put("severity", json!(severity));
    put("status_id", json!(1));
    put("status", json!("New"));
    put(
        "message",
        json!(format!("{}: {}", inc.title(), inc.event.reason)),
    );
    put("metadata", metadata(inc, rotation));
    put("finding_info", finding_info(inc, time_ms));
    if let Some(d) = device(inc, time_ms) {
        put("device", d);
    }
    put("resources", Value::Array(items.resources));
    if !items.evidences.is_empty() {
        put("evidences", Value::Array(items.evidences));
    }
    put(
        "observables",
        Value::Array(observables(inc, &items.observables)),
    );
    if !rotation {
        // The security_control profile: what pyre does about it.
        let (action_id, action, disposition_id, disposition) = control(inc.event.action);
        put("action_id", json!(action_id));
        put("action", json!(action));
        put("disposition_id", json!(disposition_id));
        put("disposition", json!(disposition));
        // A comparison with a signed manifest, not a heuristic.
        put("confidence_id", json!(3));
        put("confidence", json!("High"));
    }
    put("unmapped", unmapped(inc, items.omitted));
    Value::Object(ev)
}

/// Rotation is Informational; verity corruption alone is High (it may be a failing device as
/// well as tampering); a mount over sealed paths, a root that is not the sealed device, or a
/// changed file is Critical (the code the server runs is not what the image sealed).
fn severity(inc: &Incident) -> (u32, &'static str) {
    if inc.is_rotation() {
        return (1, "Informational");
    }
    let tampered = inc.drift.is_some()
        || inc
            .findings
            .iter()
            .any(|f| matches!(f, Finding::Mount { .. } | Finding::Root { .. }));
    if tampered || inc.findings.is_empty() {
        (5, "Critical")
    } else {
        (4, "High")
    }
}

/// `(action_id, action, disposition_id, disposition)` of the security_control profile.
fn control(a: Action) -> (u32, &'static str, u32, &'static str) {
    match a {
        // The instance is taken out of service: nothing it would serve is allowed.
        Action::Poweroff => (2, "Denied", 4, "Isolated"),
        Action::Reboot => (2, "Denied", 7, "Custom Action"),
        // Reported and alerted on, the instance keeps serving.
        Action::Report => (1, "Allowed", 19, "Alert"),
        Action::None => (1, "Allowed", 16, "No Action"),
    }
}

fn metadata(inc: &Incident, rotation: bool) -> Value {
    let profiles: &[&str] = if rotation {
        &["host"]
    } else {
        &["host", "security_control"]
    };
    let mut m = json!({
        "version": OCSF_VERSION,
        "product": {
            "name": "pyre",
            "vendor_name": "pyre",
            "version": inc.instance.agent_version,
        },
        "uid": inc.event.id,
        "original_time": inc.event.time,
        "log_name": super::super::report::KIND,
        "profiles": profiles,
    });
    if let Some(b) = &inc.instance.boot_id {
        // Every record pyre ships from one boot carries its boot id.
        m["correlation_uid"] = json!(b);
    }
    m
}

fn finding_info(inc: &Incident, time_ms: i64) -> Value {
    let check = inc.event.check;
    let (kind, desc) = match check {
        Check::Mounts => (
            "Sealed Path Mount",
            "mount table: nothing over or inside a sealed path, root the sealed read-only device",
        ),
        Check::Verity => (
            "Block Integrity Violation",
            "dm-verity status and kernel messages of the sealed root",
        ),
        Check::Verify => (
            "File Integrity Drift",
            "full re-verification of the live root against the signed manifest",
        ),
        Check::Lifetime => ("Instance Rotation", "lifetime.max-age of the instance"),
        Check::Carried => (
            "Carried Report",
            "a report an earlier instance left unacknowledged on the data volume",
        ),
    };
    json!({
        "uid": inc.event.id,
        "title": inc.title(),
        "desc": inc.event.reason,
        "types": [kind],
        "created_time": time_ms,
        "analytic": {
            "name": check.as_str(),
            "type_id": 1,
            "type": "Rule",
            "desc": desc,
        },
    })
}

/// The affected host; none when neither its name nor its instance id is known (OCSF wants at
/// least one).
fn device(inc: &Incident, time_ms: i64) -> Option<Value> {
    let i = &inc.instance;
    if i.hostname.is_none() && i.id.is_none() {
        return None;
    }
    let virt = i.provider.as_deref().is_some_and(|p| VIRTUAL.contains(&p));
    let (type_id, kind) = if virt { (6, "Virtual") } else { (0, "Unknown") };
    let mut d = json!({
        "type_id": type_id,
        "type": kind,
        "os": { "name": inc.host.os.as_deref().unwrap_or("Linux"), "type_id": 200, "type": "Linux" },
    });
    if let Some(h) = &i.hostname {
        d["hostname"] = json!(h);
    }
    if let Some(id) = &i.id {
        d["instance_uid"] = json!(id);
    }
    if let Some(k) = &inc.host.kernel {
        d["os"]["version"] = json!(k);
    }
    if let Some(img) = &i.image_id {
        d["image"] = json!({ "uid": img });
    }
    if inc.host.uptime_s > 0 {
        d["boot_time"] = json!(time_ms - inc.host.uptime_s as i64 * 1000);
    }
    Some(d)
}

fn observables(inc: &Incident, from_items: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(h) = &inc.instance.hostname {
        out.push(
            json!({ "name": "device.hostname", "type_id": 1, "type": "Hostname", "value": h }),
        );
    }
    if let Some(id) = &inc.instance.id {
        out.push(
            json!({ "name": "device.instance_uid", "type_id": 10, "type": "Resource UID", "value": id }),
        );
    }
    out.extend(from_items.iter().cloned());
    out
}

/// What OCSF has no attribute for: pyre's own words for the action and check, the grace, the
/// boot id, the provider, the host facts, and the drift report's summary (its changes are the
/// evidences).
fn unmapped(inc: &Incident, omitted: usize) -> Value {
    let mut u = json!({
        "report_version": inc.report_version,
        "check": inc.event.check.as_str(),
        "action": inc.event.action.as_str(),
        "grace_s": inc.event.grace_s,
        "manifest_digest": inc.instance.manifest_digest,
        "host": inc.host,
    });
    for (k, v) in [
        ("boot_id", &inc.instance.boot_id),
        ("provider", &inc.instance.provider),
    ] {
        if let Some(v) = v {
            u[k] = json!(v);
        }
    }
    if let Some(Value::Object(d)) = &inc.drift {
        let mut summary = d.clone();
        summary.remove("changes");
        u["drift"] = Value::Object(summary);
    }
    if omitted > 0 {
        u["evidences_omitted"] = json!(omitted);
    }
    u
}

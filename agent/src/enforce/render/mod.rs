//! `pyre report`: a stored report read back and validated ([`load`]), then rendered for people
//! ([`text`]), re-emitted for machines ([`json`]) or mapped to an OCSF Detection Finding
//! ([`ocsf`], docs/drift-report.md "OCSF mapping").
//!
//! Two kinds of document are accepted: an incident report (`"kind": "pyre.incident"`, see
//! [`super::report`]) and a plain drift report (`pyre verify --format json`: no `kind`, has
//! `verdict` and `changes`).
use std::io::{self, Write};

use serde_json::Value;

use super::report::Incident;
use crate::drift::{self, DriftReport};

mod evidence;
mod ocsf;
mod text;

pub use ocsf::OCSF_VERSION;

/// A validated stored report, with the JSON it was read from.
#[derive(Debug)]
pub enum Stored {
    Incident {
        incident: Box<Incident>,
        /// `event.time` in milliseconds since the epoch.
        time_ms: i64,
        json: Value,
    },
    Drift {
        /// The decoded report, or why this version could not decode it (a newer version's
        /// change kind, say): it is then rendered from `json`.
        report: Result<Box<DriftReport>, String>,
        json: Value,
    },
}

/// Read and validate a stored report; the error says what is wrong and where (a serde path
/// such as `at event.check: unknown variant …`).
pub fn load(bytes: &[u8]) -> Result<Stored, String> {
    let json: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let Some(obj) = json.as_object() else {
        return Err("not a JSON object".into());
    };
    if obj.contains_key("kind") {
        let incident = Incident::from_json(bytes)?;
        let time_ms = incident.time_ms()?;
        if let Some(d) = &incident.drift {
            drift_shape(d).map_err(|e| format!("at drift.{e}"))?;
        }
        return Ok(Stored::Incident {
            incident: Box::new(incident),
            time_ms,
            json,
        });
    }
    if !(obj.contains_key("verdict") && obj.contains_key("changes")) {
        return Err(
            "neither an incident report (no \"kind\") nor a drift report (no \"verdict\" and \
             \"changes\")"
                .into(),
        );
    }
    let report = match DriftReport::from_value(&json) {
        Ok(r) => Ok(Box::new(r)),
        Err(e) => {
            drift_shape(&json).map_err(|shape| format!("{e} (and at {shape})"))?;
            Err(e)
        }
    };
    Ok(Stored::Drift { report, json })
}

/// The least a drift report must be to render at all: a `verdict` string and `changes`, each
/// an object with a `path` and a `kind` string. The error is a path (`changes[3].path: …`).
fn drift_shape(v: &Value) -> Result<(), String> {
    if !v.get("verdict").is_some_and(Value::is_string) {
        return Err("verdict: missing or not a string".into());
    }
    let Some(changes) = v.get("changes").and_then(Value::as_array) else {
        return Err("changes: missing or not an array".into());
    };
    for (i, c) in changes.iter().enumerate() {
        for key in ["path", "kind"] {
            if !c.get(key).is_some_and(Value::is_string) {
                return Err(format!("changes[{i}].{key}: missing or not a string"));
            }
        }
    }
    Ok(())
}

/// The text rendering for people.
pub fn text(doc: &Stored, out: &mut dyn Write) -> io::Result<()> {
    match doc {
        Stored::Incident { incident, .. } => text::incident(incident, out),
        Stored::Drift { report, json } => drift_text(report.as_deref(), json, out),
    }
}

/// The validated document as it was read (fields this version does not know kept), pretty.
pub fn json(doc: &Stored, out: &mut dyn Write) -> io::Result<()> {
    let json = match doc {
        Stored::Incident { json, .. } | Stored::Drift { json, .. } => json,
    };
    serde_json::to_writer_pretty(&mut *out, json)?;
    out.write_all(b"\n")
}

/// The OCSF Detection Finding of an incident. A plain drift report names no event and no
/// instance, so it has none: the error says so.
pub fn ocsf(doc: &Stored) -> Result<Value, &'static str> {
    match doc {
        Stored::Incident {
            incident, time_ms, ..
        } => Ok(ocsf::detection_finding(incident, *time_ms)),
        Stored::Drift { .. } => Err(
            "a plain drift report (pyre verify --format json) names no event and no instance; \
             OCSF is made from incident reports (pyre.incident)",
        ),
    }
}

/// A drift report's text: the drift renderer when it decoded, else the same layout from JSON.
fn drift_text(
    report: Result<&DriftReport, &String>,
    json: &Value,
    out: &mut dyn Write,
) -> io::Result<()> {
    match report {
        Ok(r) => r.render_text(out),
        Err(why) => drift::render_text_value(json, why, out),
    }
}

#[cfg(test)]
mod tests;

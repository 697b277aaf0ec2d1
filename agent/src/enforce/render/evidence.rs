//! The OCSF finding's `resources`, `evidences` and per-file `observables`, from an incident's
//! findings and its drift changes (read from JSON, so a newer report's change kinds still map).
use serde_json::{json, Value};

use crate::enforce::report::{Finding, Incident};

/// At most this many findings and changes become evidences and resources: a SIEM event stays
/// small; the rest are counted in `unmapped.evidences_omitted` (the stored report has all).
pub const MAX_ITEMS: usize = 100;

#[derive(Default)]
pub struct Items {
    pub resources: Vec<Value>,
    pub evidences: Vec<Value>,
    pub observables: Vec<Value>,
    pub omitted: usize,
}

pub fn items(inc: &Incident) -> Items {
    let root = inc
        .drift
        .as_ref()
        .and_then(|d| d.get("root"))
        .and_then(Value::as_str)
        .unwrap_or("/");
    let mut it = Items {
        resources: vec![json!({
            "name": root,
            "type": "Sealed Root",
            "uid": inc.instance.manifest_digest,
        })],
        ..Items::default()
    };
    let empty = Vec::new();
    let changes = inc
        .drift
        .as_ref()
        .and_then(|d| d.get("changes"))
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let total = inc.findings.len() + changes.len();
    it.omitted = total.saturating_sub(MAX_ITEMS);
    for f in inc.findings.iter().take(MAX_ITEMS) {
        it.finding(f);
    }
    for c in changes
        .iter()
        .take(MAX_ITEMS.saturating_sub(inc.findings.len()))
    {
        it.change(c);
    }
    it
}

impl Items {
    fn finding(&mut self, f: &Finding) {
        let data = serde_json::to_value(f).expect("a finding always serializes");
        match f {
            Finding::Mount { path, .. } => {
                self.resources
                    .push(json!({ "name": path, "type": "Mount Point" }));
                self.evidences.push(json!({ "data": data }));
            }
            Finding::VerityCorruption { device, path, .. } => match path {
                Some(p) => {
                    let file = file(p, 1, None, None);
                    self.resources
                        .push(json!({ "name": p, "type": "Regular File" }));
                    self.observe(&file, None);
                    self.evidences.push(json!({ "file": file, "data": data }));
                }
                None => {
                    self.resources
                        .push(json!({ "name": device, "type": "Block Device" }));
                    self.evidences.push(json!({ "data": data }));
                }
            },
            Finding::Root { .. } | Finding::MaxAge { .. } => {
                self.evidences.push(json!({ "data": data }));
            }
        }
    }

    /// One drift change: the file as found (or as sealed, when it is gone), the change itself
    /// as the evidence's data.
    fn change(&mut self, c: &Value) {
        let path = c.get("path").and_then(Value::as_str).unwrap_or("?");
        let kind = c.get("kind").and_then(Value::as_str).unwrap_or("?");
        let entry = match kind {
            "added" | "type-changed" => c.get("actual"),
            "removed" | "unreadable" => c.get("expected"),
            _ => None,
        };
        let (type_id, size, sha) = match entry {
            Some(e) => (
                type_id(e.get("type").and_then(Value::as_str)),
                e.get("size").and_then(Value::as_u64),
                e.get("sha256").and_then(Value::as_str),
            ),
            // A modified entry names only what differs: content means a regular file.
            None => match actual_content(c) {
                Some(sha) => (1, None, Some(sha)),
                None => (0, None, None),
            },
        };
        let file = file(path, type_id, size, sha);
        self.resources
            .push(json!({ "name": path, "type": caption(type_id) }));
        // The hash of what is on the instance now (not of what a removed file was).
        self.observe(&file, (kind != "removed").then_some(sha).flatten());
        self.evidences.push(json!({ "file": file, "data": c }));
    }

    fn observe(&mut self, file: &Value, sha: Option<&str>) {
        self.observables.push(json!({
            "name": "evidences.file.name",
            "type_id": 7,
            "type": "File Name",
            "value": file["name"],
        }));
        if let Some(hex) = sha.and_then(|s| s.strip_prefix("sha256:")) {
            self.observables.push(json!({
                "name": "evidences.file.hashes.value",
                "type_id": 8,
                "type": "Hash",
                "value": hex,
            }));
        }
    }
}

/// The `actual` content digest of a modified change, when its content changed.
fn actual_content(c: &Value) -> Option<&str> {
    c.get("attributes")?
        .as_array()?
        .iter()
        .find(|a| a.get("attribute").and_then(Value::as_str) == Some("content"))?
        .get("actual")?
        .as_str()
}

/// An OCSF `file` object.
fn file(path: &str, type_id: u32, size: Option<u64>, sha: Option<&str>) -> Value {
    let name = match path.rsplit_once('/') {
        Some((_, n)) if !n.is_empty() => n,
        _ => path,
    };
    let mut f = json!({ "name": name, "path": path, "type_id": type_id, "type": caption(type_id) });
    if let Some(s) = size {
        f["size"] = json!(s);
    }
    if let Some(hex) = sha.and_then(|s| s.strip_prefix("sha256:")) {
        f["hashes"] = json!([{ "algorithm_id": 3, "algorithm": "SHA-256", "value": hex }]);
    }
    f
}

/// OCSF `file.type_id` of a manifest type name.
fn type_id(t: Option<&str>) -> u32 {
    match t {
        Some("file") => 1,
        Some("dir") => 2,
        Some("char") => 3,
        Some("block") => 4,
        Some("socket") => 5,
        Some("fifo") => 6,
        Some("symlink") => 7,
        _ => 0,
    }
}

fn caption(type_id: u32) -> &'static str {
    match type_id {
        1 => "Regular File",
        2 => "Folder",
        3 => "Character Device",
        4 => "Block Device",
        5 => "Local Socket",
        6 => "Named Pipe",
        7 => "Symbolic Link",
        _ => "Unknown",
    }
}

//! Text renderings of drift and diff reports, for people: summary first, then changes grouped
//! by kind in a fixed order.
use std::io::{self, Write};

use serde_json::Value;

use super::{Change, Detail, DiffReport, DriftReport, EntryView, SignatureStatus};

const ORDER: [&str; 6] = [
    "shadowed",
    "unreadable",
    "type-changed",
    "modified",
    "removed",
    "added",
];

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

pub fn report(r: &DriftReport, out: &mut dyn Write) -> io::Result<()> {
    let sig = match r.signature {
        SignatureStatus::Verified => format!(
            "signature verified (key {})",
            r.signing_key.as_deref().unwrap_or("?")
        ),
        SignatureStatus::NotChecked => "signature not checked".to_string(),
    };
    let c = &r.counts;
    if r.is_clean() {
        writeln!(
            out,
            "CLEAN: {} matches {} ({} entries, {} files, {} hashed in {:.2} s; {sig})",
            r.root,
            r.manifest_digest,
            c.entries,
            c.files_hashed,
            mb(c.bytes_hashed),
            r.duration_ms as f64 / 1000.0
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "DRIFT: {} differs from {}: {} changes ({} entries checked, {} hashed in {:.2} s; {sig})",
        r.root,
        r.manifest_digest,
        r.changes.len(),
        c.entries,
        mb(c.bytes_hashed),
        r.duration_ms as f64 / 1000.0
    )?;
    changes(&r.changes, out)
}

pub fn diff(r: &DiffReport, out: &mut dyn Write) -> io::Result<()> {
    if r.is_identical() {
        writeln!(
            out,
            "IDENTICAL: {} and {} describe the same tree",
            r.old_digest, r.new_digest
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "CHANGED: {} -> {}: {} changes ({} -> {} entries)",
        r.old_digest,
        r.new_digest,
        r.changes.len(),
        r.counts.entries,
        r.counts.found
    )?;
    if r.old_excludes != r.new_excludes {
        writeln!(
            out,
            "excludes: [{}] -> [{}]",
            r.old_excludes.join(" "),
            r.new_excludes.join(" ")
        )?;
    }
    changes(&r.changes, out)
}

/// A stored drift report this version could not decode (`why`): the same summary line and
/// grouping from its JSON, each change's fields shown as JSON. Groups of kinds this version does
/// not know come last, in order of appearance.
pub fn report_value(v: &Value, why: &str, out: &mut dyn Write) -> io::Result<()> {
    let field = |k: &str| v.get(k).map_or_else(|| "?".to_string(), value);
    let empty = Vec::new();
    let all = v.get("changes").and_then(Value::as_array).unwrap_or(&empty);
    let kind_of = |c: &Value| c.get("kind").map_or_else(|| "?".to_string(), value);
    writeln!(
        out,
        "{}: {} differs from {}: {} changes (not fully read by pyre {}: {why})",
        field("verdict").to_uppercase(),
        field("root"),
        field("manifest_digest"),
        all.len(),
        env!("CARGO_PKG_VERSION")
    )?;
    let mut kinds: Vec<String> = ORDER.iter().map(|k| k.to_string()).collect();
    for c in all {
        let k = kind_of(c);
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    for kind in kinds {
        let group: Vec<&Value> = all.iter().filter(|c| kind_of(c) == kind).collect();
        if group.is_empty() {
            continue;
        }
        writeln!(out, "{kind} ({}):", group.len())?;
        for c in group {
            let mut rest = c.as_object().cloned().unwrap_or_default();
            let path = rest
                .remove("path")
                .map_or_else(|| "?".to_string(), |p| value(&p));
            rest.remove("kind");
            writeln!(out, "  {path}  {}", Value::Object(rest))?;
        }
    }
    Ok(())
}

fn changes(all: &[Change], out: &mut dyn Write) -> io::Result<()> {
    for kind in ORDER {
        let group: Vec<&Change> = all.iter().filter(|c| c.detail.kind() == kind).collect();
        if group.is_empty() {
            continue;
        }
        writeln!(out, "{kind} ({}):", group.len())?;
        for c in group {
            writeln!(out, "  {}  {}", c.path, detail(&c.detail))?;
        }
    }
    Ok(())
}

fn detail(d: &Detail) -> String {
    match d {
        Detail::Added { actual } => view(actual),
        Detail::Removed { expected } => view(expected),
        Detail::Modified { attributes } => attributes
            .iter()
            .map(|a| {
                format!(
                    "{}: {} -> {}",
                    a.attribute,
                    value(&a.expected),
                    value(&a.actual)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Detail::TypeChanged { expected, actual } => {
            format!("{} -> {} ({})", expected.kind, actual.kind, view(actual))
        }
        Detail::Shadowed {
            hidden_entries,
            fstype,
            source,
        } => format!(
            "mount of {} ({}) hides {hidden_entries} sealed entries below",
            source.as_deref().unwrap_or("?"),
            fstype.as_deref().unwrap_or("unknown type")
        ),
        Detail::Unreadable { error, .. } => error.clone(),
    }
}

fn view(v: &EntryView) -> String {
    let mut s = format!("{} {} {}:{}", v.kind, v.mode, v.uid, v.gid);
    if let Some(size) = v.size {
        s.push_str(&format!(" {size} bytes"));
    }
    if let Some(t) = &v.target {
        s.push_str(&format!(" -> {t}"));
    }
    if let Some(r) = &v.rdev {
        s.push_str(&format!(" dev {r}"));
    }
    s
}

fn value(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

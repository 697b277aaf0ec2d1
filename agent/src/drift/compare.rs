//! Merge-compare expected entries (a manifest) with found entries (a scan or another
//! manifest), both sorted by raw path bytes, into the change list of a drift report.
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::manifest::escape::escape;
use crate::manifest::{Entry, Kind, Scanned, State};
use crate::sys::hex::to_hex;

/// One difference between the sealed and the found tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    /// The path relative to the root, escaped as in the manifest.
    pub path: String,
    #[serde(flatten)]
    pub detail: Detail,
}

/// What kind of difference, with its evidence. Serialised with `"kind"` as the tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Detail {
    Added {
        actual: EntryView,
    },
    Removed {
        expected: EntryView,
    },
    Modified {
        attributes: Vec<AttrChange>,
    },
    TypeChanged {
        expected: EntryView,
        actual: EntryView,
    },
    /// A mount hides this path and everything sealed below it.
    Shadowed {
        hidden_entries: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        fstype: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    Unreadable {
        error: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        expected: Option<EntryView>,
    },
}

impl Detail {
    pub fn kind(&self) -> &'static str {
        match self {
            Detail::Added { .. } => "added",
            Detail::Removed { .. } => "removed",
            Detail::Modified { .. } => "modified",
            Detail::TypeChanged { .. } => "type-changed",
            Detail::Shadowed { .. } => "shadowed",
            Detail::Unreadable { .. } => "unreadable",
        }
    }
}

/// One attribute that differs, with the sealed and the found value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttrChange {
    /// content, mode, uid, gid, size, target, xattrs, rdev or hardlink (owned when read back
    /// from a stored report).
    pub attribute: Cow<'static, str>,
    pub expected: Value,
    pub actual: Value,
}

/// An entry as shown in reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryView {
    /// The manifest's type name (`file`, `dir`, `symlink`, …).
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardlink: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
}

impl From<&Entry> for EntryView {
    fn from(e: &Entry) -> Self {
        EntryView {
            kind: e.kind.as_str().into(),
            mode: format!("{:04o}", e.mode),
            uid: e.uid,
            gid: e.gid,
            size: (e.kind == Kind::File).then_some(e.size),
            sha256: e.sha256.map(|h| format!("sha256:{}", to_hex(&h))),
            target: e.target.as_deref().map(escape),
            rdev: e.rdev.map(|(a, b)| format!("{a}:{b}")),
            hardlink: e.hardlink.as_deref().map(escape),
            xattrs: e
                .xattrs
                .iter()
                .map(|(k, v)| (escape(k), to_hex(v)))
                .collect(),
        }
    }
}

/// What differs between two entries of the same type. Values are only rendered for the
/// attributes that differ, so comparing an unchanged tree allocates nothing.
pub fn attributes(exp: &Entry, act: &Entry) -> Vec<AttrChange> {
    let mut out = Vec::new();
    let mut add = |attribute: &'static str, differs: bool, show: &dyn Fn(&Entry) -> Value| {
        if differs {
            out.push(AttrChange {
                attribute: attribute.into(),
                expected: show(exp),
                actual: show(act),
            });
        }
    };
    let sum = |e: &Entry| match &e.sha256 {
        Some(h) => json!(format!("sha256:{}", to_hex(h))),
        None => Value::Null,
    };
    let opt = |v: &Option<Vec<u8>>| v.as_deref().map_or(Value::Null, |t| json!(escape(t)));
    add("content", exp.sha256 != act.sha256, &sum);
    add("mode", exp.mode != act.mode, &|e| {
        json!(format!("{:04o}", e.mode))
    });
    add("uid", exp.uid != act.uid, &|e| json!(e.uid));
    add("gid", exp.gid != act.gid, &|e| json!(e.gid));
    let size_differs = exp.kind == Kind::File && exp.size != act.size;
    add("size", size_differs, &|e| json!(e.size));
    add("target", exp.target != act.target, &|e| opt(&e.target));
    let rdev = |e: &Entry| {
        e.rdev
            .map_or(Value::Null, |(a, b)| json!(format!("{a}:{b}")))
    };
    add("rdev", exp.rdev != act.rdev, &rdev);
    add("hardlink", exp.hardlink != act.hardlink, &|e| {
        opt(&e.hardlink)
    });
    if exp.xattrs != act.xattrs {
        let (e, a) = xattr_diff(&exp.xattrs, &act.xattrs);
        out.push(AttrChange {
            attribute: "xattrs".into(),
            expected: e,
            actual: a,
        });
    }
    out
}

/// Only the xattr names that differ, name → hex value (null when absent).
fn xattr_diff(exp: &[(Vec<u8>, Vec<u8>)], act: &[(Vec<u8>, Vec<u8>)]) -> (Value, Value) {
    let e: BTreeMap<&[u8], &[u8]> = exp
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let a: BTreeMap<&[u8], &[u8]> = act
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let (mut eo, mut ao) = (serde_json::Map::new(), serde_json::Map::new());
    for name in e.keys().chain(a.keys()) {
        let (ev, av) = (e.get(name), a.get(name));
        if ev != av {
            let show = |v: Option<&&[u8]>| v.map_or(Value::Null, |v| json!(to_hex(v)));
            eo.insert(escape(name), show(ev));
            ao.insert(escape(name), show(av));
        }
    }
    (Value::Object(eo), Value::Object(ao))
}

/// Paths whose sealed contents cannot be seen (shadowed or unreadable directories).
#[derive(Default)]
struct Cuts {
    /// cut path → index of its change (for counting hidden entries).
    map: HashMap<Vec<u8>, usize>,
}

impl Cuts {
    fn covering(&self, path: &[u8]) -> Option<usize> {
        if self.map.is_empty() {
            return None;
        }
        let mut p = path;
        while let Some(i) = p.iter().rposition(|b| *b == b'/') {
            p = if i == 0 { b"/" } else { &p[..i] };
            if let Some(c) = self.map.get(p) {
                return Some(*c);
            }
            if i == 0 {
                break;
            }
        }
        None
    }
}

/// All changes from `expected` to `found`, in path order. Paths in `type_only` (the
/// manifest's excludes, sorted) are only checked for existence and type.
pub fn compare(expected: &[Entry], found: &[Scanned], type_only: &[Vec<u8>]) -> Vec<Change> {
    let mut changes: Vec<Change> = Vec::new();
    let mut cuts = Cuts::default();
    let (mut i, mut j) = (0, 0);
    while i < expected.len() || j < found.len() {
        let order = match (expected.get(i), found.get(j)) {
            (Some(e), Some(f)) => e.path.cmp(&f.entry.path),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                let e = &expected[i];
                i += 1;
                if let Some(c) = cuts.covering(&e.path) {
                    if let Detail::Shadowed { hidden_entries, .. } = &mut changes[c].detail {
                        *hidden_entries += 1;
                    }
                    continue;
                }
                changes.push(change(&e.path, Detail::Removed { expected: e.into() }));
            }
            std::cmp::Ordering::Greater => {
                let f = &found[j];
                j += 1;
                let detail = match &f.state {
                    State::Unreadable(error) => Detail::Unreadable {
                        error: error.clone(),
                        expected: None,
                    },
                    _ => Detail::Added {
                        actual: (&f.entry).into(),
                    },
                };
                changes.push(change(&f.entry.path, detail));
            }
            std::cmp::Ordering::Equal => {
                let (e, f) = (&expected[i], &found[j]);
                i += 1;
                j += 1;
                let excluded = type_only.binary_search(&e.path).is_ok();
                if let Some(d) = pair(e, f, excluded) {
                    let cut = matches!(d, Detail::Shadowed { .. })
                        || (matches!(d, Detail::Unreadable { .. }) && e.kind == Kind::Dir);
                    if cut {
                        cuts.map.insert(e.path.clone(), changes.len());
                    }
                    changes.push(change(&e.path, d));
                }
            }
        }
    }
    changes
}

fn change(path: &[u8], detail: Detail) -> Change {
    Change {
        path: escape(path),
        detail,
    }
}

/// The change at one path present on both sides, if any.
fn pair(e: &Entry, f: &Scanned, excluded: bool) -> Option<Detail> {
    match &f.state {
        State::MountPoint {
            excluded: false,
            mount,
        } => Some(Detail::Shadowed {
            hidden_entries: 0,
            fstype: mount.as_ref().map(|m| m.fstype.clone()),
            source: mount.as_ref().map(|m| m.source.clone()),
        }),
        State::Unreadable(error) => Some(Detail::Unreadable {
            error: error.clone(),
            expected: Some(e.into()),
        }),
        _ if e.kind != f.entry.kind => Some(Detail::TypeChanged {
            expected: e.into(),
            actual: (&f.entry).into(),
        }),
        // An excluded path is managed at run time (a mount point shows the mounted
        // filesystem's attributes): existence and type only.
        State::MountPoint { excluded: true, .. } => None,
        State::Ok if excluded => None,
        State::Ok => {
            let attributes = attributes(e, &f.entry);
            (!attributes.is_empty()).then_some(Detail::Modified { attributes })
        }
    }
}

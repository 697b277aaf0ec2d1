//! The run-time checks of `pyre daemon`: each one a [`Check`] that the scheduler
//! ([`super::schedule`]) runs on its own period, one at a time, on one low-priority thread.
//!
//! - [`mounts`]: nothing mounted over or inside a sealed path that the image did not mount
//!   itself, and the root still the sealed read-only device (PID 1's mount table).
//! - [`verity`]: dm-verity's table status of the root and the kernel's verity messages; a
//!   corrupted block is mapped to the sealed file holding it ([`blockmap`]).
//! - [`verify`]: the full re-verification of the live root (`pyre verify` semantics).
//!
//! A check that cannot run says so ([`Outcome::Failed`]): that is never clean and never drift.
use std::path::{Path, PathBuf};

use super::report::{Check as Kind, Finding};
use crate::manifest::{Kind as EntryKind, Manifest};

pub mod blockmap;
pub mod mounts;
pub mod verify;
pub mod verity;

/// What one run of a check found.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing wrong; one line saying what was looked at.
    Clean(String),
    /// Something is wrong: an incident.
    Found(Found),
    /// The check does not apply to this boot (e.g. no dm-verity root); says why.
    NotApplicable(String),
    /// The check could not be made; says why. Never clean, never drift.
    Failed(String),
}

/// What a check found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// One line for people (the incident's `reason`).
    pub reason: String,
    pub findings: Vec<Finding>,
    /// The full drift report (the `verify` check).
    pub drift: Option<serde_json::Value>,
    /// What was found, as a stable key: the same key twice is the same incident, reported once.
    pub key: String,
}

/// The root as the checks last saw it (for `pyre status`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RootState {
    /// `major:minor` of the device `/` is mounted from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fstype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// The device-mapper name of the root device, when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm_name: Option<String>,
    /// dm-verity's status of the root: `verified` (`V`), `corrupted` (`C`), or why unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verity: Option<String>,
}

/// One run-time check.
pub trait Check: Send {
    fn kind(&self) -> Kind;
    fn run(&mut self) -> Outcome;
    /// Add what this check knows about the root to `root`.
    fn root_state(&self, _root: &mut RootState) {}
}

/// The image's sealed side, read once from its manifest: which paths are sealed, which are
/// excluded (their contents are not sealed), and the regular files (for block mapping).
#[derive(Debug, Clone, Default)]
pub struct Sealed {
    pub excludes: Vec<Vec<u8>>,
    /// Every path of the manifest, sorted (raw bytes, starting with `/`).
    pub paths: Vec<Vec<u8>>,
    /// The regular files among them.
    pub files: Vec<Vec<u8>>,
}

impl Sealed {
    pub fn from_manifest(m: &Manifest) -> Sealed {
        let mut paths: Vec<Vec<u8>> = m.entries.iter().map(|e| e.path.clone()).collect();
        paths.sort();
        let files = m
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.path.clone())
            .collect();
        Sealed {
            excludes: m.excludes.clone(),
            paths,
            files,
        }
    }

    /// Whether `path` is an excluded path or under one (its contents are not sealed).
    pub fn is_excluded(&self, path: &[u8]) -> bool {
        self.excludes.iter().any(|x| is_at_or_below(path, x))
    }

    /// The sealed path that `path` is, or the nearest sealed directory it sits inside; `None`
    /// when it is excluded (or outside the manifest altogether).
    pub fn covering(&self, path: &[u8]) -> Option<&[u8]> {
        if self.is_excluded(path) {
            return None;
        }
        let mut p = path;
        loop {
            if let Ok(i) = self.paths.binary_search_by(|x| x.as_slice().cmp(p)) {
                return Some(&self.paths[i]);
            }
            p = parent(p)?;
        }
    }
}

/// `path` equals `dir` or is below it (both absolute, raw bytes).
pub fn is_at_or_below(path: &[u8], dir: &[u8]) -> bool {
    if dir == b"/" {
        return path.starts_with(b"/");
    }
    path == dir || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

fn parent(p: &[u8]) -> Option<&[u8]> {
    if p == b"/" || p.is_empty() {
        return None;
    }
    match p.iter().rposition(|&b| b == b'/') {
        Some(0) => Some(b"/"),
        Some(i) => Some(&p[..i]),
        None => None,
    }
}

/// `rel` (absolute, raw bytes) below `root`.
pub fn under(root: &Path, rel: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let rel = rel.strip_prefix(b"/").unwrap_or(rel);
    root.join(std::ffi::OsStr::from_bytes(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed() -> Sealed {
        Sealed {
            excludes: vec![b"/proc".to_vec(), b"/var".to_vec()],
            paths: ["/", "/proc", "/usr", "/usr/bin", "/usr/bin/ls", "/var"]
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            files: vec![b"/usr/bin/ls".to_vec()],
        }
    }

    #[test]
    fn covering_names_the_sealed_path_or_its_nearest_sealed_parent() {
        let s = sealed();
        let cases: [(&str, Option<&str>); 7] = [
            ("/usr/bin/ls", Some("/usr/bin/ls")),
            ("/usr/bin/new", Some("/usr/bin")),
            ("/mnt/x", Some("/")),
            ("/proc", None),
            ("/proc/sys/fs/binfmt_misc", None),
            ("/var/lib/data", None),
            ("/variable", Some("/")),
        ];
        for (p, want) in cases {
            let got = s
                .covering(p.as_bytes())
                .map(|c| String::from_utf8_lossy(c).into_owned());
            assert_eq!(got.as_deref(), want, "{p}");
        }
    }

    #[test]
    fn at_or_below() {
        assert!(is_at_or_below(b"/a/b", b"/a"));
        assert!(is_at_or_below(b"/a", b"/a"));
        assert!(!is_at_or_below(b"/ab", b"/a"));
        assert!(is_at_or_below(b"/x", b"/"));
        assert_eq!(under(Path::new("/r"), b"/usr/bin"), Path::new("/r/usr/bin"));
    }
}

//! Drift: a live tree (or a second manifest) compared with a sealed manifest, as a report with
//! a JSON contract (docs/drift-report.md) and a text rendering for people.
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::keys::{self, KeyError};
use crate::manifest::{self, escape::escape, Manifest, ManifestError, Scanned, State, Unhashed};
use crate::sys::mountinfo;

pub mod compare;
mod render;

pub use compare::{AttrChange, Change, Detail, EntryView};

/// Version of the report's JSON shape.
pub const REPORT_VERSION: u32 = 1;

/// Default of [`VerifyRequest::hash_cap`]: 64 MiB.
pub const DEFAULT_HASH_CAP: u64 = 64 << 20;

/// How `verify_root` checks the content of regular files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContentCheck {
    /// Hash regular files (bounded: see [`VerifyRequest::hash_cap`]) and compare with the
    /// manifest.
    #[default]
    Hash,
    /// Metadata only (walk, lstat, xattrs, symlink targets; sizes from lstat): no file is
    /// opened. For a root whose every block is authenticated elsewhere (dm-verity against a
    /// pinned root hash): the content is then checked by reading the device, not here.
    Metadata,
}

/// What `verify_root` checks. Start from [`VerifyRequest::new`] and set what differs:
/// `VerifyRequest { pubkey: Some(key), ..VerifyRequest::new(root, manifest) }`.
#[derive(Debug, Clone, Copy)]
pub struct VerifyRequest<'a> {
    /// The live tree.
    pub root: &'a Path,
    /// The sealed manifest.
    pub manifest: &'a Path,
    /// When set, `<manifest>.sig` must exist and verify with this public key.
    pub pubkey: Option<&'a Path>,
    /// The mountinfo file of this process (normally `/proc/self/mountinfo`).
    pub mountinfo: &'a Path,
    /// The most bytes of content of regular files the manifest does not hold as regular files
    /// (added files, a file in place of a directory) that one verification hashes for the
    /// report, in path order; a file that does not fit is reported with its size and
    /// `sha256_skipped`. Sealed files are hashed whatever this says, never past their sealed
    /// size (docs/drift-report.md, "What is read").
    pub hash_cap: u64,
    /// Read hashed content past the page cache: `posix_fadvise(POSIX_FADV_DONTNEED)` on each
    /// hashed file before reading (bytes changed on the device are read again, through
    /// dm-verity where there is one) and after (a periodic re-verify does not push the
    /// workload's pages out of the cache with the whole root).
    pub drop_cache: bool,
    /// Hash content (the default) or compare metadata only.
    pub content: ContentCheck,
}

impl<'a> VerifyRequest<'a> {
    /// Check `root` against `manifest`: signature not checked, this process's
    /// `/proc/self/mountinfo`, the default hash cap, the page cache used as usual.
    pub fn new(root: &'a Path, manifest: &'a Path) -> Self {
        VerifyRequest {
            root,
            manifest,
            pubkey: None,
            mountinfo: Path::new("/proc/self/mountinfo"),
            hash_cap: DEFAULT_HASH_CAP,
            drop_cache: false,
            content: ContentCheck::Hash,
        }
    }
}

/// Why a check could not be made at all (as opposed to finding drift).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The signature file exists but is malformed, made by another key, or does not match.
    #[error("checking the manifest signature: {0}")]
    Signature(KeyError),
    #[error("checking the manifest signature: no signature file {path}: {error}")]
    MissingSignature {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("reading mount table {path}: {error}")]
    Mountinfo {
        path: PathBuf,
        error: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Clean,
    Drift,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureStatus {
    /// Checked against the given public key and valid.
    Verified,
    /// No public key was given, so the signature was not looked at.
    NotChecked,
}

/// Figures of one check (a count missing from a stored report reads as 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    /// Entries in the manifest.
    pub entries: u64,
    /// Entries found in the live tree (or in the new manifest for a diff).
    pub found: u64,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
    /// Regular files whose content was not hashed (`sha256_skipped` says why), excluded
    /// paths aside.
    pub hashes_skipped: u64,
    pub added: u64,
    pub removed: u64,
    pub modified: u64,
    pub type_changed: u64,
    pub shadowed: u64,
    pub unreadable: u64,
}

/// The result of checking a tree against its manifest. Read back with [`DriftReport::from_json`]
/// (fields this version does not know are ignored: the contract only ever adds fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftReport {
    pub report_version: u32,
    pub verdict: Verdict,
    pub manifest_digest: String,
    pub root: String,
    pub started: String,
    pub finished: String,
    pub duration_ms: u64,
    pub signature: SignatureStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    #[serde(default)]
    pub excludes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The kernel's boot id; filled by the caller (see `read_boot_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    pub agent_version: String,
    pub counts: Counts,
    pub changes: Vec<Change>,
}

impl DriftReport {
    pub fn is_clean(&self) -> bool {
        self.verdict == Verdict::Clean
    }

    /// Parse a stored report (`pyre verify --format json`); the error names where it is wrong
    /// (`at changes[2].kind: unknown variant …`).
    pub fn from_json(bytes: &[u8]) -> Result<DriftReport, String> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| format!("at {}: {}", e.path(), e.inner()))
    }

    /// The same from a JSON value (e.g. the `drift` member of an incident report).
    pub fn from_value(v: &serde_json::Value) -> Result<DriftReport, String> {
        serde_path_to_error::deserialize(v).map_err(|e| format!("at {}: {}", e.path(), e.inner()))
    }

    /// The report for people: a summary line, then changes grouped by kind.
    pub fn render_text(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        render::report(self, out)
    }
}

/// The text rendering of a stored drift report that [`DriftReport::from_value`] refused
/// (`why`, e.g. a newer version's change kind): the same layout, details shown as JSON.
pub fn render_text_value(
    report: &serde_json::Value,
    why: &str,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    render::report_value(report, why, out)
}

/// The kernel boot id from `path` (normally `/proc/sys/kernel/random/boot_id`), if readable.
pub fn read_boot_id(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

impl From<KeyError> for VerifyError {
    fn from(e: KeyError) -> Self {
        VerifyError::Signature(e)
    }
}

/// Read a manifest and, when `pubkey` is given, check its detached signature first.
/// Returns the manifest, its digest and the signing key id when checked.
pub fn load_manifest(
    path: &Path,
    pubkey: Option<&Path>,
) -> Result<(Manifest, String, Option<String>), VerifyError> {
    let (bytes, digest, key_id) = read_checked(path, pubkey)?;
    let m = Manifest::decode(&bytes).map_err(|e| in_file(path, e))?;
    Ok((m, digest, key_id))
}

/// The manifest bytes, their digest, and the signing key id when `pubkey` was given and the
/// detached signature verified (checked before anything parses the bytes).
fn read_checked(
    path: &Path,
    pubkey: Option<&Path>,
) -> Result<(Vec<u8>, String, Option<String>), VerifyError> {
    let bytes = std::fs::read(path).map_err(|error| ManifestError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let digest = manifest::digest(&bytes);
    let mut key_id = None;
    if let Some(pk) = pubkey {
        let key = keys::load_public(pk)?;
        let sig_path = keys::sig_path(path);
        let sig = std::fs::read(&sig_path).map_err(|error| VerifyError::MissingSignature {
            path: sig_path.clone(),
            error,
        })?;
        keys::verify_digest(&sig_path, &sig, &digest, &key)?;
        key_id = Some(keys::key_id(&key));
    }
    Ok((bytes, digest, key_id))
}

/// Walkers of a metadata-only check (see `verify_root`).
const METADATA_WALKERS: usize = 16;

/// Check the manifest's detached signature with `pubkey` without parsing the manifest: its
/// digest when the signature verifies.
pub fn check_signature(path: &Path, pubkey: &Path) -> Result<String, VerifyError> {
    read_checked(path, Some(pubkey)).map(|(_, digest, _)| digest)
}

/// Name the manifest file in a parse error.
fn in_file(path: &Path, e: ManifestError) -> ManifestError {
    match e {
        ManifestError::Parse { line, msg } => ManifestError::ParseFile {
            path: path.to_path_buf(),
            line,
            msg,
        },
        other => other,
    }
}

/// Check the live tree at `req.root` against the manifest. What is read is bounded by the
/// manifest and `req.hash_cap` (see [`VerifyRequest::hash_cap`]); with
/// [`ContentCheck::Metadata`] no content is read and everything but the content is compared.
pub fn verify_root(req: &VerifyRequest) -> Result<DriftReport, VerifyError> {
    let started = SystemTime::now();
    let clock = Instant::now();
    let (bytes, digest, signing_key) = read_checked(req.manifest, req.pubkey)?;
    let mounts_text = std::fs::read(req.mountinfo).map_err(|error| VerifyError::Mountinfo {
        path: req.mountinfo.to_path_buf(),
        error,
    })?;
    let mounts = mountinfo::parse(&mounts_text);
    // The walk needs the sealed entries first: they decide what it reads.
    let m = Manifest::decode(&bytes).map_err(|e| in_file(req.manifest, e))?;
    drop(bytes);
    log::debug!("verify: manifest parsed at {:?}", clock.elapsed());
    let found = manifest::scan(
        req.root,
        &manifest::ScanOptions {
            excludes: &m.excludes,
            mounts: &mounts,
            // Metadata only: each entry waits on single-block reads, so more walkers than cores
            // keep several reads in flight (QEMU guest, 1 vCPU, 2,558 metadata blocks:
            // 7.0 s with one walker, 3.4 s with sixteen).
            threads: match req.content {
                ContentCheck::Metadata => manifest::default_threads().max(METADATA_WALKERS),
                ContentCheck::Hash => manifest::default_threads(),
            },
            bounds: Some(manifest::Bounds {
                sealed: &m.entries,
                hash_cap: req.hash_cap,
                content: req.content == ContentCheck::Hash,
            }),
            drop_cache: req.drop_cache,
        },
    )?;
    log::debug!("verify: tree scanned and hashed at {:?}", clock.elapsed());
    let changes = compare::compare(&m.entries, &found.entries, &m.excludes);
    log::debug!("verify: compared at {:?}", clock.elapsed());
    let mut counts = tally(&changes);
    counts.entries = m.entries.len() as u64;
    counts.found = found.entries.len() as u64;
    counts.files_hashed = found.files_hashed;
    counts.bytes_hashed = found.bytes_hashed;
    counts.hashes_skipped = found
        .entries
        .iter()
        .filter(|s| {
            matches!(&s.skipped, Some(w) if *w != Unhashed::Excluded && *w != Unhashed::NotRead)
        })
        .count() as u64;
    let host = nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().into_owned());
    Ok(DriftReport {
        report_version: REPORT_VERSION,
        verdict: if changes.is_empty() {
            Verdict::Clean
        } else {
            Verdict::Drift
        },
        manifest_digest: digest,
        root: req.root.display().to_string(),
        started: crate::sys::time::rfc3339(started),
        finished: crate::sys::time::rfc3339(SystemTime::now()),
        duration_ms: clock.elapsed().as_millis() as u64,
        signature: if signing_key.is_some() {
            SignatureStatus::Verified
        } else {
            SignatureStatus::NotChecked
        },
        signing_key,
        excludes: m.excludes.iter().map(|x| escape(x)).collect(),
        host,
        boot_id: None,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        counts,
        changes,
    })
}

fn tally(changes: &[Change]) -> Counts {
    let mut c = Counts::default();
    for ch in changes {
        match ch.detail {
            Detail::Added { .. } => c.added += 1,
            Detail::Removed { .. } => c.removed += 1,
            Detail::Modified { .. } => c.modified += 1,
            Detail::TypeChanged { .. } => c.type_changed += 1,
            Detail::Shadowed { .. } => c.shadowed += 1,
            Detail::Unreadable { .. } => c.unreadable += 1,
        }
    }
    c
}

/// What changed from one manifest to another (image-to-image review).
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub report_version: u32,
    /// `identical` or `changed`.
    pub verdict: &'static str,
    pub old_digest: String,
    pub new_digest: String,
    pub old_excludes: Vec<String>,
    pub new_excludes: Vec<String>,
    pub counts: Counts,
    pub changes: Vec<Change>,
}

impl DiffReport {
    pub fn is_identical(&self) -> bool {
        self.changes.is_empty() && self.old_excludes == self.new_excludes
    }

    pub fn render_text(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        render::diff(self, out)
    }
}

/// Compare two manifests (already loaded) with the same change vocabulary as `verify_root`.
pub fn diff(old: &Manifest, old_digest: &str, new: &Manifest, new_digest: &str) -> DiffReport {
    let found: Vec<Scanned> = new
        .entries
        .iter()
        .map(|e| Scanned {
            entry: e.clone(),
            state: State::Ok,
            skipped: None,
        })
        .collect();
    let changes = compare::compare(&old.entries, &found, &[]);
    let mut counts = tally(&changes);
    counts.entries = old.entries.len() as u64;
    counts.found = new.entries.len() as u64;
    let show = |m: &Manifest| m.excludes.iter().map(|x| escape(x)).collect::<Vec<_>>();
    let mut r = DiffReport {
        report_version: REPORT_VERSION,
        verdict: "identical",
        old_digest: old_digest.to_string(),
        new_digest: new_digest.to_string(),
        old_excludes: show(old),
        new_excludes: show(new),
        counts,
        changes,
    };
    if !r.is_identical() {
        r.verdict = "changed";
    }
    r
}

#[cfg(test)]
mod tests;

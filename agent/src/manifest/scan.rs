//! Walk a live tree without crossing mount points, describe every entry, hash regular files
//! in parallel. `seal` turns a scan into a manifest; drift compares a scan with a manifest.
use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::stat::stat;

use super::codec::is_below;
use super::escape::escape;
use super::scanned::{describe, kind_of, Scanned, State};
use super::unsealed::{hash_pending, Pending};
use super::walk::Walk;
use super::{normalize_exclude, Entry, Kind, Manifest, ManifestError};
use crate::sys::mountinfo::Mount;

/// What to skip while scanning.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions<'a> {
    /// Normalised excluded paths: their entry is described, their contents are not walked.
    pub excludes: &'a [Vec<u8>],
    /// Mounts of the scanning process (parsed mountinfo), to find bind mounts in the tree.
    pub mounts: &'a [Mount],
    /// Hashing threads.
    pub threads: usize,
    /// When verifying: what bounds the content read (see [`Bounds`]). `None` when sealing:
    /// every regular file is hashed whole.
    pub bounds: Option<Bounds<'a>>,
    /// Drop each hashed file's pages from the page cache before and after reading it.
    pub drop_cache: bool,
}

/// What bounds the work of a verification. A regular file sealed as a regular file of the
/// same size is hashed up to that size; one sealed with another size is not read; any other
/// regular file (added, or in place of another type) is hashed only while its size fits in
/// `hash_cap` bytes for all such files together, in path order. Excluded files are not read.
#[derive(Debug, Clone, Copy)]
pub struct Bounds<'a> {
    /// The sealed entries, sorted by path (as in a manifest).
    pub sealed: &'a [Entry],
    pub hash_cap: u64,
    /// Read content at all; `false`: a metadata-only check (lstat, xattrs, symlink targets):
    /// no regular file is opened, each is marked [`Unhashed::NotRead`].
    pub content: bool,
}

/// The scanned tree, sorted by raw path bytes, plus hashing figures.
#[derive(Debug, Clone, Default)]
pub struct ScanResult {
    pub entries: Vec<Scanned>,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
}

/// Mount points strictly below `root`, as paths relative to it.
fn mounts_below(root: &Path, mounts: &[Mount]) -> HashMap<Vec<u8>, Mount> {
    let canon = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let base = canon.as_os_str().as_bytes();
    let mut out = HashMap::new();
    for m in mounts {
        let rel = if base == b"/" {
            m.mount_point.clone()
        } else if is_below(&m.mount_point, base) {
            m.mount_point[base.len()..].to_vec()
        } else {
            continue;
        };
        if rel.len() > 1 {
            out.insert(rel, m.clone());
        }
    }
    out
}

/// Scan the tree at `root`.
pub fn scan(root: &Path, opts: &ScanOptions) -> Result<ScanResult, ManifestError> {
    let scan_err = |msg: String| ManifestError::Scan {
        root: root.to_path_buf(),
        msg,
    };
    let root_st = stat(root).map_err(|e| scan_err(format!("stat of the root: {e}")))?;
    if kind_of(&root_st) != Kind::Dir {
        return Err(scan_err("the root is not a directory".into()));
    }
    let root_entry = describe(b"/".to_vec(), Some(&root_st));
    let mut walk = Walk::new(
        root,
        &root_st,
        opts.excludes.iter().map(|x| x.as_slice()).collect(),
        mounts_below(root, opts.mounts),
    )
    .map_err(|e| scan_err(e.to_string()))?;
    walk.sealed = opts.bounds.map(|b| b.sealed);
    walk.read_content = opts.bounds.is_none_or(|b| b.content);
    walk.drop_cache = opts.drop_cache;
    let outcomes = walk.run(opts.threads);
    let total = 1 + outcomes.iter().map(|o| o.found.len()).sum::<usize>();
    let mut res = ScanResult {
        entries: Vec::with_capacity(total),
        ..ScanResult::default()
    };
    let mut errors: HashMap<Vec<u8>, String> = HashMap::new();
    let mut links: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    let mut dir_xattrs = HashMap::new();
    res.entries.push(Scanned {
        entry: root_entry,
        state: State::Ok,
        skipped: None,
    });
    let mut pending = Vec::new();
    for o in outcomes {
        res.files_hashed += o.files_hashed;
        res.bytes_hashed += o.bytes_hashed;
        errors.extend(o.dir_errors);
        dir_xattrs.extend(o.dir_xattrs);
        for f in o.found {
            if f.pending {
                pending.push(Pending {
                    path: f.scanned.entry.path.clone(),
                    dev: f.dev,
                    ino: f.ino,
                });
            }
            let s = &f.scanned;
            let linkable =
                s.entry.kind != Kind::Dir && !matches!(s.state, State::MountPoint { .. });
            if linkable && f.nlink > 1 {
                links
                    .entry((f.dev, f.ino))
                    .or_default()
                    .push(res.entries.len());
            }
            res.entries.push(f.scanned);
        }
    }
    for group in links.values().filter(|g| g.len() > 1) {
        let leader = group
            .iter()
            .map(|i| &res.entries[*i].entry.path)
            .min()
            .cloned()
            .unwrap_or_default();
        for i in group {
            res.entries[*i].entry.hardlink = Some(leader.clone());
        }
    }
    for s in res.entries.iter_mut().filter(|s| s.entry.kind == Kind::Dir) {
        match dir_xattrs.remove(&s.entry.path) {
            Some(Ok(x)) => s.entry.xattrs = x,
            Some(Err(e)) => s.state = State::Unreadable(format!("reading xattrs: {e}")),
            None => {}
        }
        if let Some(e) = errors.remove(&s.entry.path) {
            s.state = State::Unreadable(e);
        }
    }
    res.entries
        .sort_unstable_by(|a, b| a.entry.path.cmp(&b.entry.path));
    if let Some(b) = opts.bounds {
        let done = hash_pending(
            root,
            &mut res.entries,
            pending,
            b.hash_cap,
            opts.drop_cache,
            opts.threads,
        );
        res.files_hashed += done.files;
        res.bytes_hashed += done.bytes;
    }
    Ok(res)
}

/// Seal the tree at `root`: scan it and build the manifest. Unreadable entries fail the seal;
/// mount points met on the way are excluded (with a warning), not crossed.
pub fn seal(
    root: &Path,
    excludes: &[Vec<u8>],
    mounts: &[Mount],
    threads: usize,
) -> Result<Manifest, ManifestError> {
    let mut excl: Vec<Vec<u8>> = excludes
        .iter()
        .map(|x| normalize_exclude(x))
        .collect::<Result<_, _>>()?;
    excl.sort();
    excl.dedup();
    let found = scan(
        root,
        &ScanOptions {
            excludes: &excl,
            mounts,
            threads,
            bounds: None,
            drop_cache: false,
        },
    )?;
    let mut entries = Vec::with_capacity(found.entries.len());
    for s in found.entries {
        if let (State::Ok, Some(why)) = (&s.state, &s.skipped) {
            // Only a file that changes while it is read is left unhashed by a seal.
            return Err(ManifestError::Unreadable {
                root: root.to_path_buf(),
                path: escape(&s.entry.path),
                error: why.to_string(),
            });
        }
        match s.state {
            State::Ok => {}
            State::MountPoint { excluded, .. } => {
                if !excluded {
                    log::warn!(
                        "seal: {} is a mount point; recording it as excluded",
                        escape(&s.entry.path)
                    );
                    excl.push(s.entry.path.clone());
                }
            }
            State::Unreadable(error) => {
                return Err(ManifestError::Unreadable {
                    root: root.to_path_buf(),
                    path: escape(&s.entry.path),
                    error,
                })
            }
        }
        entries.push(s.entry);
    }
    excl.sort();
    excl.dedup();
    Ok(Manifest {
        excludes: excl,
        entries,
    })
}

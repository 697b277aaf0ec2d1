//! Walk a live tree without crossing mount points, describe every entry, hash regular files
//! in parallel. `seal` turns a scan into a manifest; drift compares a scan with a manifest.
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::codec::is_below;
use super::escape::escape;
use super::mountinfo::Mount;
use super::{hash, normalize_exclude, xattr, Entry, Kind, Manifest, ManifestError};

/// How an entry was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Fully described.
    Ok,
    /// A mount point (another filesystem, or listed in mountinfo): its contents were not walked
    /// and its attributes are those of the mounted filesystem. `mount` describes it if known.
    MountPoint {
        excluded: bool,
        mount: Option<Mount>,
    },
    /// Could not be read (entry, directory listing or content); the error says why.
    Unreadable(String),
}

/// One live entry and how it was found.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub entry: Entry,
    pub state: State,
}

/// What to skip while scanning.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions<'a> {
    /// Normalised excluded paths: their entry is described, their contents are not walked.
    pub excludes: &'a [Vec<u8>],
    /// Mounts of the scanning process (parsed mountinfo), to find bind mounts in the tree.
    pub mounts: &'a [Mount],
    /// Hashing threads.
    pub threads: usize,
}

/// The scanned tree, sorted by raw path bytes, plus hashing figures.
#[derive(Debug, Clone, Default)]
pub struct ScanResult {
    pub entries: Vec<Scanned>,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
}

fn kind_of(meta: &Metadata) -> Kind {
    let ft = meta.file_type();
    if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_char_device() {
        Kind::Char
    } else if ft.is_block_device() {
        Kind::Block
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        Kind::Socket
    } else {
        Kind::File
    }
}

fn describe(path: Vec<u8>, meta: &Metadata) -> Entry {
    let kind = kind_of(meta);
    let rdev = meta.rdev();
    Entry {
        path,
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size: if kind == Kind::File { meta.len() } else { 0 },
        sha256: None,
        target: None,
        rdev: matches!(kind, Kind::Char | Kind::Block)
            .then(|| (libc::major(rdev) as u64, libc::minor(rdev) as u64)),
        hardlink: None,
        xattrs: Vec::new(),
    }
}

fn full_path(root: &Path, rel: &[u8]) -> PathBuf {
    if rel == b"/" {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(&rel[1..]))
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if dir != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
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
    let root_meta = fs::metadata(root).map_err(|e| scan_err(format!("stat of the root: {e}")))?;
    if !root_meta.is_dir() {
        return Err(scan_err("the root is not a directory".into()));
    }
    let dev0 = root_meta.dev();
    let mounts = mounts_below(root, opts.mounts);
    let excludes: HashSet<&[u8]> = opts.excludes.iter().map(|x| x.as_slice()).collect();

    let mut out: Vec<Scanned> = Vec::new();
    let mut root_entry = describe(b"/".to_vec(), &root_meta);
    let mut root_state = State::Ok;
    match xattr::list(root) {
        Ok(x) => root_entry.xattrs = x,
        Err(e) => root_state = State::Unreadable(format!("reading xattrs: {e}")),
    }
    out.push(Scanned {
        entry: root_entry,
        state: root_state,
    });
    let mut links: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    let mut stack: Vec<(usize, Vec<u8>)> = vec![(0, b"/".to_vec())];
    while let Some((dir_idx, dir)) = stack.pop() {
        let listing = match fs::read_dir(full_path(root, &dir)) {
            Ok(l) => l,
            Err(e) => {
                out[dir_idx].state = State::Unreadable(format!("listing directory: {e}"));
                continue;
            }
        };
        for child in listing {
            let child = match child {
                Ok(c) => c,
                Err(e) => {
                    out[dir_idx].state = State::Unreadable(format!("listing directory: {e}"));
                    break;
                }
            };
            let rel = join(&dir, child.file_name().as_bytes());
            let full = child.path();
            let meta = match fs::symlink_metadata(&full) {
                Ok(m) => m,
                Err(e) => {
                    let mut entry = describe_unknown(rel, &child);
                    entry.mode = 0;
                    out.push(Scanned {
                        entry,
                        state: State::Unreadable(format!("stat: {e}")),
                    });
                    continue;
                }
            };
            let mut entry = describe(rel, &meta);
            let mut state = State::Ok;
            if entry.kind == Kind::Symlink {
                match fs::read_link(&full) {
                    Ok(t) => entry.target = Some(t.into_os_string().into_vec()),
                    Err(e) => state = State::Unreadable(format!("reading link: {e}")),
                }
            }
            match xattr::list(&full) {
                Ok(x) => entry.xattrs = x,
                Err(e) => state = State::Unreadable(format!("reading xattrs: {e}")),
            }
            let excluded = excludes.contains(entry.path.as_slice());
            let mount = mounts.get(&entry.path);
            if meta.dev() != dev0 || mount.is_some() {
                state = State::MountPoint {
                    excluded,
                    mount: mount.cloned(),
                };
            } else if entry.kind == Kind::Dir && !excluded && state == State::Ok {
                stack.push((out.len(), entry.path.clone()));
            } else if entry.kind != Kind::Dir && meta.nlink() > 1 {
                links
                    .entry((meta.dev(), meta.ino()))
                    .or_default()
                    .push(out.len());
            }
            out.push(Scanned { entry, state });
        }
    }
    for group in links.values().filter(|g| g.len() > 1) {
        let leader = group
            .iter()
            .map(|i| &out[*i].entry.path)
            .min()
            .cloned()
            .unwrap_or_default();
        for i in group {
            out[*i].entry.hardlink = Some(leader.clone());
        }
    }
    out.sort_unstable_by(|a, b| a.entry.path.cmp(&b.entry.path));
    let (files_hashed, bytes_hashed) = hash_all(root, &mut out, opts.threads);
    Ok(ScanResult {
        entries: out,
        files_hashed,
        bytes_hashed,
    })
}

use std::os::unix::ffi::OsStringExt;

fn describe_unknown(path: Vec<u8>, child: &fs::DirEntry) -> Entry {
    let kind = match child.file_type() {
        Ok(ft) if ft.is_dir() => Kind::Dir,
        Ok(ft) if ft.is_symlink() => Kind::Symlink,
        _ => Kind::File,
    };
    Entry {
        path,
        kind,
        mode: 0,
        uid: 0,
        gid: 0,
        size: 0,
        sha256: None,
        target: None,
        rdev: None,
        hardlink: None,
        xattrs: Vec::new(),
    }
}

/// Hash the regular files found readable, largest first so the threads finish together.
fn hash_all(root: &Path, out: &mut [Scanned], threads: usize) -> (u64, u64) {
    let mut idx: Vec<usize> = (0..out.len())
        .filter(|i| out[*i].entry.kind == Kind::File && out[*i].state == State::Ok)
        .collect();
    idx.sort_by_key(|i| std::cmp::Reverse(out[*i].entry.size));
    let paths: Vec<PathBuf> = idx
        .iter()
        .map(|i| full_path(root, &out[*i].entry.path))
        .collect();
    let results = hash::hash_files(&paths, threads);
    let (mut files, mut bytes) = (0, 0);
    for (i, r) in idx.into_iter().zip(results) {
        match r {
            Ok((sum, len)) => {
                out[i].entry.sha256 = Some(sum);
                out[i].entry.size = len;
                files += 1;
                bytes += len;
            }
            Err(e) => out[i].state = State::Unreadable(format!("reading content: {e}")),
        }
    }
    (files, bytes)
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
        },
    )?;
    let mut entries = Vec::with_capacity(found.entries.len());
    for s in found.entries {
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

//! The capped pass over regular files the manifest does not hold as regular files (added files,
//! files in place of a sealed directory or symlink). Their content is evidence for the report,
//! not part of the check, so one verification hashes at most `cap` bytes of it: what fits is
//! decided in path order from the sizes the walk listed (so the same tree always gives the same
//! report), and a file that does not fit is reported with its size and why it was not hashed.
//! Whatever an attacker adds, the work stays bounded by the sealed tree plus the cap. The files
//! that fit are hashed on all threads, each file reopened below the root one component at a time
//! without following a symlink, and only if it is the very inode the walk listed.
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::hash;
use super::open::{open_dir, open_dir_below, open_file};
use super::scanned::{Scanned, State, Unhashed};

/// A regular file the walk left to this pass, with the identity it was listed with.
pub struct Pending {
    pub path: Vec<u8>,
    pub dev: u64,
    pub ino: u64,
}

/// Files and bytes hashed by the pass.
#[derive(Debug, Default)]
pub struct Hashed {
    pub files: u64,
    pub bytes: u64,
}

/// Hash what fits of `pending` (entries of `entries`, sorted by path) under `cap` bytes in all.
pub fn hash_pending(
    root: &Path,
    entries: &mut [Scanned],
    mut pending: Vec<Pending>,
    cap: u64,
    drop_cache: bool,
    threads: usize,
) -> Hashed {
    let mut out = Hashed::default();
    pending.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    let mut left = cap;
    let mut work = Vec::new();
    for p in pending {
        let Ok(i) = entries.binary_search_by(|s| s.entry.path.cmp(&p.path)) else {
            continue;
        };
        let s = &mut entries[i];
        let size = s.entry.size;
        if size > cap {
            s.skipped = Some(Unhashed::OverCap { cap });
        } else if size > left {
            s.skipped = Some(Unhashed::CapSpent { cap });
        } else if size == 0 {
            s.entry.sha256 = Some(hash::empty());
            out.files += 1;
        } else {
            left -= size;
            work.push((i, p, s.clone()));
        }
    }
    if work.is_empty() {
        return out;
    }
    let root = CString::new(root.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "root path contains NUL"))
        .and_then(|name| open_dir(None, &name))
        .map_err(|e| format!("opening the root again: {e}"));
    // Contiguous runs in path order: the files of one directory share its descriptor.
    let per = work.len().div_ceil(threads.max(1));
    std::thread::scope(|scope| {
        let root = root.as_ref();
        let runs: Vec<_> = work
            .chunks_mut(per)
            .map(|run| scope.spawn(move || hash_run(root, run, drop_cache)))
            .collect();
        for run in runs {
            let n = run.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            out.files += n.files;
            out.bytes += n.bytes;
        }
    });
    for (i, _, s) in work {
        entries[i] = s;
    }
    out
}

/// Hash each file of `run` into its own `Scanned`, or mark it unreadable with the reason.
fn hash_run(
    root: Result<&OwnedFd, &String>,
    run: &mut [(usize, Pending, Scanned)],
    drop_cache: bool,
) -> Hashed {
    let mut out = Hashed::default();
    let mut buf = vec![0u8; hash::BUF_SIZE];
    let mut last: Option<(Vec<u8>, OwnedFd)> = None;
    for (_, p, s) in run {
        let result = match root {
            Ok(root) => hash_one(root, &mut last, s, p, &mut buf, drop_cache),
            Err(e) => Err(e.clone()),
        };
        match result {
            Ok(n) => {
                out.files += 1;
                out.bytes += n;
            }
            Err(e) => s.state = State::Unreadable(e),
        }
    }
    out
}

fn hash_one(
    root: &OwnedFd,
    last: &mut Option<(Vec<u8>, OwnedFd)>,
    s: &mut Scanned,
    p: &Pending,
    buf: &mut [u8],
    drop_cache: bool,
) -> Result<u64, String> {
    let cut = p.path.iter().rposition(|b| *b == b'/').unwrap_or(0);
    let (dir, name) = (&p.path[..cut.max(1)], &p.path[cut + 1..]);
    let name = CString::new(name).map_err(|_| "opening: path contains NUL".to_string())?;
    let dir = match last.take() {
        Some(hit) if hit.0 == dir => hit,
        _ => {
            let fd =
                open_dir_below(root, dir).map_err(|e| format!("opening its directory: {e}"))?;
            (dir.to_vec(), fd)
        }
    };
    let dir = &last.insert(dir).1;
    let (file, meta) = open_file(dir.as_raw_fd(), &name).map_err(|e| format!("opening: {e}"))?;
    if (meta.dev(), meta.ino()) != (p.dev, p.ino) {
        return Err("opening: replaced since it was listed".into());
    }
    hash::hash_listed(s, &file, buf, drop_cache).map_err(|e| format!("reading content: {e}"))
}

//! The parallel walker: worker threads share one stack of jobs (directories to list, files to
//! hash), so listing and hashing both use every core and hashing starts with the first file.
use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};

use super::mountinfo::Mount;
use super::scan::{describe, full_path, join, Scanned, State};
use super::{hash, xattr, Kind};

/// A scanned entry with the identity needed to group hardlinks.
pub struct Found {
    pub scanned: Scanned,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

enum Job {
    /// List the directory at this relative path.
    Dir(Vec<u8>),
    /// Hash this regular file (and read its xattrs through the open descriptor).
    File(Box<Found>),
}

struct Queue {
    jobs: Vec<Job>,
    /// Jobs queued or being worked on; the walk is over when it drops to zero.
    pending: usize,
    /// Workers waiting for a job (only then is a wake-up worth a syscall).
    idle: usize,
}

/// What one worker found.
#[derive(Default)]
pub struct Outcome {
    pub found: Vec<Found>,
    /// Directories whose listing failed, with the error.
    pub dir_errors: Vec<(Vec<u8>, String)>,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
}

pub struct Walk<'a> {
    pub root: &'a Path,
    pub dev0: u64,
    pub excludes: HashSet<&'a [u8]>,
    pub mounts: HashMap<Vec<u8>, Mount>,
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl<'a> Walk<'a> {
    pub fn new(
        root: &'a Path,
        dev0: u64,
        excludes: HashSet<&'a [u8]>,
        mounts: HashMap<Vec<u8>, Mount>,
    ) -> Self {
        Walk {
            root,
            dev0,
            excludes,
            mounts,
            queue: Mutex::new(Queue {
                jobs: vec![Job::Dir(b"/".to_vec())],
                pending: 1,
                idle: 0,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A worker panicking is a bug that `run` re-raises; the queue itself stays usable.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Walk from the root on `threads` workers; one outcome per worker.
    pub fn run(&self, threads: usize) -> Vec<Outcome> {
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| s.spawn(|| self.worker()))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    }

    fn worker(&self) -> Outcome {
        let mut buf = vec![0u8; hash::BUF_SIZE];
        let mut out = Outcome::default();
        loop {
            let job = {
                let mut q = self.lock();
                loop {
                    if let Some(j) = q.jobs.pop() {
                        break Some(j);
                    }
                    if q.pending == 0 {
                        break None;
                    }
                    q.idle += 1;
                    q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
                    q.idle -= 1;
                }
            };
            let Some(job) = job else { break };
            let mut new = Vec::new();
            match job {
                Job::Dir(rel) => self.list(&rel, &mut out, &mut new),
                Job::File(f) => self.hash(*f, &mut buf, &mut out),
            }
            let mut q = self.lock();
            let n = new.len();
            q.pending = q.pending + n - 1;
            q.jobs.extend(new);
            let (done, idle) = (q.pending == 0, q.idle);
            drop(q);
            if idle > 0 && (done || n > 1) {
                self.wake.notify_all();
            } else if idle > 0 && n == 1 {
                self.wake.notify_one();
            }
        }
        out
    }

    fn list(&self, dir: &[u8], out: &mut Outcome, jobs: &mut Vec<Job>) {
        let listing = match fs::read_dir(full_path(self.root, dir)) {
            Ok(l) => l,
            Err(e) => {
                out.dir_errors
                    .push((dir.to_vec(), format!("listing directory: {e}")));
                return;
            }
        };
        for child in listing {
            let child = match child {
                Ok(c) => c,
                Err(e) => {
                    out.dir_errors
                        .push((dir.to_vec(), format!("listing directory: {e}")));
                    return;
                }
            };
            let rel = join(dir, child.file_name().as_bytes());
            // DirEntry::metadata is fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW): no path walk.
            let meta = match child.metadata() {
                Ok(m) => m,
                Err(e) => {
                    let kind = match child.file_type() {
                        Ok(ft) if ft.is_dir() => Kind::Dir,
                        Ok(ft) if ft.is_symlink() => Kind::Symlink,
                        _ => Kind::File,
                    };
                    let mut entry = describe(rel, None);
                    entry.kind = kind;
                    out.found
                        .push(found(entry, State::Unreadable(format!("stat: {e}")), None));
                    continue;
                }
            };
            self.entry(rel, &child.path(), &meta, out, jobs);
        }
    }

    fn entry(
        &self,
        rel: Vec<u8>,
        full: &Path,
        meta: &Metadata,
        out: &mut Outcome,
        jobs: &mut Vec<Job>,
    ) {
        let mut entry = describe(rel, Some(meta));
        let mut state = State::Ok;
        if entry.kind == Kind::Symlink {
            match fs::read_link(full) {
                Ok(t) => entry.target = Some(t.into_os_string().into_vec()),
                Err(e) => state = State::Unreadable(format!("reading link: {e}")),
            }
        }
        let excluded = self.excludes.contains(entry.path.as_slice());
        let mount = self.mounts.get(&entry.path);
        if meta.dev() != self.dev0 || mount.is_some() {
            state = State::MountPoint {
                excluded,
                mount: mount.cloned(),
            };
        }
        // Regular files get their xattrs through the descriptor opened for hashing.
        if entry.kind != Kind::File || state != State::Ok {
            match xattr::list(full) {
                Ok(x) => entry.xattrs = x,
                Err(e) if state == State::Ok => {
                    state = State::Unreadable(format!("reading xattrs: {e}"))
                }
                Err(_) => {}
            }
        }
        let descend = entry.kind == Kind::Dir && !excluded && state == State::Ok;
        let hash = entry.kind == Kind::File && state == State::Ok;
        if descend {
            jobs.push(Job::Dir(entry.path.clone()));
        }
        let f = found(entry, state, Some(meta));
        if hash {
            jobs.push(Job::File(Box::new(f)));
        } else {
            out.found.push(f);
        }
    }

    fn hash(&self, mut f: Found, buf: &mut [u8], out: &mut Outcome) {
        let full = full_path(self.root, &f.scanned.entry.path);
        let result = hash::open(&full)
            .map_err(|e| (e, "opening"))
            .and_then(|mut file| {
                let x = xattr::list_fd(&file).map_err(|e| (e, "reading xattrs"))?;
                let h = hash::hash_reader(&mut file, buf).map_err(|e| (e, "reading content"))?;
                Ok((x, h))
            });
        let e = &mut f.scanned.entry;
        match result {
            Ok((x, (sum, len))) => {
                e.xattrs = x;
                e.sha256 = Some(sum);
                e.size = len;
                out.files_hashed += 1;
                out.bytes_hashed += len;
            }
            Err((err, what)) => f.scanned.state = State::Unreadable(format!("{what}: {err}")),
        }
        out.found.push(f);
    }
}

fn found(entry: super::Entry, state: State, meta: Option<&Metadata>) -> Found {
    Found {
        scanned: Scanned { entry, state },
        dev: meta.map_or(0, |m| m.dev()),
        ino: meta.map_or(0, |m| m.ino()),
        nlink: meta.map_or(0, |m| m.nlink()),
    }
}

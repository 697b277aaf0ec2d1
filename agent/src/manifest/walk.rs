//! The parallel walker: worker threads share one stack of jobs (directories to list, files to
//! hash), so listing and hashing both use every core and hashing starts with the first file.
//!
//! Everything below the root goes through directory descriptors (`openat`, `fstatat`,
//! `readlinkat`, `flistxattr`): no path is resolved twice, and trees deeper than `PATH_MAX`
//! work. Only the xattrs of entries that are neither listed nor hashed (symlinks, devices,
//! excluded directories, mount points, files not hashed here) are read by path, as Linux has no
//! `llistxattrat`.
//!
//! When verifying, the sealed entries bound what is read: a regular file is hashed here only
//! when it was sealed as a regular file of the size it has now, and then only up to that size.
//! A sealed file of another size is not read at all; any other regular file is left `pending`
//! for the capped, path-ordered pass of `unsealed`.
use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use nix::dir::Dir;
use nix::fcntl::readlinkat;
use nix::sys::stat::{fstatat, FileStat};

use super::open::{open_dir, open_file};
use super::scanned::{describe, full_path, join, Scanned, State, Unhashed};
use super::{hash, xattr, Entry, Kind, Xattrs};
use crate::sys::mountinfo::Mount;

/// A scanned entry with the identity needed to group hardlinks.
pub struct Found {
    pub scanned: Scanned,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// A regular file not sealed as one: hashed (or not) by the capped pass after the walk.
    pub pending: bool,
}

/// A directory and its ancestors up to the root, by (device, inode): a directory met again
/// below itself (only a bind mount can do that) is not walked into.
struct Chain {
    dev: u64,
    ino: u64,
    up: Option<Arc<Chain>>,
}

impl Chain {
    fn contains(&self, dev: u64, ino: u64) -> bool {
        let mut c = Some(self);
        while let Some(x) = c {
            if (x.dev, x.ino) == (dev, ino) {
                return true;
            }
            c = x.up.as_deref();
        }
        false
    }
}

/// What to do with the content of a regular file found by the walk.
enum Plan {
    /// Hash it here, up to its listed size.
    Hash,
    /// Leave it to the capped pass (not sealed as a regular file).
    Pending,
    /// Do not read it.
    Skip(Unhashed),
}

enum Job {
    /// List the directory `name` of `parent` (the root itself when `parent` is `None`);
    /// `chain` starts with this directory.
    Dir {
        parent: Option<Arc<OwnedFd>>,
        name: CString,
        rel: Vec<u8>,
        chain: Arc<Chain>,
    },
    /// Hash the regular file `name` of `parent` and read its xattrs through the descriptor.
    File {
        parent: Arc<OwnedFd>,
        name: CString,
        found: Box<Found>,
    },
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
    /// Xattrs of listed directories, read through the listing descriptor.
    pub dir_xattrs: Vec<(Vec<u8>, io::Result<Xattrs>)>,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
}

pub struct Walk<'a> {
    pub root: &'a Path,
    pub dev0: u64,
    pub excludes: HashSet<&'a [u8]>,
    pub mounts: HashMap<Vec<u8>, Mount>,
    /// When verifying: the sealed entries, sorted by path (see the module doc). `None` when
    /// sealing: every regular file is hashed.
    pub sealed: Option<&'a [Entry]>,
    /// Drop each hashed file's pages from the page cache before and after reading it.
    pub drop_cache: bool,
    /// Read regular files at all (`false`: a metadata-only check, nothing is opened).
    pub read_content: bool,
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl<'a> Walk<'a> {
    pub fn new(
        root: &'a Path,
        root_st: &FileStat,
        excludes: HashSet<&'a [u8]>,
        mounts: HashMap<Vec<u8>, Mount>,
    ) -> io::Result<Self> {
        let name = CString::new(root.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "root path contains NUL"))?;
        let chain = Arc::new(Chain {
            dev: root_st.st_dev,
            ino: root_st.st_ino,
            up: None,
        });
        Ok(Walk {
            root,
            dev0: root_st.st_dev,
            excludes,
            mounts,
            sealed: None,
            drop_cache: false,
            read_content: true,
            queue: Mutex::new(Queue {
                jobs: vec![Job::Dir {
                    parent: None,
                    name,
                    rel: b"/".to_vec(),
                    chain,
                }],
                pending: 1,
                idle: 0,
            }),
            wake: Condvar::new(),
        })
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
                Job::Dir {
                    parent,
                    name,
                    rel,
                    chain,
                } => {
                    let fd = parent.as_deref().map(|p| p.as_raw_fd());
                    match open_dir(fd, &name) {
                        Ok(dir) => self.list(Arc::new(dir), &rel, &chain, &mut out, &mut new),
                        Err(e) => out
                            .dir_errors
                            .push((rel, format!("opening directory: {e}"))),
                    }
                }
                Job::File {
                    parent,
                    name,
                    found,
                } => self.hash(&parent, &name, *found, &mut buf, &mut out),
            }
            // Files last, so they are taken first: a directory's descriptor closes as soon as
            // its files are hashed, which keeps the number of open descriptors small.
            new.sort_by_key(|j| matches!(j, Job::File { .. }));
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

    fn list(
        &self,
        dir: Arc<OwnedFd>,
        rel: &[u8],
        chain: &Arc<Chain>,
        out: &mut Outcome,
        jobs: &mut Vec<Job>,
    ) {
        let dfd = dir.as_raw_fd();
        out.dir_xattrs.push((rel.to_vec(), xattr::list_fd(&*dir)));
        // nix's Dir owns (and closes) its descriptor: give it a duplicate to read from.
        let listing = nix::unistd::dup(dfd).and_then(Dir::from_fd);
        let mut listing = match listing {
            Ok(l) => l,
            Err(e) => {
                out.dir_errors
                    .push((rel.to_vec(), format!("listing directory: {e}")));
                return;
            }
        };
        for child in listing.iter() {
            let child = match child {
                Ok(c) => c,
                Err(e) => {
                    out.dir_errors
                        .push((rel.to_vec(), format!("listing directory: {e}")));
                    return;
                }
            };
            let name = child.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let child_rel = join(rel, name.to_bytes());
            match fstatat(Some(dfd), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => self.entry(&dir, chain, name, child_rel, &st, out, jobs),
                Err(e) => {
                    let mut entry = describe(child_rel, None);
                    entry.kind = match child.file_type() {
                        Some(nix::dir::Type::Directory) => Kind::Dir,
                        Some(nix::dir::Type::Symlink) => Kind::Symlink,
                        _ => Kind::File,
                    };
                    let state = State::Unreadable(format!("stat: {e}"));
                    out.found.push(found(entry, state, None));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &self,
        dir: &Arc<OwnedFd>,
        chain: &Arc<Chain>,
        name: &CStr,
        rel: Vec<u8>,
        st: &FileStat,
        out: &mut Outcome,
        jobs: &mut Vec<Job>,
    ) {
        let mut entry = describe(rel, Some(st));
        let mut state = State::Ok;
        if entry.kind == Kind::Symlink {
            match readlinkat(Some(dir.as_raw_fd()), name) {
                Ok(t) => entry.target = Some(t.into_vec()),
                Err(e) => state = State::Unreadable(format!("reading link: {e}")),
            }
        }
        let excluded = self.excludes.contains(entry.path.as_slice());
        let mount = self.mounts.get(&entry.path);
        if st.st_dev != self.dev0 || mount.is_some() {
            state = State::MountPoint {
                excluded,
                mount: mount.cloned().map(Box::new),
            };
        }
        if entry.kind == Kind::Dir && state == State::Ok && chain.contains(st.st_dev, st.st_ino) {
            // Its own ancestor: a bind mount the mount table did not show. Not walked again.
            state = State::MountPoint {
                excluded,
                mount: None,
            };
        }
        let descend = entry.kind == Kind::Dir && !excluded && state == State::Ok;
        let plan =
            (entry.kind == Kind::File && state == State::Ok).then(|| self.plan(&entry, excluded));
        let hash = matches!(plan, Some(Plan::Hash));
        if !descend && !hash {
            match xattr::list(&full_path(self.root, &entry.path)) {
                Ok(x) => entry.xattrs = x,
                Err(e) if state == State::Ok => {
                    state = State::Unreadable(format!("reading xattrs: {e}"))
                }
                Err(_) => {}
            }
        }
        let name = name.to_owned();
        if descend {
            jobs.push(Job::Dir {
                parent: Some(dir.clone()),
                name,
                rel: entry.path.clone(),
                chain: Arc::new(Chain {
                    dev: st.st_dev,
                    ino: st.st_ino,
                    up: Some(chain.clone()),
                }),
            });
            out.found.push(found(entry, state, Some(st)));
        } else if hash {
            jobs.push(Job::File {
                parent: dir.clone(),
                name,
                found: Box::new(found(entry, state, Some(st))),
            });
        } else {
            let ok = state == State::Ok;
            let mut f = found(entry, state, Some(st));
            match plan {
                Some(Plan::Pending) if ok => f.pending = true,
                Some(Plan::Skip(why)) if ok => f.scanned.skipped = Some(why),
                _ => {}
            }
            out.found.push(f);
        }
    }

    /// What to read of a regular file (see the module doc).
    fn plan(&self, e: &Entry, excluded: bool) -> Plan {
        let Some(sealed) = self.sealed else {
            return Plan::Hash;
        };
        if excluded {
            return Plan::Skip(Unhashed::Excluded);
        }
        if !self.read_content {
            return Plan::Skip(Unhashed::NotRead);
        }
        match sealed.binary_search_by(|s| s.path.as_slice().cmp(&e.path)) {
            Ok(i) if sealed[i].kind == Kind::File && sealed[i].size == e.size => Plan::Hash,
            Ok(i) if sealed[i].kind == Kind::File => Plan::Skip(Unhashed::SizeDiffers),
            _ => Plan::Pending,
        }
    }

    fn hash(&self, dir: &OwnedFd, name: &CStr, mut f: Found, buf: &mut [u8], out: &mut Outcome) {
        let result = open_file(dir.as_raw_fd(), name)
            .map_err(|e| (e, "opening"))
            .and_then(|(file, _)| {
                let x = xattr::list_fd(&file).map_err(|e| (e, "reading xattrs"))?;
                let n = hash::hash_listed(&mut f.scanned, &file, buf, self.drop_cache)
                    .map_err(|e| (e, "reading content"))?;
                Ok((x, n))
            });
        match result {
            Ok((x, n)) => {
                f.scanned.entry.xattrs = x;
                out.files_hashed += 1;
                out.bytes_hashed += n;
            }
            Err((err, what)) => f.scanned.state = State::Unreadable(format!("{what}: {err}")),
        }
        out.found.push(f);
    }
}

fn found(entry: Entry, state: State, st: Option<&FileStat>) -> Found {
    Found {
        scanned: Scanned {
            entry,
            state,
            skipped: None,
        },
        dev: st.map_or(0, |s| s.st_dev),
        ino: st.map_or(0, |s| s.st_ino),
        nlink: st.map_or(0, |s| s.st_nlink),
        pending: false,
    }
}

//! The parallel walker: worker threads share one stack of jobs (directories to list, files to
//! hash), so listing and hashing both use every core and hashing starts with the first file.
//!
//! Everything below the root goes through directory descriptors (`openat`, `fstatat`,
//! `readlinkat`, `flistxattr`): no path is resolved twice, and trees deeper than `PATH_MAX`
//! work. Only the xattrs of entries that are neither listed nor hashed (symlinks, devices,
//! excluded directories, mount points) are read by path, as Linux has no `llistxattrat`.
use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use nix::dir::Dir;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode};

use super::scanned::{describe, full_path, join, Scanned, State};
use super::{hash, xattr, Entry, Kind, Xattrs};
use crate::sys::mountinfo::Mount;

/// A scanned entry with the identity needed to group hardlinks.
pub struct Found {
    pub scanned: Scanned,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

enum Job {
    /// List the directory `name` of `parent` (the root itself when `parent` is `None`).
    Dir {
        parent: Option<Arc<OwnedFd>>,
        name: CString,
        rel: Vec<u8>,
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
    /// Open and hash regular files; without it their xattrs are read by path.
    pub hash_content: bool,
    queue: Mutex<Queue>,
    wake: Condvar,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl<'a> Walk<'a> {
    pub fn new(
        root: &'a Path,
        dev0: u64,
        excludes: HashSet<&'a [u8]>,
        mounts: HashMap<Vec<u8>, Mount>,
        hash_content: bool,
    ) -> io::Result<Self> {
        let name = CString::new(root.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "root path contains NUL"))?;
        Ok(Walk {
            root,
            dev0,
            excludes,
            mounts,
            hash_content,
            queue: Mutex::new(Queue {
                jobs: vec![Job::Dir {
                    parent: None,
                    name,
                    rel: b"/".to_vec(),
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
                Job::Dir { parent, name, rel } => {
                    let fd = parent.as_deref().map(|p| p.as_raw_fd());
                    match open_dir(fd, &name) {
                        Ok(dir) => self.list(Arc::new(dir), &rel, &mut out, &mut new),
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

    fn list(&self, dir: Arc<OwnedFd>, rel: &[u8], out: &mut Outcome, jobs: &mut Vec<Job>) {
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
                Ok(st) => self.entry(&dir, name, child_rel, &st, out, jobs),
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

    fn entry(
        &self,
        dir: &Arc<OwnedFd>,
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
        let descend = entry.kind == Kind::Dir && !excluded && state == State::Ok;
        let hash = self.hash_content && entry.kind == Kind::File && state == State::Ok;
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
            });
            out.found.push(found(entry, state, Some(st)));
        } else if hash {
            jobs.push(Job::File {
                parent: dir.clone(),
                name,
                found: Box::new(found(entry, state, Some(st))),
            });
        } else {
            out.found.push(found(entry, state, Some(st)));
        }
    }

    fn hash(&self, dir: &OwnedFd, name: &CStr, mut f: Found, buf: &mut [u8], out: &mut Outcome) {
        let result = open_file(dir.as_raw_fd(), name)
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

/// Open a directory below `parent` without following a symlink; the root itself (no parent)
/// may be given through a symlink.
fn open_dir(parent: Option<RawFd>, name: &CStr) -> io::Result<OwnedFd> {
    let flags = match parent {
        Some(_) => DIR_FLAGS,
        None => DIR_FLAGS.difference(OFlag::O_NOFOLLOW),
    };
    let fd = openat(parent, name, flags, Mode::empty())?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open a regular file for hashing: never following a symlink, never blocking on a FIFO that
/// replaced the file since it was listed, without updating atime where allowed.
fn open_file(dir: RawFd, name: &CStr) -> io::Result<File> {
    let base = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd = match openat(Some(dir), name, base | OFlag::O_NOATIME, Mode::empty()) {
        Err(nix::errno::Errno::EPERM) => openat(Some(dir), name, base, Mode::empty())?,
        r => r?,
    };
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    let file = unsafe { File::from_raw_fd(fd) };
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::other("no longer a regular file"));
    }
    Ok(file)
}

fn found(entry: Entry, state: State, st: Option<&FileStat>) -> Found {
    Found {
        scanned: Scanned { entry, state },
        dev: st.map_or(0, |s| s.st_dev),
        ino: st.map_or(0, |s| s.st_ino),
        nlink: st.map_or(0, |s| s.st_nlink),
    }
}

//! One live entry as a scan found it, and the helpers that describe entries: shared by the
//! walker (`walk`) and the scan that drives it (`scan`), which both depend on this file only.
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::FileStat;

use super::{Entry, Kind};
use crate::sys::mountinfo::Mount;

/// How an entry was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Fully described.
    Ok,
    /// A mount point (another filesystem, or listed in mountinfo): its contents were not walked
    /// and its attributes are those of the mounted filesystem. `mount` describes it if known.
    MountPoint {
        excluded: bool,
        mount: Option<Box<Mount>>,
    },
    /// Could not be read (entry, directory listing or content); the error says why.
    Unreadable(String),
}

/// Why the content of a live regular file was not hashed (its entry then has no sha256).
/// Rendered in reports as `sha256_skipped` (see docs/drift-report.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unhashed {
    /// Not sealed as a regular file, and larger than the cap on such content.
    OverCap { cap: u64 },
    /// Not sealed as a regular file, and the cap was spent on such files earlier in path order.
    CapSpent { cap: u64 },
    /// Sealed as a regular file of another size: it differs whatever it holds.
    SizeDiffers,
    /// Its size changed between the listing (`listed` bytes) and the end of reading (`now`).
    ChangedWhileRead { listed: u64, now: u64 },
    /// An excluded path: checked for existence and type only.
    Excluded,
    /// A metadata-only check: no content is read (a dm-verity root, whose content is checked by
    /// reading the device after switch_root).
    NotRead,
}

impl std::fmt::Display for Unhashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = crate::sys::size::format;
        match self {
            Unhashed::OverCap { cap } => write!(f, "over the {} cap", size(*cap)),
            Unhashed::CapSpent { cap } => write!(
                f,
                "the {} cap was spent on unsealed files earlier in path order",
                size(*cap)
            ),
            Unhashed::SizeDiffers => f.write_str("size differs from the sealed file"),
            Unhashed::ChangedWhileRead { listed, now } => write!(
                f,
                "changed while read ({listed} bytes when listed, {now} after reading)"
            ),
            Unhashed::Excluded => f.write_str("excluded path"),
            Unhashed::NotRead => f.write_str("metadata-only check: content not read"),
        }
    }
}

/// One live entry and how it was found.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub entry: Entry,
    pub state: State,
    /// Set when the entry is a regular file whose content was not hashed, with the reason.
    pub skipped: Option<Unhashed>,
}

/// The attributes a stat gives (everything but content, target, hardlink and xattrs).
/// Without one (stat failed) all numbers are zero and the kind is a file.
pub fn describe(path: Vec<u8>, st: Option<&FileStat>) -> Entry {
    let kind = st.map_or(Kind::File, kind_of);
    let rdev = st.map_or(0, |s| s.st_rdev);
    Entry {
        path,
        kind,
        mode: st.map_or(0, |s| s.st_mode & 0o7777),
        uid: st.map_or(0, |s| s.st_uid),
        gid: st.map_or(0, |s| s.st_gid),
        size: match (kind, st) {
            (Kind::File, Some(s)) => s.st_size as u64,
            _ => 0,
        },
        sha256: None,
        target: None,
        rdev: matches!(kind, Kind::Char | Kind::Block)
            .then(|| (u64::from(libc::major(rdev)), u64::from(libc::minor(rdev)))),
        hardlink: None,
        xattrs: Vec::new(),
    }
}

pub fn full_path(root: &Path, rel: &[u8]) -> PathBuf {
    if rel == b"/" {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(&rel[1..]))
    }
}

pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if dir != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

pub fn kind_of(st: &FileStat) -> Kind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        libc::S_IFCHR => Kind::Char,
        libc::S_IFBLK => Kind::Block,
        libc::S_IFIFO => Kind::Fifo,
        libc::S_IFSOCK => Kind::Socket,
        _ => Kind::File,
    }
}

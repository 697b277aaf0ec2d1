//! The sealed manifest of a root tree: entry model, canonical text codec, tree scanning with
//! parallel hashing, and the manifest digest. See docs/manifest.md for the format.
use std::path::PathBuf;

mod codec;
pub mod escape;
mod hash;
mod open;
pub mod scan;
mod scanned;
mod unsealed;
mod walk;
mod xattr;

pub use hash::default_threads;
pub use scan::{scan, seal, Bounds, ScanOptions, ScanResult};
pub use scanned::{Scanned, State, Unhashed};

use sha2::{Digest, Sha256};

use crate::sys::hex::to_hex;

/// The format version this build writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Extended attributes: (raw name, raw value), sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Char,
    Block,
    Fifo,
    Socket,
}

impl Kind {
    /// The word used in the manifest and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Char => "char",
            Kind::Block => "block",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "file" => Kind::File,
            "dir" => Kind::Dir,
            "symlink" => Kind::Symlink,
            "char" => Kind::Char,
            "block" => Kind::Block,
            "fifo" => Kind::Fifo,
            "socket" => Kind::Socket,
            _ => return None,
        })
    }
}

/// One entry of the tree, as sealed or as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Raw path bytes relative to the root, starting with `/`; the root itself is `/`.
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Regular files: size in bytes (0 for other kinds).
    pub size: u64,
    /// Regular files: SHA-256 of the content.
    pub sha256: Option<[u8; 32]>,
    /// Symlinks: the raw target.
    pub target: Option<Vec<u8>>,
    /// Character and block devices: (major, minor).
    pub rdev: Option<(u64, u64)>,
    /// Non-directories with more than one name in the tree: the first path of the group in
    /// sort order (the leader names itself).
    pub hardlink: Option<Vec<u8>>,
    /// Extended attributes of every namespace, sorted by raw name.
    pub xattrs: Xattrs,
}

/// A whole manifest: the excluded paths and the entries sorted by raw path bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Paths whose own entry is recorded but whose contents are not, sorted, no duplicates.
    pub excludes: Vec<Vec<u8>>,
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// The canonical bytes of the manifest.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Parse manifest bytes strictly: anything but the canonical form is an error.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        codec::decode(bytes)
    }
}

/// `sha256:<hex>` of the manifest bytes: what a signature, a kernel argument or a report pins.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", to_hex(&Sha256::digest(bytes)))
}

/// Check and normalise an exclude given by a user: absolute, no `.`/`..`/empty components.
pub fn normalize_exclude(raw: &[u8]) -> Result<Vec<u8>, ManifestError> {
    let bad = |why: &str| ManifestError::BadExclude {
        path: escape::escape(raw),
        why: why.to_string(),
    };
    if raw.first() != Some(&b'/') {
        return Err(bad("must start with /"));
    }
    let trimmed: &[u8] = if raw.len() > 1 && raw.ends_with(b"/") {
        &raw[..raw.len() - 1]
    } else {
        raw
    };
    if trimmed == b"/" {
        return Err(bad("excluding the root leaves nothing to check"));
    }
    if !codec::valid_path(trimmed) {
        return Err(bad("empty, `.` or `..` component"));
    }
    Ok(trimmed.to_vec())
}

/// Errors of sealing, scanning, encoding and decoding manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest line {line}: {msg}")]
    Parse { line: usize, msg: String },
    #[error("manifest {path} line {line}: {msg}")]
    ParseFile {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("bad exclude {path}: {why}")]
    BadExclude { path: String, why: String },
    #[error("reading manifest {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("scanning {root}: {path} is unreadable: {error}")]
    Unreadable {
        root: PathBuf,
        path: String,
        error: String,
    },
    #[error("scanning {root}: {msg}")]
    Scan { root: PathBuf, msg: String },
}

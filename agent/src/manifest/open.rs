//! Opening entries of the checked tree through directory descriptors: never following a symlink
//! below the root, never blocking on a FIFO, never leaving a descriptor to anything but a
//! regular file or a directory.
use std::ffi::{CStr, CString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Open a directory below `parent` without following a symlink; the root itself (no parent)
/// may be given through a symlink.
pub fn open_dir(parent: Option<RawFd>, name: &CStr) -> io::Result<OwnedFd> {
    let flags = match parent {
        Some(_) => DIR_FLAGS,
        None => DIR_FLAGS.difference(OFlag::O_NOFOLLOW),
    };
    let fd = openat(parent, name, flags, Mode::empty())?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open a regular file for hashing: never following a symlink, never blocking on a FIFO that
/// replaced the file since it was listed (`O_NONBLOCK`; a socket cannot be opened at all),
/// without updating atime where allowed. Anything but a regular file is refused after an
/// `fstat` of the descriptor, which is returned with the file.
pub fn open_file(dir: RawFd, name: &CStr) -> io::Result<(File, Metadata)> {
    let base = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd = match openat(Some(dir), name, base | OFlag::O_NOATIME, Mode::empty()) {
        Err(nix::errno::Errno::EPERM) => openat(Some(dir), name, base, Mode::empty())?,
        r => r?,
    };
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    let file = unsafe { File::from_raw_fd(fd) };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other("no longer a regular file"));
    }
    Ok((file, meta))
}

/// A descriptor (`O_PATH`) of the directory `rel` below `root` (`/` is the root itself),
/// resolved one component at a time without following any symlink.
pub fn open_dir_below(root: &OwnedFd, rel: &[u8]) -> io::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = openat(Some(root.as_raw_fd()), c".", flags, Mode::empty())?;
    // SAFETY: `openat` just returned this descriptor and nothing else owns it.
    let mut owned = unsafe { OwnedFd::from_raw_fd(dir) };
    for name in rel.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
        let name = CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        dir = openat(Some(dir), name.as_c_str(), flags, Mode::empty())?;
        // SAFETY: as above; the previous descriptor is closed by the assignment.
        owned = unsafe { OwnedFd::from_raw_fd(dir) };
    }
    Ok(owned)
}

//! Extended attributes of a path without following symlinks (every namespace the kernel lists
//! to us: user, trusted, security, system).
use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Xattrs;

/// All xattrs of `path` (not following a final symlink), sorted by raw name.
pub fn list(path: &Path) -> io::Result<Xattrs> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let names = read_sized(|buf, len| {
        // SAFETY: `c` is a valid C string; `buf` is valid for `len` bytes (or null with 0).
        unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) }
    })?;
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).map_err(|_| io::Error::other("xattr name with NUL"))?;
        let value = read_sized(|buf, len| {
            // SAFETY: as above, and `cname` is a valid C string.
            unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf.cast(), len) }
        });
        match value {
            Ok(v) => out.push((name.to_vec(), v)),
            // Removed between list and get: it is simply not there any more.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// All xattrs of an open file, sorted by raw name.
pub fn list_fd(fd: &impl AsRawFd) -> io::Result<Xattrs> {
    let fd = fd.as_raw_fd();
    let names = read_sized(|buf, len| {
        // SAFETY: `fd` is an open descriptor; `buf` is valid for `len` bytes (or null with 0).
        unsafe { libc::flistxattr(fd, buf.cast(), len) }
    })?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).map_err(|_| io::Error::other("xattr name with NUL"))?;
        let value = read_sized(|buf, len| {
            // SAFETY: as above, and `cname` is a valid C string.
            unsafe { libc::fgetxattr(fd, cname.as_ptr(), buf.cast(), len) }
        });
        match value {
            Ok(v) => out.push((name.to_vec(), v)),
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Call a size-probing syscall (returns the needed size for a null buffer) until it fits.
fn read_sized(mut call: impl FnMut(*mut u8, usize) -> isize) -> io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let n = call(buf.as_mut_ptr(), buf.len());
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ERANGE) => {
                    buf = Vec::new();
                    continue;
                }
                Some(libc::ENOTSUP) => return Ok(Vec::new()),
                _ => return Err(e),
            }
        }
        let n = n as usize;
        if buf.is_empty() && n > 0 {
            buf = vec![0; n];
            continue;
        }
        buf.truncate(n);
        return Ok(buf);
    }
}

//! Extended attributes of every namespace the kernel lists to us (user, trusted, security,
//! system), by path without following a final symlink, or through an open descriptor.
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Xattrs;

/// All xattrs of `path` (not following a final symlink), sorted by raw name.
pub fn list(path: &Path) -> io::Result<Xattrs> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    collect(
        // SAFETY: `c` is a valid C string; `buf` is valid for `len` bytes (or null with 0).
        |buf, len| unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) },
        // SAFETY: as above, and `name` is a valid C string.
        |name, buf, len| unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), buf.cast(), len) },
    )
}

/// All xattrs of an open file or directory, sorted by raw name.
pub fn list_fd(fd: &impl AsRawFd) -> io::Result<Xattrs> {
    let fd = fd.as_raw_fd();
    collect(
        // SAFETY: `fd` is an open descriptor; `buf` is valid for `len` bytes (or null with 0).
        |buf, len| unsafe { libc::flistxattr(fd, buf.cast(), len) },
        // SAFETY: as above, and `name` is a valid C string.
        |name, buf, len| unsafe { libc::fgetxattr(fd, name.as_ptr(), buf.cast(), len) },
    )
}

/// List names with `list`, then read each value with `get`.
fn collect(
    mut list: impl FnMut(*mut u8, usize) -> isize,
    mut get: impl FnMut(&CStr, *mut u8, usize) -> isize,
) -> io::Result<Xattrs> {
    let names = read_sized(&mut list)?;
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).map_err(|_| io::Error::other("xattr name with NUL"))?;
        match read_sized(|buf, len| get(&cname, buf, len)) {
            Ok(v) => out.push((name.to_vec(), v)),
            // Removed between list and get: it is simply not there any more.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Call a size-probing syscall (returns the needed size for a null buffer) until it fits.
/// A filesystem without xattr support has none.
fn read_sized(mut call: impl FnMut(*mut u8, usize) -> isize) -> io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let n = call(buf.as_mut_ptr(), buf.len());
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // Grew between the size probe and the read: probe again.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_by_path_and_descriptor_alike() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        for (name, value) in [
            ("user.b", &b"2"[..]),
            ("user.a", b""),
            ("user.big", &[7u8; 3000]),
        ] {
            let n = CString::new(name).unwrap();
            // SAFETY: valid C strings and a buffer of the given length.
            let r = unsafe {
                libc::setxattr(
                    c.as_ptr(),
                    n.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            assert_eq!(r, 0, "{}", io::Error::last_os_error());
        }
        let by_path = list(&p).unwrap();
        let names: Vec<&[u8]> = by_path.iter().map(|(n, _)| n.as_slice()).collect();
        assert_eq!(names, vec![&b"user.a"[..], b"user.b", b"user.big"]);
        assert_eq!(by_path[2].1, vec![7u8; 3000]);
        let f = std::fs::File::open(&p).unwrap();
        assert_eq!(list_fd(&f).unwrap(), by_path);
        assert!(list(&dir.path().join("missing")).is_err());
    }
}

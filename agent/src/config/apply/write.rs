//! Writing one file beneath a trusted base directory without following any symlink on the way:
//! each component is opened with O_NOFOLLOW relative to its parent (missing directories are
//! created 0755), the content goes to a temp file in the final directory (O_EXCL|O_NOFOLLOW),
//! gets its mode and owner, is fsynced and renamed over the target, and the directory fsynced.
//! A symlink planted anywhere below the base is refused, never followed.
//! (`sys::atomic` writes by path; this writer works on directory descriptors so that no
//! component below the base can be swapped for a symlink between check and write.)
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::ApplyHost;

fn io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn open_at(dir: Option<&OwnedFd>, name: &str, flags: OFlag, mode: Mode) -> Result<OwnedFd, Errno> {
    let fd = openat(
        dir.map(|d| d.as_raw_fd()),
        name,
        flags | OFlag::O_CLOEXEC,
        mode,
    )?;
    // SAFETY: openat just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open (creating if missing) directory `name` inside `dir`, refusing symlinks.
fn open_dir(dir: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
    for _ in 0..2 {
        match open_at(Some(dir), name, flags, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {
                match mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => continue,
                    Err(e) => return Err(io(e)),
                }
            }
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(io::Error::other(format!(
                    "{name:?} is a symlink or not a directory (refusing to follow it)"
                )))
            }
            Err(e) => return Err(io(e)),
        }
    }
    Err(io::Error::other(format!("{name:?} keeps changing")))
}

/// Who owns a written file: `None` leaves it to the writing process (root at boot).
pub type Owner = Option<(u32, u32)>;

/// Write `bytes` to `base/rel` atomically with `mode` and `owner`. `rel` is a clean relative
/// path (validated config paths only); `shown` names the file in errors.
pub fn write_beneath(
    host: &dyn ApplyHost,
    base: &Path,
    rel: &str,
    bytes: &[u8],
    mode: u32,
    owner: Owner,
) -> io::Result<()> {
    let mut parts: Vec<&str> = rel.split('/').collect();
    let name = parts
        .pop()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..");
    let name = name.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let base_dir = File::open(base)?;
    let mut dir: OwnedFd = base_dir.into();
    for p in parts {
        if p.is_empty() || p == "." || p == ".." {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "unclean path"));
        }
        dir = open_dir(&dir, p)?;
    }
    let tmp = format!(".{name}.pyre-tmp{}", std::process::id());
    let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
    let perm = Mode::from_bits_truncate(mode);
    let fd = match open_at(Some(&dir), &tmp, create, perm) {
        Err(Errno::EEXIST) => {
            // A temp file left by an earlier, interrupted run of this same pid number.
            unlinkat(
                Some(dir.as_raw_fd()),
                tmp.as_str(),
                UnlinkatFlags::NoRemoveDir,
            )
            .map_err(io)?;
            open_at(Some(&dir), &tmp, create, perm)
        }
        other => other,
    }
    .map_err(io)?;
    let result = (|| {
        let mut f = File::from(fd);
        f.write_all(bytes)?;
        fchmod(f.as_raw_fd(), perm).map_err(io)?; // the umask must not narrow the mode
        if let Some((uid, gid)) = owner {
            host.chown(f.as_fd(), &base.join(rel), uid, gid)?;
        }
        f.sync_all()?;
        renameat(
            Some(dir.as_raw_fd()),
            tmp.as_str(),
            Some(dir.as_raw_fd()),
            name,
        )
        .map_err(io)?;
        File::from(dir.try_clone()?).sync_all()
    })();
    if result.is_err() {
        let _ = unlinkat(
            Some(dir.as_raw_fd()),
            tmp.as_str(),
            UnlinkatFlags::NoRemoveDir,
        );
    }
    result
}

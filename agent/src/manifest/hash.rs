//! SHA-256 of one regular file with a bounded buffer (the walker runs one per core): never past
//! a given length (the size seen when the file was listed), holes hashed as zeros without being
//! read, and optionally around the page cache.
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use nix::unistd::{lseek, Whence};
use sha2::{Digest, Sha256};

use super::scanned::{Scanned, Unhashed};

/// Read buffer per hashing thread.
pub const BUF_SIZE: usize = 256 * 1024;

/// What holes are hashed from.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// SHA-256 of nothing.
pub fn empty() -> [u8; 32] {
    Sha256::digest([]).into()
}

/// SHA-256 of the first `limit` bytes of the regular file `file`, and how many bytes that was
/// (fewer when the file ends sooner: the caller compares). Reads at offsets, so the file
/// position does not matter. Files larger than `buf` are read extent by extent (`SEEK_DATA`,
/// `SEEK_HOLE`): a hole is hashed as the zeros it reads as, without a read, so a 1 TiB sparse
/// file costs its data, not its size, in I/O (the zeros still pass through SHA-256).
///
/// With `drop_cache`, the file's clean pages are dropped from the page cache before reading (so
/// the bytes come from the device again, through dm-verity where there is one) and after (so
/// hashing does not leave the whole tree in the cache at the expense of the workload's pages).
pub fn hash_file(
    file: &File,
    limit: u64,
    buf: &mut [u8],
    drop_cache: bool,
) -> io::Result<([u8; 32], u64)> {
    if drop_cache {
        drop_pages(file);
    }
    let r = hash_extents(file, limit, buf);
    if drop_cache {
        drop_pages(file);
    }
    r
}

/// `POSIX_FADV_DONTNEED` on the whole file. Advice only: when refused, the cache stays as it
/// would be without the option, which changes no result.
fn drop_pages(file: &File) {
    let advice = PosixFadviseAdvice::POSIX_FADV_DONTNEED;
    if let Err(e) = posix_fadvise(file.as_raw_fd(), 0, 0, advice) {
        log::debug!("posix_fadvise(DONTNEED): {e}");
    }
}

fn hash_extents(file: &File, limit: u64, buf: &mut [u8]) -> io::Result<([u8; 32], u64)> {
    let mut h = Sha256::new();
    let mut pos = 0u64;
    // The extent map only pays for itself beyond one buffer.
    let mut extents = limit > buf.len() as u64;
    while pos < limit {
        let mut end = limit;
        if extents {
            let data = match seek(file, pos, Whence::SeekData) {
                Ok(d) => d,
                // No data at or after `pos`: a hole to the end of the file (or it shrank).
                Err(Errno::ENXIO) => file.metadata()?.len(),
                // No extent map here: all of it is data.
                Err(Errno::EINVAL | Errno::EOPNOTSUPP) => {
                    extents = false;
                    pos
                }
                Err(e) => return Err(e.into()),
            };
            let data = data.clamp(pos, limit);
            hash_zeros(&mut h, data - pos);
            pos = data;
            if pos >= limit {
                break;
            }
            if extents {
                end = match seek(file, pos, Whence::SeekHole) {
                    Ok(e) if e > pos => e.min(limit),
                    // Changed under us: read on; a short read finds the end.
                    Ok(_) | Err(Errno::ENXIO) => limit,
                    Err(e) => return Err(e.into()),
                };
            }
        }
        while pos < end {
            let want = (end - pos).min(buf.len() as u64) as usize;
            match file.read_at(&mut buf[..want], pos) {
                Ok(0) => return Ok((h.finalize().into(), pos)),
                Ok(n) => {
                    h.update(&buf[..n]);
                    pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok((h.finalize().into(), pos))
}

fn seek(file: &File, pos: u64, whence: Whence) -> Result<u64, Errno> {
    let off = i64::try_from(pos).map_err(|_| Errno::EOVERFLOW)?;
    lseek(file.as_raw_fd(), off, whence).map(|o| o as u64)
}

fn hash_zeros(h: &mut Sha256, mut n: u64) {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        h.update(&ZEROS[..k]);
        n -= k as u64;
    }
}

/// Hash the open regular file `file` of `s`, whose entry holds the size it was listed with, up
/// to that size only. Sets the entry's sha256, or, when the size changed meanwhile, its new
/// size and why there is no sha256. Returns the bytes hashed.
pub fn hash_listed(
    s: &mut Scanned,
    file: &File,
    buf: &mut [u8],
    drop_cache: bool,
) -> io::Result<u64> {
    let listed = s.entry.size;
    let (sum, len) = hash_file(file, listed, buf, drop_cache)?;
    let now = file.metadata()?.len();
    if len == listed && now == listed {
        s.entry.sha256 = Some(sum);
    } else {
        s.entry.size = now;
        s.skipped = Some(Unhashed::ChangedWhileRead { listed, now });
    }
    Ok(len)
}

/// How many hashing threads to use: one per available core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests;

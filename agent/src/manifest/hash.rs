//! Streaming SHA-256 of many files on all cores, with one bounded buffer per thread.
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

/// Digest and length of one file, or why it could not be read.
pub type Hashed = io::Result<([u8; 32], u64)>;

/// Read buffer per hashing thread.
const BUF_SIZE: usize = 256 * 1024;

/// SHA-256 and length of everything `r` yields, read in `buf`-sized pieces.
pub fn hash_reader(r: &mut impl Read, buf: &mut [u8]) -> io::Result<([u8; 32], u64)> {
    let mut h = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((h.finalize().into(), total))
}

/// Open a regular file for hashing: no following symlinks, no atime update when allowed.
fn open(path: &PathBuf) -> io::Result<File> {
    let base = libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let f = match File::options()
        .read(true)
        .custom_flags(base | libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            File::options().read(true).custom_flags(base).open(path)?
        }
        r => r?,
    };
    let ft = f.metadata()?.file_type();
    if !ft.is_file() {
        return Err(io::Error::other("no longer a regular file"));
    }
    Ok(f)
}

/// Hash every path on `threads` threads; result `i` belongs to `paths[i]`.
pub fn hash_files(paths: &[PathBuf], threads: usize) -> Vec<Hashed> {
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, paths.len().max(1));
    let mut parts: Vec<Vec<(usize, Hashed)>> = Vec::new();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut buf = vec![0u8; BUF_SIZE];
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(p) = paths.get(i) else { break };
                        let r = open(p).and_then(|mut f| hash_reader(&mut f, &mut buf));
                        done.push((i, r));
                    }
                    done
                })
            })
            .collect();
        for w in workers {
            // A hashing thread only panics on a bug; surface it rather than hide it.
            parts.push(w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
    });
    let mut out: Vec<Option<Hashed>> =
        (0..paths.len()).map(|_| None).collect();
    for (i, r) in parts.into_iter().flatten() {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(io::Error::other("not hashed"))))
        .collect()
}

/// How many hashing threads to use: one per available core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_in_small_pieces_like_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut buf = [0u8; 7];
        let (h, n) = hash_reader(&mut io::Cursor::new(&data), &mut buf).unwrap();
        assert_eq!(n, 100_000);
        assert_eq!(h, <[u8; 32]>::from(Sha256::digest(&data)));
        let (empty, n) = hash_reader(&mut io::empty(), &mut buf).unwrap();
        assert_eq!(n, 0);
        assert_eq!(
            super::super::escape::to_hex(&empty),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

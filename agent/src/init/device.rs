//! Reading the whole dm-verity device of the root in large direct reads, so the kernel checks
//! every block against the root hash; a failed chunk is read again block by block to name the
//! rejected ranges. Used by pyre-content.service ([`super::content`]) and by the early reader
//! pyre init forks ([`super::early`]).
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Bytes per read: large, so the emulated disk and dm-verity see few, long requests.
pub const CHUNK: usize = 4 << 20;
/// The unit the failing part of a chunk is read again in, to say which blocks were rejected.
pub const BLOCK: usize = 4096;
/// Rejected ranges kept (and printed) at most.
pub const MAX_REJECTED: usize = 64;

/// A byte range of the device that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rejected {
    pub offset: u64,
    pub len: u64,
    pub error: String,
}

/// What reading the device gave.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeviceRead {
    pub bytes: u64,
    pub rejected: Vec<Rejected>,
}

/// A buffer aligned for O_DIRECT.
fn aligned(len: usize) -> (Vec<u8>, usize) {
    let buf = vec![0u8; len + BLOCK];
    let start = buf.as_ptr().align_offset(BLOCK);
    (buf, start)
}

/// Read `len` bytes at `offset`; a failure is read again block by block to name the
/// rejected blocks, the rest of the chunk still counted.
fn read_chunk(f: &File, offset: u64, len: usize, buf: &mut [u8], out: &mut DeviceRead) {
    let mut done = 0;
    while done < len {
        match f.read_at(&mut buf[done..len], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    out.bytes += done as u64;
    let mut at = done;
    while at < len {
        let n = BLOCK.min(len - at);
        match f.read_at(&mut buf[..n], offset + at as u64) {
            Ok(0) => break,
            Ok(k) => out.bytes += k as u64,
            Err(e) => {
                let off = offset + at as u64;
                let room = out.rejected.len() < MAX_REJECTED;
                match out.rejected.last_mut() {
                    Some(r) if r.offset + r.len == off => r.len += n as u64,
                    _ if room => out.rejected.push(Rejected {
                        offset: off,
                        len: n as u64,
                        error: crate::sys::errno::errno_text(&e),
                    }),
                    _ => {}
                }
            }
        }
        at += n;
    }
}

/// Read the whole device at `path` with `readers` threads, each taking every `readers`-th
/// chunk (direct I/O where the file allows it, so nothing is served from a cache).
pub fn read_device(path: &Path, readers: usize) -> io::Result<DeviceRead> {
    read_file(&open_device(path)?, readers)
}

/// [`read_device`] on an open device.
pub fn read_file(f: &File, readers: usize) -> io::Result<DeviceRead> {
    let size = std::io::Seek::seek(&mut &*f, io::SeekFrom::End(0))?;
    let chunks = size.div_ceil(CHUNK as u64);
    let readers = readers.max(1) as u64;
    let parts: Vec<DeviceRead> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..readers)
            .map(|r| {
                let f = &*f;
                s.spawn(move || {
                    let (mut buf, start) = aligned(CHUNK);
                    let buf = &mut buf[start..start + CHUNK];
                    let mut out = DeviceRead::default();
                    let mut c = r;
                    while c < chunks {
                        let offset = c * CHUNK as u64;
                        let len = (size - offset).min(CHUNK as u64) as usize;
                        read_chunk(f, offset, len, buf, &mut out);
                        c += readers;
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all = DeviceRead::default();
    for p in parts {
        all.bytes += p.bytes;
        all.rejected.extend(p.rejected);
    }
    all.rejected.sort_by_key(|r| r.offset);
    all.rejected.truncate(MAX_REJECTED);
    Ok(all)
}

/// The device, for direct reads where it allows them.
pub fn open_device(path: &Path) -> io::Result<File> {
    let open = |flags| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
    };
    match open(libc::O_DIRECT) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open(0),
        r => r,
    }
}

//! Streaming SHA-256 of one file with a bounded buffer (the walker runs one per core).
use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// Read buffer per hashing thread.
pub const BUF_SIZE: usize = 256 * 1024;

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
            crate::sys::hex::to_hex(&empty),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

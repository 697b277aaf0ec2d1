use std::os::unix::fs::FileExt;

use super::*;

fn file_with(data: &[u8]) -> File {
    let f = tempfile::tempfile().unwrap();
    f.write_all_at(data, 0).unwrap();
    f
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[test]
fn hashes_in_small_pieces_like_whole() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let f = file_with(&data);
    let mut buf = [0u8; 7];
    let (h, n) = hash_file(&f, data.len() as u64, &mut buf, false).unwrap();
    assert_eq!((h, n), (sha(&data), 100_000));
    let mut big = vec![0u8; BUF_SIZE];
    assert_eq!(hash_file(&f, 100_000, &mut big, false).unwrap(), (h, n));
    let (empty_sum, n) = hash_file(&file_with(b""), 0, &mut buf, false).unwrap();
    assert_eq!((empty_sum, n), (empty(), 0));
    assert_eq!(
        crate::sys::hex::to_hex(&empty_sum),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn holes_hash_as_the_zeros_they_read_as() {
    const LEN: usize = 9 << 20;
    let f = tempfile::tempfile().unwrap();
    f.set_len(LEN as u64).unwrap();
    let mut want = vec![0u8; LEN];
    // Data at the start, in the middle and at the very end; holes between and around.
    for (at, bytes) in [(0, &b"head"[..]), (5 << 20, b"middle"), (LEN - 4, b"tail")] {
        f.write_all_at(bytes, at as u64).unwrap();
        want[at..at + bytes.len()].copy_from_slice(bytes);
    }
    let mut buf = vec![0u8; 64 * 1024];
    assert_eq!(
        hash_file(&f, LEN as u64, &mut buf, false).unwrap(),
        (sha(&want), LEN as u64)
    );
    // All hole.
    let hole = tempfile::tempfile().unwrap();
    hole.set_len(LEN as u64).unwrap();
    assert_eq!(
        hash_file(&hole, LEN as u64, &mut buf, false).unwrap(),
        (sha(&vec![0u8; LEN]), LEN as u64)
    );
}

#[test]
fn reads_no_further_than_the_limit_and_tells_when_the_file_ends_sooner() {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 13) as u8).collect();
    let f = file_with(&data);
    let mut buf = vec![0u8; 4096];
    // Grown since it was listed at 1000 bytes: only those are read.
    assert_eq!(
        hash_file(&f, 1000, &mut buf, false).unwrap(),
        (sha(&data[..1000]), 1000)
    );
    // Shrunk since it was listed at 400 000 bytes: the count says where it ended.
    assert_eq!(
        hash_file(&f, 400_000, &mut buf, false).unwrap(),
        (sha(&data), 300_000)
    );
    let sparse = tempfile::tempfile().unwrap();
    sparse.set_len(100_000).unwrap();
    assert_eq!(
        hash_file(&sparse, 200_000, &mut buf, false).unwrap(),
        (sha(&[0u8; 100_000]), 100_000)
    );
}

/// Pages of `file`'s first `len` bytes in the page cache (mincore on a mapping never touched).
fn resident_pages(file: &File, len: usize) -> usize {
    // SAFETY: a fresh read-only shared mapping of an open file, only passed to mincore and
    // unmapped before returning; `vec` has one byte per page of the mapping.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "{}", io::Error::last_os_error());
        let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
        let mut vec = vec![0u8; len.div_ceil(page)];
        let r = libc::mincore(p, len, vec.as_mut_ptr());
        libc::munmap(p, len);
        assert_eq!(r, 0, "mincore: {}", io::Error::last_os_error());
        vec.iter().filter(|b| **b & 1 != 0).count()
    }
}

#[test]
fn drop_cache_leaves_the_hashed_file_out_of_the_page_cache() {
    const LEN: usize = 4 << 20;
    let f = tempfile::tempfile().unwrap();
    let fs = nix::sys::statfs::fstatfs(&f).unwrap();
    if fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC {
        eprintln!("skipped: the temp dir is tmpfs, whose pages are its storage");
        return;
    }
    let data: Vec<u8> = (0..LEN as u32).map(|i| (i % 241) as u8 + 1).collect();
    f.write_all_at(&data, 0).unwrap();
    f.sync_all().unwrap(); // clean pages: only those can be dropped
    let pages = resident_pages(&f, LEN);
    let mut buf = vec![0u8; BUF_SIZE];
    assert_eq!(
        hash_file(&f, LEN as u64, &mut buf, false).unwrap(),
        (sha(&data), LEN as u64)
    );
    let after_plain = resident_pages(&f, LEN);
    assert!(after_plain >= pages && after_plain > 0, "{after_plain}");
    assert_eq!(
        hash_file(&f, LEN as u64, &mut buf, true).unwrap(),
        (sha(&data), LEN as u64)
    );
    let after_drop = resident_pages(&f, LEN);
    eprintln!("resident pages: {after_plain} after a plain hash, {after_drop} with drop_cache");
    assert!(
        after_drop * 100 <= after_plain,
        "{after_drop} of {after_plain} pages still cached"
    );
}

#[test]
fn a_file_that_grew_since_it_was_listed_is_read_to_its_listed_size_and_reported() {
    let f = file_with(&[7u8; 5000]);
    let listed = |size| {
        let mut entry = crate::manifest::scanned::describe(b"/grows".to_vec(), None);
        entry.size = size;
        Scanned {
            entry,
            state: crate::manifest::State::Ok,
            skipped: None,
        }
    };
    let mut buf = vec![0u8; 1024];
    let mut same = listed(5000);
    assert_eq!(hash_listed(&mut same, &f, &mut buf, false).unwrap(), 5000);
    assert_eq!(same.entry.sha256, Some(sha(&[7u8; 5000])));
    assert_eq!(same.skipped, None);
    // Listed at 3000 bytes, 5000 by the time it is read (a writer appending).
    let mut grew = listed(3000);
    assert_eq!(hash_listed(&mut grew, &f, &mut buf, false).unwrap(), 3000);
    assert_eq!(grew.entry.sha256, None);
    assert_eq!(grew.entry.size, 5000);
    assert_eq!(
        grew.skipped,
        Some(Unhashed::ChangedWhileRead {
            listed: 3000,
            now: 5000
        })
    );
}

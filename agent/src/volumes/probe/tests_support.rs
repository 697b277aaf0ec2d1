//! Disk images for tests, written byte by byte from the formats' specifications.
use super::gpt::crc32;

fn put(img: &mut [u8], at: usize, bytes: &[u8]) {
    img[at..at + bytes.len()].copy_from_slice(bytes);
}

/// A 512-byte-sector GPT disk with one partition named `name` whose partuuid is
/// 04030201-0605-0807-090a-0b0c0d0e0f10.
pub fn gpt_disk(size: usize, name: &str) -> Vec<u8> {
    gpt_sized(size, 512, name)
}

/// A GPT disk (primary and backup header and entries, protective MBR) with one partition.
pub fn gpt_sized(size: usize, sector: usize, name: &str) -> Vec<u8> {
    let mut img = vec![0; size];
    let lbas = (size / sector) as u64;
    let mut entries = vec![0u8; 128 * 128];
    put(&mut entries, 0, &[0xAF; 16]);
    put(&mut entries, 16, &(1..=16).collect::<Vec<u8>>());
    put(&mut entries, 32, &34u64.to_le_bytes());
    put(&mut entries, 40, &(lbas - 34).to_le_bytes());
    for (i, c) in name.encode_utf16().enumerate() {
        put(&mut entries, 56 + 2 * i, &c.to_le_bytes());
    }
    let ecrc = crc32(&entries);
    let entry_lbas = (entries.len() / sector) as u64;
    for (my, alt, entries_lba) in [(1, lbas - 1, 2), (lbas - 1, 1, lbas - 1 - entry_lbas)] {
        let mut h = vec![0u8; 92];
        put(&mut h, 0, b"EFI PART");
        put(&mut h, 8, &0x0001_0000u32.to_le_bytes());
        put(&mut h, 12, &92u32.to_le_bytes());
        put(&mut h, 24, &my.to_le_bytes());
        put(&mut h, 32, &alt.to_le_bytes());
        put(&mut h, 56, &[0x42; 16]);
        put(&mut h, 72, &entries_lba.to_le_bytes());
        put(&mut h, 80, &128u32.to_le_bytes());
        put(&mut h, 84, &128u32.to_le_bytes());
        put(&mut h, 88, &ecrc.to_le_bytes());
        let hcrc = crc32(&h);
        put(&mut h, 16, &hcrc.to_le_bytes());
        put(&mut img, my as usize * sector, &h);
        put(&mut img, entries_lba as usize * sector, &entries);
    }
    img[446 + 4] = 0xEE;
    put(&mut img, 510, &[0x55, 0xAA]);
    img
}

//! Filesystems: ext2/3/4, xfs, btrfs, swap, squashfs, erofs, iso9660, vfat, ntfs.
use super::{text, uuid, Kind, Regions, Signature};

const EXT_SB: u64 = 1024;

/// ext2/3/4: superblock at 1024, magic 0xEF53 (le16) at +0x38.
pub fn ext(r: &Regions) -> Option<Signature> {
    if r.le16(EXT_SB + 0x38)? != 0xEF53 {
        return None;
    }
    let compat = r.le32(EXT_SB + 0x5C)?;
    let incompat = r.le32(EXT_SB + 0x60)?;
    let ro_compat = r.le32(EXT_SB + 0x64)?;
    // Features ext3 knows: FILETYPE, RECOVER, META_BG; SPARSE_SUPER, LARGE_FILE, BTREE_DIR.
    let kind = if incompat & 0x8 != 0 {
        Kind::Jbd
    } else if incompat & !(0x2 | 0x4 | 0x10) != 0 || ro_compat & !0x7 != 0 {
        Kind::Ext4
    } else if compat & 0x4 != 0 {
        Kind::Ext3
    } else {
        Kind::Ext2
    };
    let mut s = Signature::new(kind, EXT_SB + 0x38);
    s.uuid = Some(uuid(r.get(EXT_SB + 0x68, 16)?));
    s.label = text(r.get(EXT_SB + 0x78, 16)?);
    let log_block = r.le32(EXT_SB + 0x18)?;
    if log_block <= 6 {
        let hi = if incompat & 0x80 != 0 {
            u64::from(r.le32(EXT_SB + 0x150)?)
        } else {
            0
        };
        let blocks = hi << 32 | u64::from(r.le32(EXT_SB + 4)?);
        s.fs_size = blocks.checked_mul(1024 << log_block);
    } else {
        s.note = Some(format!("implausible block size 2^{}", 10 + log_block));
    }
    Some(s)
}

/// XFS: "XFSB" at 0.
pub fn xfs(r: &Regions) -> Option<Signature> {
    if !r.is(0, b"XFSB") {
        return None;
    }
    let mut s = Signature::new(Kind::Xfs, 0);
    let block = u64::from(r.be32(4)?);
    s.fs_size = r.be64(8)?.checked_mul(block);
    s.uuid = Some(uuid(r.get(32, 16)?));
    s.label = text(r.get(108, 12)?);
    Some(s)
}

const BTRFS_SB: u64 = 0x10000;

/// btrfs: superblock at 64 KiB, "_BHRfS_M" at +0x40.
pub fn btrfs(r: &Regions) -> Option<Signature> {
    if !r.is(BTRFS_SB + 0x40, b"_BHRfS_M") {
        return None;
    }
    let mut s = Signature::new(Kind::Btrfs, BTRFS_SB + 0x40);
    s.uuid = Some(uuid(r.get(BTRFS_SB + 0x20, 16)?));
    s.label = text(r.get(BTRFS_SB + 0x12B, 256)?);
    // dev_item (at +0xC9) total_bytes: this device's share.
    s.fs_size = r.le64(BTRFS_SB + 0xC9 + 8);
    Some(s)
}

/// Swap (and hibernation images): a magic in the last 10 bytes of the first page, for page
/// sizes 4 KiB to 64 KiB.
pub fn swap(r: &Regions) -> Option<Signature> {
    const MAGICS: [&[u8]; 6] = [
        b"SWAPSPACE2",
        b"SWAP-SPACE",
        b"S1SUSPEND",
        b"S2SUSPEND",
        b"ULSUSPEND",
        b"LINHIB0001",
    ];
    for page in [4096u64, 8192, 16384, 32768, 65536] {
        let at = page - 10;
        let Some(m) = MAGICS.iter().find(|m| r.is(at, m)) else {
            continue;
        };
        let mut s = Signature::new(Kind::Swap, at);
        if *m == b"SWAPSPACE2" {
            s.uuid = r.get(1036, 16).map(uuid);
            s.label = r.get(1052, 16).and_then(text);
        } else if *m != b"SWAP-SPACE" {
            s.note = Some("hibernation image".into());
        }
        return Some(s);
    }
    None
}

/// squashfs: "hsqs" (little-endian) or "sqsh" (big-endian) at 0.
pub fn squashfs(r: &Regions) -> Option<Signature> {
    let be = r.is(0, b"sqsh");
    if !be && !r.is(0, b"hsqs") {
        return None;
    }
    let mut s = Signature::new(Kind::Squashfs, 0);
    if be {
        s.note = Some("big-endian".into());
    } else {
        s.fs_size = r.le64(40);
        s.note = r.le16(28).map(|v| format!("version {v}"));
    }
    Some(s)
}

/// EROFS: 0xE0F5E1E2 (le32) at 1024.
pub fn erofs(r: &Regions) -> Option<Signature> {
    const SB: u64 = 1024;
    if r.le32(SB)? != 0xE0F5_E1E2 {
        return None;
    }
    let mut s = Signature::new(Kind::Erofs, SB);
    s.uuid = Some(uuid(r.get(SB + 0x30, 16)?));
    s.label = text(r.get(SB + 0x40, 16)?);
    Some(s)
}

/// ISO 9660: a volume descriptor at sector 16 (byte 32768): type, then "CD001".
pub fn iso9660(r: &Regions) -> Option<Signature> {
    const VD: u64 = 16 * 2048;
    if !r.is(VD + 1, b"CD001") {
        return None;
    }
    let mut s = Signature::new(Kind::Iso9660, VD + 1);
    if r.u8(VD) == Some(1) {
        s.label = r.get(VD + 40, 32).and_then(text);
    }
    Some(s)
}

/// FAT12/16/32: a type string in the boot sector and a plausible BIOS parameter block.
pub fn vfat(r: &Regions) -> Option<Signature> {
    let fat16 = [&b"FAT12   "[..], b"FAT16   ", b"FAT     ", b"MSDOS"]
        .iter()
        .any(|m| r.is(0x36, m));
    let fat32 = [&b"FAT32   "[..], b"MSWIN"].iter().any(|m| r.is(0x52, m));
    if !(fat16 || fat32) || !plausible_bpb(r)? {
        return None;
    }
    let fat_sectors16 = r.le16(22)?;
    let (serial_at, label_at, magic_at) = if fat_sectors16 == 0 {
        (0x43, 0x47, 0x52)
    } else {
        (0x27, 0x2B, 0x36)
    };
    let mut s = Signature::new(Kind::Vfat, magic_at);
    let serial = r.le32(serial_at)?;
    s.uuid = Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF));
    s.label = r
        .get(label_at, 11)
        .and_then(text)
        .filter(|l| l != "NO NAME");
    Some(s)
}

fn plausible_bpb(r: &Regions) -> Option<bool> {
    let sector = r.le16(11)?;
    let cluster = r.u8(13)?;
    let reserved = r.le16(14)?;
    let fats = r.u8(16)?;
    let media = r.u8(21)?;
    Some(
        sector.is_power_of_two()
            && (512..=4096).contains(&sector)
            && cluster.is_power_of_two()
            && reserved != 0
            && (1..=4).contains(&fats)
            && (media == 0xF0 || media >= 0xF8),
    )
}

/// NTFS: "NTFS    " at 3.
pub fn ntfs(r: &Regions) -> Option<Signature> {
    if !r.is(3, b"NTFS    ") {
        return None;
    }
    let mut s = Signature::new(Kind::Ntfs, 3);
    s.uuid = r.le64(0x48).map(|v| format!("{v:016X}"));
    Some(s)
}

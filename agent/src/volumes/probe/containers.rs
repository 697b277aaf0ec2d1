//! Containers and members: LUKS1/2, LVM2 physical volumes, md RAID 0.90 and 1.x, ZFS.
use super::{text, uuid, Kind, Regions, Signature};

/// LUKS: "LUKS\xba\xbe" at 0 (version be16 at 6); else a LUKS2 secondary header "SKUL\xba\xbe"
/// at 16 KiB .. 4 MiB (found even when the primary header was wiped).
pub fn luks(r: &Regions) -> Vec<Signature> {
    let mut out = vec![];
    if r.is(0, b"LUKS\xba\xbe") {
        let version = r.get(6, 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let mut s = Signature::new(
            if version == Some(1) {
                Kind::Luks1
            } else {
                Kind::Luks2
            },
            0,
        );
        s.uuid = r.get(168, 40).and_then(text);
        match version {
            Some(1) => {}
            Some(2) => s.label = r.get(24, 48).and_then(text),
            v => s.note = Some(format!("unknown version {}", v.unwrap_or(0))),
        }
        out.push(s);
        return out;
    }
    for shift in 14..=22 {
        let at = 1u64 << shift;
        if r.is(at, b"SKUL\xba\xbe") {
            let mut s = Signature::new(Kind::Luks2, at);
            s.note = Some("secondary header".into());
            s.uuid = r.get(at + 168, 40).and_then(text);
            out.push(s);
        }
    }
    out
}

/// LVM2 PV: "LABELONE" at the start of one of sectors 0-3 and "LVM2 001" 24 bytes on.
pub fn lvm2(r: &Regions) -> Option<Signature> {
    (0..4u64).map(|n| n * 512).find_map(|at| {
        if !r.is(at, b"LABELONE") || !r.is(at + 24, b"LVM2 001") {
            return None;
        }
        let mut s = Signature::new(Kind::Lvm2Pv, at);
        let pv = at + u64::from(r.le32(at + 20)?);
        if let Some(id) = r.get(pv, 32).filter(|b| b.is_ascii()) {
            let id = String::from_utf8_lossy(id);
            // LVM shows PV ids as 6-4-4-4-4-4-6.
            let mut parts = vec![];
            let mut rest = &id[..];
            for n in [6, 4, 4, 4, 4, 4, 6] {
                parts.push(&rest[..n]);
                rest = &rest[n..];
            }
            s.uuid = Some(parts.join("-"));
        }
        Some(s)
    })
}

const MD_MAGIC: u32 = 0xA92B_4EFC;

/// md RAID: superblock 1.x with magic 0xa92b4efc (le32) and major version 1 at 0 (1.1),
/// 4 KiB (1.2), 8 KiB, or 8 KiB before the end rounded down to 4 KiB (1.0); superblock 0.90 at
/// the last 64 KiB-aligned 64 KiB block (either byte order).
pub fn mdraid(r: &Regions) -> Vec<Signature> {
    let mut out = vec![];
    let sectors = r.size / 512;
    let end_1_0 = sectors
        .checked_sub(16)
        .map(|s| (s & !7) * 512)
        .filter(|o| *o > 8192);
    let spots = [
        Some((0, "1.1")),
        Some((4096, "1.2")),
        Some((8192, "1.x")),
        end_1_0.map(|o| (o, "1.0")),
    ];
    for (at, version) in spots.into_iter().flatten() {
        if r.le32(at) == Some(MD_MAGIC) && r.le32(at + 4) == Some(1) {
            let mut s = Signature::new(Kind::Mdraid1, at);
            s.uuid = r.get(at + 16, 16).map(uuid);
            s.label = r.get(at + 32, 32).and_then(text);
            s.note = Some(format!("superblock {version}"));
            out.push(s);
        }
    }
    if sectors >= 128 {
        let at = ((sectors & !127) - 128) * 512;
        let le = r.le32(at) == Some(MD_MAGIC);
        if le || r.be32(at) == Some(MD_MAGIC) {
            let word = |i: u64| {
                if le {
                    r.le32(at + 4 * i)
                } else {
                    r.be32(at + 4 * i)
                }
            };
            let mut s = Signature::new(Kind::Mdraid090, at);
            let parts: Option<Vec<u32>> = [5, 13, 14, 15].iter().map(|i| word(*i)).collect();
            s.uuid = parts.map(|p| {
                let b: Vec<u8> = p.iter().flat_map(|w| w.to_be_bytes()).collect();
                uuid(&b)
            });
            out.push(s);
        }
    }
    out
}

const ZFS_LABEL: u64 = 256 << 10;
const UBERBLOCK_MAGIC: u64 = 0x00BA_B10C;

/// ZFS pool member: one of the four 256 KiB vdev labels (two at the start, two at the end
/// of the device rounded down to 256 KiB) holds an uberblock with magic 0x00bab10c (either
/// byte order) in its ring at +128 KiB (checked every 1 KiB). The pool name and guid come
/// from the XDR nvlist at +16 KiB.
pub fn zfs(r: &Regions) -> Option<Signature> {
    let aligned = r.size & !(ZFS_LABEL - 1);
    let mut labels = vec![0, ZFS_LABEL];
    if aligned >= 4 * ZFS_LABEL {
        labels.extend([aligned - 2 * ZFS_LABEL, aligned - ZFS_LABEL]);
    }
    let label = labels.into_iter().find(|l| {
        (0..128).any(|slot| {
            let at = l + (128 << 10) + slot * 1024;
            r.le64(at) == Some(UBERBLOCK_MAGIC) || r.be64(at) == Some(UBERBLOCK_MAGIC)
        })
    })?;
    let mut s = Signature::new(Kind::ZfsMember, label);
    if let Some(nv) = r.get(label + (16 << 10), 112 << 10) {
        let pairs = xdr_nvlist(nv);
        s.label = pairs.iter().find(|p| p.0 == "name").map(|p| p.1.clone());
        s.uuid = pairs
            .iter()
            .find(|p| p.0 == "pool_guid")
            .map(|p| p.1.clone());
    }
    Some(s)
}

/// The string and uint64 pairs of an XDR-encoded nvlist (`nvs_header` then pairs), rendered
/// as text. Stops at the end marker or at the first malformed pair.
pub fn xdr_nvlist(b: &[u8]) -> Vec<(String, String)> {
    let mut out = vec![];
    if b.len() < 12 || b[0] != 1 {
        return out;
    }
    let be32 = |at: usize| -> Option<u32> {
        b.get(at..at + 4)
            .map(|x| u32::from_be_bytes(x.try_into().unwrap()))
    };
    let xdr_str = |at: usize| -> Option<(String, usize)> {
        let len = be32(at)? as usize;
        let bytes = b.get(at + 4..(at + 4).checked_add(len)?)?;
        Some((
            text(bytes).unwrap_or_default(),
            at + 4 + len.div_ceil(4) * 4,
        ))
    };
    let mut at = 12; // header (4), nvl_version (4), nvl_nvflag (4)
    for _ in 0..256 {
        let Some(encoded) = be32(at).map(|v| v as usize) else {
            break;
        };
        if encoded == 0 || encoded > b.len() {
            break;
        }
        let pair = || -> Option<(String, String)> {
            let (name, p) = xdr_str(at + 8)?;
            let (kind, _nelem) = (be32(p)?, be32(p + 4)?);
            let value = match kind {
                9 => xdr_str(p + 8)?.0,
                8 => {
                    let v = b.get(p + 8..p + 16)?;
                    u64::from_be_bytes(v.try_into().ok()?).to_string()
                }
                _ => return None,
            };
            Some((name, value))
        };
        if let Some(p) = pair() {
            out.push(p);
        }
        at += encoded;
    }
    out
}

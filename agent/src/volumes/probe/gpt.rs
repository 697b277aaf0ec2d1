//! Partition tables: GPT (primary header at LBA 1, backup at the last LBA, for 512- and
//! 4096-byte sectors) and MBR/DOS.
use super::{text, Kind, Regions, Signature};

const SECTOR_SIZES: [u64; 2] = [512, 4096];

/// One used GPT entry. `number` is what Linux calls the partition (entry index + 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPart {
    pub number: u32,
    pub partuuid: String,
    pub partlabel: Option<String>,
}

/// A GPT header found at `offset` with logical sector size `lba`.
struct Header {
    offset: u64,
    lba: u64,
    valid: bool,
}

fn header_at(r: &Regions, offset: u64, lba: u64) -> Option<Header> {
    if !r.is(offset, b"EFI PART") {
        return None;
    }
    let size = r.le32(offset + 12)? as usize;
    let valid = (92..=lba as usize).contains(&size)
        && r.get(offset, size).is_some_and(|h| {
            let mut h = h.to_vec();
            let want = u32::from_le_bytes(h[16..20].try_into().unwrap());
            h[16..20].fill(0);
            crc32(&h) == want
        });
    Some(Header { offset, lba, valid })
}

fn primary(r: &Regions) -> Option<Header> {
    SECTOR_SIZES.iter().find_map(|&lba| header_at(r, lba, lba))
}

fn backup(r: &Regions) -> Option<Header> {
    SECTOR_SIZES
        .iter()
        .filter(|&&lba| r.size >= 2 * lba)
        .find_map(|&lba| header_at(r, r.size - lba, lba))
}

/// The GPT headers present: primary and backup, each noted when its checksum is wrong.
pub fn headers(r: &Regions) -> Vec<Signature> {
    let mut out = vec![];
    for (kind, h) in [(Kind::Gpt, primary(r)), (Kind::GptBackup, backup(r))] {
        let Some(h) = h else { continue };
        let mut s = Signature::new(kind, h.offset);
        s.uuid = r.get(h.offset + 56, 16).map(guid);
        if !h.valid {
            s.note = Some("header checksum mismatch".into());
        }
        out.push(s);
    }
    out
}

/// The used entries of the first GPT (primary, else backup) whose header and entry array
/// checksums are right; `None` when there is no such table.
pub fn partitions(r: &Regions) -> Option<Vec<GptPart>> {
    [primary(r), backup(r)]
        .into_iter()
        .flatten()
        .filter(|h| h.valid)
        .find_map(|h| entries(r, &h))
}

fn entries(r: &Regions, h: &Header) -> Option<Vec<GptPart>> {
    let start = r.le64(h.offset + 72)?.checked_mul(h.lba)?;
    let count = r.le32(h.offset + 80)?;
    let esize = r.le32(h.offset + 84)?;
    if !(128..=4096).contains(&esize) || count > 1024 {
        return None;
    }
    let all = r.get(start, (count * esize) as usize)?;
    if crc32(all) != r.le32(h.offset + 88)? {
        return None;
    }
    let parts = all
        .chunks(esize as usize)
        .enumerate()
        .filter(|(_, e)| e[..16].iter().any(|b| *b != 0))
        .map(|(i, e)| {
            let name: Vec<u16> = e[56..128]
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|c| *c != 0)
                .collect();
            GptPart {
                number: i as u32 + 1,
                partuuid: guid(&e[16..32]),
                partlabel: text(String::from_utf16_lossy(&name).as_bytes()),
            }
        })
        .collect();
    Some(parts)
}

/// MBR/DOS: 0x55 0xAA at 510, boot flags 0x00 or 0x80 and at least one used entry. A
/// protective MBR (type 0xEE) beside a GPT header is part of the GPT, not reported.
pub fn dos(r: &Regions, has_gpt: bool) -> Option<Signature> {
    if !r.is(510, &[0x55, 0xAA]) {
        return None;
    }
    let mut used = 0;
    let mut protective = false;
    for i in 0..4 {
        let e = 446 + 16 * i;
        if !matches!(r.u8(e)?, 0x00 | 0x80) {
            return None;
        }
        let kind = r.u8(e + 4)?;
        used += usize::from(kind != 0);
        protective |= kind == 0xEE;
    }
    if used == 0 || (protective && has_gpt) {
        return None;
    }
    let mut s = Signature::new(Kind::Dos, 510);
    s.uuid = r.le32(440).map(|id| format!("{id:08x}"));
    if protective {
        s.note = Some("protective MBR without a GPT header".into());
    }
    Some(s)
}

/// A GUID as GPT stores it: the first three fields little-endian.
pub fn guid(b: &[u8]) -> String {
    let mut o = b[..16].to_vec();
    o[0..4].reverse();
    o[4..6].reverse();
    o[6..8].reverse();
    super::uuid(&o)
}

/// CRC-32 (IEEE 802.3, reflected), as GPT uses.
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !data.iter().fold(!0u32, |c, b| {
        TABLE[((c ^ u32::from(*b)) & 0xFF) as usize] ^ (c >> 8)
    })
}

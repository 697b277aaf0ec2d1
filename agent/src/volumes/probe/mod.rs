//! Signature probing: which filesystem, partition table, container or RAID member a device
//! holds, and whether it is blank. Pure logic over `impl Read + Seek` (the device, or a
//! `Cursor` in tests and fuzzing).
//!
//! The prober reads a fixed set of regions — the first MiB, the last MiB and the three LUKS2
//! secondary-header slots past the first MiB — so every signature it knows lies inside what it
//! reads, and "blank" means: no signature and every byte read is zero. See docs/volumes.md
//! for the table of which bytes identify what.
use std::io::{self, Read, Seek, SeekFrom};

pub mod containers;
mod fs;
pub mod gpt;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub mod tests_support;

/// Bytes read from the start and from the end of a device.
pub const EDGE: u64 = 1 << 20;
/// LUKS2 secondary headers past [`EDGE`] (the ones below it are inside the head region).
const LUKS2_FAR: [u64; 3] = [1 << 20, 2 << 20, 4 << 20];
const FAR_LEN: u64 = 4096;

/// What a device holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Ext2,
    Ext3,
    Ext4,
    /// An external ext3/4 journal device.
    Jbd,
    Xfs,
    Btrfs,
    Swap,
    Luks1,
    Luks2,
    Lvm2Pv,
    /// Linux md RAID member, superblock 0.90 (near the end).
    Mdraid090,
    /// Linux md RAID member, superblock 1.x (1.0 at the end, 1.1 at 0, 1.2 at 4 KiB).
    Mdraid1,
    /// GPT header at LBA 1.
    Gpt,
    /// GPT backup header at the last LBA.
    GptBackup,
    /// MBR / DOS partition table.
    Dos,
    Iso9660,
    Squashfs,
    Erofs,
    Vfat,
    Ntfs,
    ZfsMember,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ext2 => "ext2",
            Kind::Ext3 => "ext3",
            Kind::Ext4 => "ext4",
            Kind::Jbd => "jbd",
            Kind::Xfs => "xfs",
            Kind::Btrfs => "btrfs",
            Kind::Swap => "swap",
            Kind::Luks1 => "luks1",
            Kind::Luks2 => "luks2",
            Kind::Lvm2Pv => "lvm2-pv",
            Kind::Mdraid090 => "mdraid-0.90",
            Kind::Mdraid1 => "mdraid-1.x",
            Kind::Gpt => "gpt",
            Kind::GptBackup => "gpt-backup",
            Kind::Dos => "dos",
            Kind::Iso9660 => "iso9660",
            Kind::Squashfs => "squashfs",
            Kind::Erofs => "erofs",
            Kind::Vfat => "vfat",
            Kind::Ntfs => "ntfs",
            Kind::ZfsMember => "zfs-member",
        }
    }
}

impl Kind {
    /// Something that carries a filesystem label and UUID a selector can name.
    pub fn is_filesystem(self) -> bool {
        matches!(
            self,
            Kind::Ext2
                | Kind::Ext3
                | Kind::Ext4
                | Kind::Xfs
                | Kind::Btrfs
                | Kind::Swap
                | Kind::Iso9660
                | Kind::Squashfs
                | Kind::Erofs
                | Kind::Vfat
                | Kind::Ntfs
        )
    }
}

/// Serialised as its [`Kind::name`] (`mdraid-0.90`, `zfs-member`).
impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One signature found on a device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signature {
    pub kind: Kind,
    /// Byte offset of the magic that identified it.
    pub offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Bytes the filesystem spans on this device (for `grow`), when the superblock says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_size: Option<u64>,
    /// Anything odd: a bad checksum, a version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Signature {
    fn new(kind: Kind, offset: u64) -> Signature {
        Signature {
            kind,
            offset,
            label: None,
            uuid: None,
            fs_size: None,
            note: None,
        }
    }
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        let mut extra = vec![];
        if let Some(l) = &self.label {
            extra.push(format!("label {l:?}"));
        }
        if let Some(u) = &self.uuid {
            extra.push(format!("uuid {u}"));
        }
        if let Some(n) = &self.note {
            extra.push(n.clone());
        }
        if self.offset != 0 {
            extra.push(format!("at byte {}", self.offset));
        }
        if !extra.is_empty() {
            write!(f, " ({})", extra.join(", "))?;
        }
        Ok(())
    }
}

/// The result of probing one device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Probe {
    /// Device size in bytes.
    pub size: u64,
    /// Bytes read to decide.
    pub bytes_read: u64,
    pub found: Vec<Signature>,
    /// Offset of the first non-zero byte read, if any.
    pub first_nonzero: Option<u64>,
}

impl Probe {
    /// No signature and nothing but zeros where a signature could be.
    pub fn is_blank(&self) -> bool {
        self.found.is_empty() && self.first_nonzero.is_none()
    }

    /// `ext4 (label "data", uuid …)`, `gpt and dos`, `blank`, or
    /// `no known signature, non-zero data at byte N`.
    pub fn describe(&self) -> String {
        if !self.found.is_empty() {
            let all: Vec<String> = self.found.iter().map(ToString::to_string).collect();
            return all.join(" and ");
        }
        match self.first_nonzero {
            None => "blank".to_string(),
            Some(at) => format!("no known signature, non-zero data at byte {at}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("finding the device size: {0}")]
    Size(#[source] io::Error),
    #[error("reading {len} bytes at byte {offset}: {source}")]
    Read {
        offset: u64,
        len: u64,
        #[source]
        source: io::Error,
    },
}

/// Bytes read from a device: non-overlapping spans in ascending order.
#[derive(Debug, Default)]
pub struct Regions {
    pub size: u64,
    spans: Vec<(u64, Vec<u8>)>,
}

impl Regions {
    /// Build from spans already read (tests, fuzzing); spans must not overlap.
    pub fn from_spans(size: u64, mut spans: Vec<(u64, Vec<u8>)>) -> Regions {
        spans.sort_by_key(|s| s.0);
        Regions { size, spans }
    }

    /// `len` bytes at `offset`, if they were read (all inside one span).
    pub fn get(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let (start, buf) = self
            .spans
            .iter()
            .find(|(s, b)| offset >= *s && offset - *s < b.len() as u64)?;
        let at = usize::try_from(offset - start).ok()?;
        buf.get(at..at.checked_add(len)?)
    }

    pub fn bytes(&self) -> u64 {
        self.spans.iter().map(|s| s.1.len() as u64).sum()
    }

    fn first_nonzero(&self) -> Option<u64> {
        self.spans
            .iter()
            .find_map(|(start, buf)| buf.iter().position(|b| *b != 0).map(|i| start + i as u64))
    }

    pub(crate) fn u8(&self, off: u64) -> Option<u8> {
        self.get(off, 1).map(|b| b[0])
    }
    pub(crate) fn le16(&self, off: u64) -> Option<u16> {
        self.get(off, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    pub(crate) fn le32(&self, off: u64) -> Option<u32> {
        self.get(off, 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }
    pub(crate) fn be32(&self, off: u64) -> Option<u32> {
        self.get(off, 4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
    }
    pub(crate) fn le64(&self, off: u64) -> Option<u64> {
        self.get(off, 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }
    pub(crate) fn be64(&self, off: u64) -> Option<u64> {
        self.get(off, 8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
    }
    pub(crate) fn is(&self, off: u64, magic: &[u8]) -> bool {
        self.get(off, magic.len()) == Some(magic)
    }
}

/// The spans the prober reads on a device of `size` bytes.
pub fn plan(size: u64) -> Vec<(u64, u64)> {
    let head = size.min(EDGE);
    let mut spans = vec![(0, head)];
    let tail_start = size.saturating_sub(EDGE).max(head);
    for &off in &LUKS2_FAR {
        if off >= head && off + FAR_LEN <= tail_start {
            spans.push((off, FAR_LEN));
        }
    }
    if tail_start < size {
        spans.push((tail_start, size - tail_start));
    }
    spans.retain(|s| s.1 > 0);
    spans
}

/// Read the regions of [`plan`] from a device.
pub fn read_regions<R: Read + Seek>(dev: &mut R) -> Result<Regions, ProbeError> {
    let size = dev.seek(SeekFrom::End(0)).map_err(ProbeError::Size)?;
    let mut spans = vec![];
    for (offset, len) in plan(size) {
        let read_err = |source| ProbeError::Read {
            offset,
            len,
            source,
        };
        dev.seek(SeekFrom::Start(offset)).map_err(read_err)?;
        let mut buf = vec![0; len as usize];
        dev.read_exact(&mut buf).map_err(read_err)?;
        spans.push((offset, buf));
    }
    Ok(Regions { size, spans })
}

/// Probe a device: read the regions, then recognise what is in them.
pub fn probe<R: Read + Seek>(dev: &mut R) -> Result<Probe, ProbeError> {
    Ok(identify(&read_regions(dev)?))
}

/// Recognise every signature in what was read.
pub fn identify(r: &Regions) -> Probe {
    let mut found = vec![];
    found.extend(fs::ext(r));
    found.extend(fs::xfs(r));
    found.extend(fs::btrfs(r));
    found.extend(fs::swap(r));
    found.extend(fs::squashfs(r));
    found.extend(fs::erofs(r));
    found.extend(fs::iso9660(r));
    let vfat = fs::vfat(r);
    let ntfs = fs::ntfs(r);
    let boot_sector = vfat.is_some() || ntfs.is_some();
    found.extend(vfat);
    found.extend(ntfs);
    found.extend(containers::luks(r));
    found.extend(containers::lvm2(r));
    found.extend(containers::mdraid(r));
    found.extend(containers::zfs(r));
    let tables = gpt::headers(r);
    let has_gpt = !tables.is_empty();
    found.extend(tables);
    if !boot_sector {
        found.extend(gpt::dos(r, has_gpt));
    }
    Probe {
        size: r.size,
        bytes_read: r.bytes(),
        found,
        first_nonzero: r.first_nonzero(),
    }
}

/// Printable text from on-disk bytes: up to the first NUL, trailing spaces trimmed, control
/// characters replaced (labels come from untrusted disks and end up on the console).
pub(crate) fn text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let s: String = String::from_utf8_lossy(&bytes[..end])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let s = s.trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` from 16 bytes in on-disk (big-endian) order.
pub(crate) fn uuid(b: &[u8]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

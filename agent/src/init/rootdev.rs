//! Which block device is the root: the one whose dm-verity superblock (at
//! `pyre.verity.hash-offset`) carries this image's UUID, data-block count and salt, all pinned
//! on the trusted kernel command line. Kernel names are not trusted (an attached data disk can
//! take `vda`; NVMe order changes between boots), so every block device in sysfs is probed, as
//! it appears, until one matches or `pyre.root-wait` passes. A device that does not match is
//! never handed to device-mapper; two that match are refused as ambiguous; none is refused with
//! a listing of every device seen and what it was.
//!
//! sysfs and /dev are parameters and are read with plain file reads, so the tests run over fake
//! trees: directories standing in for `/sys/class/block/<name>` and regular files for the nodes.
use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::dm::VerityParams;
use crate::host::Host;
use crate::sys::errno::errno_text;

/// How often sysfs is listed again while waiting for the root.
pub const DEVICE_POLL: Duration = Duration::from_millis(10);
/// The part of the verity superblock that is read (the rest of its 4096-byte block is zero).
pub const SUPERBLOCK_SIZE: usize = 512;
const SIGNATURE: &[u8; 8] = b"verity\0\0";

/// What the image's kernel command line says the root is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub uuid: [u8; 16],
    pub data_blocks: u64,
    pub hash_offset: u64,
    pub salt: Vec<u8>,
    /// `pyre.root`: only this device path is considered.
    pub only: Option<PathBuf>,
}

impl Want {
    /// From the parsed command line; the salt is checked as hex by the parser.
    pub fn new(v: &VerityParams, only: Option<&str>) -> Want {
        Want {
            uuid: v.uuid,
            data_blocks: v.data_blocks,
            hash_offset: v.hash_offset,
            salt: from_hex(&v.salt).unwrap_or_default(),
            only: only.map(PathBuf::from),
        }
    }
}

/// What one device turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Carries this image's verity superblock.
    Root,
    TooSmall,
    /// sysfs lists it but /dev has no node for it (yet); probed again on the next scan.
    NoNode,
    Unreadable(String),
    NoSuperblock,
    OtherImage([u8; 16]),
    /// This image's UUID, but not its geometry (another build with a reused UUID).
    OtherBuild(String),
    /// Not the device `pyre.root` names.
    NotSelected,
}

impl Verdict {
    /// Worth probing again on the next scan.
    fn transient(&self) -> bool {
        matches!(self, Verdict::NoNode)
    }
}

/// One block device from sysfs and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The sysfs name (`vda`, `nvme0n1p1`).
    pub name: String,
    pub node: PathBuf,
    pub major: u32,
    pub minor: u32,
    pub bytes: u64,
    pub verdict: Verdict,
    hash_offset: u64,
}

impl Seen {
    /// `major:minor`, how device-mapper is told which device to use (no node needed).
    pub fn dev(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}): ",
            self.name,
            self.dev(),
            size_text(self.bytes)
        )?;
        let off = self.hash_offset;
        match &self.verdict {
            Verdict::Root => write!(f, "this image's verity superblock"),
            Verdict::TooSmall => write!(f, "too small for the hash offset {off}"),
            Verdict::NoNode => write!(f, "no device node {}", self.node.display()),
            Verdict::Unreadable(e) => write!(f, "unreadable: {e}"),
            Verdict::NoSuperblock => write!(f, "no verity superblock at offset {off}"),
            Verdict::OtherImage(u) => write!(
                f,
                "verity superblock of another image (uuid {})",
                uuid_text(u)
            ),
            Verdict::OtherBuild(why) => write!(f, "this image's uuid but {why}"),
            Verdict::NotSelected => write!(f, "not the device pyre.root names"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RootDevError {
    #[error(
        "no block device carries this image's verity superblock (uuid {uuid}{only}) within \
         {seconds}s; seen: {seen}"
    )]
    NotFound {
        uuid: String,
        only: String,
        seconds: u64,
        seen: String,
    },
    #[error(
        "{first} and {second} both carry this image's verity superblock (uuid {uuid}); \
         refusing to guess which is the root"
    )]
    Ambiguous {
        uuid: String,
        first: String,
        second: String,
    },
}

/// The canonical 8-4-4-4-12 form, lowercase.
pub fn uuid_text(u: &[u8; 16]) -> String {
    let h = hex(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0` (either case) → bytes; None unless in that form.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens != [8, 4, 4, 4, 12] {
        return None;
    }
    from_hex(&groups.concat())?.try_into().ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn size_text(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// Judge the 512 bytes at the hash offset (veritysetup's on-disk format 1, little-endian:
/// signature[8], version u32, hash_type u32, uuid[16], algorithm[32], data_block_size u32,
/// hash_block_size u32, data_blocks u64, salt_size u16, pad[6], salt[256]).
pub fn judge(sb: &[u8; SUPERBLOCK_SIZE], want: &Want) -> Verdict {
    if &sb[..8] != SIGNATURE {
        return Verdict::NoSuperblock;
    }
    let u32_at = |at: usize| u32::from_le_bytes(sb[at..at + 4].try_into().expect("4 bytes"));
    let uuid: [u8; 16] = sb[16..32].try_into().expect("16 bytes");
    if uuid != want.uuid {
        return Verdict::OtherImage(uuid);
    }
    let algorithm = &sb[32..64];
    let algorithm = &algorithm[..algorithm.iter().position(|&b| b == 0).unwrap_or(32)];
    let data_blocks = u64::from_le_bytes(sb[72..80].try_into().expect("8 bytes"));
    let salt_size = usize::from(u16::from_le_bytes([sb[80], sb[81]])).min(256);
    let salt = &sb[88..88 + salt_size];
    let differs = if (u32_at(8), u32_at(12)) != (1, 1) {
        format!("version {} hash type {}", u32_at(8), u32_at(12))
    } else if algorithm != b"sha256" || (u32_at(64), u32_at(68)) != (4096, 4096) {
        let name = String::from_utf8_lossy(algorithm);
        format!("{name} with {}/{}-byte blocks", u32_at(64), u32_at(68))
    } else if data_blocks != want.data_blocks {
        format!("{data_blocks} data blocks")
    } else if salt != want.salt.as_slice() {
        format!("salt {}", hex(salt))
    } else {
        return Verdict::Root;
    };
    Verdict::OtherBuild(format!(
        "{differs} (the command line pins sha256, 4096-byte blocks, {} data blocks, salt {})",
        want.data_blocks,
        hex(&want.salt)
    ))
}

fn major_minor(rdev: u64) -> (u64, u64) {
    (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev))
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The node devtmpfs made for a sysfs device: `DEVNAME` from its uevent, else the name with
/// sysfs's `!` standing for `/`.
fn node_name(dir: &Path, name: &str) -> String {
    read_trimmed(&dir.join("uevent"))
        .and_then(|u| {
            u.lines()
                .find_map(|l| l.strip_prefix("DEVNAME=").map(str::to_string))
        })
        .unwrap_or_else(|| name.replace('!', "/"))
}

/// Lists `<sys>/class/block` and probes each device not yet judged for good.
pub struct Scanner {
    sys: PathBuf,
    dev: PathBuf,
    want: Want,
    judged: BTreeMap<String, Seen>,
}

impl Scanner {
    pub fn new(sys: &Path, dev: &Path, want: Want) -> Scanner {
        Scanner {
            sys: sys.to_path_buf(),
            dev: dev.to_path_buf(),
            want,
            judged: BTreeMap::new(),
        }
    }

    /// Every block device sysfs lists now, sorted by name, each with its verdict.
    pub fn scan(&mut self) -> Vec<Seen> {
        let class = self.sys.join("class/block");
        let names: Vec<String> = std::fs::read_dir(&class)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let mut seen = Vec::new();
        for name in names {
            let dir = class.join(&name);
            let Some((major, minor)) = read_trimmed(&dir.join("dev")).and_then(|d| {
                let (a, b) = d.split_once(':')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            }) else {
                continue; // gone again, or not a device
            };
            let key = format!("{name} {major}:{minor}");
            match self.judged.get(&key) {
                Some(s) if !s.verdict.transient() => seen.push(s.clone()),
                _ => {
                    let sectors: u64 = read_trimmed(&dir.join("size"))
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let node = self.dev.join(node_name(&dir, &name));
                    let mut s = Seen {
                        name,
                        node,
                        major,
                        minor,
                        bytes: sectors.saturating_mul(512),
                        verdict: Verdict::NoNode,
                        hash_offset: self.want.hash_offset,
                    };
                    s.verdict = self.probe(&s);
                    self.judged.insert(key, s.clone());
                    seen.push(s);
                }
            }
        }
        seen.sort_by(|a, b| a.name.cmp(&b.name));
        seen
    }

    fn probe(&self, s: &Seen) -> Verdict {
        if let Some(only) = &self.want.only {
            if !self.selected(s, only) {
                return Verdict::NotSelected;
            }
        }
        if s.bytes < self.want.hash_offset.saturating_add(SUPERBLOCK_SIZE as u64) {
            return Verdict::TooSmall;
        }
        let meta = match std::fs::metadata(&s.node) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Verdict::NoNode,
            Err(e) => return Verdict::Unreadable(errno_text(&e)),
        };
        // devtmpfs names the node after the device; a node of another device is not it.
        let rdev = major_minor(meta.rdev());
        if meta.file_type().is_block_device() && rdev != (s.major.into(), s.minor.into()) {
            return Verdict::Unreadable(format!(
                "{} is the node of block device {}:{}",
                s.node.display(),
                rdev.0,
                rdev.1
            ));
        }
        let mut sb = [0u8; SUPERBLOCK_SIZE];
        let read = std::fs::File::open(&s.node)
            .and_then(|f| f.read_exact_at(&mut sb, self.want.hash_offset));
        match read {
            Ok(()) => judge(&sb, &self.want),
            Err(e) => Verdict::Unreadable(errno_text(&e)),
        }
    }

    fn selected(&self, s: &Seen, only: &Path) -> bool {
        let by_name = only.strip_prefix("/dev").ok() == s.node.strip_prefix(&self.dev).ok();
        let by_node = std::fs::metadata(only).is_ok_and(|m| {
            m.file_type().is_block_device()
                && major_minor(m.rdev()) == (s.major.into(), s.minor.into())
        });
        by_name || by_node
    }
}

/// The root and everything else seen on the scan that found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub root: Seen,
    pub others: Vec<Seen>,
}

impl Found {
    /// The stage's console detail.
    pub fn detail(&self) -> String {
        let mut d = format!(
            "{} ({}, {}) carries the verity superblock",
            self.root.node.display(),
            self.root.dev(),
            size_text(self.root.bytes)
        );
        if !self.others.is_empty() {
            let others: Vec<String> = self.others.iter().map(Seen::to_string).collect();
            d.push_str(&format!("; also seen: {}", others.join("; ")));
        }
        d
    }
}

/// Scan until exactly one device is the root, two are (refused), or `deadline` passes on the
/// host's clock; `scan` is [`Scanner::scan`] (tests wrap it to make devices appear late).
pub fn find_root(
    host: &dyn Host,
    want: &Want,
    deadline: Duration,
    scan: &mut dyn FnMut() -> Vec<Seen>,
) -> Result<Found, RootDevError> {
    let t0 = host.now();
    let uuid = uuid_text(&want.uuid);
    loop {
        let seen = scan();
        let (roots, others): (Vec<Seen>, Vec<Seen>) =
            seen.into_iter().partition(|s| s.verdict == Verdict::Root);
        match roots.as_slice() {
            [root] => {
                return Ok(Found {
                    root: root.clone(),
                    others,
                })
            }
            [first, second, ..] => {
                return Err(RootDevError::Ambiguous {
                    uuid,
                    first: first.node.display().to_string(),
                    second: second.node.display().to_string(),
                })
            }
            [] => {}
        }
        if host.now().saturating_sub(t0) >= deadline {
            let listed: Vec<String> = others.iter().map(Seen::to_string).collect();
            return Err(RootDevError::NotFound {
                uuid,
                only: want
                    .only
                    .as_ref()
                    .map(|p| format!(" on pyre.root={}", p.display()))
                    .unwrap_or_default(),
                seconds: deadline.as_secs(),
                seen: if listed.is_empty() {
                    "no block devices (is the disk driver in modules.load?)".into()
                } else {
                    listed.join("; ")
                },
            });
        }
        host.sleep(DEVICE_POLL);
    }
}

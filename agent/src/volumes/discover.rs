//! Block devices and their identity, read from sysfs (its root a parameter) and, when a
//! selector needs it, from the devices themselves (filesystem label/uuid, GPT entries).
//! No udev, no blkid, nothing run.
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::host::VolumeHost;
use super::probe::{self, gpt::GptPart, Probe};

/// Where sysfs and the device nodes are (`/sys` and `/dev` on a machine).
#[derive(Debug, Clone)]
pub struct SysPaths {
    pub sys: PathBuf,
    pub dev: PathBuf,
}

impl Default for SysPaths {
    fn default() -> Self {
        SysPaths {
            sys: "/sys".into(),
            dev: "/dev".into(),
        }
    }
}

/// The model NVMe controllers of EC2 EBS volumes report.
pub const EBS_MODEL: &str = "Amazon Elastic Block Store";

/// One block device as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockDevice {
    /// Kernel name (`vdb`, `nvme1n1p2`, `loop3`): never an identity, only for messages.
    pub name: String,
    pub node: PathBuf,
    pub devnum: (u32, u32),
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// The whole disk a partition belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wwid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Devices stacked on this one (dm, md): it is in use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<String>,
    /// Partitions the kernel found on this disk.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
    pub read_only: bool,
    #[serde(skip)]
    pub diskseq: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("listing block devices in {path}: {reason}")]
    List { path: PathBuf, reason: String },
}

fn attr(dir: &Path, name: &str) -> Option<String> {
    let s = fs::read_to_string(dir.join(name)).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every block device with a size, sorted by name. A device whose `dev` attribute is missing
/// or unreadable is skipped (it is going away).
pub fn scan(paths: &SysPaths) -> Result<Vec<BlockDevice>, DiscoverError> {
    let class = paths.sys.join("class/block");
    let entries = fs::read_dir(&class).map_err(|e| DiscoverError::List {
        path: class.clone(),
        reason: crate::sys::errno::errno_text(&e),
    })?;
    let mut out = vec![];
    for e in entries.flatten() {
        let dir = fs::canonicalize(e.path()).unwrap_or_else(|_| e.path());
        if let Some(d) = read_device(&dir, &paths.dev, &e.file_name().to_string_lossy()) {
            out.push(d);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn read_device(dir: &Path, dev: &Path, entry: &str) -> Option<BlockDevice> {
    let (ma, mi) = attr(dir, "dev")?
        .split_once(':')
        .map(|(a, b)| (a.to_string(), b.to_string()))?;
    let devnum = (ma.parse().ok()?, mi.parse().ok()?);
    let size = attr(dir, "size")?.parse::<u64>().ok()?.checked_mul(512)?;
    let name = attr(dir, "uevent")
        .and_then(|u| {
            u.lines()
                .find_map(|l| l.strip_prefix("DEVNAME=").map(str::to_string))
        })
        .unwrap_or_else(|| entry.to_string());
    let partition = attr(dir, "partition").and_then(|p| p.parse().ok());
    let parent = partition
        .and(dir.parent())
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let (serial, wwid, model) = if partition.is_some() {
        (None, None, None)
    } else {
        (
            attr(dir, "serial").or_else(|| attr(dir, "device/serial")),
            attr(dir, "wwid").or_else(|| attr(dir, "device/wwid")),
            attr(dir, "device/model"),
        )
    };
    let partitions = list(dir)
        .into_iter()
        .filter(|c| dir.join(c).join("partition").exists())
        .collect();
    Some(BlockDevice {
        node: dev.join(&name),
        name,
        devnum,
        size,
        partition,
        parent,
        serial,
        wwid,
        model,
        holders: list(&dir.join("holders")),
        partitions,
        read_only: attr(dir, "ro").as_deref() == Some("1"),
        diskseq: attr(dir, "diskseq").and_then(|s| s.parse().ok()),
    })
}

type Key = (String, (u32, u32), u64, Option<u64>);

fn key(d: &BlockDevice) -> Key {
    (d.name.clone(), d.devnum, d.size, d.diskseq)
}

/// Probe results kept across rescans while waiting, keyed by what changes when a device
/// is replaced (name, number, size, diskseq).
#[derive(Default)]
pub struct ProbeCache {
    probes: HashMap<Key, Result<Probe, String>>,
    tables: HashMap<Key, Option<Vec<GptPart>>>,
    /// Bytes read by probes made through this cache.
    pub bytes_read: u64,
}

impl ProbeCache {
    /// The probe of `d` (made once per key); `Err` says why it could not be read.
    pub fn probe(&mut self, host: &dyn VolumeHost, d: &BlockDevice) -> Result<Probe, String> {
        let key = key(d);
        if let Some(p) = self.probes.get(&key) {
            return p.clone();
        }
        let p = probe_device(host, &d.node);
        if let Ok(p) = &p {
            self.bytes_read += p.bytes_read;
        }
        self.probes.insert(key, p.clone());
        p
    }

    /// The GPT entry of partition `d`, from its parent disk's table.
    pub fn gpt_entry(
        &mut self,
        host: &dyn VolumeHost,
        all: &[BlockDevice],
        d: &BlockDevice,
    ) -> Option<GptPart> {
        let number = d.partition?;
        let parent = all.iter().find(|p| Some(&p.name) == d.parent.as_ref())?;
        let table = self.tables.entry(key(parent)).or_insert_with(|| {
            let mut f = host.open_read(&parent.node).ok()?;
            let regions = probe::read_regions(&mut f).ok()?;
            self.bytes_read += regions.bytes();
            probe::gpt::partitions(&regions)
        });
        table.as_ref()?.iter().find(|p| p.number == number).cloned()
    }
}

/// Open and probe one device node.
pub fn probe_device(host: &dyn VolumeHost, node: &Path) -> Result<Probe, String> {
    let mut f = host.open_read(node).map_err(|e| {
        format!(
            "opening {}: {}",
            node.display(),
            crate::sys::errno::errno_text(&e)
        )
    })?;
    probe::probe(&mut f).map_err(|e| format!("probing {}: {e}", node.display()))
}

/// `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

//! The dm-verity check: has dm-verity seen a corrupted block of the root? Two sources, either
//! enough:
//!
//! - the device-mapper table status of pyre's verity device (`DM_TABLE_STATUS`: `V` verified
//!   so far, `C` corruption seen), which needs CAP_SYS_ADMIN (pyre.service does not hold it:
//!   see docs/enforcement.md, "The unit"; the check then relies on the kernel log);
//! - the kernel's verity messages on /dev/kmsg (`device-mapper: verity: 254:0: data block 123
//!   is corrupted`), read from the start of the ring buffer, so corruption seen before the
//!   daemon started counts too. A data block is mapped to the sealed file holding it
//!   ([`super::blockmap`]).
//!
//! Only when neither source can be read does the check fail (never "clean").
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{blockmap, Check, Found, Outcome, RootState, Sealed};
use crate::enforce::report::{Check as Kind, Finding};
use crate::host::dm::{DmRequest, VERITY_ROOT_NAME};
use crate::host::Devices;
use crate::manifest::escape::escape;

/// What a verity target's status line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableStatus {
    Verified,
    Corrupted,
    Other(String),
}

/// Parse the status of one target (`verity`, `V` / `C`, possibly followed by more fields).
pub fn parse_status(target_type: &str, status: &str) -> TableStatus {
    if target_type != "verity" {
        return TableStatus::Other(format!("target {target_type:?}, not verity"));
    }
    match status.split_whitespace().next() {
        Some("V") => TableStatus::Verified,
        Some("C") => TableStatus::Corrupted,
        _ => TableStatus::Other(format!("status {status:?}")),
    }
}

/// One verity message of the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelMessage {
    /// The data device's `major:minor` as the kernel names it.
    pub dev: String,
    /// `data` or `metadata` (a block of the hash tree).
    pub area: String,
    pub block: u64,
    /// The message as logged.
    pub text: String,
}

/// A /dev/kmsg record (`prio,seq,usec,flags;message`) or a plain message, if it is a verity
/// corruption message.
pub fn parse_kmsg(line: &str) -> Option<KernelMessage> {
    let msg = match line.split_once(';') {
        Some((head, m)) if head.split(',').count() >= 3 => m,
        _ => line,
    };
    let rest = msg.trim().strip_prefix("device-mapper: verity: ")?;
    let (dev, what) = rest.split_once(": ")?;
    let what = what.strip_suffix(" is corrupted")?;
    let (area, block) = what.split_once(" block ")?;
    Some(KernelMessage {
        dev: dev.to_string(),
        area: area.to_string(),
        block: block.trim().parse().ok()?,
        text: msg.trim().to_string(),
    })
}

/// The `major:minor` of the device under pyre's verity device (sysfs `slaves/`), which is how
/// the kernel names it in verity messages.
pub fn data_device(sys: &Path) -> Option<String> {
    for dm in std::fs::read_dir(sys.join("block")).ok()?.flatten() {
        let name = std::fs::read_to_string(dm.path().join("dm/name")).unwrap_or_default();
        if name.trim_end() != VERITY_ROOT_NAME {
            continue;
        }
        let slave = std::fs::read_dir(dm.path().join("slaves"))
            .ok()?
            .flatten()
            .next()?;
        let dev = std::fs::read_to_string(slave.path().join("dev")).ok()?;
        return Some(dev.trim().to_string());
    }
    None
}

/// Where the verity check looks.
#[derive(Debug, Clone)]
pub struct VerityPaths {
    /// `/dev/mapper/control`.
    pub dm_control: PathBuf,
    /// `/dev/kmsg`.
    pub kmsg: PathBuf,
    /// sysfs.
    pub sys: PathBuf,
    /// The live root (for mapping blocks to files).
    pub root: PathBuf,
}

/// The verity check (see the module docs).
pub struct VerityCheck {
    devices: Arc<dyn Devices + Send + Sync>,
    paths: VerityPaths,
    sealed: Arc<Sealed>,
    /// Whether this boot's root is pyre's verity device (else the check does not apply).
    verity_boot: bool,
    kmsg: Option<File>,
    data_dev: Option<String>,
    /// Corrupted blocks seen, with their finding.
    seen: BTreeMap<(String, u64), Finding>,
    table: Option<TableStatus>,
    /// One line on the state of the sources, for status.
    state: String,
}

impl VerityCheck {
    pub fn new(
        devices: Arc<dyn Devices + Send + Sync>,
        paths: VerityPaths,
        sealed: Arc<Sealed>,
        verity_boot: bool,
    ) -> VerityCheck {
        let data_dev = data_device(&paths.sys);
        VerityCheck {
            devices,
            paths,
            sealed,
            verity_boot,
            kmsg: None,
            data_dev,
            seen: BTreeMap::new(),
            table: None,
            state: String::new(),
        }
    }

    fn table_status(&self) -> Result<TableStatus, String> {
        let req = DmRequest::Status {
            name: VERITY_ROOT_NAME.into(),
        };
        match self.devices.dm(&self.paths.dm_control, &req) {
            Ok(r) => match r.status {
                Some((t, s)) => Ok(parse_status(&t, &s)),
                None => Err("device-mapper status: no target in the reply".into()),
            },
            Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
                Err("device-mapper status: not permitted (needs CAP_SYS_ADMIN)".into())
            }
            Err(e) => Err(format!(
                "device-mapper status of {VERITY_ROOT_NAME} via {}: {e}",
                self.paths.dm_control.display()
            )),
        }
    }

    /// New verity messages since the last call.
    fn read_kmsg(&mut self) -> io::Result<Vec<KernelMessage>> {
        if self.kmsg.is_none() {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.paths.kmsg)?;
            self.kmsg = Some(f);
        }
        let f = self.kmsg.as_mut().expect("opened above");
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .filter_map(parse_kmsg),
                ),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Records overwritten before we read them: the next read goes on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.kmsg = None;
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    fn finding(&self, m: &KernelMessage) -> Finding {
        let device = format!("/dev/mapper/{VERITY_ROOT_NAME}");
        if m.area != "data" {
            return Finding::VerityCorruption {
                device,
                block: None,
                path: None,
                detail: format!("{} (a block of the hash tree, in no file)", m.text),
            };
        }
        let at = m.block.saturating_mul(4096);
        let (path, note) = match blockmap::file_holding(&self.paths.root, &self.sealed.files, at) {
            Ok(Some(p)) => (Some(escape(&p)), String::new()),
            Ok(None) => (
                None,
                " (in no sealed file's data: metadata or a compressed extent)".into(),
            ),
            Err(e) => (None, format!(" (not mapped to a file: {e})")),
        };
        Finding::VerityCorruption {
            device,
            block: Some(m.block),
            path,
            detail: format!("{}{note}", m.text),
        }
    }
}

impl Check for VerityCheck {
    fn kind(&self) -> Kind {
        Kind::Verity
    }

    fn run(&mut self) -> Outcome {
        if !self.verity_boot {
            self.state = "not applicable".into();
            return Outcome::NotApplicable(format!(
                "the root is not on pyre's dm-verity device {VERITY_ROOT_NAME} (no pyre init)"
            ));
        }
        let table = self.table_status();
        let messages = self.read_kmsg();
        let mut notes = Vec::new();
        match &table {
            Ok(t) => self.table = Some(t.clone()),
            Err(e) => notes.push(e.clone()),
        }
        match messages {
            Ok(ms) => {
                for m in ms {
                    if self.data_dev.as_ref().is_some_and(|d| *d != m.dev) {
                        continue;
                    }
                    let key = (m.area.clone(), m.block);
                    if !self.seen.contains_key(&key) {
                        let f = self.finding(&m);
                        self.seen.insert(key, f);
                    }
                }
            }
            Err(e) => notes.push(format!("reading {}: {e}", self.paths.kmsg.display())),
        }
        if notes.len() == 2 {
            self.state = "unknown".into();
            return Outcome::Failed(notes.join("; "));
        }
        self.state = match (&self.table, table.is_ok()) {
            (Some(TableStatus::Corrupted), true) => "corrupted (table status C)".into(),
            (Some(TableStatus::Verified), true) if self.seen.is_empty() => {
                "verified (table status V)".into()
            }
            _ if !self.seen.is_empty() => "corrupted (kernel log)".into(),
            _ => "no corruption in the kernel log (table status not readable)".into(),
        };
        let mut findings: Vec<Finding> = self.seen.values().cloned().collect();
        if findings.is_empty() && self.table == Some(TableStatus::Corrupted) {
            findings.push(Finding::VerityCorruption {
                device: format!("/dev/mapper/{VERITY_ROOT_NAME}"),
                block: None,
                path: None,
                detail: "device-mapper table status C: dm-verity has seen a corrupted block \
                         (the kernel log did not say which)"
                    .into(),
            });
        }
        if findings.is_empty() {
            let how = if notes.is_empty() {
                "table status V, no verity messages in the kernel log".to_string()
            } else {
                format!(
                    "no verity messages in the kernel log ({})",
                    notes.join("; ")
                )
            };
            return Outcome::Clean(how);
        }
        let key = self
            .seen
            .keys()
            .map(|(a, b)| format!("{a}:{b}"))
            .chain((self.table == Some(TableStatus::Corrupted)).then(|| "C".to_string()))
            .collect::<Vec<_>>()
            .join(",");
        let named: Vec<String> = findings
            .iter()
            .filter_map(|f| match f {
                Finding::VerityCorruption {
                    block: Some(b),
                    path,
                    ..
                } => Some(match path {
                    Some(p) => format!("block {b} ({p})"),
                    None => format!("block {b}"),
                }),
                _ => None,
            })
            .collect();
        let reason = if named.is_empty() {
            "dm-verity saw corruption of the root".to_string()
        } else {
            format!(
                "dm-verity saw corrupted blocks of the root: {}",
                named.join(", ")
            )
        };
        Outcome::Found(Found {
            reason,
            findings,
            drift: None,
            key,
        })
    }

    fn root_state(&self, root: &mut RootState) {
        if !self.state.is_empty() {
            root.verity = Some(self.state.clone());
        }
    }
}

#[cfg(test)]
#[path = "verity_tests.rs"]
mod tests;

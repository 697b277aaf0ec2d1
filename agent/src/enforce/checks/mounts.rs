//! The mounts check: read the mount table of the host's real mount namespace (PID 1's,
//! `/proc/1/mountinfo`: pyre.service runs in its own namespace, whose extra read-only binds
//! from `ProtectSystem=` and friends are not the host's) and find
//!
//! - anything mounted over or inside a sealed path (a manifest path not under an excluded
//!   one) that the image did not mount itself ([`declared`]: the config's volume mount points,
//!   the image's `/etc/fstab`, and the `.mount`/`.automount` units the image ships);
//! - a root that is not read-only, or (when `pyre init` set up this boot) not mounted from
//!   pyre's dm-verity device, or (without pyre's initramfs) no longer the device it was
//!   mounted from when the daemon started.
//!
//! Mounts under excluded paths (/proc, /sys, /dev, /run, /tmp, /var in pyre's images) are
//! never findings: their contents are not sealed.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{is_at_or_below, Check, Found, Outcome, RootState, Sealed};
use crate::enforce::report::{Check as Kind, Finding};
use crate::host::dm::VERITY_ROOT_NAME;
use crate::manifest::escape::escape;
use crate::sys::mountinfo::{self, Mount};

/// Where systemd looks for units in an image (mount units found there are the image's own).
const UNIT_DIRS: [&str; 3] = [
    "/etc/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Mount points the image declares: the config's volume mount points, the `/etc/fstab` of the
/// live root (sealed, so the image's), and the paths named by the mount and automount units
/// among the sealed paths. A mount at or below one of them is the image's own.
pub fn declared(root: &Path, sealed: &Sealed, volumes: &[String]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = volumes.iter().map(|v| v.as_bytes().to_vec()).collect();
    if let Ok(text) = std::fs::read(root.join("etc/fstab")) {
        out.extend(fstab_mount_points(&text));
    }
    for p in &sealed.paths {
        let Some(i) = p.iter().rposition(|&b| b == b'/') else {
            continue;
        };
        let (dir, name) = (&p[..i], &p[i + 1..]);
        if UNIT_DIRS.iter().any(|d| d.as_bytes() == dir) {
            out.extend(unit_mount_point(name));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The mount points (second field) of an fstab(5) text; swap and `none` are not mount points.
pub fn fstab_mount_points(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut f = line
                .split(|&b| b == b' ' || b == b'\t')
                .filter(|f| !f.is_empty());
            let spec = f.next()?;
            let file = f.next()?;
            (!spec.starts_with(b"#") && file.starts_with(b"/")).then(|| unescape_octal(file))
        })
        .collect()
}

fn unescape_octal(f: &[u8]) -> Vec<u8> {
    // fstab and mountinfo share the `\040` escapes: reuse the mountinfo parser on one line.
    let line = [b"1 1 0:0 / ".as_slice(), f, b" rw - x x rw"].concat();
    mountinfo::parse(&line)
        .pop()
        .map_or_else(|| f.to_vec(), |m| m.mount_point)
}

/// The path a systemd `.mount`/`.automount` unit name stands for (systemd.unit(5) escaping:
/// `-` is `/`, `\xNN` a byte), e.g. `srv-data.mount` → `/srv/data`.
pub fn unit_mount_point(name: &[u8]) -> Option<Vec<u8>> {
    let stem = name
        .strip_suffix(b".mount")
        .or_else(|| name.strip_suffix(b".automount"))?;
    if stem == b"-" {
        return Some(b"/".to_vec());
    }
    let mut out = vec![b'/'];
    let mut i = 0;
    while i < stem.len() {
        match stem[i] {
            b'-' => out.push(b'/'),
            b'\\' if stem.get(i + 1) == Some(&b'x') => {
                let hex = std::str::from_utf8(stem.get(i + 2..i + 4)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

/// Mounts over or inside sealed paths that are not at or below a declared mount point.
pub fn foreign_mounts(mounts: &[Mount], sealed: &Sealed, declared: &[Vec<u8>]) -> Vec<Finding> {
    mounts
        .iter()
        .filter(|m| m.mount_point != b"/")
        .filter(|m| !declared.iter().any(|d| is_at_or_below(&m.mount_point, d)))
        .filter_map(|m| {
            let covered = sealed.covering(&m.mount_point)?;
            Some(Finding::Mount {
                path: escape(&m.mount_point),
                fstype: m.fstype.clone(),
                source: m.source.clone(),
                sealed: escape(covered),
            })
        })
        .collect()
}

/// What the root must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootExpectation {
    /// `pyre init` opened it: pyre's dm-verity device.
    Verity,
    /// Another initramfs: the device it was on when the daemon started (`major:minor`).
    SameDevice(String),
}

/// The root finding, if the root (`/`'s last mount) is not what it must be; `dm_name` is the
/// device-mapper name of its device.
pub fn root_finding(
    root: &Mount,
    dm_name: Option<&str>,
    want: &RootExpectation,
) -> Option<Finding> {
    let what = format!("{} ({}, {})", root.dev, root.source, root.fstype);
    let detail = if !root.read_only() {
        format!("the root {what} is mounted read-write")
    } else {
        match want {
            RootExpectation::Verity if dm_name != Some(VERITY_ROOT_NAME) => format!(
                "the root {what} is not pyre's dm-verity device {VERITY_ROOT_NAME}{}",
                dm_name.map_or(String::new(), |n| format!(" (device-mapper name {n:?})"))
            ),
            RootExpectation::SameDevice(dev) if *dev != root.dev => {
                format!("the root is now {what}, not device {dev} it was on at start")
            }
            _ => return None,
        }
    };
    Some(Finding::Root { detail })
}

/// The last mount on `/`: the root in effect.
pub fn root_mount(mounts: &[Mount]) -> Option<&Mount> {
    mounts.iter().rfind(|m| m.mount_point == b"/")
}

/// The device-mapper name of block device `dev` (`major:minor`), from sysfs.
pub fn dm_name(sys: &Path, dev: &str) -> Option<String> {
    let name = std::fs::read_to_string(sys.join("dev/block").join(dev).join("dm/name")).ok()?;
    Some(name.trim_end().to_string())
}

/// The mounts check (see the module docs).
pub struct MountsCheck {
    mountinfo: PathBuf,
    sys: PathBuf,
    sealed: Arc<Sealed>,
    declared: Vec<Vec<u8>>,
    want: RootExpectation,
    root: RootState,
}

impl MountsCheck {
    /// `mountinfo` is PID 1's; `sys` is sysfs. Without `verity_boot` (pyre init did not set up
    /// this boot) the root must stay on the device it is on now.
    pub fn new(
        mountinfo: PathBuf,
        sys: PathBuf,
        sealed: Arc<Sealed>,
        declared: Vec<Vec<u8>>,
        verity_boot: bool,
    ) -> MountsCheck {
        let want = if verity_boot {
            RootExpectation::Verity
        } else {
            let now = std::fs::read(&mountinfo)
                .ok()
                .and_then(|t| root_mount(&mountinfo::parse(&t)).map(|m| m.dev.clone()));
            RootExpectation::SameDevice(now.unwrap_or_default())
        };
        MountsCheck {
            mountinfo,
            sys,
            sealed,
            declared,
            want,
            root: RootState::default(),
        }
    }
}

impl Check for MountsCheck {
    fn kind(&self) -> Kind {
        Kind::Mounts
    }

    fn run(&mut self) -> Outcome {
        let text = match std::fs::read(&self.mountinfo) {
            Ok(t) => t,
            Err(e) => {
                return Outcome::Failed(format!(
                    "reading the mount table {}: {e}",
                    self.mountinfo.display()
                ))
            }
        };
        let mounts = mountinfo::parse(&text);
        let Some(root) = root_mount(&mounts) else {
            return Outcome::Failed(format!("no mount on / in {}", self.mountinfo.display()));
        };
        let dm = dm_name(&self.sys, &root.dev);
        self.root = RootState {
            device: Some(root.dev.clone()),
            source: Some(root.source.clone()),
            fstype: Some(root.fstype.clone()),
            read_only: Some(root.read_only()),
            dm_name: dm.clone(),
            verity: None,
        };
        let mut findings: Vec<Finding> = root_finding(root, dm.as_deref(), &self.want)
            .into_iter()
            .collect();
        findings.extend(foreign_mounts(&mounts, &self.sealed, &self.declared));
        if findings.is_empty() {
            return Outcome::Clean(format!(
                "{} mounts, none over sealed paths; root {} read-only",
                mounts.len(),
                root.dev
            ));
        }
        let described: Vec<String> = findings.iter().map(describe).collect();
        Outcome::Found(Found {
            reason: described.join("; "),
            key: described.join("\n"),
            findings,
            drift: None,
        })
    }

    fn root_state(&self, root: &mut RootState) {
        let verity = root.verity.take();
        *root = self.root.clone();
        root.verity = verity;
    }
}

fn describe(f: &Finding) -> String {
    match f {
        Finding::Mount {
            path,
            fstype,
            source,
            sealed,
        } if path == sealed => format!("{fstype} {source} mounted over sealed {path}"),
        Finding::Mount {
            path,
            fstype,
            source,
            sealed,
        } => format!("{fstype} {source} mounted on {path} inside sealed {sealed}"),
        Finding::Root { detail } => detail.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
#[path = "mounts_tests.rs"]
mod tests;

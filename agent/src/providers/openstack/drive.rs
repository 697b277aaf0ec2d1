//! The OpenStack config drive: a small ISO 9660 (or VFAT) filesystem labelled `config-2`.
//! Found by reading volume labels straight off the block devices listed in sysfs (no blkid,
//! no udev), then mounted read-only in a private place, read, and unmounted.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::super::{read_capped, HostPaths, ProviderError};

pub const LABEL: &str = "config-2";
pub const USER_DATA: &str = "openstack/latest/user_data";

/// Finding and reading the drive; the real one touches devices and mounts, tests fake it.
pub trait DriveAccess: Send + Sync {
    /// The config drive's device and filesystem type, if this machine has one.
    fn find(&self) -> Option<(PathBuf, &'static str)>;
    /// `openstack/latest/user_data` from the drive; `Ok(None)` when the drive has none.
    fn read_user_data(&self, dev: &Path, fstype: &str) -> Result<Option<Vec<u8>>, ProviderError>;
}

/// The volume label of an ISO 9660 or FAT filesystem at the start of `r`, with its type.
pub fn probe_label(r: &mut (impl Read + Seek)) -> Option<(String, &'static str)> {
    let mut pvd = [0u8; 72];
    if r.seek(SeekFrom::Start(32768)).is_ok()
        && r.read_exact(&mut pvd).is_ok()
        && pvd[0] == 1
        && &pvd[1..6] == b"CD001"
    {
        return Some((text(&pvd[40..72]), "iso9660"));
    }
    let mut boot = [0u8; 512];
    r.seek(SeekFrom::Start(0)).ok()?;
    r.read_exact(&mut boot).ok()?;
    if boot[510..512] != [0x55, 0xaa] {
        return None;
    }
    // FAT32 keeps its extended BPB (signature 0x29) at 66, FAT12/16 at 38.
    if &boot[82..90] == b"FAT32   " && boot[66] == 0x29 {
        return Some((text(&boot[71..82]), "vfat"));
    }
    if boot[38] == 0x29 && boot[54..57] == *b"FAT" {
        return Some((text(&boot[43..54]), "vfat"));
    }
    None
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches([' ', '\0'])
        .to_string()
}

/// Scan `{sysfs}/class/block/*` and probe `{dev}/<name>` for the `config-2` label.
pub fn find_config_drive(sysfs: &Path, dev: &Path) -> Option<(PathBuf, &'static str)> {
    let mut names: Vec<String> = std::fs::read_dir(sysfs.join("class/block"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with("ram") && !n.starts_with("loop") && !n.starts_with("dm-"))
        .collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let path = dev.join(&name);
        let mut f = File::open(&path).ok()?;
        match probe_label(&mut f) {
            Some((label, fstype)) if label.eq_ignore_ascii_case(LABEL) => Some((path, fstype)),
            _ => None,
        }
    })
}

/// The real drive access: sysfs scan, then mount with nix.
pub struct ConfigDrive {
    sysfs: PathBuf,
    dev: PathBuf,
    /// A private mount point, created and removed around the read.
    mountpoint: PathBuf,
    cap: u64,
}

impl ConfigDrive {
    pub fn real(paths: &HostPaths, cap: u64) -> Box<dyn DriveAccess> {
        Box::new(ConfigDrive {
            sysfs: paths.sysfs.clone(),
            dev: paths.dev.clone(),
            mountpoint: "/run/pyre/config-drive".into(),
            cap,
        })
    }
}

impl DriveAccess for ConfigDrive {
    fn find(&self) -> Option<(PathBuf, &'static str)> {
        find_config_drive(&self.sysfs, &self.dev)
    }

    // TODO: go through the host's mount capability (and its unmount-on-drop value) once
    // `host/` is split into small traits; today this is the only direct mount in providers.
    fn read_user_data(&self, dev: &Path, fstype: &str) -> Result<Option<Vec<u8>>, ProviderError> {
        use nix::mount::{mount, umount2, MntFlags, MsFlags};
        let io = |path: &Path, e: std::io::Error| ProviderError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        std::fs::create_dir_all(&self.mountpoint).map_err(|e| io(&self.mountpoint, e))?;
        let flags =
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(
            Some(dev),
            &self.mountpoint,
            Some(fstype),
            flags,
            None::<&str>,
        )
        .map_err(|e| io(dev, std::io::Error::from_raw_os_error(e as i32)))?;
        let file = self.mountpoint.join(USER_DATA);
        let result = match read_capped(&file, self.cap) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(None),
            Ok(b) => Ok(Some(b)),
            Err(ProviderError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = umount2(&self.mountpoint, MntFlags::empty()) {
            log::warn!("unmounting {}: {e}; detaching", self.mountpoint.display());
            let _ = umount2(&self.mountpoint, MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir(&self.mountpoint);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    pub fn iso(label: &str) -> Vec<u8> {
        let mut img = vec![0u8; 32768 + 2048];
        img[32768] = 1;
        img[32769..32774].copy_from_slice(b"CD001");
        let mut id = [b' '; 32];
        id[..label.len()].copy_from_slice(label.as_bytes());
        img[32768 + 40..32768 + 72].copy_from_slice(&id);
        img
    }

    fn fat16(label: &str) -> Vec<u8> {
        let mut img = vec![0u8; 4096];
        img[38] = 0x29;
        let mut l = [b' '; 11];
        l[..label.len()].copy_from_slice(label.as_bytes());
        img[43..54].copy_from_slice(&l);
        img[54..62].copy_from_slice(b"FAT16   ");
        img[510] = 0x55;
        img[511] = 0xaa;
        img
    }

    #[test]
    fn probes_labels() {
        assert_eq!(
            probe_label(&mut Cursor::new(iso("config-2"))),
            Some(("config-2".into(), "iso9660"))
        );
        assert_eq!(
            probe_label(&mut Cursor::new(fat16("CONFIG-2"))),
            Some(("CONFIG-2".into(), "vfat"))
        );
        assert_eq!(probe_label(&mut Cursor::new(vec![0u8; 100])), None);
        assert_eq!(probe_label(&mut Cursor::new(vec![0u8; 40000])), None);
    }

    #[test]
    fn finds_the_drive_among_block_devices() {
        let d = tempfile::tempdir().unwrap();
        let (sys, dev) = (d.path().join("sys"), d.path().join("dev"));
        for name in ["vda", "vdb", "loop0", "sr0"] {
            std::fs::create_dir_all(sys.join("class/block").join(name)).unwrap();
        }
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("vda"), vec![0u8; 40000]).unwrap();
        std::fs::write(dev.join("loop0"), iso("config-2")).unwrap();
        std::fs::write(dev.join("vdb"), iso("other")).unwrap();
        // sr0 has no node: skipped.
        assert_eq!(find_config_drive(&sys, &dev), None);
        std::fs::write(dev.join("vdb"), fat16("config-2")).unwrap();
        assert_eq!(
            find_config_drive(&sys, &dev),
            Some((dev.join("vdb"), "vfat"))
        );
    }
}

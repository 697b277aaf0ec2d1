//! QEMU: the config as the fw_cfg blob `opt/org.pyre/config` (`-fw_cfg
//! name=opt/org.pyre/config,file=F`), read from sysfs. The `qemu_fw_cfg` module must be loaded
//! first (the boot's job, from the initramfs' module list); without it the firmware directory
//! is absent and the answer is unknown, not "no config".
use std::path::{Path, PathBuf};

use super::{read_capped, MetadataProvider, ProviderError, ProviderKind};

pub const FW_CFG_DIR: &str = "firmware/qemu_fw_cfg";
pub const ENTRY: &str = "opt/org.pyre/config";

pub struct Qemu {
    fw_cfg: PathBuf,
    cap: u64,
}

impl Qemu {
    /// `sysfs` is `/sys` (a parameter for tests).
    pub fn new(sysfs: &Path, cap: u64) -> Qemu {
        Qemu {
            fw_cfg: sysfs.join(FW_CFG_DIR),
            cap,
        }
    }
}

impl MetadataProvider for Qemu {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Qemu
    }

    fn config(&self) -> Result<Option<Vec<u8>>, ProviderError> {
        if !self.fw_cfg.is_dir() {
            return Err(ProviderError::Unavailable {
                what: self.fw_cfg.display().to_string(),
                why: "no fw_cfg in sysfs (is the qemu_fw_cfg module loaded?)".into(),
            });
        }
        let raw = self.fw_cfg.join("by_name").join(ENTRY).join("raw");
        match read_capped(&raw, self.cap) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(None),
            Ok(b) => Ok(Some(b)),
            Err(ProviderError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Failure;

    #[test]
    fn reads_the_blob_or_says_none() {
        let d = tempfile::tempdir().unwrap();
        let q = Qemu::new(d.path(), 16);
        let e = q.config().unwrap_err();
        assert_eq!(e.failure(), Failure::Unreachable);
        assert!(e.to_string().contains("qemu_fw_cfg module loaded"), "{e}");

        let by_name = d.path().join(FW_CFG_DIR).join("by_name");
        std::fs::create_dir_all(&by_name).unwrap();
        assert_eq!(q.config().unwrap(), None);

        let entry = by_name.join(ENTRY);
        std::fs::create_dir_all(&entry).unwrap();
        std::fs::write(entry.join("raw"), "{\"version\":1}").unwrap();
        assert_eq!(
            q.config().unwrap().as_deref(),
            Some(b"{\"version\":1}".as_slice())
        );

        std::fs::write(entry.join("raw"), "x".repeat(17)).unwrap();
        let e = q.config().unwrap_err();
        assert_eq!(e.failure(), Failure::Refused);
        assert!(e.to_string().ends_with("is larger than 16 bytes"), "{e}");
    }
}

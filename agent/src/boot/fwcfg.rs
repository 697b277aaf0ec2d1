//! QEMU's fw_cfg needs the `qemu_fw_cfg` module. pyre's initramfs loads it; an image booted
//! by another initramfs may not have, so `pyre boot` loads it (and what it depends on, from
//! `modules.dep`) through the `Modules` capability when sysfs has no fw_cfg directory.
use std::path::{Path, PathBuf};

use crate::host::Modules;
use crate::providers::qemu::FW_CFG_DIR;

pub const MODULE: &str = "qemu_fw_cfg";

/// The module files to load for `name`, dependencies first, from a `modules.dep` text whose
/// paths are relative to `dir`.
pub fn load_order(dir: &Path, dep: &str, name: &str) -> Option<Vec<PathBuf>> {
    let line = dep.lines().find(|l| {
        l.split(':').next().is_some_and(|p| {
            let file = p.rsplit('/').next().unwrap_or(p);
            let stem = file.split(".ko").next().unwrap_or(file);
            stem.replace('-', "_") == name
        })
    })?;
    let (module, deps) = line.split_once(':')?;
    // modules.dep lists the direct and indirect dependencies, the deepest last.
    let mut order: Vec<PathBuf> = deps.split_whitespace().rev().map(|d| dir.join(d)).collect();
    order.push(dir.join(module.trim()));
    Some(order)
}

/// Make sure `<sys>/firmware/qemu_fw_cfg` exists, loading the module if needed. Failures are
/// logged: the provider then reports fw_cfg as unreachable, which is the boot-critical error.
pub fn ensure(modules: &dyn Modules, sys: &Path, modules_dir: &Path) {
    if sys.join(FW_CFG_DIR).is_dir() {
        return;
    }
    let dep_path = modules_dir.join("modules.dep");
    let dep = match std::fs::read_to_string(&dep_path) {
        Ok(d) => d,
        Err(e) => {
            log::warn!("no fw_cfg in sysfs and {}: {e}", dep_path.display());
            return;
        }
    };
    let Some(order) = load_order(modules_dir, &dep, MODULE) else {
        log::warn!(
            "no fw_cfg in sysfs and no {MODULE} in {}",
            dep_path.display()
        );
        return;
    };
    for m in order {
        match modules.finit_module(&m) {
            Ok(()) => log::info!("loaded {}", m.display()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => log::warn!("loading {}: {e}", m.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Op, RecordingHost};

    const DEP: &str =
        "kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz\n\
                       kernel/drivers/firmware/qemu_fw_cfg.ko.xz:\n";

    #[test]
    fn finds_the_module_and_its_dependencies() {
        let d = Path::new("/m");
        assert_eq!(
            load_order(d, DEP, MODULE).unwrap(),
            [d.join("kernel/drivers/firmware/qemu_fw_cfg.ko.xz")]
        );
        assert_eq!(
            load_order(d, DEP, "ext4").unwrap(),
            [
                d.join("kernel/fs/mbcache.ko.xz"),
                d.join("kernel/fs/jbd2/jbd2.ko.xz"),
                d.join("kernel/fs/ext4/ext4.ko.xz")
            ]
        );
        assert_eq!(load_order(d, DEP, "nvme"), None);
    }

    #[test]
    fn loads_only_when_sysfs_lacks_fw_cfg() {
        let t = tempfile::tempdir().unwrap();
        let (sys, mods) = (t.path().join("sys"), t.path().join("mods"));
        std::fs::create_dir_all(&mods).unwrap();
        std::fs::write(mods.join("modules.dep"), DEP).unwrap();
        let host = RecordingHost::new();
        ensure(&host, &sys, &mods);
        assert_eq!(
            host.ops(),
            [Op::FinitModule(
                mods.join("kernel/drivers/firmware/qemu_fw_cfg.ko.xz")
            )]
        );
        std::fs::create_dir_all(sys.join(FW_CFG_DIR)).unwrap();
        let host = RecordingHost::new();
        ensure(&host, &sys, &mods);
        assert!(host.ops().is_empty());
    }
}

//! The instance configs (config v1, docs/config.md) the QEMU scenarios and `pyre-demo` hand to
//! the guest, and the data disks they attach: a blank virtio disk pyre formats, and an NVMe disk
//! formatted beforehand (as an operator would) that pyre must only mount.
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::disk::{self, DiskError, ExtIdentity};
use crate::qemu::{blank_disk, Bus, QemuBuilder};

/// The blank data disk: serial, label pyre gives it, mountpoint, size.
pub const DATA_SERIAL: &str = "pyre-data-1";
pub const DATA_LABEL: &str = "data";
pub const DATA_MOUNT: &str = "/var/lib/data";
pub const DATA_BYTES: u64 = 256 << 20;
/// The pre-formatted NVMe disk (`format: never`).
pub const NVME_SERIAL: &str = "pyre-nvme-1";
pub const NVME_LABEL: &str = "logs";
pub const NVME_MOUNT: &str = "/var/lib/logs";
pub const NVME_BYTES: u64 = 64 << 20;

/// A volume entry: ext4, found by `serial`, mounted at `mountpoint`.
pub fn volume(name: &str, serial: &str, mountpoint: &str, format: &str, wait: &str) -> Value {
    json!({
        "name": name,
        "device": { "serial": serial },
        "filesystem": "ext4",
        "mountpoint": mountpoint,
        "format": format,
        "required": true,
        "wait": wait,
    })
}

/// A file entry (utf-8 content, mode 0644).
pub fn file(path: &str, content: &str) -> Value {
    json!({ "path": path, "mode": "0644", "content": content })
}

/// A config v1 document.
pub fn config(hostname: &str, files: Vec<Value>, volumes: Vec<Value>) -> Value {
    let mut c = json!({ "version": 1, "hostname": hostname });
    if !files.is_empty() {
        c["files"] = Value::Array(files);
    }
    if !volumes.is_empty() {
        c["volumes"] = Value::Array(volumes);
    }
    c
}

/// The two volumes every instance of the scenarios' server has: the data disk (formatted if
/// blank) and the NVMe disk (never formatted).
pub fn server_volumes() -> Vec<Value> {
    let mut data = volume("data", DATA_SERIAL, DATA_MOUNT, "if-blank", "30s");
    data["label"] = json!(DATA_LABEL);
    vec![
        data,
        volume("logs", NVME_SERIAL, NVME_MOUNT, "never", "30s"),
    ]
}

/// Write `config` as pretty JSON to `path`.
pub fn write(path: &Path, config: &Value) -> std::io::Result<PathBuf> {
    let text = serde_json::to_string_pretty(config).expect("a JSON value serializes");
    std::fs::write(path, text + "\n")?;
    Ok(path.to_path_buf())
}

/// The disks that outlive an instance, as image files in a scratch directory.
#[derive(Debug, Clone)]
pub struct ServerDisks {
    /// Blank when created; pyre formats it on the first boot.
    pub data: PathBuf,
    /// ext4 (label [`NVME_LABEL`]) from the start.
    pub nvme: PathBuf,
    /// The NVMe disk's filesystem as made on the host.
    pub nvme_id: ExtIdentity,
}

impl ServerDisks {
    pub fn create(dir: &Path) -> Result<ServerDisks, DiskError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DiskError::Io { path, source }
        };
        let data = dir.join("data.img");
        blank_disk(&data, DATA_BYTES).map_err(io(&data))?;
        let nvme = dir.join("nvme.img");
        blank_disk(&nvme, NVME_BYTES).map_err(io(&nvme))?;
        let nvme_id = disk::mkfs_ext4(&nvme, NVME_LABEL)?;
        Ok(ServerDisks {
            data,
            nvme,
            nvme_id,
        })
    }

    /// Attach both: the data disk on virtio, the other on its own NVMe controller.
    pub fn attach(&self, b: QemuBuilder) -> QemuBuilder {
        b.disk(Bus::Virtio, &self.data, DATA_SERIAL)
            .disk(Bus::Nvme, &self.nvme, NVME_SERIAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_config_v1_documents() {
        let c = config(
            "web-1",
            vec![file("/run/a", "x")],
            vec![volume("v", "s1", "/var/lib/v", "never", "5s")],
        );
        assert_eq!(
            c,
            json!({"version": 1, "hostname": "web-1",
                   "files": [{"path": "/run/a", "mode": "0644", "content": "x"}],
                   "volumes": [{"name": "v", "device": {"serial": "s1"}, "filesystem": "ext4",
                                "mountpoint": "/var/lib/v", "format": "never",
                                "required": true, "wait": "5s"}]})
        );
        assert_eq!(
            config("h", vec![], vec![]),
            json!({"version": 1, "hostname": "h"})
        );
        let v = server_volumes();
        assert_eq!(v[0]["label"], "data");
        assert_eq!(v[1]["device"]["serial"], NVME_SERIAL);
    }
}

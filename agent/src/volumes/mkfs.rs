//! The commands that make and grow filesystems. mkfs is never given a force flag: mkfs.xfs
//! then refuses on its own when it sees a signature, a second guard behind the re-probe.
use std::path::Path;

/// Grow only when the device is at least this much larger than the filesystem (filesystems
/// round their size down to whole blocks or groups).
pub const GROW_SLACK: u64 = 1 << 20;

/// `mkfs.ext4 -L data /dev/vdb`.
pub fn mkfs_command(fs: &str, label: Option<&str>, node: &Path) -> Option<(String, Vec<String>)> {
    let program = match fs {
        "ext4" => "mkfs.ext4",
        "xfs" => "mkfs.xfs",
        _ => return None,
    };
    let mut args = vec![];
    if let Some(l) = label {
        args.extend(["-L".to_string(), l.to_string()]);
    }
    args.push(node.display().to_string());
    Some((program.to_string(), args))
}

/// The online grow command for a mounted filesystem.
pub fn grow_command(fs: &str, node: &Path, mountpoint: &Path) -> Option<(String, Vec<String>)> {
    let (program, args) = match fs {
        "ext2" | "ext3" | "ext4" => ("resize2fs", vec![node.display().to_string()]),
        "xfs" => ("xfs_growfs", vec![mountpoint.display().to_string()]),
        "btrfs" => (
            "btrfs",
            vec![
                "filesystem".into(),
                "resize".into(),
                "max".into(),
                mountpoint.display().to_string(),
            ],
        ),
        _ => return None,
    };
    Some((program.to_string(), args))
}

/// Whether a filesystem of `fs_size` bytes should grow on a device of `device_size`.
pub fn should_grow(device_size: u64, fs_size: Option<u64>) -> bool {
    fs_size.is_some_and(|f| device_size >= f.saturating_add(GROW_SLACK))
}

/// `mkfs.ext4 -L data /dev/vdb` for logs.
pub fn shown(program: &str, args: &[String]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let (p, a) = mkfs_command("ext4", Some("data"), Path::new("/dev/vdb")).unwrap();
        assert_eq!(shown(&p, &a), "mkfs.ext4 -L data /dev/vdb");
        let (p, a) = mkfs_command("xfs", None, Path::new("/dev/vdb")).unwrap();
        assert_eq!(shown(&p, &a), "mkfs.xfs /dev/vdb");
        assert!(mkfs_command("btrfs", None, Path::new("/dev/vdb")).is_none());
        let m = Path::new("/var/lib/data");
        let (p, a) = grow_command("xfs", Path::new("/dev/vdb"), m).unwrap();
        assert_eq!(shown(&p, &a), "xfs_growfs /var/lib/data");
        let (p, a) = grow_command("ext4", Path::new("/dev/vdb"), m).unwrap();
        assert_eq!(shown(&p, &a), "resize2fs /dev/vdb");
        assert!(grow_command("vfat", Path::new("/dev/vdb"), m).is_none());
    }

    #[test]
    fn grow_only_past_the_slack() {
        assert!(!should_grow(100 << 20, Some(100 << 20)));
        assert!(!should_grow(100 << 20, Some((100 << 20) - 4096)));
        assert!(should_grow(101 << 20, Some(100 << 20)));
        assert!(!should_grow(1 << 30, None));
    }
}

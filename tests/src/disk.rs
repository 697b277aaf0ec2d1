//! Host-side views of the data-disk image files the scenarios attach: make an ext4 filesystem on
//! one (as an operator or a previous instance would), read its identity from the superblock, and
//! read a file out of it with `debugfs` — no loop device, no mount, nothing on the host's own
//! disks.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("running {command}: {why}")]
    Tool { command: String, why: String },
}

/// Where the ext2/3/4 superblock starts, and its fields (offsets inside it).
const SUPERBLOCK: u64 = 1024;
const MAGIC_AT: usize = 0x38;
const MAGIC: u16 = 0xEF53;
const UUID_AT: usize = 0x68;
const LABEL_AT: usize = 0x78;

/// What identifies an ext filesystem: what the guest's prober and `blkid` see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtIdentity {
    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower case.
    pub uuid: String,
    pub label: String,
}

/// The ext superblock identity of `img`, or `None` when it carries no ext superblock.
pub fn ext_identity(img: &Path) -> Result<Option<ExtIdentity>, DiskError> {
    let io = |source| DiskError::Io {
        path: img.to_path_buf(),
        source,
    };
    let mut f = File::open(img).map_err(io)?;
    let mut sb = [0u8; 1024];
    f.seek(SeekFrom::Start(SUPERBLOCK)).map_err(io)?;
    if let Err(e) = f.read_exact(&mut sb) {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Ok(None),
            _ => Err(io(e)),
        };
    }
    Ok(parse_superblock(&sb))
}

fn parse_superblock(sb: &[u8; 1024]) -> Option<ExtIdentity> {
    if u16::from_le_bytes([sb[MAGIC_AT], sb[MAGIC_AT + 1]]) != MAGIC {
        return None;
    }
    let u = &sb[UUID_AT..UUID_AT + 16];
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    let raw = &sb[LABEL_AT..LABEL_AT + 16];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let label = String::from_utf8_lossy(&raw[..end]).into_owned();
    Some(ExtIdentity { uuid, label })
}

/// Whether every byte of `img` is zero (a blank disk, as cloud volumes come).
pub fn is_blank(img: &Path) -> Result<bool, DiskError> {
    let io = |source| DiskError::Io {
        path: img.to_path_buf(),
        source,
    };
    let mut f = File::open(img).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

fn run(cmd: &mut Command) -> Result<(String, String), DiskError> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| DiskError::Tool {
        command: command.clone(),
        why: e.to_string(),
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(DiskError::Tool {
            command,
            why: format!("{}: {}", out.status, stderr.trim()),
        });
    }
    Ok((stdout, stderr))
}

/// `mkfs.ext4 -q -F -L LABEL IMG` on an image file (never a device).
pub fn mkfs_ext4(img: &Path, label: &str) -> Result<ExtIdentity, DiskError> {
    if !std::fs::metadata(img)
        .map(|m| m.file_type().is_file())
        .unwrap_or(false)
    {
        return Err(DiskError::Tool {
            command: format!("mkfs.ext4 {}", img.display()),
            why: "not a regular file: the scenarios only format image files".into(),
        });
    }
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label])
        .arg(img))?;
    ext_identity(img)?.ok_or_else(|| DiskError::Tool {
        command: format!("mkfs.ext4 {}", img.display()),
        why: "no ext superblock afterwards".into(),
    })
}

/// The content of `path` (absolute, inside the filesystem) on the ext image `img`, read with
/// `debugfs -R 'cat PATH'` (read-only); `None` when the file is not there.
pub fn read_file(img: &Path, path: &str) -> Result<Option<Vec<u8>>, DiskError> {
    let command = format!("debugfs -R 'cat {path}' {}", img.display());
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(img)
        .output()
        .map_err(|e| DiskError::Tool {
            command: command.clone(),
            why: e.to_string(),
        })?;
    // debugfs exits 0 even when the request fails; its complaints go to stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("File not found") {
        return Ok(None);
    }
    let failed = !out.status.success()
        || stderr
            .lines()
            .any(|l| !l.starts_with("debugfs ") && !l.trim().is_empty());
    if failed {
        return Err(DiskError::Tool {
            command,
            why: format!("{}: {}", out.status, stderr.trim()),
        });
    }
    Ok(Some(out.stdout))
}

/// The names in directory `path` of the ext image `img` (without `.` and `..`), read with
/// `debugfs -R 'ls -p PATH'`; `None` when the directory is not there.
pub fn list_dir(img: &Path, path: &str) -> Result<Option<Vec<String>>, DiskError> {
    let (stdout, stderr) = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("ls -p {path}"))
        .arg(img))?;
    if stderr.contains("File not found") {
        return Ok(None);
    }
    Ok(Some(parse_ls_p(&stdout)))
}

/// `debugfs ls -p` lines: `/inode/mode/uid/gid/name/size/`.
fn parse_ls_p(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('/').collect();
            (f.len() >= 7 && f[0].is_empty()).then(|| f[5..f.len() - 2].join("/"))
        })
        .filter(|n| n != "." && n != "..")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debugfs_ls_p() {
        let out = "/2/040755/0/0/.//\n/2/040755/0/0/..//\n/11/040700/0/0/lost+found//\n\
                   /12/100600/0/0/a-b.json/42/\n";
        assert_eq!(parse_ls_p(out), ["lost+found", "a-b.json"]);
    }

    #[test]
    fn reads_the_identity_from_a_superblock() {
        let mut sb = [0u8; 1024];
        assert_eq!(parse_superblock(&sb), None);
        sb[MAGIC_AT..MAGIC_AT + 2].copy_from_slice(&MAGIC.to_le_bytes());
        for (i, b) in sb[UUID_AT..UUID_AT + 16].iter_mut().enumerate() {
            *b = i as u8 * 0x11;
        }
        sb[LABEL_AT..LABEL_AT + 4].copy_from_slice(b"data");
        let id = parse_superblock(&sb).unwrap();
        assert_eq!(id.uuid, "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(id.label, "data");
    }

    /// The real tools, on a small image file (skipped where e2fsprogs is missing).
    #[test]
    fn formats_an_image_file_and_reads_files_back() {
        if Command::new("mkfs.ext4").arg("-V").output().is_err() {
            eprintln!("mkfs.ext4 not installed: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = crate::qemu::blank_disk(&dir.path().join("d.img"), 8 << 20).unwrap();
        assert!(is_blank(&img).unwrap());
        assert_eq!(ext_identity(&img).unwrap(), None);
        let id = mkfs_ext4(&img, "logs").unwrap();
        assert_eq!(id.label, "logs");
        assert_eq!(ext_identity(&img).unwrap(), Some(id));
        assert!(!is_blank(&img).unwrap());
        assert_eq!(read_file(&img, "/nothing-here").unwrap(), None);
        let src = dir.path().join("src.txt");
        std::fs::write(&src, "kept\n").unwrap();
        run(Command::new("debugfs")
            .args(["-w", "-R"])
            .arg(format!("write {} /kept.txt", src.display()))
            .arg(&img))
        .unwrap();
        assert_eq!(read_file(&img, "/kept.txt").unwrap().unwrap(), b"kept\n");
        assert_eq!(list_dir(&img, "/nothing-here").unwrap(), None);
        let names = list_dir(&img, "/").unwrap().unwrap();
        assert!(names.contains(&"kept.txt".to_string()), "{names:?}");
        assert!(names.contains(&"lost+found".to_string()), "{names:?}");
        let err = mkfs_ext4(dir.path(), "x").unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}

//! Just enough of the erofs on-disk format (uncompressed layouts) to find where a file's bytes
//! lie inside an image, so a test can change them without mounting anything.
//! Layout per linux/fs/erofs/erofs_fs.h.
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ErofsError {
    #[error("reading {image}: {source}")]
    Io {
        image: PathBuf,
        source: std::io::Error,
    },
    #[error("{image} is not an erofs image (bad superblock magic)")]
    NotErofs { image: PathBuf },
    #[error("{path} not found in {image}")]
    NotFound { image: PathBuf, path: String },
    #[error("{path} in {image} is not a {want}")]
    WrongType {
        image: PathBuf,
        path: String,
        want: &'static str,
    },
    #[error("{path} in {image} uses data layout {layout}, which this reader does not handle (compressed or chunked)")]
    Layout {
        image: PathBuf,
        path: String,
        layout: u16,
    },
    #[error("corrupt erofs metadata in {image}: {what}")]
    Corrupt { image: PathBuf, what: String },
}

const SUPER_OFFSET: u64 = 1024;
const MAGIC: u32 = 0xE0F5_E1E2;
const LAYOUT_FLAT_PLAIN: u16 = 0;
const LAYOUT_FLAT_INLINE: u16 = 2;
const S_IFMT: u16 = 0o170000;
const S_IFDIR: u16 = 0o040000;
const S_IFREG: u16 = 0o100000;

/// A byte range of the image holding consecutive bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Offset of the range in the image.
    pub physical: u64,
    /// Offset of the range in the file.
    pub logical: u64,
    pub len: u64,
}

struct Inode {
    mode: u16,
    size: u64,
    layout: u16,
    raw_blkaddr: u32,
    /// Where inline (tail-packed) data starts.
    inline_at: u64,
}

pub struct Erofs {
    file: File,
    image: PathBuf,
    blksz: u64,
    meta_base: u64,
    root_nid: u64,
}

impl Erofs {
    pub fn open(image: &Path) -> Result<Erofs, ErofsError> {
        let file = File::open(image).map_err(|source| ErofsError::Io {
            image: image.to_path_buf(),
            source,
        })?;
        let mut fs = Erofs {
            file,
            image: image.to_path_buf(),
            blksz: 4096,
            meta_base: 0,
            root_nid: 0,
        };
        let sb = fs.read(SUPER_OFFSET, 128)?;
        if le32(&sb, 0) != MAGIC {
            return Err(ErofsError::NotErofs {
                image: image.to_path_buf(),
            });
        }
        let bits = sb[12];
        if !(9..=16).contains(&bits) {
            return Err(fs.corrupt(format!("block size 2^{bits}")));
        }
        fs.blksz = 1 << bits;
        fs.root_nid = le16(&sb, 14) as u64;
        fs.meta_base = le32(&sb, 40) as u64 * fs.blksz;
        Ok(fs)
    }

    fn corrupt(&self, what: String) -> ErofsError {
        ErofsError::Corrupt {
            image: self.image.clone(),
            what,
        }
    }

    fn read(&self, at: u64, len: usize) -> Result<Vec<u8>, ErofsError> {
        let mut buf = vec![0; len];
        self.file
            .read_exact_at(&mut buf, at)
            .map_err(|source| ErofsError::Io {
                image: self.image.clone(),
                source,
            })?;
        Ok(buf)
    }

    fn inode(&self, nid: u64) -> Result<Inode, ErofsError> {
        let at = self.meta_base + nid * 32;
        let raw = self.read(at, 64)?;
        let format = le16(&raw, 0);
        let extended = format & 1 == 1;
        let xattr_icount = le16(&raw, 2) as u64;
        let (size, isize) = if extended {
            (le64(&raw, 8), 64)
        } else {
            (le32(&raw, 8) as u64, 32)
        };
        let xattr_size = if xattr_icount == 0 {
            0
        } else {
            12 + (xattr_icount - 1) * 4
        };
        Ok(Inode {
            mode: le16(&raw, 4),
            size,
            layout: (format >> 1) & 0x7,
            raw_blkaddr: le32(&raw, 16),
            inline_at: at + isize + xattr_size,
        })
    }

    /// Where the bytes of `inode` lie.
    fn extents(&self, ino: &Inode, path: &str) -> Result<Vec<Extent>, ErofsError> {
        let blocks = ino.size.div_ceil(self.blksz);
        let start = ino.raw_blkaddr as u64 * self.blksz;
        let mut out = Vec::new();
        match ino.layout {
            LAYOUT_FLAT_PLAIN if ino.size > 0 => out.push(Extent {
                physical: start,
                logical: 0,
                len: ino.size,
            }),
            LAYOUT_FLAT_PLAIN => {}
            LAYOUT_FLAT_INLINE => {
                let full = blocks.saturating_sub(1) * self.blksz;
                if full > 0 {
                    out.push(Extent {
                        physical: start,
                        logical: 0,
                        len: full,
                    });
                }
                if ino.size > full {
                    out.push(Extent {
                        physical: ino.inline_at,
                        logical: full,
                        len: ino.size - full,
                    });
                }
            }
            layout => {
                return Err(ErofsError::Layout {
                    image: self.image.clone(),
                    path: path.to_string(),
                    layout,
                })
            }
        }
        Ok(out)
    }

    fn contents(&self, ino: &Inode, path: &str) -> Result<Vec<u8>, ErofsError> {
        let mut data = Vec::with_capacity(ino.size as usize);
        for e in self.extents(ino, path)? {
            data.extend(self.read(e.physical, e.len as usize)?);
        }
        Ok(data)
    }

    /// The entries of a directory: (name, nid).
    fn dir_entries(&self, ino: &Inode, path: &str) -> Result<Vec<(Vec<u8>, u64)>, ErofsError> {
        let data = self.contents(ino, path)?;
        let mut out = Vec::new();
        for block in data.chunks(self.blksz as usize) {
            if block.len() < 12 {
                return Err(self.corrupt(format!("short directory block in {path}")));
            }
            let count = le16(block, 8) as usize / 12;
            if count == 0 || count * 12 > block.len() {
                return Err(self.corrupt(format!("bad dirent count in {path}")));
            }
            for i in 0..count {
                let d = &block[i * 12..];
                let nid = le64(d, 0);
                let start = le16(d, 8) as usize;
                let end = if i + 1 < count {
                    le16(&block[(i + 1) * 12..], 8) as usize
                } else {
                    block.len()
                };
                let name = block
                    .get(start..end)
                    .ok_or_else(|| self.corrupt(format!("bad dirent name in {path}")))?;
                let name = name.split(|&b| b == 0).next().unwrap_or_default();
                out.push((name.to_vec(), nid));
            }
        }
        Ok(out)
    }

    fn lookup(&self, path: &str) -> Result<Inode, ErofsError> {
        let mut ino = self.inode(self.root_nid)?;
        let mut so_far = String::new();
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            if ino.mode & S_IFMT != S_IFDIR {
                return Err(ErofsError::WrongType {
                    image: self.image.clone(),
                    path: so_far,
                    want: "directory",
                });
            }
            let entries = self.dir_entries(&ino, &so_far)?;
            so_far = format!("{so_far}/{comp}");
            let nid = entries
                .iter()
                .find(|(n, _)| n.as_slice() == comp.as_bytes())
                .map(|&(_, nid)| nid)
                .ok_or_else(|| ErofsError::NotFound {
                    image: self.image.clone(),
                    path: so_far.clone(),
                })?;
            ino = self.inode(nid)?;
        }
        Ok(ino)
    }

    /// Where the bytes of the regular file `path` (absolute in the image) lie.
    pub fn file_extents(&self, path: &str) -> Result<Vec<Extent>, ErofsError> {
        let ino = self.lookup(path)?;
        if ino.mode & S_IFMT != S_IFREG {
            return Err(ErofsError::WrongType {
                image: self.image.clone(),
                path: path.to_string(),
                want: "regular file",
            });
        }
        self.extents(&ino, path)
    }

    /// The contents of the regular file `path`.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, ErofsError> {
        let ino = self.lookup(path)?;
        if ino.mode & S_IFMT != S_IFREG {
            return Err(ErofsError::WrongType {
                image: self.image.clone(),
                path: path.to_string(),
                want: "regular file",
            });
        }
        self.contents(&ino, path)
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    /// An erofs image built by mkfs.erofs from a small tree: (tempdir, image path, tree).
    pub(crate) fn build_image() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("usr/lib")).unwrap();
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        let big: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(tree.join("usr/lib/big.bin"), &big).unwrap();
        std::fs::write(tree.join("usr/lib/os-release"), b"NAME=\"Test\"\nID=test\n").unwrap();
        std::fs::write(tree.join("etc/empty"), b"").unwrap();
        std::fs::write(tree.join("etc/exact"), vec![b'e'; 8192]).unwrap();
        for i in 0..300 {
            std::fs::write(tree.join(format!("etc/f{i:03}")), format!("file {i}\n")).unwrap();
        }
        std::os::unix::fs::symlink("../usr/lib/os-release", tree.join("etc/os-release")).unwrap();
        let image = dir.path().join("root.erofs");
        let st = Command::new("mkfs.erofs")
            .arg("-T0")
            .arg(&image)
            .arg(&tree)
            .output()
            .expect("mkfs.erofs is needed for this test (make deps)");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        (dir, image, tree)
    }

    #[test]
    fn reads_back_every_file_mkfs_wrote() {
        let (_d, image, tree) = build_image();
        let fs = Erofs::open(&image).unwrap();
        for rel in [
            "usr/lib/big.bin",
            "usr/lib/os-release",
            "etc/empty",
            "etc/exact",
            "etc/f299",
        ] {
            let want = std::fs::read(tree.join(rel)).unwrap();
            assert_eq!(fs.read_file(&format!("/{rel}")).unwrap(), want, "{rel}");
        }
        let ext = fs.file_extents("/usr/lib/big.bin").unwrap();
        assert_eq!(ext.iter().map(|e| e.len).sum::<u64>(), 20_000);
        assert_eq!(ext[0].logical, 0);
    }

    #[test]
    fn errors_name_what_was_wrong() {
        let (_d, image, _t) = build_image();
        let fs = Erofs::open(&image).unwrap();
        let e = fs.read_file("/usr/nope").unwrap_err().to_string();
        assert!(e.starts_with("/usr/nope not found in"), "{e}");
        let e = fs.read_file("/usr/lib").unwrap_err().to_string();
        assert!(
            e.contains("/usr/lib in") && e.ends_with("is not a regular file"),
            "{e}"
        );
        let e = fs.read_file("/etc/os-release").unwrap_err().to_string();
        assert!(e.ends_with("is not a regular file"), "{e}");
        let e = fs.read_file("/etc/empty/x").unwrap_err().to_string();
        assert!(e.ends_with("is not a directory"), "{e}");
        let e = Erofs::open(&_t.join("usr/lib/big.bin"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.ends_with("is not an erofs image (bad superblock magic)"),
            "{e}"
        );
    }
}

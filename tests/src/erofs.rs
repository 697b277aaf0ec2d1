//! Where a file's bytes lie inside an erofs image, from erofs-utils' own `dump.erofs --path=P -e`
//! (no format parsing of our own), so a test can change them without mounting anything.
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ErofsError {
    #[error("running dump.erofs on {image}: {source} (erofs-utils: make deps)")]
    Run {
        image: PathBuf,
        source: std::io::Error,
    },
    #[error("dump.erofs --path={path} -e {image} failed: {stderr}")]
    Failed {
        image: PathBuf,
        path: String,
        stderr: String,
    },
    #[error("{path} not found in {image}")]
    NotFound { image: PathBuf, path: String },
    #[error("{path} in {image} is a {found}, not a regular file")]
    WrongType {
        image: PathBuf,
        path: String,
        found: String,
    },
    #[error("{path} in {image} uses data layout {layout}, whose extents are not the file's bytes (compressed or chunked)")]
    Layout {
        image: PathBuf,
        path: String,
        layout: u32,
    },
    #[error("dump.erofs output for {path} in {image} not understood: {what}")]
    Output {
        image: PathBuf,
        path: String,
        what: String,
    },
}

/// A byte range of the image holding consecutive bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Offset of the range in the image.
    pub physical: u64,
    /// Offset of the range in the file.
    pub logical: u64,
    pub len: u64,
}

/// Flat layouts: plain blocks (0) and blocks plus an inline tail (2); their extents are the
/// file's own bytes. Compressed (1, 3, 4) and chunked (4) layouts are not.
const FLAT_LAYOUTS: [u32; 2] = [0, 2];

/// Where the bytes of the regular file `path` (absolute in the image) lie in `image`.
pub fn file_extents(image: &Path, path: &str) -> Result<Vec<Extent>, ErofsError> {
    let out = Command::new("dump.erofs")
        .arg(format!("--path={path}"))
        .arg("-e")
        .arg(image)
        .output()
        .map_err(|source| ErofsError::Run {
            image: image.to_path_buf(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // dump.erofs 1.5 exits 0 on a missing path and says so on stderr only.
    if !stdout.contains("File : ") {
        if stderr.contains("read inode failed") || stderr.contains("No such file") {
            return Err(ErofsError::NotFound {
                image: image.to_path_buf(),
                path: path.to_string(),
            });
        }
        return Err(ErofsError::Failed {
            image: image.to_path_buf(),
            path: path.to_string(),
            stderr: stderr.trim().to_string(),
        });
    }
    parse(&stdout).map_err(|e| match e {
        Parsed::Type(found) => ErofsError::WrongType {
            image: image.to_path_buf(),
            path: path.to_string(),
            found,
        },
        Parsed::Layout(layout) => ErofsError::Layout {
            image: image.to_path_buf(),
            path: path.to_string(),
            layout,
        },
        Parsed::Output(what) => ErofsError::Output {
            image: image.to_path_buf(),
            path: path.to_string(),
            what,
        },
    })
}

enum Parsed {
    Type(String),
    Layout(u32),
    Output(String),
}

/// Parse `dump.erofs --path=P -e` output: the size/type line, the layout, the extent table
/// (`  0:        0..   16384 |   16384 :       4096..     20480 |   16384`).
fn parse(text: &str) -> Result<Vec<Extent>, Parsed> {
    let bad = |what: &str| Parsed::Output(what.to_string());
    let size_line = text
        .lines()
        .find(|l| l.starts_with("Size: "))
        .ok_or_else(|| bad("no Size line"))?;
    let kind = size_line
        .rsplit("  ")
        .next()
        .map(str::trim)
        .unwrap_or_default();
    if kind != "regular file" {
        return Err(Parsed::Type(kind.to_string()));
    }
    let size: u64 = size_line["Size: ".len()..]
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no size"))?;
    let layout: u32 = text
        .split("Layout: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no Layout field"))?;
    if !FLAT_LAYOUTS.contains(&layout) {
        return Err(Parsed::Layout(layout));
    }
    let mut extents = Vec::new();
    for line in text.lines() {
        let Some((idx, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // "<lstart>..<lend> | <llen> : <pstart>..<pend> | <plen>"
        let nums: Vec<u64> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| bad(line)))
            .collect::<Result<_, _>>()?;
        let [lstart, lend, llen, pstart, pend, plen] = nums[..] else {
            return Err(bad(line));
        };
        if lend - lstart != llen || pend - pstart != plen || llen != plen {
            return Err(bad(line));
        }
        extents.push(Extent {
            physical: pstart,
            logical: lstart,
            len: llen,
        });
    }
    let covered: u64 = extents.iter().map(|e| e.len).sum();
    if covered != size {
        return Err(Parsed::Output(format!(
            "extents cover {covered} bytes of a {size}-byte file"
        )));
    }
    Ok(extents)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

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

    /// The file's bytes as read from the image at the extents dump.erofs gives.
    pub(crate) fn read_file(image: &Path, path: &str) -> Vec<u8> {
        let f = std::fs::File::open(image).unwrap();
        let mut data = Vec::new();
        for e in file_extents(image, path).unwrap() {
            assert_eq!(e.logical, data.len() as u64, "{path}: extents in order");
            let mut buf = vec![0; e.len as usize];
            f.read_exact_at(&mut buf, e.physical).unwrap();
            data.extend(buf);
        }
        data
    }

    /// The guard: the extents dump.erofs prints are where mkfs.erofs put each file's bytes
    /// (whole blocks, inline tails, exact block multiples, empty files), so flipping a byte
    /// at one of them changes that file.
    #[test]
    fn dump_erofs_extents_are_the_files_bytes() {
        let (_d, image, tree) = build_image();
        for rel in [
            "usr/lib/big.bin",
            "usr/lib/os-release",
            "etc/empty",
            "etc/exact",
            "etc/f299",
        ] {
            let want = std::fs::read(tree.join(rel)).unwrap();
            assert_eq!(read_file(&image, &format!("/{rel}")), want, "{rel}");
        }
        assert!(file_extents(&image, "/etc/empty").unwrap().is_empty());
        let big = file_extents(&image, "/usr/lib/big.bin").unwrap();
        assert!(big.len() >= 2, "blocks and an inline tail: {big:?}");
    }

    #[test]
    fn errors_name_what_was_wrong() {
        let (_d, image, tree) = build_image();
        let e = file_extents(&image, "/usr/nope").unwrap_err().to_string();
        assert!(e.starts_with("/usr/nope not found in"), "{e}");
        let e = file_extents(&image, "/usr/lib").unwrap_err().to_string();
        assert!(e.ends_with("is a directory, not a regular file"), "{e}");
        let e = file_extents(&image, "/etc/os-release")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("is a symlink file, not a regular file"), "{e}");
        let e = file_extents(&tree.join("usr/lib/big.bin"), "/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("failed: ") && e.contains("superblock"), "{e}");
    }
}

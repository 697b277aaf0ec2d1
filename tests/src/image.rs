//! Where the built image lives, what it is made of, and its kernel command line.
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "no image in {dir}: {missing} is missing; run `make image` first (or set PYRE_IMAGE_DIR)"
    )]
    Missing { dir: PathBuf, missing: String },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kernel command line in {path} has no {key}=")]
    NoParam { path: PathBuf, key: String },
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// `$OUT` when set (the Makefile exports it), else `<workspace>/out`.
pub fn out_dir() -> PathBuf {
    out_dir_from(std::env::var_os("OUT").map(PathBuf::from), &workspace_dir())
}

fn out_dir_from(out: Option<PathBuf>, workspace: &Path) -> PathBuf {
    match out {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => workspace.join("out"),
    }
}

/// `$PYRE_IMAGE_DIR`, else `$OUT/image`, else `<workspace>/out/image`.
pub fn image_dir() -> PathBuf {
    match std::env::var_os("PYRE_IMAGE_DIR") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => out_dir().join("image"),
    }
}

/// Where console logs of the scenarios go: `$OUT/test-logs`.
pub fn log_dir() -> PathBuf {
    out_dir().join("test-logs")
}

/// Scratch space for tampered copies: `$OUT/test-work`.
pub fn work_dir() -> PathBuf {
    out_dir().join("test-work")
}

/// The secret build key that signed the image's manifest: `$OUT/keys/build.key`.
pub fn build_key() -> PathBuf {
    out_dir().join("keys").join("build.key")
}

/// The pyre binary used for host-side work (keygen, sign): `$PYRE_BIN`, else the first built
/// one under `<workspace>/target`.
pub fn pyre_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PYRE_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some(p);
        }
    }
    let target = workspace_dir().join("target");
    [
        "x86_64-unknown-linux-gnu/release/pyre",
        "release/pyre",
        "debug/pyre",
    ]
    .iter()
    .map(|rel| target.join(rel))
    .find(|p| p.is_file())
}

/// A built image: the files `make image` leaves in `out/image`.
#[derive(Debug, Clone)]
pub struct Image {
    pub dir: PathBuf,
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
    pub rootfs: PathBuf,
    pub manifest: PathBuf,
    pub manifest_sig: PathBuf,
    pub cmdline: Cmdline,
}

impl Image {
    /// The image in [`image_dir`].
    pub fn locate() -> Result<Image, ImageError> {
        Image::open(&image_dir())
    }

    /// The image in `dir`; every file must be there.
    pub fn open(dir: &Path) -> Result<Image, ImageError> {
        let need = |name: &str| -> Result<PathBuf, ImageError> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(ImageError::Missing {
                    dir: dir.to_path_buf(),
                    missing: name.to_string(),
                })
            }
        };
        let cmdline_path = need("cmdline.txt")?;
        let text = std::fs::read_to_string(&cmdline_path).map_err(|source| ImageError::Read {
            path: cmdline_path.clone(),
            source,
        })?;
        let cmdline = Cmdline::parse(&text);
        let image = Image {
            dir: dir.to_path_buf(),
            vmlinuz: need("vmlinuz")?,
            initrd: need("initrd.img")?,
            rootfs: need("rootfs.img")?,
            manifest: need("manifest")?,
            manifest_sig: need("manifest.sig")?,
            cmdline,
        };
        for key in [ROOT_HASH, MANIFEST_DIGEST] {
            image.param(key)?;
        }
        Ok(image)
    }

    /// A parameter of cmdline.txt that must be there.
    pub fn param(&self, key: &str) -> Result<&str, ImageError> {
        self.cmdline.get(key).ok_or_else(|| ImageError::NoParam {
            path: self.dir.join("cmdline.txt"),
            key: key.to_string(),
        })
    }

    /// The manifest digest pinned on the command line, without its `sha256:` prefix.
    pub fn manifest_digest(&self) -> &str {
        let d = self.cmdline.get(MANIFEST_DIGEST).unwrap_or_default();
        d.strip_prefix("sha256:").unwrap_or(d)
    }

    /// Byte offset of the dm-verity hash area in rootfs.img (the erofs data ends before it).
    pub fn hash_offset(&self) -> Option<u64> {
        self.cmdline.get(HASH_OFFSET)?.parse().ok()
    }
}

pub const ROOT_HASH: &str = "pyre.verity.roothash";
pub const MANIFEST_DIGEST: &str = "pyre.manifest.digest";
pub const HASH_OFFSET: &str = "pyre.verity.hash-offset";

/// A kernel command line as an ordered list of words (`key=value` or bare flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmdline {
    words: Vec<String>,
}

impl Cmdline {
    pub fn parse(text: &str) -> Cmdline {
        Cmdline {
            words: text.split_whitespace().map(str::to_string).collect(),
        }
    }

    /// The value of the last `key=value` word for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.words
            .iter()
            .rev()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }

    /// Replace every `key=…` with one `key=value` (appended when absent).
    pub fn set(&mut self, key: &str, value: &str) -> &mut Cmdline {
        let word = format!("{key}={value}");
        let mut placed = false;
        self.words.retain_mut(|w| {
            let matches = w.strip_prefix(key).is_some_and(|r| r.starts_with('='));
            if !matches {
                return true;
            }
            if placed {
                return false;
            }
            placed = true;
            *w = word.clone();
            true
        });
        if !placed {
            self.words.push(word);
        }
        self
    }

    /// Append a bare word (e.g. `pyre.debug`).
    pub fn push(&mut self, word: &str) -> &mut Cmdline {
        self.words.push(word.to_string());
        self
    }

    /// Boot into a one-shot bash `script` instead of multi-user: systemd-run-generator runs it
    /// (output to the journal and console) with systemd-networkd up for DHCP, then powers the
    /// machine off. The script may contain neither `$` (systemd expands it) nor `"` (it
    /// delimits the kernel parameter).
    pub fn run_in_guest(&mut self, script: &str) -> Result<&mut Cmdline, String> {
        if script.contains(['$', '"']) {
            return Err(format!("guest script {script:?} contains $ or \""));
        }
        self.set("systemd.unit", "kernel-command-line.target")
            .set("systemd.wants", "systemd-networkd.service")
            .set("systemd.run", &format!("\"/bin/bash -c '{script}'\""));
        Ok(self)
    }

    /// A copy whose root hash differs in its last hex digit: well-formed but wrong.
    pub fn with_wrong_root_hash(&self) -> Option<Cmdline> {
        let hash = self.get(ROOT_HASH)?;
        let mut chars: Vec<char> = hash.chars().collect();
        let last = chars.last_mut()?;
        *last = if *last == '0' { '1' } else { '0' };
        let wrong: String = chars.into_iter().collect();
        let mut c = self.clone();
        c.set(ROOT_HASH, &wrong);
        Some(c)
    }
}

impl fmt::Display for Cmdline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "pyre.verity.uuid=00-0 pyre.verity.roothash=abc0 pyre.verity.salt=00 \
                        pyre.manifest.digest=sha256:ff ro\n";

    #[test]
    fn cmdline_get_set_and_wrong_hash() {
        let mut c = Cmdline::parse(LINE);
        assert_eq!(c.get("pyre.verity.uuid"), Some("00-0"));
        assert_eq!(c.get("pyre.root"), None);
        assert_eq!(c.get("ro"), None);
        assert_eq!(c.get("pyre.verity"), None);
        let wrong = c.with_wrong_root_hash().unwrap();
        assert_eq!(wrong.get(ROOT_HASH), Some("abc1"));
        assert_eq!(c.get(ROOT_HASH), Some("abc0"));
        c.set("pyre.verity.uuid", "11-1")
            .set("pyre.root", "/dev/vdb")
            .push("pyre.debug");
        assert_eq!(
            c.to_string(),
            "pyre.verity.uuid=11-1 pyre.verity.roothash=abc0 pyre.verity.salt=00 \
             pyre.manifest.digest=sha256:ff ro pyre.root=/dev/vdb pyre.debug"
        );
    }

    #[test]
    fn run_in_guest_boots_into_the_script() {
        let mut c = Cmdline::parse("ro");
        c.run_in_guest("echo hi >/dev/tcp/10.0.2.2/80").unwrap();
        assert_eq!(
            c.to_string(),
            "ro systemd.unit=kernel-command-line.target systemd.wants=systemd-networkd.service \
             systemd.run=\"/bin/bash -c 'echo hi >/dev/tcp/10.0.2.2/80'\""
        );
        let err = c.run_in_guest("echo $HOME").unwrap_err();
        assert!(err.contains("contains $"), "{err}");
        assert!(c.run_in_guest("echo \"x\"").is_err());
    }

    #[test]
    fn open_names_the_missing_file_and_make_image() {
        let dir = tempfile::tempdir().unwrap();
        let err = Image::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cmdline.txt is missing"), "{err}");
        assert!(err.contains("make image"), "{err}");
        for f in [
            "vmlinuz",
            "initrd.img",
            "rootfs.img",
            "manifest",
            "manifest.sig",
        ] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        std::fs::write(dir.path().join("cmdline.txt"), "ro pyre.verity.roothash=aa").unwrap();
        let err = Image::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no pyre.manifest.digest="), "{err}");
        std::fs::write(dir.path().join("cmdline.txt"), LINE).unwrap();
        let image = Image::open(dir.path()).unwrap();
        assert_eq!(image.manifest_digest(), "ff");
        assert_eq!(image.hash_offset(), None);
    }

    #[test]
    fn out_dir_defaults_to_workspace_out() {
        let ws = Path::new("/ws");
        assert_eq!(out_dir_from(None, ws), PathBuf::from("/ws/out"));
        assert_eq!(
            out_dir_from(Some(PathBuf::new()), ws),
            PathBuf::from("/ws/out")
        );
        assert_eq!(out_dir_from(Some("/o".into()), ws), PathBuf::from("/o"));
    }
}

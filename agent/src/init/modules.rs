//! Kernel modules from `/etc/pyre/modules.load`: one absolute module file path per line, in
//! load order (dependencies first); blank lines and `#` comments are ignored. A module that is
//! already loaded (EEXIST) is fine. A failed load is logged with the module and errno; it is
//! fatal only for the modules the verified root cannot come up without (device-mapper,
//! dm-verity and what it links against, erofs, overlay). A missing disk or network driver
//! shows up later, as a root device that never appears, with its own message.
use std::path::{Path, PathBuf};

use crate::host::Host;
use crate::sys::errno::errno_text;

/// Modules without which the verified root cannot be mounted (names with `-` and `_`
/// treated alike, as the kernel does).
pub const CRITICAL: &[&str] = &[
    "dm_mod",
    "dm_bufio",
    "dm_verity",
    "reed_solomon",
    "erofs",
    "overlay",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModulesError {
    #[error("reading the module list {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("module list {path} line {line}: {entry:?} is not an absolute path to a .ko file")]
    BadEntry {
        path: PathBuf,
        line: usize,
        entry: String,
    },
    #[error("loading {name} ({path}) failed: {reason}; the verified root needs it")]
    Critical {
        name: String,
        path: PathBuf,
        reason: String,
    },
}

/// `dm-verity` for `/lib/modules/6.1.0/kernel/drivers/md/dm-verity.ko.xz`.
pub fn module_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    match file.find(".ko") {
        Some(i) => file[..i].to_string(),
        None => file,
    }
}

fn is_critical(name: &str) -> bool {
    CRITICAL.contains(&name.replace('-', "_").as_str())
}

/// Parse the list; `list_path` only names the file in errors.
pub fn parse_list(list_path: &Path, text: &str) -> Result<Vec<PathBuf>, ModulesError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let p = PathBuf::from(line);
        if !p.is_absolute() || module_name(&p).is_empty() || !line.contains(".ko") {
            let entry = line.to_string();
            return Err(ModulesError::BadEntry {
                path: list_path.to_path_buf(),
                line: i + 1,
                entry,
            });
        }
        out.push(p);
    }
    Ok(out)
}

/// What happened to each listed module.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadSummary {
    pub loaded: usize,
    pub already: usize,
    /// Non-critical failures: (module name, errno text).
    pub failed: Vec<(String, String)>,
}

/// Read `list_path` and load every module in order through `host`.
pub fn load_all(host: &dyn Host, list_path: &Path) -> Result<LoadSummary, ModulesError> {
    let text = std::fs::read_to_string(list_path).map_err(|e| ModulesError::Read {
        path: list_path.to_path_buf(),
        reason: errno_text(&e),
    })?;
    let mut summary = LoadSummary::default();
    for path in parse_list(list_path, &text)? {
        let name = module_name(&path);
        match host.finit_module(&path) {
            Ok(()) => summary.loaded += 1,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => summary.already += 1,
            Err(e) => {
                let reason = errno_text(&e);
                host.console(&format!(
                    "pyre init: module {name} ({}) failed to load: {reason}",
                    path.display()
                ));
                if is_critical(&name) {
                    return Err(ModulesError::Critical { name, path, reason });
                }
                summary.failed.push((name, reason));
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Op, RecordingHost};

    #[test]
    fn names_and_entries() {
        let cases = [
            (
                "/lib/modules/6.1/kernel/drivers/md/dm-verity.ko",
                "dm-verity",
            ),
            ("/m/erofs.ko.xz", "erofs"),
            ("/m/virtio_blk.ko.zst", "virtio_blk"),
        ];
        for (p, want) in cases {
            assert_eq!(module_name(Path::new(p)), want);
        }
        assert!(is_critical("dm-verity") && is_critical("dm_mod") && !is_critical("virtio_net"));
        let list = "# order matters\n/m/virtio.ko\n\n  /m/dm-mod.ko  \n";
        assert_eq!(
            parse_list(Path::new("L"), list).unwrap(),
            vec![PathBuf::from("/m/virtio.ko"), "/m/dm-mod.ko".into()]
        );
        let err = parse_list(Path::new("L"), "/m/a.ko\nvirtio.ko\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "module list L line 2: \"virtio.ko\" is not an absolute path to a .ko file"
        );
    }

    fn list(dir: &Path, mods: &[&str]) -> PathBuf {
        let p = dir.join("modules.load");
        std::fs::write(&p, mods.join("\n")).unwrap();
        p
    }

    #[test]
    fn load_outcomes() {
        // (the module that fails, its errno, whether the boot must stop)
        let cases: &[(&str, i32, bool)] = &[
            ("virtio_net", libc::ENOENT, false),
            ("dm-verity", libc::ENOEXEC, true),
            ("erofs", libc::EINVAL, true),
            ("dm-mod", libc::EEXIST, false),
        ];
        let dir = tempfile::tempdir().unwrap();
        let mods = [
            "/m/virtio_net.ko",
            "/m/dm-mod.ko",
            "/m/dm-verity.ko",
            "/m/erofs.ko",
        ];
        let l = list(dir.path(), &mods);
        for &(bad, errno, fatal) in cases {
            let h = RecordingHost::new();
            let target = format!("/m/{bad}.ko");
            h.fail_when(move |op| {
                matches!(op, Op::FinitModule(p) if p.to_str() == Some(&target)).then_some(errno)
            });
            let r = load_all(&h, &l);
            assert_eq!(r.is_err(), fatal, "{bad}");
            if errno == libc::EEXIST {
                assert_eq!(
                    r.unwrap(),
                    LoadSummary {
                        loaded: 3,
                        already: 1,
                        failed: vec![]
                    }
                );
                assert!(h.lines().is_empty());
                continue;
            }
            assert!(
                h.lines()[0].contains(&format!("module {bad} (/m/{bad}.ko) failed to load: ")),
                "{:?}",
                h.lines()
            );
            if fatal {
                assert!(r
                    .unwrap_err()
                    .to_string()
                    .contains("the verified root needs it"));
                let loads = h.ops().len();
                assert_eq!(
                    loads,
                    mods.iter().position(|m| m.contains(bad)).unwrap() + 1,
                    "stops at {bad}"
                );
            } else {
                let s = r.unwrap();
                assert_eq!((s.loaded, s.failed.len()), (3, 1));
                assert!(s.failed[0].1.starts_with("ENOENT"));
            }
        }
    }

    #[test]
    fn a_missing_list_is_an_error() {
        let err = load_all(
            &RecordingHost::new(),
            Path::new("/nonexistent/modules.load"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/modules.load: ENOENT"),
            "{err}"
        );
    }
}

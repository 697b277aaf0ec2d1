//! Where incident reports are kept: `<dir>/<id>.json` (0600, in 0700 directories), written
//! atomically to /run and to every data volume; `<id>.acked.json` once the report endpoint
//! acknowledged it (so a later instance never sends it again); and the drift-reboot history
//! beside the volume's reports (`<volume>/pyre/drift-reboots`), which stops reboot loops.
//!
//! Data volumes are not trusted: what is read back from them is bounded in size, its id must be
//! a plain file stem, and a report that does not parse is logged and left where it is.
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::enforce::report::Incident;
use crate::sys::atomic;

/// The suffix of a report the endpoint acknowledged.
pub const ACKED_SUFFIX: &str = ".acked.json";
/// The drift-reboot history's file name, in the parent of a volume's reports directory.
pub const REBOOTS_FILE: &str = "drift-reboots";
/// Drift reboots allowed within [`REBOOT_WINDOW`]; the next incident powers off instead.
pub const MAX_DRIFT_REBOOTS: usize = 3;
/// The window [`MAX_DRIFT_REBOOTS`] counts in.
pub const REBOOT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Largest report read back from a volume.
const MAX_REPORT: u64 = 4 * 1024 * 1024;

/// `id` as a file stem: anything but ASCII letters, digits, `.`, `_` and `-` becomes `_`, and
/// a leading `.` too (no hidden files, no path separators, never empty).
pub fn file_stem(id: &str) -> String {
    let mut s: String = id
        .chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s
}

/// Create `dir` (and its parents) with mode 0700.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Write `json` as `<dir>/<stem>.json` (0600) in each of `dirs`. One place failing does not
/// stop the others; every result is returned (the caller logs the failures).
pub fn persist(dirs: &[PathBuf], stem: &str, json: &[u8]) -> Vec<(PathBuf, io::Result<()>)> {
    dirs.iter()
        .map(|dir| {
            let path = dir.join(format!("{stem}.json"));
            let r = private_dir(dir).and_then(|()| {
                atomic::write(&path, json, atomic::Options::replace_with_mode(0o600))
            });
            (path, r)
        })
        .collect()
}

/// A report found on a volume, not yet acknowledged.
#[derive(Debug)]
pub struct Stored {
    pub path: PathBuf,
    pub incident: Incident,
}

/// The unacknowledged reports in `dir` (sorted by name, so oldest first), and the problems
/// with the files that could not be read (path: reason). A missing directory has none.
pub fn unacked(dir: &Path) -> (Vec<Stored>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (found, problems),
        Err(e) => {
            problems.push(format!("{}: {e}", dir.display()));
            return (found, problems);
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json") && !n.ends_with(ACKED_SUFFIX) && !n.starts_with('.'))
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        match read_report(&path, &name) {
            Ok(incident) => found.push(Stored { path, incident }),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    (found, problems)
}

fn read_report(path: &Path, name: &str) -> Result<Incident, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    if !f.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    f.take(MAX_REPORT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_REPORT {
        return Err(format!("larger than {MAX_REPORT} bytes"));
    }
    let inc = Incident::from_json(&bytes)?;
    let stem = name.strip_suffix(".json").unwrap_or(name);
    if file_stem(&inc.event.id) != stem {
        return Err(format!(
            "its event id {:?} does not match its file name",
            inc.event.id
        ));
    }
    Ok(inc)
}

/// `<dir>/<stem>.json` → `<dir>/<stem>.acked.json`, then fsync the directory.
pub fn mark_acked(dir: &Path, stem: &str) -> io::Result<PathBuf> {
    let to = dir.join(format!("{stem}{ACKED_SUFFIX}"));
    std::fs::rename(dir.join(format!("{stem}.json")), &to)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(to)
}

/// The drift-reboot history: when (Unix seconds) drift made an instance reboot.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Reboots {
    version: u32,
    reboots: Vec<u64>,
}

fn reboots_path(reports_dir: &Path) -> PathBuf {
    reports_dir
        .parent()
        .unwrap_or(reports_dir)
        .join(REBOOTS_FILE)
}

/// The drift reboots recorded on every volume (merged, sorted); unreadable histories are
/// logged and count as empty.
pub fn reboot_history(volume_dirs: &[PathBuf]) -> Vec<u64> {
    let mut all: Vec<u64> = Vec::new();
    for dir in volume_dirs {
        let path = reboots_path(dir);
        match std::fs::read(&path) {
            Ok(b) => match serde_json::from_slice::<Reboots>(&b) {
                Ok(r) => all.extend(r.reboots),
                Err(e) => log::error!("the drift-reboot history {}: {e}", path.display()),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::error!("reading the drift-reboot history {}: {e}", path.display()),
        }
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// Whether one more drift reboot at `now` (Unix seconds) stays within the bound: fewer than
/// [`MAX_DRIFT_REBOOTS`] in the [`REBOOT_WINDOW`] before it.
pub fn reboot_allowed(history: &[u64], now: u64) -> bool {
    let since = now.saturating_sub(REBOOT_WINDOW.as_secs());
    history.iter().filter(|&&t| t > since && t <= now).count() < MAX_DRIFT_REBOOTS
}

/// Add `now` to the history on every volume (keeping only the window's entries).
pub fn record_reboot(volume_dirs: &[PathBuf], history: &[u64], now: u64) {
    let since = now.saturating_sub(REBOOT_WINDOW.as_secs());
    let mut reboots: Vec<u64> = history.iter().copied().filter(|&t| t > since).collect();
    reboots.push(now);
    let doc = Reboots {
        version: 1,
        reboots,
    };
    let bytes = serde_json::to_vec(&doc).expect("a list of numbers serializes");
    for dir in volume_dirs {
        let path = reboots_path(dir);
        let r = path
            .parent()
            .map_or(Ok(()), private_dir)
            .and_then(|()| atomic::write(&path, &bytes, atomic::Options::replace_with_mode(0o600)));
        if let Err(e) = r {
            log::error!("recording a drift reboot in {}: {e}", path.display());
        }
    }
}

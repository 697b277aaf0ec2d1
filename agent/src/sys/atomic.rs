//! The one atomic file writer: a temp file with a unique name in the same directory, write,
//! `sync_all`, rename over the target, fsync the directory. A reader sees the old file or the
//! new one, never a part; after a crash the new name is either absent or complete.
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Temp names taken by this process (with the pid, unique among live processes).
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);
/// Attempts at a free temp name before giving up (a stale name from a crashed earlier
/// process with the same pid is skipped, never reused).
const TMP_ATTEMPTS: u32 = 64;

/// How [`write`] treats the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// File mode of the new file; `None` is 0666 less the umask, as `File::create` does.
    pub mode: Option<u32>,
    /// Replace an existing file; without it an existing `path` is `AlreadyExists`.
    pub overwrite: bool,
}

impl Options {
    /// Replace whatever is there, default mode.
    pub const REPLACE: Options = Options {
        mode: None,
        overwrite: true,
    };

    /// Replace whatever is there, with `mode`.
    pub fn replace_with_mode(mode: u32) -> Options {
        Options {
            mode: Some(mode),
            overwrite: true,
        }
    }
}

/// Write `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8], opts: Options) -> io::Result<()> {
    if !opts.overwrite && fs::symlink_metadata(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "file exists (use --force)",
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let (tmp, mut f) = create_temp(dir, name, opts.mode)?;
    let result = (|| {
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `DIR/.NAME.tmp<pid>.<n>`, created exclusively (never an existing file or a symlink).
fn create_temp(
    dir: &Path,
    name: &std::ffi::OsStr,
    mode: Option<u32>,
) -> io::Result<(PathBuf, File)> {
    let mut last = None;
    for _ in 0..TMP_ATTEMPTS {
        let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp{}.{n}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let mut oo = OpenOptions::new();
        oo.write(true).create_new(true);
        if let Some(m) = mode {
            oo.mode(m);
        }
        match oo.open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temp name")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_whole_files_with_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        write(&p, b"one", Options::replace_with_mode(0o600)).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write(&p, b"two", Options::REPLACE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(names(dir.path()), ["key"]);
    }

    #[test]
    fn refuses_to_overwrite_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"old").unwrap();
        let err = write(&p, b"new", Options::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"old");
    }

    #[test]
    fn skips_a_stale_temp_name_and_never_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, b"keep").unwrap();
        let next = NEXT_TMP.load(Ordering::Relaxed);
        // Plant symlinks on the next few temp names (another test may take one meanwhile).
        for n in next..next + 4 {
            let stale = dir.path().join(format!(".f.tmp{}.{n}", std::process::id()));
            std::os::unix::fs::symlink(&outside, stale).unwrap();
        }
        write(&dir.path().join("f"), b"new", Options::REPLACE).unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"new");
        assert_eq!(fs::read(&outside).unwrap(), b"keep");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let err = write(Path::new("/nonexistent/pyre/f"), b"x", Options::REPLACE).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}

//! The tree and content halves of a `read` root check (docs/boot.md, "The root check"): after
//! switch_root, `pyre content-check` (pyre-content.service, which pyre-ready.target requires)
//! compares the root's metadata with the signed manifest and, at the same time, reads the whole
//! dm-verity device in large direct reads, so the kernel checks every data block against the
//! root hash pinned on the command line, while the rest of the boot runs. pyre init checked the
//! manifest's digest and signature; the erofs image is what was sealed, so a tree whose metadata
//! matches the manifest on a device whose every block matches the root hash is a root whose
//! every file matches the manifest. A differing entry or a rejected block (EIO) is a tampered
//! root: the files are named (the drift report, the extents of the rejected blocks), the checks
//! go into the boot record, and the image policy's `on-failure` action ends the machine.
use std::io;
use std::path::{Path, PathBuf};

pub use super::device::{read_device, DeviceRead, Rejected, BLOCK, CHUNK};

/// Where this check runs, as the boot record names it.
pub const PLACE: &str = "pyre-content.service";

use super::record::{self, BootRecord, Check};
use super::verify::{RootVerifier, VerifyFailure, VerifyInput};
use crate::config::policy::{OnFailure, Policy, RootCheck};
use crate::drift::ContentCheck;
use crate::host::{Clock, Lifecycle, Shutdown};

/// Every path the content check uses; [`ContentPaths::standard`] is the real layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentPaths {
    /// pyre init's record, to which the check is added.
    pub record: PathBuf,
    /// The dm-verity device of the root.
    pub device: PathBuf,
    /// The root filesystem alone (pyre-content.service binds / there without its submounts),
    /// and pyre init's copies of the manifest, its signature and keys.
    pub root: PathBuf,
    pub run_pyre: PathBuf,
    pub mountinfo: PathBuf,
    pub policy: PathBuf,
    pub cmdline: PathBuf,
    /// procfs, to tell whether pyre init's early reader still runs.
    pub proc: PathBuf,
}

impl ContentPaths {
    pub fn standard() -> ContentPaths {
        ContentPaths {
            record: "/run/pyre/boot.json".into(),
            device: PathBuf::from("/dev/mapper").join(super::DM_NAME),
            root: "/run/pyre/root".into(),
            run_pyre: "/run/pyre".into(),
            // PID 1's table: the unit's own bind of / is not a mount over the tree.
            mountinfo: "/proc/1/mountinfo".into(),
            policy: crate::config::policy::DEFAULT_PATH.into(),
            cmdline: "/proc/cmdline".into(),
            proc: "/proc".into(),
        }
    }
}

/// How the check ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing to read here: no record of pyre init (pyre-verified.service checks the live
    /// root in full), or pyre init's check already covered the content (or was told not to).
    NotNeeded(String),
    /// The tree matched the manifest (`entries` of it) and every block of the device the root
    /// hash: the two checks, as recorded.
    Passed {
        metadata: Check,
        read: Check,
        entries: u64,
    },
    /// The tree differs from the manifest, or dm-verity rejected blocks: `files` are the
    /// entries that differ and the sealed files holding rejected blocks (the drift report's
    /// text in `report`); `checks` as recorded (at least one failed); `action` was taken.
    Rejected {
        checks: Vec<Check>,
        files: Vec<String>,
        report: String,
        action: OnFailure,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("boot record {path}: {reason}")]
    Record { path: PathBuf, reason: String },
    #[error("reading the root device {path}: {reason}")]
    Device { path: PathBuf, reason: String },
    #[error("the root tree {path} is not there ({reason}): pyre-content.service binds / there")]
    Tree { path: PathBuf, reason: String },
}

/// What the injected side effects are: the clock, ending the machine, reading the device.
pub struct Caps<'a> {
    pub clock: &'a dyn Clock,
    pub lifecycle: &'a dyn Lifecycle,
    /// Shared with the thread that walks the tree while the device is read.
    pub verifier: &'a (dyn RootVerifier + Sync),
    pub read: &'a dyn Fn(&Path) -> io::Result<DeviceRead>,
}

/// The whole check: decide, read, judge, record, act.
pub fn run(p: &ContentPaths, caps: &Caps) -> Result<Outcome, ContentError> {
    let rec_err = |reason: String| ContentError::Record {
        path: p.record.clone(),
        reason,
    };
    let bytes =
        match std::fs::read(&p.record) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::NotNeeded(
                "no record from pyre init (pyre-verified.service verifies the live root in full)"
                    .into(),
            )),
            Err(e) => return Err(rec_err(e.to_string())),
        };
    let rec = BootRecord::from_json(&bytes).map_err(|e| rec_err(e.to_string()))?;
    let mode = rec
        .root_check
        .as_deref()
        .unwrap_or(RootCheck::Full.as_str());
    if mode != RootCheck::Read.as_str() {
        return Ok(Outcome::NotNeeded(format!(
            "pyre init's root check was `{mode}`: no content read after switch_root"
        )));
    }
    if let Err(e) = std::fs::symlink_metadata(p.root.join("etc")) {
        return Err(ContentError::Tree {
            path: p.root.clone(),
            reason: crate::sys::errno::errno_text(&e),
        });
    }
    let t0 = caps.clock.now();
    let (read, tree) = std::thread::scope(|s| {
        let tree = s.spawn(|| compare_tree(p, caps.verifier));
        let read = read_content(p, rec.content_reader, caps);
        let tree = tree.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (read, tree)
    });
    let read = read?;
    let metadata = Check {
        name: "metadata".into(),
        place: PLACE.into(),
        started_at: t0.as_secs_f64(),
        seconds: tree.seconds,
        bytes: 0,
        outcome: outcome(tree.result.is_ok()),
    };
    let read_check = Check {
        name: "content-read".into(),
        place: read.place.into(),
        started_at: read.started_at,
        seconds: read.seconds,
        bytes: read.read.bytes,
        outcome: outcome(read.read.rejected.is_empty()),
    };
    let read = read.read;
    add_checks(p, &[&metadata, &read_check]);
    let (mut files, mut report) = (Vec::new(), String::new());
    match tree.result {
        Ok(v) if read.rejected.is_empty() => {
            return Ok(Outcome::Passed {
                metadata,
                read: read_check,
                entries: v.entries,
            })
        }
        Ok(_) => {}
        Err(VerifyFailure::Drift { report: text, .. }) => {
            for line in text.lines().take(super::MAX_REPORT_LINES) {
                log::error!("{line}");
            }
            for entry in text.lines().map(str::trim).filter(|l| l.starts_with('/')) {
                log::error!("{MSG_ID}: differs from the signed manifest: {entry}");
                files.push(entry.to_string());
            }
            report = text;
        }
        Err(e) => log::error!("{MSG_ID}: comparing the root's tree with the manifest: {e}"),
    }
    for r in &read.rejected {
        log::error!(
            "{}: dm-verity rejected bytes {}..{} of {} ({}): the root does not match its root hash",
            MSG_ID,
            r.offset,
            r.offset + r.len,
            p.device.display(),
            r.error
        );
    }
    if !read.rejected.is_empty() {
        let (located, text) = locate(p, &read.rejected, caps.verifier);
        for f in &located {
            log::error!("{MSG_ID}: tampered file: {f}");
        }
        files.extend(located);
        if report.is_empty() {
            report = text;
        }
    }
    let action = action(p);
    log::error!(
        "{MSG_ID}: the root does not match the signed image; \
         pyre-ready.target will not be reached; {}",
        consequence(action)
    );
    let how = match action {
        OnFailure::Poweroff => Some(Shutdown::PowerOff),
        OnFailure::Reboot => Some(Shutdown::Reboot),
        OnFailure::Halt => Some(Shutdown::Halt),
        OnFailure::Debug => None,
    };
    if let Some(how) = how {
        if let Err(e) = caps.lifecycle.shut_down(how) {
            log::error!("{MSG_ID}: {} failed: {e}", how.verb());
        }
    }
    Ok(Outcome::Rejected {
        checks: vec![metadata, read_check],
        files,
        report,
        action,
    })
}

fn outcome(passed: bool) -> String {
    if passed { "passed" } else { "failed" }.into()
}

/// Where the early read ran, as the boot record names it.
pub const EARLY_PLACE: &str = "pyre init (early reader)";

/// A device read, where and when it ran.
struct Timed {
    read: DeviceRead,
    place: &'static str,
    started_at: f64,
    seconds: f64,
}

/// The device read: the early reader's result when pyre init started one and it left one,
/// else read here.
fn read_content(p: &ContentPaths, reader: Option<u32>, caps: &Caps) -> Result<Timed, ContentError> {
    if let Some(pid) = reader {
        match super::early::wait(&p.run_pyre, &p.proc, pid, caps.clock) {
            Ok(Some(e)) => {
                return Ok(Timed {
                    read: e.read,
                    place: EARLY_PLACE,
                    started_at: e.started_at,
                    seconds: e.seconds,
                })
            }
            Ok(None) => log::warn!(
                "pyre init's early reader (pid {pid}) ended without a result; reading the \
                 device here"
            ),
            Err(e) => log::warn!("pyre init's early reader's result: {e}; reading the device here"),
        }
    }
    let t0 = caps.clock.now();
    let read = (caps.read)(&p.device).map_err(|e| ContentError::Device {
        path: p.device.clone(),
        reason: crate::sys::errno::errno_text(&e),
    })?;
    Ok(Timed {
        read,
        place: PLACE,
        started_at: t0.as_secs_f64(),
        seconds: caps.clock.now().saturating_sub(t0).as_secs_f64(),
    })
}

/// The tree walk's verdict and how long it took.
struct TreeCheck {
    seconds: f64,
    result: Result<super::verify::Verified, VerifyFailure>,
}

/// The root's metadata against pyre init's copy of the signed manifest (no file opened).
fn compare_tree(p: &ContentPaths, verifier: &dyn RootVerifier) -> TreeCheck {
    let started = std::time::Instant::now();
    let manifest = p.run_pyre.join("manifest");
    let result = super::boot::trusted_keys(&p.run_pyre.join("keys"))
        .map_err(|e| VerifyFailure::Other(e.to_string()))
        .and_then(|keys| {
            verifier.verify(&VerifyInput {
                root: &p.root,
                manifest: &manifest,
                keys: &keys,
                mountinfo: &p.mountinfo,
                content: ContentCheck::Metadata,
            })
        });
    TreeCheck {
        seconds: started.elapsed().as_secs_f64(),
        result,
    }
}

/// The stable message id of a rejected root content.
pub const MSG_ID: &str = "PYRE_ROOT_CONTENT";

fn consequence(a: OnFailure) -> &'static str {
    match a {
        OnFailure::Poweroff => "powering off",
        OnFailure::Reboot => "rebooting",
        OnFailure::Halt => "halting (the console stays readable)",
        OnFailure::Debug => "staying up (pyre.debug or image policy on-failure: debug)",
    }
}

/// `pyre.debug` keeps the machine up, as it does in pyre init; otherwise the image policy
/// decides (an unreadable policy: the default, power off).
fn action(p: &ContentPaths) -> OnFailure {
    let cmdline = std::fs::read_to_string(&p.cmdline).unwrap_or_default();
    if super::cmdline::debug_requested(&cmdline) {
        return OnFailure::Debug;
    }
    Policy::load(&p.policy)
        .map(|x| x.on_failure)
        .unwrap_or_else(|e| {
            log::error!("{MSG_ID}: {e}; taking the default action");
            OnFailure::Poweroff
        })
}

/// The sealed files holding the rejected bytes: by their extents (FIEMAP, no content read),
/// each confirmed by reading it; when that finds none, by reading and hashing every sealed
/// file against pyre init's copy of the manifest (the drift report names the files dm-verity
/// refuses to read: unreadable, Input/output error).
fn locate(
    p: &ContentPaths,
    rejected: &[Rejected],
    verifier: &dyn RootVerifier,
) -> (Vec<String>, String) {
    match by_extents(p, rejected) {
        Ok(files) if !files.is_empty() => return (files, String::new()),
        Ok(_) => log::warn!(
            "{MSG_ID}: no sealed file's extents hold the rejected bytes; reading every file"
        ),
        Err(e) => {
            log::warn!("{MSG_ID}: mapping files to the device (FIEMAP): {e}; reading every file")
        }
    }
    by_reading(p, verifier)
}

fn by_extents(p: &ContentPaths, rejected: &[Rejected]) -> io::Result<Vec<String>> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = std::fs::read(p.run_pyre.join("manifest"))?;
    let m = crate::manifest::Manifest::decode(&bytes).map_err(io::Error::other)?;
    let mut files = Vec::new();
    for e in m
        .entries
        .iter()
        .filter(|e| e.kind == crate::manifest::Kind::File)
    {
        if e.size == 0 || e.path.len() < 2 {
            continue;
        }
        let path = p.root.join(std::ffi::OsStr::from_bytes(&e.path[1..]));
        let extents = crate::sys::fiemap::extents_at(&path)?;
        let Some(r) = rejected
            .iter()
            .find(|r| crate::sys::fiemap::overlaps(&extents, r.offset, r.len))
        else {
            continue;
        };
        let read = match std::fs::read(&path) {
            Ok(_) => "reads back intact now".to_string(),
            Err(e) => format!("reading it: {}", crate::sys::errno::errno_text(&e)),
        };
        files.push(format!(
            "{} (holds rejected bytes {}..{} of the device; {read})",
            crate::manifest::escape::escape(&e.path),
            r.offset,
            r.offset + r.len
        ));
    }
    Ok(files)
}

fn by_reading(p: &ContentPaths, verifier: &dyn RootVerifier) -> (Vec<String>, String) {
    let manifest = p.run_pyre.join("manifest");
    let keys = super::boot::trusted_keys(&p.run_pyre.join("keys")).unwrap_or_default();
    let input = VerifyInput {
        root: &p.root,
        manifest: &manifest,
        keys: &keys,
        mountinfo: &p.mountinfo,
        content: ContentCheck::Hash,
    };
    match verifier.verify(&input) {
        Err(VerifyFailure::Drift { report, .. }) => {
            for line in report.lines().take(super::MAX_REPORT_LINES) {
                log::error!("{line}");
            }
            let files = report
                .lines()
                .filter(|l| l.contains("Input/output error"))
                .map(|l| l.trim().to_string())
                .collect();
            (files, report)
        }
        Err(e) => {
            log::error!("{MSG_ID}: finding the tampered files: {e}");
            (Vec::new(), String::new())
        }
        Ok(_) => {
            log::error!("{MSG_ID}: every sealed file reads back intact: the rejected blocks hold no file's content");
            (Vec::new(), String::new())
        }
    }
}

/// Add the checks to the record (under the record directory's lock, as `pyre boot` writes it
/// too); a failure is logged, the checks' verdict stands.
fn add_checks(p: &ContentPaths, checks: &[&Check]) {
    let dir = p.record.parent().unwrap_or(Path::new("/"));
    let result = record::lock_dir(dir).and_then(|_lock| {
        let mut bytes = std::fs::read(&p.record)?;
        for check in checks {
            bytes = record::with_check(&bytes, check)
                .ok_or_else(|| io::Error::other("not a JSON object"))?;
        }
        let opts = crate::sys::atomic::Options::replace_with_mode(0o644);
        crate::sys::atomic::write(&p.record, &bytes, opts)
    });
    if let Err(e) = result {
        log::error!("adding the root checks to {}: {e}", p.record.display());
    }
}

#[cfg(test)]
#[path = "content_tests.rs"]
mod tests;

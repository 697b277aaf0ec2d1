use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Context;

use super::exit::{CmdError, Exit};
use super::SealArgs;
use crate::keys;
use crate::manifest;
use crate::sys::atomic::{self, Options};
use crate::sys::mountinfo;

const MOUNTINFO: &str = "/proc/self/mountinfo";

pub fn run(args: SealArgs) -> Result<Exit, CmdError> {
    // Load the key first: a bad key should fail before minutes of hashing.
    let key = match &args.key {
        Some(k) => Some(keys::load_secret(k).context("failed to load the signing key")?),
        None => None,
    };
    warn_if_inside(&args.root, &args.output);
    let mounts = std::fs::read(MOUNTINFO)
        .map(|t| mountinfo::parse(&t))
        .with_context(|| format!("failed to read the mount table {MOUNTINFO}"))?;
    let excludes: Vec<Vec<u8>> = args
        .excludes
        .iter()
        .map(|x| Path::new(x).as_os_str().as_bytes().to_vec())
        .collect();
    let m = manifest::seal(&args.root, &excludes, &mounts, manifest::default_threads())
        .with_context(|| format!("failed to seal {}", args.root.display()))?;
    let bytes = m.encode();
    let digest = manifest::digest(&bytes);
    atomic::write(&args.output, &bytes, Options::replace_with_mode(0o644))
        .with_context(|| format!("failed to write manifest {}", args.output.display()))?;
    let sig = keys::sig_path(&args.output);
    if key.is_none() && sig.exists() {
        // A signature of an earlier manifest must not sit next to this one.
        std::fs::remove_file(&sig)
            .with_context(|| format!("failed to remove stale signature {}", sig.display()))?;
        log::warn!("removed the stale signature {}", sig.display());
    }
    if let Some(key) = key {
        super::write_signature(&key, &digest, &args.output)?;
    }
    log::info!(
        "sealed {} entries of {} into {}",
        m.entries.len(),
        args.root.display(),
        args.output.display()
    );
    println!("{digest}");
    Ok(Exit::Clean)
}

/// A manifest written inside the tree it describes shows up as an added file later.
fn warn_if_inside(root: &Path, output: &Path) {
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty());
    let (Ok(root), Ok(dir)) = (
        std::fs::canonicalize(root),
        std::fs::canonicalize(dir.unwrap_or(Path::new("."))),
    ) else {
        return;
    };
    if dir.starts_with(&root) {
        log::warn!(
            "the manifest {} is inside the sealed tree {}: verify will report it as added \
             unless its directory is excluded",
            output.display(),
            root.display()
        );
    }
}

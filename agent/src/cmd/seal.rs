use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Context;

use super::{Exit, SealArgs};
use crate::keys;
use crate::manifest::{self, atomic, mountinfo};

const MOUNTINFO: &str = "/proc/self/mountinfo";

pub fn run(args: SealArgs) -> anyhow::Result<Exit> {
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
    // Load the key before writing anything, so a bad key leaves no unsigned manifest behind.
    let key = match &args.key {
        Some(k) => Some(keys::load_secret(k).context("failed to load the signing key")?),
        None => None,
    };
    atomic::write(&args.output, &bytes, 0o644, true)
        .with_context(|| format!("failed to write manifest {}", args.output.display()))?;
    if let Some(key) = key {
        let sig = keys::sig_path(&args.output);
        atomic::write(
            &sig,
            keys::sign_digest(&key, &digest).as_bytes(),
            0o644,
            true,
        )
        .with_context(|| format!("failed to write signature {}", sig.display()))?;
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

use anyhow::Context;

use super::{Exit, SignArgs};
use crate::keys;
use crate::manifest::{self, atomic, Manifest};

pub fn run(args: SignArgs) -> anyhow::Result<Exit> {
    let key = keys::load_secret(&args.key).context("failed to load the signing key")?;
    let bytes = std::fs::read(&args.manifest)
        .with_context(|| format!("failed to read manifest {}", args.manifest.display()))?;
    // Refuse to sign something that is not a well-formed manifest.
    Manifest::decode(&bytes)
        .with_context(|| format!("refusing to sign {}", args.manifest.display()))?;
    let digest = manifest::digest(&bytes);
    write_signature(&key, &digest, &args.manifest)?;
    println!("{digest}");
    Ok(Exit::Clean)
}

/// Write the detached signature of `digest` next to `manifest` (as MANIFEST.sig).
pub(crate) fn write_signature(
    key: &ed25519_dalek::SigningKey,
    digest: &str,
    manifest: &std::path::Path,
) -> anyhow::Result<()> {
    let sig = keys::sig_path(manifest);
    atomic::write(&sig, keys::sign_digest(key, digest).as_bytes(), 0o644, true)
        .with_context(|| format!("failed to write signature {}", sig.display()))
}

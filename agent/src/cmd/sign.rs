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
    let sig = keys::sig_path(&args.manifest);
    atomic::write(
        &sig,
        keys::sign_digest(&key, &digest).as_bytes(),
        0o644,
        true,
    )
    .with_context(|| format!("failed to write signature {}", sig.display()))?;
    println!("{digest}");
    Ok(Exit::Clean)
}

use anyhow::Context;

use super::exit::{CmdError, Exit};
use super::{write_signature, SignArgs};
use crate::keys;
use crate::manifest::{self, Manifest};

pub fn run(args: SignArgs) -> Result<Exit, CmdError> {
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

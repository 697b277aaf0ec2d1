use anyhow::Context;

use super::exit::{CmdError, Exit};
use super::KeygenArgs;
use crate::keys;
use crate::sys::atomic::{self, Options};

pub fn run(args: KeygenArgs) -> Result<Exit, CmdError> {
    let key = keys::generate().context("failed to generate a key")?;
    let public = {
        let mut p = args.output.clone().into_os_string();
        p.push(".pub");
        std::path::PathBuf::from(p)
    };
    atomic::write(
        &args.output,
        keys::encode_secret(&key).as_bytes(),
        Options {
            mode: Some(0o600),
            overwrite: args.force,
        },
    )
    .with_context(|| format!("failed to write secret key {}", args.output.display()))?;
    atomic::write(
        &public,
        keys::encode_public(&key.verifying_key()).as_bytes(),
        Options {
            mode: Some(0o644),
            overwrite: args.force,
        },
    )
    .with_context(|| format!("failed to write public key {}", public.display()))?;
    println!(
        "key {} ({}, {})",
        keys::key_id(&key.verifying_key()),
        args.output.display(),
        public.display()
    );
    Ok(Exit::Clean)
}

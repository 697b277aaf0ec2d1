//! `pyre config validate|schema|sign`: check a config (plain or signed) the way `pyre boot`
//! will, print the JSON Schema, or wrap a config in a signed envelope.
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::Exit;
use crate::config::{self, envelope, Policy};
use crate::keys;
use crate::sys::atomic::{self, Options};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a config (plain or a signed envelope): exit 0 with a summary, 1 if it is refused.
    Validate(ValidateArgs),
    /// Print the JSON Schema of config v1 (published as docs/config.schema.json).
    Schema,
    /// Wrap a config in a signed envelope (stdout, or -o FILE).
    Sign(ConfigSignArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The config or envelope to check.
    pub file: PathBuf,
    /// Trusted public keys (`*.pub` from `pyre keygen`) for signed configs.
    #[arg(long, default_value = config::KEYS_DIR)]
    pub keys: PathBuf,
    /// Image policy to check against (e.g. to require a signature); default: no policy file.
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConfigSignArgs {
    /// The plain config to sign (it must be valid).
    pub file: PathBuf,
    /// Secret key from `pyre keygen`.
    #[arg(long)]
    pub key: PathBuf,
    /// Write the envelope here (mode 0644) instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: ConfigArgs) -> anyhow::Result<Exit> {
    match args.command {
        ConfigCommand::Validate(a) => validate(a),
        ConfigCommand::Schema => {
            std::io::stdout().write_all(config::schema_json().as_bytes())?;
            Ok(Exit::Clean)
        }
        ConfigCommand::Sign(a) => sign(a),
    }
}

fn validate(args: ValidateArgs) -> anyhow::Result<Exit> {
    let policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::default(),
    };
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("failed to read {}", args.file.display()))?;
    match config::load(&bytes, &policy, &args.keys) {
        Ok(loaded) => {
            let signer = match &loaded.signed_by {
                Some(k) => format!("signed by key {k}"),
                None => "not signed".to_string(),
            };
            println!(
                "{}: valid, {signer}; {}",
                args.file.display(),
                loaded.config.summary()
            );
            Ok(Exit::Clean)
        }
        Err(e) => {
            // Exit 1 ("the check ran and said no"), like drift; 2 stays "could not check".
            for p in e.problems() {
                log::error!("{}: {}: {p}", e.message_id(), args.file.display());
            }
            Ok(Exit::Drift)
        }
    }
}

fn sign(args: ConfigSignArgs) -> anyhow::Result<Exit> {
    let key = keys::load_secret(&args.key).context("failed to load the signing key")?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("failed to read {} as UTF-8 text", args.file.display()))?;
    if envelope::is_envelope(text.as_bytes()) {
        anyhow::bail!(
            "refusing to sign {}: it is already a signed envelope",
            args.file.display()
        );
    }
    if let Err(e) = config::parse(text.as_bytes()) {
        anyhow::bail!(
            "refusing to sign {}: {}",
            args.file.display(),
            e.problems().join("; ")
        );
    }
    let env = envelope::sign(&text, &key).to_json();
    match &args.output {
        Some(out) => atomic::write(
            out,
            env.as_bytes(),
            Options {
                mode: Some(0o644),
                overwrite: args.force,
            },
        )
        .with_context(|| format!("failed to write {}", out.display()))?,
        None => std::io::stdout().write_all(env.as_bytes())?,
    }
    log::info!(
        "signed {} with key {}",
        args.file.display(),
        keys::key_id(&key.verifying_key())
    );
    Ok(Exit::Clean)
}

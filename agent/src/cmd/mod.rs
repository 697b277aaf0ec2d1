//! Command-line surface (clap derive) and the thin shells behind each subcommand.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::keys;
use crate::manifest::atomic;

pub mod boot_report;
pub mod diff;
pub mod init;
pub mod keygen;
pub mod logs;
pub mod seal;
pub mod sign;
pub mod verify;

/// Process exit codes. Documented in docs/exit-codes.md and `pyre --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The check ran and found the tree exactly as sealed.
    Clean = 0,
    /// The check ran and found drift.
    Drift = 1,
    /// The check could not be made: bad arguments, unreadable or badly signed manifest, I/O.
    CouldNotCheck = 2,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "pyre",
    version,
    about = "Boot agent for immutable servers: seals and verifies the root, enforces drift policy",
    after_help = "Exit codes: 0 clean / success, 1 drift found, 2 could not check (bad arguments, \
                  bad or unsigned manifest when a key is given, I/O errors)."
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate an ed25519 key pair: KEY (secret) and KEY.pub.
    Keygen(KeygenArgs),
    /// Walk ROOT and write its canonical manifest (optionally signed).
    Seal(SealArgs),
    /// Sign an existing manifest, writing MANIFEST.sig.
    Sign(SignArgs),
    /// Check a live tree against a manifest and report every difference.
    Verify(VerifyArgs),
    /// Show what changed between two manifests.
    Diff(DiffArgs),
    /// Run as PID 1 in the initramfs: verity root, verify, switch_root.
    Init(InitArgs),
    /// Print the boot verification record left by `pyre init` (for pyre-verified.service).
    BootReport(BootReportArgs),
    /// Ship logs off-host (`ship`) and wait for their delivery (`drain`).
    Logs(logs::LogsArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Path of the secret key; the public key is written next to it as KEY.pub.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SealArgs {
    /// Root of the tree to seal.
    pub root: PathBuf,
    /// Where to write the manifest.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Secret key: also write a detached signature MANIFEST.sig.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Path (relative to ROOT, e.g. /proc) whose directory entry is kept but not its contents.
    #[arg(long = "exclude", value_name = "PATH")]
    pub excludes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The manifest to sign.
    pub manifest: PathBuf,
    /// Secret key.
    #[arg(long)]
    pub key: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Root of the live tree.
    pub root: PathBuf,
    /// The manifest to check against.
    #[arg(short, long)]
    pub manifest: PathBuf,
    /// Public key: require a valid signature MANIFEST.sig made with it.
    #[arg(long)]
    pub pubkey: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub old: PathBuf,
    pub new: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Kernel command line to read (a parameter for tests; PID 1 reads /proc/cmdline).
    #[arg(long, default_value = "/proc/cmdline")]
    pub cmdline: PathBuf,
}

#[derive(Debug, Args)]
pub struct BootReportArgs {
    /// The record written by `pyre init`.
    #[arg(long, default_value = "/run/pyre/boot.json")]
    pub record: PathBuf,
}

/// Write the detached signature of `digest` next to `manifest` (as MANIFEST.sig): shared by
/// `seal --key` and `sign`.
pub(crate) fn write_signature(
    key: &ed25519_dalek::SigningKey,
    digest: &str,
    manifest: &Path,
) -> anyhow::Result<()> {
    let sig = keys::sig_path(manifest);
    atomic::write(&sig, keys::sign_digest(key, digest).as_bytes(), 0o644, true)
        .with_context(|| format!("failed to write signature {}", sig.display()))
}

//! Command-line surface (clap derive) and the thin shells behind each subcommand.
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::keys;
use crate::sys::atomic::{self, Options};
use exit::{CmdError, Exit};

pub mod boot;
pub mod boot_report;
pub mod config;
pub mod content_check;
pub mod daemon;
pub mod diff;
pub mod exit;
pub mod fetch;
pub mod init;
pub mod keygen;
pub mod logs;
mod output;
pub mod report;
pub mod seal;
pub mod sign;
pub mod status;
pub mod verify;
pub mod volumes;

#[derive(Debug, Parser)]
#[command(
    name = "pyre",
    version,
    about = "Boot agent for immutable servers: seals and verifies the root, enforces drift policy",
    after_help = "Exit codes: 0 clean / success, 1 drift found (boot-report: root not verified), \
                  2 could not check or failed (bad arguments, bad or unsigned manifest when a key \
                  is given, I/O errors); fetch and boot: 3 no config (boot: where required), 4 \
                  config source not reached by the deadline, 5 answer or config refused; boot: 6 \
                  config not applied (volume, file, hostname); report: 0 rendered, 2 not a report; \
                  status: 1 a check found drift, 2 nothing published. See docs/exit-codes.md."
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
    /// Confirm this boot's root is verified (for pyre-verified.service): print the record
    /// `pyre init` left, or without one verify the live root against /etc/pyre/manifest.
    BootReport(BootReportArgs),
    /// Compare the root's metadata with the signed manifest and take the result of pyre init's
    /// read of the whole dm-verity root (or read it here), so the kernel checked every block
    /// against the root hash (pyre-content.service, after a `read` root check); a differing
    /// entry or a rejected block names the file and applies the image policy's action (default:
    /// power off).
    ContentCheck(ContentCheckArgs),
    /// Instance configs: validate, print the JSON Schema, sign.
    Config(config::ConfigArgs),
    /// External data volumes: find, check, format only if blank, mount.
    Volumes(VolumesArgs),
    /// Fetch this instance's config from its provider, verify it and print it (or its identity).
    Fetch(fetch::FetchArgs),
    /// Ship logs off-host (`ship`) and wait for their delivery (`drain`).
    Logs(logs::LogsArgs),
    /// Fetch, verify and apply this instance's config (pyre-boot.service); on a boot-critical
    /// failure, report and apply the image policy's action (default: power off).
    Boot(boot::BootArgs),
    /// The long-running service (pyre.service): ship the applied config's logs, notify
    /// systemd, drain on SIGTERM.
    Daemon(daemon::DaemonArgs),
    /// Render a stored incident report (or a `verify --format json` drift report) for people
    /// (text), machines (json) or a SIEM (ocsf: an OCSF Detection Finding).
    Report(report::ReportArgs),
    /// Show what the daemon last published (/run/pyre/status.json): each check's last run and
    /// next one, the root's mount and verity state, config source, log sinks, lifetime, host.
    Status(status::StatusArgs),
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
    /// The most content of files not sealed as regular files (added ones) hashed for the
    /// report, all together, in path order (e.g. 64M, 1G, 0); sealed files are always hashed.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    pub hash_cap: u64,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

fn parse_size(s: &str) -> Result<u64, String> {
    crate::sys::size::parse(s).map_err(|e| e.to_string())
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
    /// The live root, verified when there is no record.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// The image's signed manifest, its signature and trusted keys (manifest, manifest.sig,
    /// keys/*.pub).
    #[arg(long, default_value = "/etc/pyre")]
    pub etc: PathBuf,
    /// Kernel command line (its pyre.manifest.digest pins the manifest).
    #[arg(long, default_value = "/proc/cmdline")]
    pub cmdline: PathBuf,
}

#[derive(Debug, Args)]
pub struct ContentCheckArgs {
    /// The record written by `pyre init` (its `root-check` says whether to read).
    #[arg(long, default_value = "/run/pyre/boot.json")]
    pub record: PathBuf,
    /// The dm-verity device of the root.
    #[arg(long, default_value = "/dev/mapper/pyre-root")]
    pub device: PathBuf,
    /// The root filesystem without its submounts (pyre-content.service binds / there).
    #[arg(long, default_value = "/run/pyre/root")]
    pub tree: PathBuf,
    /// Reader threads (default: one per core).
    #[arg(long)]
    pub readers: Option<usize>,
}

#[derive(Debug, Args)]
pub struct VolumesArgs {
    #[command(subcommand)]
    pub command: VolumesCommand,
}

#[derive(Debug, Subcommand)]
pub enum VolumesCommand {
    /// Set up the volumes of a config v1 file, exactly as `pyre boot` does.
    Apply(VolumesApplyArgs),
}

#[derive(Debug, Args)]
pub struct VolumesApplyArgs {
    /// Config v1 file (JSON); its `volumes` section is applied.
    #[arg(long)]
    pub config: PathBuf,
    /// Find and probe the devices and print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// sysfs root (a parameter for tests).
    #[arg(long, default_value = "/sys")]
    pub sys: PathBuf,
    /// Directory of device nodes (a parameter for tests).
    #[arg(long, default_value = "/dev")]
    pub dev: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Run one subcommand (everything but the kernel's plain `/init`, which main handles first).
pub fn run(command: Command) -> Result<Exit, CmdError> {
    match command {
        Command::Keygen(a) => keygen::run(a),
        Command::Seal(a) => seal::run(a),
        Command::Sign(a) => sign::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Init(a) => init::run(a),
        Command::BootReport(a) => boot_report::run(a),
        Command::ContentCheck(a) => content_check::run(a),
        Command::Config(a) => Ok(config::run(a)?),
        Command::Volumes(a) => Ok(volumes::run(a)?),
        Command::Fetch(a) => Ok(fetch::run(a)?),
        Command::Logs(a) => Ok(logs::run(a)?),
        Command::Boot(a) => Ok(boot::run(a)?),
        Command::Daemon(a) => Ok(daemon::run(a)?),
        Command::Report(a) => report::run(a),
        Command::Status(a) => Ok(status::run(a)?),
    }
}

/// Write the detached signature of `digest` next to `manifest` (as MANIFEST.sig): shared by
/// `seal --key` and `sign`.
pub(crate) fn write_signature(
    key: &ed25519_dalek::SigningKey,
    digest: &str,
    manifest: &Path,
) -> anyhow::Result<()> {
    let sig = keys::sig_path(manifest);
    atomic::write(
        &sig,
        keys::sign_digest(key, digest).as_bytes(),
        Options::replace_with_mode(0o644),
    )
    .with_context(|| format!("failed to write signature {}", sig.display()))
}

//! `pyre fetch`: choose the provider (kernel command line, flags, DMI), fetch the config under
//! the deadline, verify it as `pyre boot` does (`config::load` under the image policy and its
//! trusted keys) and print the verified config as JSON on stdout; or print who this instance is
//! (`--identity`). Failures end with one line on stderr (with the message id of a refusal) and
//! an exit code per class (docs/exit-codes.md).
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::exit::Exit;
use crate::config::{self, Policy};
use crate::providers::{self, Failure, HostPaths, ProviderKind, Settings, SystemClock};

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Provider (aws, gcp, azure, openstack, qemu, url, file, none); else pyre.provider= on the
    /// kernel command line, else detected from DMI.
    #[arg(long, value_parser = parse_provider)]
    pub provider: Option<ProviderKind>,
    /// Replace the provider's base URL (pyre.metadata.url=).
    #[arg(long, value_name = "URL")]
    pub metadata_url: Option<String>,
    /// The url provider's address (pyre.config.url=).
    #[arg(long, value_name = "URL")]
    pub config_url: Option<String>,
    /// The file provider's path.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Overall deadline in seconds (pyre.config.deadline=; default 120).
    #[arg(long, value_name = "SECS")]
    pub deadline: Option<u64>,
    /// Allow plain http for the url provider (also when the image policy says allow-http).
    #[arg(long)]
    pub allow_http: bool,
    /// The image policy: signature requirement, allowed providers, default deadline.
    #[arg(long, value_name = "FILE", default_value = config::policy::DEFAULT_PATH)]
    pub policy: PathBuf,
    /// Trusted public keys for signed configs.
    #[arg(long, value_name = "DIR", default_value = config::KEYS_DIR)]
    pub keys: PathBuf,
    /// Largest accepted config, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = providers::http::DEFAULT_MAX_BODY)]
    pub max_body: u64,
    /// Kernel command line to read the pyre.* config words from.
    #[arg(long, value_name = "FILE", default_value = "/proc/cmdline")]
    pub cmdline: PathBuf,
    /// DMI directory used to detect the provider.
    #[arg(long, value_name = "DIR", default_value = "/sys/class/dmi/id")]
    pub dmi_dir: PathBuf,
    /// sysfs root (fw_cfg, block devices for the OpenStack config drive).
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    pub sysfs: PathBuf,
    /// Extra CAs (*.pem) trusted for the url provider.
    #[arg(long, value_name = "DIR", default_value = "/etc/pyre/ca")]
    pub ca_dir: PathBuf,
    /// Print the instance identity as JSON instead of the config.
    #[arg(long)]
    pub identity: bool,
}

fn parse_provider(s: &str) -> Result<ProviderKind, String> {
    s.parse()
        .map_err(|_| "one of aws, gcp, azure, openstack, qemu, url, file, none".to_string())
}

/// The image policy, the kernel command line's words over it, then the flags over them.
pub fn settings(args: &FetchArgs, policy: &Policy) -> anyhow::Result<Settings> {
    let line = std::fs::read_to_string(&args.cmdline)
        .with_context(|| format!("failed to read {}", args.cmdline.display()))?;
    let mut s = Settings::for_policy(&line, policy)?;
    if args.provider.is_some() {
        s.provider = args.provider;
    }
    if let Some(u) = &args.metadata_url {
        s.metadata_url = Some(Settings::check_url("--metadata-url", u)?);
    }
    if let Some(u) = &args.config_url {
        s.config_url = Some(Settings::check_url("--config-url", u)?);
    }
    if let Some(d) = args.deadline {
        let d = Duration::from_secs(d);
        if d.is_zero() || d > providers::settings::MAX_DEADLINE {
            anyhow::bail!("--deadline must be 1 to 3600 seconds");
        }
        s.deadline = d;
    }
    s.config_file = args.config.clone();
    s.allow_http |= args.allow_http;
    s.max_body = args.max_body;
    Ok(s)
}

pub fn run(args: FetchArgs) -> anyhow::Result<Exit> {
    let policy = match Policy::load(&args.policy) {
        Ok(p) => p,
        Err(e) => {
            log::error!("{}: {e}", e.message_id());
            return Ok(Exit::CouldNotCheck);
        }
    };
    let settings = settings(&args, &policy)?;
    let paths = HostPaths {
        dmi: args.dmi_dir.clone(),
        sysfs: args.sysfs.clone(),
        ca_dir: args.ca_dir.clone(),
        ..HostPaths::default()
    };
    let clock = Arc::new(SystemClock::new());
    let mut out = std::io::stdout().lock();
    if args.identity {
        return match providers::fetch_identity(&settings, &paths, clock) {
            Ok(id) => {
                serde_json::to_writer_pretty(&mut out, &id)?;
                writeln!(out)?;
                Ok(Exit::Clean)
            }
            Err(e) => Ok(failed(&e)),
        };
    }
    let kind = match providers::choose(&settings, &paths) {
        Ok(k) => k,
        Err(e) => return Ok(failed(&e)),
    };
    if let Err(e) = policy.check_provider(kind) {
        log::error!("{}: config refused: {e}", e.message_id());
        return Ok(Exit::Refused);
    }
    match providers::fetch_config(&settings, &paths, clock) {
        Ok(providers::Fetched {
            config: Some(bytes),
            ..
        }) => match config::load(&bytes, &policy, &args.keys) {
            Ok(loaded) => {
                out.write_all(&loaded.config.to_json_with_secrets())?;
                out.flush()?;
                Ok(Exit::Clean)
            }
            Err(e) => {
                log::error!("{}: config refused: {e}", e.message_id());
                Ok(Exit::Refused)
            }
        },
        Ok(providers::Fetched { provider, .. }) => {
            log::error!("no config: provider {provider} has none for this instance");
            Ok(Exit::NoConfig)
        }
        Err(e) => Ok(failed(&e)),
    }
}

fn failed(e: &providers::ProviderError) -> Exit {
    let (what, code) = match e.failure() {
        Failure::Unreachable => ("config source not reached", Exit::Unreachable),
        Failure::Refused => ("config refused", Exit::Refused),
        Failure::Setup => ("cannot fetch a config", Exit::CouldNotCheck),
    };
    log::error!("{what}: {e}");
    code
}

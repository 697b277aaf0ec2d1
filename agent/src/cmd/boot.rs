//! `pyre boot` (pyre-boot.service): fetch, verify and apply this instance's config, or apply the
//! image policy's failure action. The sequence is `crate::boot`; this shell builds the real
//! capabilities and maps the outcome to an exit code (docs/exit-codes.md).
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::exit::Exit;
use crate::boot::{self, BootPaths, Capabilities, Class, Outcome, ReqwestReporter};
use crate::config::apply::NixApplyHost;
use crate::host::RealHost;
use crate::volumes::RealVolumeHost;

#[derive(Debug, Args)]
pub struct BootArgs {
    /// Read the config from FILE (the file provider) instead of the provider the kernel command
    /// line or DMI names.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kernel command line (pyre.provider=, pyre.metadata.url=, pyre.config.url=,
    /// pyre.config.deadline=, pyre.report.url=).
    #[arg(long, value_name = "FILE", default_value = "/proc/cmdline")]
    pub cmdline: PathBuf,
    /// The image policy (missing: the defaults).
    #[arg(long, value_name = "FILE", default_value = "/etc/pyre/image.json")]
    pub policy: PathBuf,
    /// Trusted public keys for signed configs.
    #[arg(long, value_name = "DIR", default_value = "/etc/pyre/keys")]
    pub keys: PathBuf,
    /// Where /run is: config files go below it, pyre's records to RUN/pyre/.
    #[arg(long, value_name = "DIR", default_value = "/run")]
    pub run: PathBuf,
    /// sysfs root (fw_cfg, block devices).
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    pub sys: PathBuf,
    /// Device nodes.
    #[arg(long, value_name = "DIR", default_value = "/dev")]
    pub dev: PathBuf,
    /// DMI directory used to detect the provider.
    #[arg(long, value_name = "DIR", default_value = "/sys/class/dmi/id")]
    pub dmi: PathBuf,
    /// Extra CAs (*.pem) trusted for the url provider.
    #[arg(long, value_name = "DIR", default_value = "/etc/pyre/ca")]
    pub ca: PathBuf,
    /// Kernel modules of the running kernel (default /lib/modules/$(uname -r)), for qemu_fw_cfg.
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
}

pub fn run(a: BootArgs) -> anyhow::Result<Exit> {
    let standard = BootPaths::standard();
    let paths = BootPaths {
        cmdline: a.cmdline,
        policy: a.policy,
        keys: a.keys,
        run: a.run,
        sys: a.sys,
        dev: a.dev,
        dmi: a.dmi,
        ca: a.ca,
        modules: a.modules.unwrap_or(standard.modules),
        config_file: a.config,
    };
    let volumes = RealVolumeHost::new();
    let caps = Capabilities {
        apply: &NixApplyHost,
        volumes: &volumes,
        modules: &RealHost,
        lifecycle: &RealHost,
        reporter: &ReqwestReporter,
        clock: Arc::new(RealHost),
    };
    Ok(exit_code(&boot::run(&caps, &paths)))
}

/// How each outcome ends the process.
pub fn exit_code(outcome: &Outcome) -> Exit {
    match outcome {
        Outcome::Applied | Outcome::NoConfig => Exit::Clean,
        Outcome::Failed { class, .. } => match class {
            Class::Setup => Exit::CouldNotCheck,
            Class::Missing => Exit::NoConfig,
            Class::Unreachable => Exit::Unreachable,
            Class::Refused => Exit::Refused,
            Class::NotApplied => Exit::NotApplied,
        },
    }
}

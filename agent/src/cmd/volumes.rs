//! `pyre volumes apply --config FILE [--dry-run]`: the volume stage of `pyre boot`, on its
//! own. Prints the report (text or JSON); exit 0 when every required volume is ready
//! (optional ones that failed are warnings), 2 otherwise.
use std::path::Path;

use anyhow::Context;

use super::{Exit, VolumesApplyArgs, VolumesArgs, VolumesCommand};
use crate::config;
use crate::volumes::{self, RealVolumeHost, SysPaths};

pub fn run(args: VolumesArgs) -> anyhow::Result<Exit> {
    match args.command {
        VolumesCommand::Apply(a) => apply(a),
    }
}

/// The volumes of a config v1 file, with the config module's full validation (an envelope is
/// verified against the image's trusted keys). Nothing is touched.
pub fn read_volumes(path: &Path) -> anyhow::Result<Vec<volumes::VolumeSpec>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read config {}", path.display()))?;
    let loaded = config::load(
        &bytes,
        &config::Policy::default(),
        Path::new(config::KEYS_DIR),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", e.message_id()))
    .with_context(|| format!("config {} refused", path.display()))?;
    Ok(volumes::spec::from_config(&loaded.config)?)
}

fn apply(a: VolumesApplyArgs) -> anyhow::Result<Exit> {
    let specs = read_volumes(&a.config)?;
    let paths = SysPaths {
        sys: a.sys,
        dev: a.dev,
    };
    let host = RealVolumeHost::new();
    let result = volumes::apply(&host, &paths, &specs, a.dry_run);
    let report = match &result {
        Ok(r) => Some(r),
        Err(e) => e.report(),
    };
    if let Some(r) = report {
        super::output::emit(a.format, r, |out| r.render_text(out))?;
    }
    match result {
        Ok(_) => Ok(Exit::Clean),
        // apply() has logged the failed volume with its message id.
        Err(volumes::ApplyError::Required { .. }) => Ok(Exit::CouldNotCheck),
        Err(e) => Err(anyhow::Error::new(e).context("volumes not ready")),
    }
}

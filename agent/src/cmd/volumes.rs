//! `pyre volumes apply --config FILE [--dry-run]`: the volume stage of `pyre boot`, on its
//! own. Prints the report (text or JSON); exit 0 when every required volume is ready
//! (optional ones that failed are warnings), 2 otherwise.
use std::path::Path;

use anyhow::Context;

use super::{Exit, VolumesApplyArgs, VolumesArgs, VolumesCommand};
use crate::volumes::{self, spec::ConfigVolumes, RealVolumeHost, SysPaths};

pub fn run(args: VolumesArgs) -> anyhow::Result<Exit> {
    match args.command {
        VolumesCommand::Apply(a) => apply(a),
    }
}

/// The `volumes` section of a config v1 file (other sections are not read here).
pub fn read_volumes(path: &Path) -> anyhow::Result<Vec<volumes::VolumeSpec>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("failed to read config {}", path.display()))?;
    let c: ConfigVolumes = serde_json::from_slice(&bytes)
        .with_context(|| format!("invalid config {}", path.display()))?;
    if c.version != 1 {
        anyhow::bail!(
            "config {}: version {} is not supported (expected 1)",
            path.display(),
            c.version
        );
    }
    Ok(c.volumes)
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

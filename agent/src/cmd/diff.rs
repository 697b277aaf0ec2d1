//! `pyre diff`: what changed between two manifests.
use anyhow::Context;

use super::exit::{CmdError, Exit};
use super::output::emit;
use super::DiffArgs;
use crate::drift;

pub fn run(args: DiffArgs) -> Result<Exit, CmdError> {
    let (old, old_digest, _) = drift::load_manifest(&args.old, None)
        .with_context(|| format!("failed to load {}", args.old.display()))?;
    let (new, new_digest, _) = drift::load_manifest(&args.new, None)
        .with_context(|| format!("failed to load {}", args.new.display()))?;
    let report = drift::diff(&old, &old_digest, &new, &new_digest);
    emit(args.format, &report, |out| report.render_text(out))?;
    Ok(if report.is_identical() {
        Exit::Clean
    } else {
        Exit::Drift
    })
}

//! `pyre status`: print the state `pyre daemon` publishes in `<run>/status.json` (text, or the
//! file's JSON with `--format json`). Needs nothing but read access to that file (0644).
//! Exit: 0 published and no check's last run found anything, 1 a check's last run found drift
//! or corruption, 2 nothing published (the daemon is not running or has not started its
//! checks) or an unreadable file.
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::exit::Exit;
use super::output::emit;
use super::Format;
use crate::enforce::status::{Status, FILE_NAME};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// pyre's run directory, where the daemon publishes status.json.
    #[arg(long, default_value = "/run/pyre")]
    pub run: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn run(a: StatusArgs) -> anyhow::Result<Exit> {
    let path = a.run.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no status at {}: pyre daemon (pyre.service) has not published one (not running, \
             or not started yet)",
            path.display()
        ),
        r => r.with_context(|| format!("failed to read {}", path.display()))?,
    };
    let status = Status::from_json(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a pyre status: {e}", path.display()))?;
    emit(a.format, &status, |out| status.render_text(out))?;
    Ok(if status.found() {
        Exit::Drift
    } else {
        Exit::Clean
    })
}

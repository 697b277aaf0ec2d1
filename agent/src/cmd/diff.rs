use anyhow::Context;

use super::{DiffArgs, Exit, Format};
use crate::drift;

pub fn run(args: DiffArgs) -> anyhow::Result<Exit> {
    let (old, old_digest, _) = drift::load_manifest(&args.old, None)
        .with_context(|| format!("failed to load {}", args.old.display()))?;
    let (new, new_digest, _) = drift::load_manifest(&args.new, None)
        .with_context(|| format!("failed to load {}", args.new.display()))?;
    let report = drift::diff(&old, &old_digest, &new, &new_digest);
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Text => report.render_text(&mut out)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            std::io::Write::write_all(&mut out, b"\n")?;
        }
    }
    Ok(if report.is_identical() {
        Exit::Clean
    } else {
        Exit::Drift
    })
}

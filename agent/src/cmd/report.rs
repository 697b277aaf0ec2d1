//! `pyre report FILE`: render a stored incident or drift report as text, JSON or OCSF.
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Args, ValueEnum};

use super::exit::{CmdError, Exit};
use crate::enforce::render::{self, Stored};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// An incident report (/run/pyre/reports/*.json) or a `pyre verify --format json` report;
    /// `-` reads stdin.
    pub file: PathBuf,
    /// text for people, json (the validated document), ocsf (an OCSF 1.3.0 Detection Finding,
    /// incident reports only).
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
    Ocsf,
}

pub fn run(args: ReportArgs) -> Result<Exit, CmdError> {
    let stdin = args.file.as_os_str() == "-";
    let name = if stdin {
        "stdin".to_string()
    } else {
        args.file.display().to_string()
    };
    let bytes = if stdin {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .map(|_| b)
            .context("failed to read stdin")?
    } else {
        std::fs::read(&args.file).with_context(|| format!("failed to read {name}"))?
    };
    let doc = render::load(&bytes).map_err(|e| anyhow!("{name} is not a pyre report: {e}"))?;
    let mut out = Vec::new();
    match args.format {
        ReportFormat::Text => render::text(&doc, &mut out),
        ReportFormat::Json => render::json(&doc, &mut out),
        ReportFormat::Ocsf => {
            let v = render::ocsf(&doc).map_err(|e| anyhow!("{name}: {e}"))?;
            serde_json::to_writer_pretty(&mut out, &v)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
        }
    }
    .context("failed to render the report")?;
    print(&out)?;
    if let Stored::Drift {
        report: Err(why), ..
    } = &doc
    {
        log::warn!(
            "{name}: drift report not fully read by this version ({why}); details shown as JSON"
        );
    }
    Ok(Exit::Clean)
}

/// Write to stdout; a reader that went away (`| head`) is not an error.
fn print(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r.context("failed to write the report")?),
    }
}

//! `pyre boot-report`: print the verification record `pyre init` left in /run/pyre/boot.json
//! (run by pyre-verified.service, so the line lands in the journal and on the console).
use anyhow::Context;

use super::{BootReportArgs, Exit};
use crate::init::record::BootRecord;

pub fn run(args: BootReportArgs) -> anyhow::Result<Exit> {
    let bytes = std::fs::read(&args.record).with_context(|| {
        format!(
            "failed to read the boot record {} (was the root verified by pyre init?)",
            args.record.display()
        )
    })?;
    let record = BootRecord::from_json(&bytes)
        .with_context(|| format!("failed to parse {}", args.record.display()))?;
    println!("{}", record.summary_line());
    if record.verified {
        Ok(Exit::Clean)
    } else {
        Ok(Exit::Drift)
    }
}

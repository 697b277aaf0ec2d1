//! `pyre content-check`: pyre-content.service's metadata check and read of the whole
//! dm-verity root after switch_root (pyre-ready.target requires it). See [`crate::init::content`].
use super::exit::{CmdError, Exit};
use super::ContentCheckArgs;
use crate::host::RealHost;
use crate::init::content::{self, Caps, ContentPaths, Outcome};
use crate::init::verify::DriftVerifier;

pub fn run(args: ContentCheckArgs) -> Result<Exit, CmdError> {
    let paths = ContentPaths {
        record: args.record,
        device: args.device,
        root: args.tree,
        ..ContentPaths::standard()
    };
    let readers = args
        .readers
        .unwrap_or_else(crate::manifest::default_threads);
    let read = move |p: &std::path::Path| content::read_device(p, readers);
    let caps = Caps {
        clock: &RealHost,
        lifecycle: &RealHost,
        verifier: &DriftVerifier,
        read: &read,
    };
    let outcome = content::run(&paths, &caps).map_err(|e| {
        CmdError::Failed(anyhow::Error::new(e).context("could not read the root through dm-verity"))
    })?;
    match outcome {
        Outcome::NotNeeded(why) => {
            println!("pyre: content-read not needed: {why}");
            Ok(Exit::Clean)
        }
        Outcome::Passed {
            metadata,
            read,
            entries,
        } => {
            println!(
                "pyre: metadata: {entries} entries of {} match the signed manifest ({:.2}s)",
                paths.root.display(),
                metadata.seconds
            );
            let by = if read.place == content::EARLY_PLACE {
                format!(
                    "by pyre init's early reader from {:.1}s after boot",
                    read.started_at
                )
            } else {
                format!("{readers} readers")
            };
            println!(
                "pyre: content-read: {:.1} MB of {} read in {:.2}s ({by}): every block matches \
                 the root hash",
                read.bytes as f64 / 1e6,
                paths.device.display(),
                read.seconds
            );
            Ok(Exit::Clean)
        }
        Outcome::Rejected { .. } => Ok(Exit::Drift),
    }
}

use std::path::Path;

use super::output::emit;
use super::{Exit, VerifyArgs};
use crate::drift::{self, VerifyError, VerifyRequest};

const MOUNTINFO: &str = "/proc/self/mountinfo";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

pub fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    let req = VerifyRequest {
        root: &args.root,
        manifest: &args.manifest,
        pubkey: args.pubkey.as_deref(),
        mountinfo: Path::new(MOUNTINFO),
    };
    let mut report = drift::verify_root(&req).map_err(|e| {
        // Signature failures are security events: give them a stable id to alert on.
        let id = match e {
            VerifyError::Signature(_) | VerifyError::MissingSignature { .. } => "PYRE_SIGNATURE: ",
            _ => "",
        };
        anyhow::Error::new(e).context(format!("{id}could not check {}", args.root.display()))
    })?;
    report.boot_id = drift::read_boot_id(Path::new(BOOT_ID));
    emit(args.format, &report, |out| report.render_text(out))?;
    if report.is_clean() {
        Ok(Exit::Clean)
    } else {
        log::warn!(
            "PYRE_DRIFT: {} drifted from {} ({} changes)",
            args.root.display(),
            report.manifest_digest,
            report.changes.len()
        );
        Ok(Exit::Drift)
    }
}

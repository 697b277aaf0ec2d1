use std::path::Path;

use super::exit::{CmdError, Exit};
use super::output::emit;
use super::VerifyArgs;
use crate::drift::{self, VerifyError, VerifyRequest};
use crate::logging::MsgId;

const MOUNTINFO: &str = "/proc/self/mountinfo";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

pub fn run(args: VerifyArgs) -> Result<Exit, CmdError> {
    let req = VerifyRequest {
        root: &args.root,
        manifest: &args.manifest,
        pubkey: args.pubkey.as_deref(),
        mountinfo: Path::new(MOUNTINFO),
        content: drift::ContentCheck::Hash,
    };
    let mut report = drift::verify_root(&req).map_err(|e| {
        // Signature failures are security events: their class carries a stable message id.
        let signature = matches!(
            e,
            VerifyError::Signature(_) | VerifyError::MissingSignature { .. }
        );
        let e = anyhow::Error::new(e).context(format!("could not check {}", args.root.display()));
        if signature {
            CmdError::Signature(e)
        } else {
            CmdError::Failed(e)
        }
    })?;
    report.boot_id = drift::read_boot_id(Path::new(BOOT_ID));
    emit(args.format, &report, |out| report.render_text(out))?;
    if report.is_clean() {
        Ok(Exit::Clean)
    } else {
        log::warn!(
            "{}: {} drifted from {} ({} changes)",
            MsgId::Drift,
            args.root.display(),
            report.manifest_digest,
            report.changes.len()
        );
        Ok(Exit::Drift)
    }
}

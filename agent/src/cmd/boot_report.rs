//! `pyre boot-report`: print the verification record `pyre init` left in /run/pyre/boot.json
//! (run by pyre-verified.service, so the line lands in the journal and on the console).
use anyhow::Context;

use super::exit::{CmdError, Exit};
use super::BootReportArgs;
use crate::init::record::BootRecord;

pub fn run(args: BootReportArgs) -> Result<Exit, CmdError> {
    let bytes = std::fs::read(&args.record).map_err(|e| {
        let missing = e.kind() == std::io::ErrorKind::NotFound;
        let e = anyhow::Error::new(e).context(format!(
            "failed to read the boot record {} (was the root verified by pyre init?)",
            args.record.display()
        ));
        if missing {
            CmdError::NoBootRecord(e)
        } else {
            CmdError::Failed(e)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(dir: &std::path::Path, verified: bool) -> std::path::PathBuf {
        let r = BootRecord {
            version: 1,
            verified,
            manifest_digest: "sha256:00".into(),
            entries: 1,
            bytes_hashed: 1,
            root_hash: "ab".into(),
            root_device: "/dev/vda".into(),
            started_at: 2.0,
            stages: vec![],
            total_seconds: 1.0,
        };
        let p = dir.join(format!("boot-{verified}.json"));
        std::fs::write(&p, r.to_json()).unwrap();
        p
    }

    #[test]
    fn exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let ok = run(BootReportArgs {
            record: record(dir.path(), true),
        })
        .unwrap();
        assert_eq!(ok, Exit::Clean);
        let bad = run(BootReportArgs {
            record: record(dir.path(), false),
        })
        .unwrap();
        assert_eq!(bad, Exit::Drift);
        let missing = dir.path().join("none.json");
        let err = run(BootReportArgs { record: missing }).unwrap_err();
        assert_eq!(err.exit(), Exit::NoBootRecord);
        assert!(
            format!("{err:#}").contains("failed to read the boot record"),
            "{err:#}"
        );
        std::fs::write(dir.path().join("junk.json"), b"{").unwrap();
        let err = run(BootReportArgs {
            record: dir.path().join("junk.json"),
        })
        .unwrap_err();
        assert_eq!(err.exit(), Exit::CouldNotCheck);
        assert!(format!("{err:#}").contains("not valid JSON"), "{err:#}");
    }
}

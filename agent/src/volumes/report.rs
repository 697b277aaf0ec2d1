//! What the volume stage did, per volume: for the boot record (JSON) and `pyre volumes
//! apply` (text).
use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;

use super::discover::BlockDevice;
use super::probe::Signature;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Mounted now.
    Mounted,
    /// Already mounted there: nothing done.
    AlreadyMounted,
    /// Dry run: `actions` says what would be done.
    Planned,
    /// Not set up; `error` says why.
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Timings {
    /// Finding the device (including waiting for it).
    pub wait: f64,
    pub probe: f64,
    pub format: f64,
    pub mount: f64,
    pub grow: f64,
    pub total: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct VolumeReport {
    pub name: String,
    pub required: bool,
    pub outcome: Outcome,
    /// The selector from the config (`serial "vol-0abc"`).
    pub selector: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<BlockDevice>,
    /// The identity the device was recognised by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_by: Option<String>,
    /// What probing found before anything was done (`blank`, `ext4 (label …)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<Signature>,
    /// Bytes read from devices for this volume (selection and probes).
    pub bytes_probed: u64,
    pub formatted: bool,
    pub grown: bool,
    pub filesystem: String,
    pub mountpoint: PathBuf,
    pub options: String,
    /// What was done, in order (in a dry run: what would be done).
    pub actions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub seconds: Timings,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct VolumesReport {
    pub dry_run: bool,
    pub volumes: Vec<VolumeReport>,
    pub seconds: f64,
}

impl VolumesReport {
    /// Optional volumes that failed (warnings for the boot record).
    pub fn failed_optional(&self) -> impl Iterator<Item = &VolumeReport> {
        self.volumes
            .iter()
            .filter(|v| v.outcome == Outcome::Failed && !v.required)
    }

    pub fn render_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let verb = if self.dry_run { "plan" } else { "applied" };
        writeln!(
            out,
            "volumes {verb} ({} volumes, {:.3}s)",
            self.volumes.len(),
            self.seconds
        )?;
        for v in &self.volumes {
            let need = if v.required { "required" } else { "optional" };
            let outcome = match v.outcome {
                Outcome::Mounted => "mounted",
                Outcome::AlreadyMounted => "already mounted",
                Outcome::Planned => "planned",
                Outcome::Failed => "FAILED",
            };
            writeln!(out, "{} ({need}): {outcome}", v.name)?;
            writeln!(out, "  selector:  {}", v.selector)?;
            if let Some(d) = &v.device {
                let by = v.matched_by.as_deref().unwrap_or("?");
                writeln!(
                    out,
                    "  device:    {} ({} by {by})",
                    d.node.display(),
                    d.name
                )?;
            }
            if let Some(f) = &v.found {
                writeln!(out, "  found:     {f} ({} bytes read)", v.bytes_probed)?;
            }
            for a in &v.actions {
                writeln!(
                    out,
                    "  {}  {a}",
                    if self.dry_run { "would" } else { "did  " }
                )?;
            }
            for w in &v.warnings {
                writeln!(out, "  warning:   {w}")?;
            }
            if let Some(e) = &v.error {
                let id = v.message_id.as_deref().unwrap_or("");
                writeln!(out, "  error:     {id}: {e}")?;
            }
        }
        Ok(())
    }
}

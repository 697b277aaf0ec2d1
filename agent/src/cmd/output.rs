//! Printing reports on stdout, shared by the commands that produce one (verify, diff).
use std::io::Write;

use super::Format;

/// Print a report to stdout as text or JSON. A reader that went away (`| head`) is not an
/// error: the exit code still tells the verdict.
pub fn emit<T: serde::Serialize>(
    format: Format,
    report: &T,
    text: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let written = match format {
        Format::Text => text(&mut out),
        Format::Json => serde_json::to_writer_pretty(&mut out, report)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n")),
    }
    .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

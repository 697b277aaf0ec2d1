//! One logging facade (`log`) writing to stderr, which systemd routes to the journal and the
//! console. Lines carry the level and, for security events, a stable message id in the text.
use std::io::Write;

struct StderrLogger {
    level: log::LevelFilter,
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        // One write per line so concurrent lines do not interleave.
        let line = format!("pyre: {level}: {}\n", record.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Stable ids of security events: a log line of one starts with `ID: `, so it can be found
/// and alerted on. (Coming with their features: refusal to format a volume, a config
/// signature failure.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgId {
    /// `pyre verify` found drift; `pyre daemon` found drift at run time (its incident report).
    Drift,
    /// A manifest signature was missing, malformed, made by another key or did not match.
    Signature,
    /// `pyre daemon` retired the instance at its maximum age (`lifetime.max-age`): not drift.
    Rotation,
}

impl MsgId {
    pub fn as_str(self) -> &'static str {
        match self {
            MsgId::Drift => "PYRE_DRIFT",
            MsgId::Signature => "PYRE_SIGNATURE",
            MsgId::Rotation => "PYRE_ROTATION",
        }
    }
}

impl std::fmt::Display for MsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Install the logger. `verbose` counts `-v` flags: 0 = info, 1 = debug, 2+ = trace.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let logger = Box::new(StderrLogger { level });
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

//! Sources: the systemd journal, the kernel log and plain files. Each yields entries with the
//! position to resume after them; a source that finds lines lost before it could read them
//! yields a gap marker entry (see [`Entry::gap`]).
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::logship::checkpoint::Position;
use crate::logship::record::Entry;
use crate::logship::spec::SourceSpec;

pub mod export;
pub mod file;
pub mod journal;
pub mod kmsg;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("starting {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("reading {what}: {source}")]
    Read { what: String, source: io::Error },
    #[error("checkpoint position {position:?} does not fit source {source_name}")]
    Position {
        source_name: String,
        position: Position,
    },
}

/// One log source.
pub trait Source: Send {
    /// The next entry and the position after it, waiting at most `wait` for one.
    fn next(&mut self, wait: Duration) -> Result<Option<(Entry, Position)>, SourceError>;

    /// How long `next` must find nothing before everything logged so far counts as read (the
    /// drain barrier uses it): zero for sources read directly, a little for a child process.
    fn settle(&self) -> Duration {
        Duration::ZERO
    }

    /// A drain was asked: note where what has been logged so far ends, so that [`at_mark`]
    /// can tell when `next` has handed all of it out (a journal source asks journald to write
    /// what it was sent and notes the last entry). Sources read directly need no mark.
    ///
    /// [`at_mark`]: Source::at_mark
    fn mark(&mut self) {}

    /// Whether everything up to the last [`mark`](Source::mark) has been handed out; with
    /// no mark (or none possible) true, and finding nothing within [`settle`](Source::settle)
    /// is the whole barrier.
    fn at_mark(&self) -> bool {
        true
    }
}

/// Host paths the sources read (parameters for tests).
#[derive(Debug, Clone)]
pub struct SourcePaths {
    /// The `journalctl` program.
    pub journalctl: PathBuf,
    /// The kernel log device.
    pub kmsg: PathBuf,
}

impl Default for SourcePaths {
    fn default() -> Self {
        SourcePaths {
            journalctl: "journalctl".into(),
            kmsg: "/dev/kmsg".into(),
        }
    }
}

/// Open the source `spec` resuming after `position`; `boot_id` is this boot's.
pub fn open(
    spec: &SourceSpec,
    paths: &SourcePaths,
    position: Position,
    boot_id: &str,
) -> Result<Box<dyn Source>, SourceError> {
    Ok(match spec {
        SourceSpec::Journal => {
            Box::new(journal::JournalSource::spawn(&paths.journalctl, position)?)
        }
        SourceSpec::Kmsg => Box::new(kmsg::KmsgSource::open(&paths.kmsg, position, boot_id)?),
        SourceSpec::File(p) => Box::new(file::FileSource::open(p, position)?),
    })
}

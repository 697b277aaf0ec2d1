//! Checkpoints: where a (source, sink) pipeline resumes, written atomically under the state
//! directory only after the sink acknowledged everything up to that point.
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::logship::spec::{redact, SourceSpec};
use crate::sys::atomic::{self, Options};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("reading checkpoint {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("checkpoint {path} is not a version 1 checkpoint: {problem}")]
    Parse { path: PathBuf, problem: String },
    #[error("writing checkpoint {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("creating state directory {path}: {source}")]
    StateDir { path: PathBuf, source: io::Error },
}

/// A place in a source, past the last acknowledged record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Position {
    /// Nothing acknowledged yet: start of the boot (journal, kmsg) or of the file.
    Start,
    /// The journal cursor of the last acknowledged entry.
    Journal { cursor: String },
    /// The kernel log sequence number of the last acknowledged record, in boot `boot_id`.
    Kmsg {
        #[serde(rename = "boot-id")]
        boot_id: String,
        seq: u64,
    },
    /// A file by identity (device and inode) and the offset after the last acknowledged line.
    File { dev: u64, ino: u64, offset: u64 },
}

/// What is stored per pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Checkpoint {
    pub version: u32,
    /// The source, for people reading the state directory.
    pub source: String,
    /// The sink URL without credentials, for people reading the state directory.
    pub sink: String,
    /// The boot the sequence number belongs to.
    pub boot_id: String,
    /// The sequence number the next record gets (per boot).
    pub next_seq: u64,
    pub position: Position,
}

/// Where one pipeline's checkpoint lives.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    /// `STATE_DIR/<source>--<hash of the sink URL>.json`, creating STATE_DIR (mode 0700).
    pub fn open(
        state_dir: &Path,
        source: &SourceSpec,
        sink_url: &str,
    ) -> Result<CheckpointStore, CheckpointError> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|e| CheckpointError::StateDir {
                path: state_dir.to_path_buf(),
                source: e,
            })?;
        let slug: String = source
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(64)
            .collect();
        let digest = Sha256::digest(format!("{source}\n{sink_url}").as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(CheckpointStore {
            path: state_dir.join(format!("{slug}--{hash}.json")),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored checkpoint, or None when there is none yet.
    pub fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CheckpointError::Read {
                    path: self.path.clone(),
                    source: e,
                })
            }
        };
        let c: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Parse {
            path: self.path.clone(),
            problem: e.to_string(),
        })?;
        if c.version != 1 {
            return Err(CheckpointError::Parse {
                path: self.path.clone(),
                problem: format!("version {}", c.version),
            });
        }
        Ok(Some(c))
    }

    pub fn save(&self, c: &Checkpoint) -> Result<(), CheckpointError> {
        let mut bytes = serde_json::to_vec_pretty(c).expect("a checkpoint serializes");
        bytes.push(b'\n');
        atomic::write(&self.path, &bytes, Options::replace_with_mode(0o600)).map_err(|e| {
            CheckpointError::Write {
                path: self.path.clone(),
                source: e,
            }
        })
    }
}

/// The checkpoint a pipeline starts from: the stored one, with the sequence restarted at 1
/// when it belongs to another boot.
pub fn resume(
    stored: Option<Checkpoint>,
    source: &SourceSpec,
    sink_url: &str,
    boot_id: &str,
) -> Checkpoint {
    let fresh = Checkpoint {
        version: 1,
        source: source.to_string(),
        sink: redact(sink_url),
        boot_id: boot_id.to_string(),
        next_seq: 1,
        position: Position::Start,
    };
    match stored {
        Some(c) if c.boot_id == boot_id => Checkpoint {
            next_seq: c.next_seq.max(1),
            ..c
        },
        Some(c) => Checkpoint {
            position: c.position,
            ..fresh
        },
        None => fresh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_resume() {
        let d = tempfile::tempdir().unwrap();
        let src = SourceSpec::File("/var/log/a b.log".into());
        let store =
            CheckpointStore::open(&d.path().join("state"), &src, "relp://u:pw@h:1").unwrap();
        assert_eq!(store.load().unwrap(), None);
        let mut c = resume(None, &src, "relp://u:pw@h:1", "boot1");
        assert_eq!((c.next_seq, &c.position), (1, &Position::Start));
        assert_eq!(c.sink, "relp://h:1");
        c.next_seq = 10;
        c.position = Position::File {
            dev: 1,
            ino: 2,
            offset: 3,
        };
        store.save(&c).unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(
            text.contains("\"kind\": \"file\"") && !text.contains("pw"),
            "{text}"
        );
        let back = store.load().unwrap().unwrap();
        assert_eq!(back, c);
        assert_eq!(resume(Some(back.clone()), &src, "x", "boot1").next_seq, 10);
        let other = resume(Some(back), &src, "x", "boot2");
        assert_eq!((other.next_seq, other.boot_id.as_str()), (1, "boot2"));
        assert_eq!(
            other.position,
            Position::File {
                dev: 1,
                ino: 2,
                offset: 3
            }
        );
    }

    #[test]
    fn bad_checkpoints_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(d.path(), &SourceSpec::Kmsg, "relp://h:1").unwrap();
        for bad in [
            "{",
            r#"{"version":2,"source":"kmsg","sink":"x","boot-id":"b","next-seq":1,"position":{"kind":"start"}}"#,
            r#"{"version":1,"source":"kmsg","sink":"x","boot-id":"b","next-seq":1,"position":{"kind":"start"},"x":1}"#,
            r#"{"version":1,"source":"kmsg","sink":"x","boot-id":"b","next-seq":1,"position":{"kind":"kmsg","seq":1}}"#,
        ] {
            fs::write(store.path(), bad).unwrap();
            assert!(store.load().is_err(), "{bad}");
        }
    }
}

//! Log shipping: sources (journal, kernel log, files) → RFC 5424 records → sinks (syslog over
//! TCP/TLS/UDP, RELP, Loki, NDJSON over HTTP), at least once, with checkpoints under a state
//! directory and a drain barrier.
//!
//! One [`Pipeline`](pipeline::Pipeline) joins one source to one sink and runs on its own thread;
//! a daemon runs one per (source, sink) pair and calls [`drain::drain_all`] before powering off.
//! Every host path (journalctl, /dev/kmsg, the boot id file, the state directory) is a parameter.
pub mod checkpoint;
pub mod clock;
pub mod drain;
pub mod pipeline;
pub mod record;
pub mod sink;
pub mod source;
pub mod spec;
pub mod util;

pub use pipeline::{Pipeline, PipelineHandle, PipelineOptions};
pub use record::{Entry, Identity, Record};
pub use spec::{Framing, LogsSpec, SinkSpec, SourceSpec};

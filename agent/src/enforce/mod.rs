//! Run-time enforcement: the checks `pyre daemon` runs on the live root (mounts, dm-verity
//! status, full re-verification), the instance lifetime ("phoenix" rotation), and what happens
//! when one of them fires: an [`report::Incident`] is written, shipped, posted, acknowledged
//! (bounded by the grace) and the configured action is taken.
//!
//! `respond` is what happens after a check fired (persist, ship, post, wait, act) and
//! `lifetime` says when the instance has lived long enough.
//!
//! `report` is the contract every part shares: the incident report's JSON (docs/drift-report.md,
//! "Incident reports"), built by the checks, rendered by `pyre report`, read by `pyre status`.
pub mod lifetime;
pub mod render;
pub mod report;
pub mod respond;

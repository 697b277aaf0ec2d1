//! pyre: the boot agent of immutable servers.
//!
//! Library modules hold the logic (pure where possible, over `impl Read`/`impl Write` and
//! injected host paths); `cmd` holds thin shells that the binary dispatches to.
//!
//! # Layering
//!
//! Which module may import which (`a <- b`: `b` may import `a`; every module may import the
//! ones below the modules it may import):
//!
//! ```text
//! sys <- logging <- host <- {manifest, keys} <- drift <- {init, enforce}
//! {sys, logging, host, keys} <- config <- {providers, volumes, logship}
//! config <- {init, enforce}   (the image policy)
//! {init, config, providers, volumes} <- boot   (`pyre boot` joins them)
//! {drift, config, logship, enforce} <- daemon
//! everything <- cmd          (the shell: nothing imports cmd)
//! ```
//!
//! - `sys` is the floor (atomic writes, hex, kernel-command-line words, errno text, mountinfo,
//!   durations): it imports nothing from this crate. `logging` (the log facade and the typed
//!   message ids) sees only `sys`.
//! - `host` holds the side effects as small capability traits; everything above takes them as
//!   parameters.
//! - `config`, `providers`, `volumes` and `logship` see `sys`, `host` and each other's types
//!   only through `config` (providers, volumes and log shipping never import one another).
//! - `daemon` is `pyre daemon` (pyre.service): it joins log shipping and the enforcement
//!   checks, and talks to systemd (sd_notify); only `cmd` imports it.
//! - Inside a module, children never import each other in a circle; a child may use its
//!   parent's items (the parent declares it).
//!
//! `tests/layering.rs` (run by `make lint`) reads every `crate::…`/`super::…` path of the
//! source and fails on a breach of this table, a top-level module missing from it, or a
//! cycle.
pub mod boot;
pub mod cmd;
pub mod config;
pub mod daemon;
pub mod drift;
pub mod enforce;
pub mod host;
pub mod init;
pub mod keys;
pub mod logging;
pub mod logship;
pub mod manifest;
pub mod providers;
pub mod sys;
pub mod volumes;

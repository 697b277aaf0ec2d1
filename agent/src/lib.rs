//! pyre: the boot agent of immutable servers.
//!
//! Library modules hold the logic (pure where possible, over `impl Read`/`impl Write` and
//! injected host paths); `cmd` holds thin shells that the binary dispatches to.
pub mod cmd;
pub mod drift;
pub mod host;
pub mod init;
pub mod keys;
pub mod logging;
pub mod logship;
pub mod manifest;

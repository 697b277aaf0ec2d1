//! The low floor: small helpers every capability may use, importing none of them (and nothing
//! else from this crate). Pure functions, plus the one atomic file writer.
pub mod atomic;
pub mod cmdline;
pub mod duration;
pub mod errno;
pub mod fiemap;
pub mod hex;
pub mod mountinfo;
pub mod size;
pub mod time;

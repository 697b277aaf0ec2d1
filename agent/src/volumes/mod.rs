//! External data volumes: find the device a config names, check what it holds, format it
//! only when it is blank and the config allows, mount it. See docs/volumes.md.
pub mod mount;
pub mod probe;
pub mod spec;

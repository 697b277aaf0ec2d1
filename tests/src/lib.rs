//! End-to-end harness for pyre: locate the built image, boot it under QEMU (TCG) with its serial
//! console captured, wait for console markers with deadlines, break copies of the image in
//! controlled ways, and run host-side servers the guest reaches at 10.0.2.2.
pub mod console;
pub mod cpio;
pub mod erofs;
pub mod image;
pub mod markers;
pub mod qemu;
pub mod received;
pub mod report;
pub mod scenario;
pub mod server;
pub mod tamper;
pub mod vm;

pub use image::Image;
pub use qemu::QemuBuilder;
pub use vm::{Exited, Shutdown, Vm};

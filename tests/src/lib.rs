//! End-to-end harness for pyre: locate the built image, boot it under QEMU (TCG) with its serial
//! console captured, wait for console markers with deadlines, break copies of the image in
//! controlled ways, and run host-side servers the guest reaches at 10.0.2.2.
//!
//! A scenario, in outline (see tests/tests/*.rs for the real ones):
//! ```no_run
//! use std::time::Duration;
//! use pyre_tests::{server::HttpServer, Image, QemuBuilder};
//!
//! let image = Image::locate()?; // $PYRE_IMAGE_DIR, $OUT/image or <workspace>/out/image
//! let srv = HttpServer::start(|_req| pyre_tests::server::Response::ok("{}"))?;
//! let mut cmdline = image.cmdline.clone();
//! cmdline.set("pyre.config.url", &srv.guest_url("/config.json")); // hypothetical parameter
//! let mut vm = QemuBuilder::new(&image, "my-scenario") // log: $OUT/test-logs/my-scenario.log
//!     .cmdline(cmdline)
//!     .monitor(true)
//!     .spawn()?;
//! let at = vm.wait_for("Reached target multi-user.target", Duration::from_secs(300))?;
//! srv.wait_for_request(Duration::from_secs(5), |r| r.path == "/config.json");
//! let down = vm.powerdown(Duration::from_secs(30))?; // QEMU is killed on drop anyway
//! # let _ = (at, down);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//! Failures carry the console log path and its last lines. Machines boot one at a time per
//! process; deadlines scale with `PYRE_E2E_SLOWDOWN`.
pub mod certs;
pub mod collector;
pub mod configs;
pub mod console;
pub mod cpio;
pub mod disk;
pub mod enforcement;
pub mod erofs;
pub mod guestlogs;
pub mod image;
pub mod instance;
pub mod live;
pub mod loki;
pub mod markers;
pub mod metadata;
pub mod plain;
pub mod qemu;
pub mod qmp;
pub mod received;
pub mod report;
pub mod rsyslog;
pub mod scenario;
pub mod server;
pub mod tamper;
pub mod vm;

pub use image::Image;
pub use qemu::{blank_disk, Bus, QemuBuilder};
pub use vm::{Exited, Shutdown, Vm, VIA_POWER_BUTTON};

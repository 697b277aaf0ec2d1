//! Waiting for a volume's device: rescan sysfs on every block uevent and at least every
//! [`POLL`], until exactly one device matches or the deadline passes. No fixed sleeps.
use std::time::Duration;

use super::discover::{scan, ProbeCache, SysPaths};
use super::host::VolumeHost;
use super::select::{none_error, select, Selected};
use super::spec::DeviceSelector;
use super::VolumeError;

/// The longest gap between two scans when no uevent comes (hosts without uevents, fake
/// sysfs trees in tests).
pub const POLL: Duration = Duration::from_millis(100);

/// Find the one device `selector` names, waiting until `deadline` (on the host's clock).
pub fn wait_for_device(
    host: &dyn VolumeHost,
    paths: &SysPaths,
    selector: &DeviceSelector,
    deadline: Duration,
    cache: &mut ProbeCache,
) -> Result<Selected, VolumeError> {
    let start = host.now();
    let mut scans = 0u32;
    loop {
        let devices = scan(paths)?;
        scans += 1;
        if let Some(found) =
            select(host, &devices, selector, cache).map_err(VolumeError::Ambiguous)?
        {
            if scans > 1 {
                let waited = host.now().saturating_sub(start).as_secs_f64();
                log::info!("{} appeared after {waited:.3}s", found.device.name);
            }
            return Ok(found);
        }
        let now = host.now();
        if now >= deadline {
            return Err(VolumeError::NotFound {
                waited: now.saturating_sub(start).as_secs_f64(),
                error: none_error(host, &devices, selector, cache),
            });
        }
        if scans == 1 {
            log::info!(
                "waiting up to {:.1}s for a device with {selector}",
                (deadline - now).as_secs_f64()
            );
        }
        host.wait_uevent(POLL.min(deadline - now));
    }
}

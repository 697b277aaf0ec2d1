//! Phoenix rotation: an instance lives at most `lifetime.max-age` since boot, less a jitter
//! that differs per instance (so a fleet booted together does not turn over at once) and is
//! the same every time it is computed for one instance and boot (so a restarted daemon keeps
//! its deadline):
//!
//! ```text
//! deadline = boot + max-age − jitter · u,   u = first 53 bits of
//!            SHA-256("pyre lifetime jitter\0" ‖ instance id ‖ "\0" ‖ boot id) / 2^53 ∈ [0, 1)
//! ```
//!
//! When the deadline is reached the daemon builds [`Rotation::incident`] (check `lifetime`,
//! finding `max-age`, reason "max age reached", action `poweroff`) and hands it to the same
//! response as drift (`respond`): reported, drained, powered off.
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::config::types::Lifetime;
use crate::enforce::report::{
    Action, Check, Event, Finding, HostFacts, Incident, Instance, KIND, REPORT_VERSION,
};

/// The reason of every rotation incident.
pub const REASON: &str = "max age reached";

/// u ∈ [0, 1), a function of `seed` only.
pub fn jitter_fraction(seed: &str) -> f64 {
    let mut h = Sha256::new();
    h.update(b"pyre lifetime jitter\0");
    h.update(seed.as_bytes());
    let d = h.finalize();
    let n = u64::from_be_bytes(d[..8].try_into().expect("8 bytes")) >> 11;
    n as f64 / (1u64 << 53) as f64
}

/// The seed of an instance and boot: `<instance id>\0<boot id>` (either may be empty).
pub fn seed(instance_id: Option<&str>, boot_id: Option<&str>) -> String {
    format!("{}\0{}", instance_id.unwrap_or(""), boot_id.unwrap_or(""))
}

/// Time since boot at which the instance is retired: `max_age − jitter · u(seed)`. A jitter
/// of `max_age` or more (config validation refuses it) is taken as `max_age / 2`, so the
/// instance always lives at least half its maximum age.
pub fn deadline(max_age: Duration, jitter: Duration, seed: &str) -> Duration {
    let jitter = if jitter >= max_age {
        max_age / 2
    } else {
        jitter
    };
    max_age - jitter.mul_f64(jitter_fraction(seed))
}

/// One instance's lifetime, for the daemon's scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Time since boot at which the instance is retired.
    pub deadline: Duration,
}

impl Rotation {
    pub fn new(lifetime: &Lifetime, seed: &str) -> Rotation {
        Rotation {
            deadline: deadline(lifetime.max_age.get(), lifetime.jitter.get(), seed),
        }
    }

    /// Whether the instance has lived long enough at `uptime` (time since boot).
    pub fn due(&self, uptime: Duration) -> bool {
        uptime >= self.deadline
    }

    /// Time left at `uptime` (zero once due): what `pyre status` shows and how long the
    /// scheduler may sleep before asking again.
    pub fn left(&self, uptime: Duration) -> Duration {
        self.deadline.saturating_sub(uptime)
    }

    /// The rotation incident at `uptime`, happening at `now` (wall clock).
    pub fn incident(
        &self,
        uptime: Duration,
        now: SystemTime,
        instance: Instance,
        host: HostFacts,
    ) -> Incident {
        let time = crate::sys::time::rfc3339(now);
        let id = incident_id(&time, instance.boot_id.as_deref(), "lifetime");
        Incident {
            report_version: REPORT_VERSION,
            kind: KIND.into(),
            event: Event {
                id,
                time,
                check: Check::Lifetime,
                reason: REASON.into(),
                action: Action::Poweroff,
                grace_s: 0,
            },
            instance,
            host,
            findings: vec![Finding::MaxAge {
                age_s: uptime.as_secs(),
                limit_s: self.deadline.as_secs(),
            }],
            drift: None,
        }
    }
}

/// `<UTC time compact>-<boot id prefix>-<check>` from an RFC 3339 time, as in the report
/// contract: `2026-11-23T10:15:02.120Z` → `20261123T101502Z-bb161606-lifetime`.
fn incident_id(rfc3339: &str, boot_id: Option<&str>, check: &str) -> String {
    let compact: String = rfc3339
        .split('.')
        .next()
        .unwrap_or(rfc3339)
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let boot: String = boot_id
        .unwrap_or("noboot")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("{compact}Z-{boot}-{check}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::duration::Duration as CfgDuration;

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn the_deadline_is_within_bounds_and_the_same_for_the_same_seed() {
        for i in 0..200 {
            let s = seed(Some(&format!("i-{i:04}")), Some("bb161606-cbaa"));
            let d = deadline(24 * H, H, &s);
            assert!(d > 23 * H && d <= 24 * H, "{d:?}");
            assert_eq!(d, deadline(24 * H, H, &s), "deterministic");
        }
        assert_eq!(deadline(24 * H, Duration::ZERO, "x"), 24 * H);
    }

    #[test]
    fn a_fleet_spreads_over_the_jitter() {
        let fractions: Vec<f64> = (0..1000)
            .map(|i| jitter_fraction(&seed(Some(&format!("i-{i}")), Some("b"))))
            .collect();
        assert!(fractions.iter().all(|u| (0.0..1.0).contains(u)));
        // Ten equal buckets over [0, 1): each holds roughly a tenth.
        for b in 0..10 {
            let n = fractions
                .iter()
                .filter(|u| (**u * 10.0) as usize == b)
                .count();
            assert!((60..=140).contains(&n), "bucket {b}: {n}");
        }
        // Another boot of the same instance gets another deadline.
        assert_ne!(
            jitter_fraction(&seed(Some("i-1"), Some("boot-a"))),
            jitter_fraction(&seed(Some("i-1"), Some("boot-b")))
        );
    }

    #[test]
    fn a_jitter_beyond_the_maximum_age_keeps_half_of_it() {
        let d = deadline(2 * H, 5 * H, "s");
        assert!(d >= H && d <= 2 * H, "{d:?}");
    }

    #[test]
    fn due_left_and_the_incident() {
        let lt = Lifetime {
            max_age: CfgDuration::from_secs(60),
            jitter: CfgDuration::from_secs(0),
        };
        let r = Rotation::new(&lt, "s");
        assert_eq!(r.deadline, Duration::from_secs(60));
        assert!(!r.due(Duration::from_secs(59)));
        assert_eq!(r.left(Duration::from_secs(45)), Duration::from_secs(15));
        assert!(r.due(Duration::from_secs(60)));
        assert_eq!(r.left(Duration::from_secs(75)), Duration::ZERO);
        let inst = Instance {
            boot_id: Some("bb161606-cbaa-4e".into()),
            manifest_digest: "sha256:00".into(),
            agent_version: "0.1.0".into(),
            ..Instance::default()
        };
        let now = std::time::UNIX_EPOCH + Duration::from_millis(1_795_428_902_120);
        let inc = r.incident(Duration::from_secs(61), now, inst, HostFacts::default());
        assert_eq!(inc.event.id, "20261123T101502Z-bb161606-lifetime");
        assert_eq!(inc.event.time, "2026-11-23T10:15:02.120Z");
        assert_eq!(inc.event.check, Check::Lifetime);
        assert_eq!(inc.event.reason, "max age reached");
        assert_eq!(inc.event.action, Action::Poweroff);
        assert_eq!(
            inc.findings,
            [Finding::MaxAge {
                age_s: 61,
                limit_s: 60
            }]
        );
        assert_eq!(Incident::from_json(&inc.to_json()).unwrap(), inc);
    }
}

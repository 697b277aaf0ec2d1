//! Building the [`Incident`] a check raised: who (the instance), what (the check's finding),
//! when, and what is about to be done.
use std::time::SystemTime;

use super::checks::Found;
use super::report::{Action, Check, Event, HostFacts, Incident, Instance, KIND, REPORT_VERSION};
use crate::config::{Drift, DriftAction};

/// `drift.grace` when the config has no `drift` section (docs/config.md).
pub const DEFAULT_GRACE_S: u64 = 30;

/// What every incident of this daemon shares.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentContext {
    pub instance: Instance,
    pub action: Action,
    pub grace_s: u64,
}

impl IncidentContext {
    /// The action and grace from the config's `drift` section (defaults when absent).
    pub fn new(instance: Instance, drift: Option<&Drift>) -> IncidentContext {
        let action = drift.map_or(DriftAction::default(), |d| d.action);
        IncidentContext {
            instance,
            action: match action {
                DriftAction::Report => Action::Report,
                DriftAction::Poweroff => Action::Poweroff,
                DriftAction::Reboot => Action::Reboot,
            },
            grace_s: drift.map_or(DEFAULT_GRACE_S, |d| d.grace.get().as_secs()),
        }
    }
}

/// `<UTC compact time>-<boot id prefix>-<check>`, e.g. `20261123T101502Z-bb161606-verify`.
pub fn event_id(now: SystemTime, boot_id: Option<&str>, check: Check) -> String {
    let t = crate::sys::time::rfc3339(now);
    // 2026-11-23T10:15:02.120Z -> 20261123T101502Z
    let compact: String = t[..19].chars().filter(|c| *c != '-' && *c != ':').collect();
    let boot: String = boot_id
        .unwrap_or("noboot")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    let check = serde_json::to_value(check)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("{compact}Z-{boot}-{check}")
}

/// The incident for what `check` found at `now`.
pub fn build(
    ctx: &IncidentContext,
    check: Check,
    found: &Found,
    now: SystemTime,
    host: HostFacts,
) -> Incident {
    Incident {
        report_version: REPORT_VERSION,
        kind: KIND.into(),
        event: Event {
            id: event_id(now, ctx.instance.boot_id.as_deref(), check),
            time: crate::sys::time::rfc3339(now),
            check,
            reason: found.reason.clone(),
            action: ctx.action,
            grace_s: ctx.grace_s,
        },
        instance: ctx.instance.clone(),
        host,
        findings: found.findings.clone(),
        drift: found.drift.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::report::Finding;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn ids_and_incidents() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(
            event_id(t, Some("bb161606-cbaa-4"), Check::Verify),
            "20231114T221320Z-bb161606-verify"
        );
        assert_eq!(
            event_id(t, None, Check::Mounts),
            "20231114T221320Z-noboot-mounts"
        );
        let ctx = IncidentContext::new(
            Instance {
                boot_id: Some("ab-cd".into()),
                manifest_digest: "sha256:aa".into(),
                agent_version: "0.1.0".into(),
                ..Instance::default()
            },
            None,
        );
        assert_eq!((ctx.action, ctx.grace_s), (Action::Poweroff, 30));
        let found = Found {
            reason: "r".into(),
            findings: vec![Finding::Root { detail: "d".into() }],
            drift: None,
            key: "k".into(),
        };
        let inc = build(&ctx, Check::Mounts, &found, t, HostFacts::default());
        assert_eq!(inc.event.id, "20231114T221320Z-abcd-mounts");
        assert_eq!(inc.event.time, "2023-11-14T22:13:20.123Z");
        assert_eq!(inc.findings, found.findings);
        let back = Incident::from_json(&inc.to_json()).unwrap();
        assert_eq!(back, inc);
    }
}

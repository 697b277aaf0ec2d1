//! The run-time enforcement scenarios' steps, shared by tests/tests/enforce.rs and `pyre-demo`:
//! the instance config (`logs` to a host rsyslog, `drift` to a host [`Collector`], `lifetime`,
//! volumes), waiting for an incident report while watching the machine, the security event at
//! the log receiver, and what a report names.
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::collector::Collector;
use crate::rsyslog::Rsyslog;
use crate::scenario::ScenarioError;
use crate::server::GUEST_HOST_ADDR;
use crate::vm::{Exited, Vm};

/// The message ids of the security events (agent/src/logging.rs).
pub const DRIFT_MSGID: &str = "PYRE_DRIFT";
pub const ROTATION_MSGID: &str = "PYRE_ROTATION";
/// The path the collector is told to receive reports on.
pub const REPORTS_PATH: &str = "/reports";

/// The `drift` section: checks every `interval`, `grace` for the acknowledgements, then
/// `action`; reports POSTed to `collector`.
pub fn drift(interval: &str, grace: &str, action: &str, collector: &Collector) -> Value {
    json!({
        "interval": interval,
        "grace": grace,
        "action": action,
        "report-url": collector.guest_url(REPORTS_PATH),
    })
}

/// A config v1 document for an enforced instance: logs (journal and kmsg) shipped to the host
/// rsyslog on `syslog_port` (octet-counted TCP), `drift`, an optional `lifetime`, `volumes`.
pub fn config(
    hostname: &str,
    syslog_port: u16,
    drift: Value,
    lifetime: Option<Value>,
    volumes: Vec<Value>,
) -> Value {
    let mut c = crate::configs::config(hostname, vec![], volumes);
    c["logs"] = json!({
        "sources": ["journal", "kmsg"],
        "sinks": [{ "url": format!("syslog+tcp://{GUEST_HOST_ADDR}:{syslog_port}") }],
    });
    c["drift"] = drift;
    if let Some(l) = lifetime {
        c["lifetime"] = l;
    }
    c
}

/// Every path an incident report names: the drift report's `changes[].path` and the
/// findings' `path`.
pub fn named_paths(report: &Value) -> Vec<String> {
    let changes = report["drift"]["changes"].as_array().into_iter().flatten();
    let findings = report["findings"].as_array().into_iter().flatten();
    changes
        .chain(findings)
        .filter_map(|c| c["path"].as_str().map(str::to_string))
        .collect()
}

/// `event.check` of a report.
pub fn check_of(report: &Value) -> &str {
    report["event"]["check"].as_str().unwrap_or_default()
}

/// `event.id` of a report.
pub fn id_of(report: &Value) -> &str {
    report["event"]["id"].as_str().unwrap_or_default()
}

fn fail(vm: &Vm, what: String) -> ScenarioError {
    ScenarioError::Check {
        scenario: vm.scenario.clone(),
        what,
        console: vm.console_context(),
    }
}

/// Wait up to `timeout` for a report matching `pred` at `collector`, failing early (with the
/// console) when QEMU exits without one. Returns the report and when it arrived.
pub fn await_report(
    vm: &Vm,
    collector: &Collector,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Result<(Value, Instant), ScenarioError> {
    let deadline = Instant::now() + timeout;
    let mut gone_since: Option<Instant> = None;
    loop {
        if let Some(found) = collector.wait_for_report(Duration::from_millis(500), &pred) {
            return Ok(found);
        }
        let now = Instant::now();
        if vm.console().is_closed() {
            // A POST in flight when QEMU went would have arrived by now.
            let since = *gone_since.get_or_insert(now);
            if now - since > Duration::from_secs(3) {
                return Err(fail(
                    vm,
                    format!(
                        "QEMU exited with no {what} at the collector; it got {}",
                        posts(collector)
                    ),
                ));
            }
        }
        if now >= deadline {
            return Err(fail(
                vm,
                format!(
                    "no {what} at the collector within {timeout:?}; it got {}",
                    posts(collector)
                ),
            ));
        }
    }
}

/// What the collector got, for failure messages.
pub fn posts(collector: &Collector) -> String {
    let all: Vec<String> = collector
        .posts()
        .iter()
        .map(|p| {
            let j = p.json();
            let desc = j.as_ref().map_or_else(
                || format!("{} bytes, not JSON", p.body.len()),
                |v| format!("check {:?} id {:?}", check_of(v), id_of(v)),
            );
            format!("{} {} ({desc})", p.method, p.path)
        })
        .collect();
    format!("{} request(s): {all:?}", all.len())
}

/// The first line received by `rsyslog` (within `timeout`) containing every one of `parts`.
pub fn await_syslog(rsyslog: &Rsyslog, parts: &[&str], timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(l) = rsyslog
            .lines()
            .into_iter()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return Some(l);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// QEMU's exit, by itself, within `timeout`; its time on the host clock.
pub fn await_poweroff(vm: &mut Vm, timeout: Duration) -> Result<(Exited, Instant), ScenarioError> {
    let exited = vm.wait_exit(timeout)?;
    if !exited.by_itself() {
        return Err(fail(vm, format!("QEMU did not exit by itself: {exited:?}")));
    }
    Ok((exited, vm.started() + exited.elapsed))
}

/// `pyre report FILE --format text` on the host, when the binary has the command.
pub fn render_text(pyre: &Path, report: &Value, scratch: &Path) -> Option<String> {
    let file = scratch.join("incident.json");
    std::fs::write(&file, serde_json::to_vec_pretty(report).ok()?).ok()?;
    let out = Command::new(pyre)
        .arg("report")
        .arg(&file)
        .args(["--format", "text"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_from_drift_changes_and_findings() {
        let r = json!({
            "event": {"check": "verify", "id": "x-verify"},
            "findings": [{"kind": "mount", "path": "/usr/bin/ls"}, {"kind": "max-age"}],
            "drift": {"changes": [{"path": "/usr/share/a"}, {"kind": "removed"}]},
        });
        assert_eq!(named_paths(&r), ["/usr/share/a", "/usr/bin/ls"]);
        assert_eq!(check_of(&r), "verify");
        assert_eq!(id_of(&r), "x-verify");
        assert!(named_paths(&json!({})).is_empty());
    }

    #[test]
    fn builds_an_enforced_config() {
        let c = Collector::start(crate::collector::Mode::Refuse).unwrap();
        let d = drift("10s", "5s", "poweroff", &c);
        let cfg = config("h", 514, d, Some(json!({"max-age": "1m"})), vec![]);
        assert_eq!(cfg["logs"]["sinks"][0]["url"], "syslog+tcp://10.0.2.2:514");
        assert_eq!(
            cfg["drift"]["report-url"],
            format!("http://10.0.2.2:{}/reports", c.port())
        );
        assert_eq!(cfg["lifetime"]["max-age"], "1m");
        assert_eq!(cfg["version"], 1);
    }
}

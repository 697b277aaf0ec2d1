//! The text rendering of an incident for people: a header to read at a glance (what happened,
//! which check, when, the action, which instance of which image on which host), then the
//! findings, then the drift changes grouped as `pyre verify` prints them.
use std::io::{self, Write};

use crate::drift::DriftReport;
use crate::enforce::report::{Action, Finding, Incident};

pub fn incident(inc: &Incident, out: &mut dyn Write) -> io::Result<()> {
    let e = &inc.event;
    let i = &inc.instance;
    let label = if inc.is_rotation() {
        "ROTATION"
    } else {
        "INCIDENT"
    };
    writeln!(out, "{label}: {} ({})", inc.title(), e.id)?;
    writeln!(out, "  what:      {}", e.reason)?;
    writeln!(out, "  check:     {}", e.check.as_str())?;
    writeln!(out, "  when:      {}", e.time)?;
    writeln!(out, "  action:    {}", action(e.action, e.grace_s))?;
    let mut who = vec![i.id.as_deref().unwrap_or("(id unknown)").to_string()];
    if let Some(p) = &i.provider {
        who[0].push_str(&format!(" ({p})"));
    }
    if let Some(h) = &i.hostname {
        who.push(format!("host {h}"));
    }
    if let Some(b) = &i.boot_id {
        who.push(format!("boot {b}"));
    }
    writeln!(out, "  instance:  {}", who.join(", "))?;
    writeln!(
        out,
        "  image:     {}, manifest {}",
        i.image_id.as_deref().unwrap_or("(no image id)"),
        i.manifest_digest
    )?;
    writeln!(out, "  host:      {}", host(inc))?;
    writeln!(out, "  agent:     pyre {}", i.agent_version)?;
    if !inc.findings.is_empty() {
        writeln!(out, "findings ({}):", inc.findings.len())?;
        for f in &inc.findings {
            writeln!(out, "  {}", finding(f))?;
        }
    }
    if let Some(d) = &inc.drift {
        writeln!(out, "drift:")?;
        match DriftReport::from_value(d) {
            Ok(r) => r.render_text(out)?,
            Err(why) => crate::drift::render_text_value(d, &why, out)?,
        }
    }
    Ok(())
}

fn action(a: Action, grace_s: u64) -> String {
    let wait = format!("once the report is acknowledged (at most {grace_s} s)");
    match a {
        Action::Poweroff => format!("power off {wait}"),
        Action::Reboot => format!("reboot {wait}"),
        Action::Report => "report only: the instance keeps serving".into(),
        Action::None => "none".into(),
    }
}

fn host(inc: &Incident) -> String {
    let h = &inc.host;
    let mut parts = Vec::new();
    if let Some(os) = &h.os {
        parts.push(os.clone());
    }
    if let Some(k) = &h.kernel {
        parts.push(format!("kernel {k}"));
    }
    parts.push(format!("up {}", span(h.uptime_s)));
    parts.push(format!(
        "memory {} of {} MB used",
        h.memory_used_bytes / 1_000_000,
        h.memory_total_bytes / 1_000_000
    ));
    parts.push(format!(
        "load {:.2} {:.2} {:.2}",
        h.load[0], h.load[1], h.load[2]
    ));
    parts.push(format!(
        "{} CPU{}",
        h.cpus,
        if h.cpus == 1 { "" } else { "s" }
    ));
    parts.join(", ")
}

fn finding(f: &Finding) -> String {
    let kind = f.kind();
    match f {
        Finding::Mount {
            path,
            fstype,
            source,
            sealed,
        } => format!("{kind}  {path}  {fstype} from {source} over sealed {sealed}"),
        Finding::Root { detail } => format!("{kind}  {detail}"),
        Finding::VerityCorruption {
            device,
            block,
            path,
            detail,
        } => {
            let mut s = format!("{kind}  {device}");
            if let Some(b) = block {
                s.push_str(&format!(" block {b}"));
            }
            if let Some(p) = path {
                s.push_str(&format!(" in {p}"));
            }
            format!("{s}  {detail}")
        }
        Finding::MaxAge { age_s, limit_s } => {
            format!("{kind}  up {} of {} allowed", span(*age_s), span(*limit_s))
        }
    }
}

/// `2 d 3 h`, `3 h 12 min`, `4 min 5 s`, `45 s`: the two largest units.
pub fn span(s: u64) -> String {
    let units = [(86_400, "d"), (3600, "h"), (60, "min"), (1, "s")];
    let Some(first) = units.iter().position(|(n, _)| s >= *n) else {
        return "0 s".into();
    };
    let (n, u) = units[first];
    let mut out = format!("{} {u}", s / n);
    if let Some((m, v)) = units.get(first + 1) {
        out.push_str(&format!(" {} {v}", s % n / m));
    }
    out
}

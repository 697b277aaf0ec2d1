//! A boot-critical failure: the reason on the console and in the journal with its stable
//! message id, the record written, the record and reason POSTed to the report URL (bounded,
//! best effort), then the image policy's action. `pyre-ready.target` is never reached: the
//! caller exits non-zero, which fails pyre-boot.service.
use super::sequence::Run;
use super::{msgid, BootError, Outcome};
use crate::config::OnFailure;
use crate::host::Shutdown;

fn action_name(a: OnFailure) -> &'static str {
    match a {
        OnFailure::Poweroff => "poweroff",
        OnFailure::Reboot => "reboot",
        OnFailure::Halt => "halt",
        OnFailure::Debug => "debug",
    }
}

fn consequence(a: OnFailure) -> &'static str {
    match a {
        OnFailure::Poweroff => "powering off",
        OnFailure::Reboot => "rebooting",
        OnFailure::Halt => "halting (the console stays readable)",
        OnFailure::Debug => "staying up for debugging (image policy on-failure: debug)",
    }
}

pub(super) fn fail(run: &mut Run, e: &BootError) -> Outcome {
    let id = e.message_id();
    let action = run.policy.on_failure;
    // The reason, with its id: on the console (StandardError=journal+console) and the journal.
    log::error!("{id}: {e}");
    log::error!(
        "{}: boot-critical failure ({id}); pyre-ready.target will not be reached; {}",
        msgid::FAILED,
        consequence(action)
    );
    run.section.message_id = Some(id.to_string());
    run.section.reason = Some(e.to_string());
    run.section.action = Some(action_name(action).to_string());
    let record = run.write_record("failed");
    log::info!("{}", run.section.summary_line());
    if let Some(url) = run.report_url.clone() {
        super::report::send(run.caps.reporter, &url, &record);
    }
    let how = match action {
        OnFailure::Poweroff => Some(Shutdown::PowerOff),
        OnFailure::Reboot => Some(Shutdown::Reboot),
        OnFailure::Halt => Some(Shutdown::Halt),
        OnFailure::Debug => None,
    };
    if let Some(how) = how {
        if let Err(err) = run.caps.lifecycle.shut_down(how) {
            log::error!("{}: {} failed: {err}", msgid::FAILED, how.verb());
        }
    }
    Outcome::Failed {
        class: e.class(),
        message_id: id,
        action,
    }
}

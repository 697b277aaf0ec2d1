//! The stages of `pyre boot`, in order (see the module docs of [`super`]), timed on the
//! injected clock and kept for the boot record.
use std::time::Duration;

use super::{fwcfg, BootError, BootPaths, Capabilities, Outcome};
use crate::config::apply::ApplyPaths;
use crate::config::{self, Policy, ProviderKind};
use crate::init::record::{self, BootSection, Stage};
use crate::providers::{self, HostPaths, Identity, Settings};
use crate::sys::atomic;
use crate::volumes::{self, Outcome as VolumeOutcome, SysPaths};

/// One run's state: what the failure path and the record need, filled in as stages pass.
pub(super) struct Run<'a> {
    pub caps: &'a Capabilities<'a>,
    pub paths: &'a BootPaths,
    /// Defaults until the image policy is read (a broken policy still ends the boot safely).
    pub policy: Policy,
    pub report_url: Option<String>,
    pub section: BootSection,
    start: Duration,
    details: serde_json::Map<String, serde_json::Value>,
}

impl<'a> Run<'a> {
    pub fn new(caps: &'a Capabilities<'a>, paths: &'a BootPaths) -> Run<'a> {
        let start = caps.clock.now();
        Run {
            caps,
            paths,
            policy: Policy::default(),
            report_url: None,
            section: BootSection {
                started_at: start.as_secs_f64(),
                stages: Vec::new(),
                total_seconds: 0.0,
                outcome: "failed".into(),
                provider: None,
                signed_by: None,
                message_id: None,
                reason: None,
                action: None,
                details: serde_json::Value::Null,
            },
            start,
            details: serde_json::Map::new(),
        }
    }

    /// Run one stage: its time goes to the record; its line to the log (`detail` of its value).
    fn stage<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Self) -> Result<T, BootError>,
        detail: impl FnOnce(&T) -> String,
    ) -> Result<T, BootError> {
        let t0 = self.caps.clock.now();
        let result = f(self);
        let took = self.caps.clock.now().saturating_sub(t0).as_secs_f64();
        self.section.stages.push(Stage {
            name: name.into(),
            seconds: took,
        });
        match &result {
            Ok(v) => log::info!("pyre boot: {name}: {} ({took:.3}s)", detail(v)),
            Err(_) => log::info!("pyre boot: {name}: failed after {took:.3}s"),
        }
        result
    }

    fn detail(&mut self, key: &str, value: impl serde::Serialize) {
        if let Ok(v) = serde_json::to_value(value) {
            self.details.insert(key.into(), v);
        }
    }

    /// Write the record with the section as it stands (best effort: a record that cannot be
    /// written is logged, it does not change how the boot ends).
    pub fn write_record(&mut self, outcome: &str) -> Vec<u8> {
        self.section.outcome = outcome.into();
        self.section.total_seconds = self
            .caps
            .clock
            .now()
            .saturating_sub(self.start)
            .as_secs_f64();
        self.section.details = serde_json::Value::Object(self.details.clone());
        let path = self.paths.record("boot.json");
        // pyre-content.service adds its check to the same file meanwhile: one writer at a time.
        let _lock = mkdir_pyre(self.paths)
            .and_then(|_| record::lock_dir(path.parent().unwrap_or(&path)))
            .map_err(|e| log::warn!("locking the boot record {}: {e}", path.display()))
            .ok();
        let existing = std::fs::read(&path).ok();
        let (bytes, replaced) = record::with_boot_section(existing.as_deref(), &self.section);
        if replaced {
            log::warn!("{} was not a JSON object: replaced", path.display());
        }
        let opts = atomic::Options::replace_with_mode(0o644);
        if let Err(e) = mkdir_pyre(self.paths).and_then(|_| atomic::write(&path, &bytes, opts)) {
            log::error!("writing the boot record {}: {e}", path.display());
        }
        bytes
    }

    /// The record of a boot that ended well, and its summary line.
    pub fn finish(&mut self, outcome: &Outcome) {
        let name = match outcome {
            Outcome::Applied => "applied",
            Outcome::NoConfig => "no-config",
            Outcome::Failed { .. } => "failed",
        };
        self.write_record(name);
        log::info!("{}", self.section.summary_line());
    }
}

fn mkdir_pyre(paths: &BootPaths) -> std::io::Result<()> {
    std::fs::create_dir_all(paths.run.join("pyre"))
}

fn host_paths(paths: &BootPaths) -> HostPaths {
    HostPaths {
        dmi: paths.dmi.clone(),
        sysfs: paths.sys.clone(),
        dev: paths.dev.clone(),
        ca_dir: paths.ca.clone(),
    }
}

/// `/run/pyre/instance.json`: who this instance is (no secrets), 0644.
fn write_instance(paths: &BootPaths, id: &Identity) -> Result<(), BootError> {
    let path = paths.record("instance.json");
    let mut bytes = serde_json::to_vec_pretty(id).expect("an identity always serializes");
    bytes.push(b'\n');
    mkdir_pyre(paths)
        .and_then(|_| atomic::write(&path, &bytes, atomic::Options::replace_with_mode(0o644)))
        .map_err(|error| BootError::Record { path, error })
}

/// The stages; `Err` is a boot-critical failure (the caller applies the policy).
pub(super) fn sequence(run: &mut Run) -> Result<Outcome, BootError> {
    let settings = run.stage("settings", settings, |s: &Settings| {
        format!(
            "provider {}, deadline {}s",
            s.provider.map_or("from DMI".into(), |p| p.to_string()),
            s.deadline.as_secs()
        )
    })?;
    let (bytes, identity) = run.stage(
        "fetch",
        |r| fetch(r, &settings),
        |(b, _): &(Option<Vec<u8>>, Identity)| match b {
            Some(b) => format!("{} bytes", b.len()),
            None => "no config".into(),
        },
    )?;
    let Some(bytes) = bytes else {
        run.policy.check_absent()?;
        log::info!("pyre boot: no config for this instance; the image does not require one");
        write_instance(run.paths, &identity)?;
        return Ok(Outcome::NoConfig);
    };
    let (policy, keys) = (run.policy.clone(), run.paths.keys.clone());
    let loaded = run.stage(
        "verify",
        |_| Ok(config::load(&bytes, &policy, &keys)?),
        |l: &config::Loaded| match &l.signed_by {
            Some(k) => format!("signed by {k}; {}", l.config.summary()),
            None => format!("unsigned; {}", l.config.summary()),
        },
    )?;
    drop(bytes);
    run.section.signed_by = loaded.signed_by.clone();
    let config = &loaded.config;
    let caps = run.caps;
    let (prepared, specs) = run.stage(
        "prepare",
        |_| {
            let prepared = config::apply::prepare(config, caps.apply)?;
            let specs = volumes::spec::from_config(config)?;
            Ok((prepared, specs))
        },
        |(_, s)| format!("files, owners and {} volume(s) checked", s.len()),
    )?;
    let apply_paths = ApplyPaths {
        run: run.paths.run.clone(),
    };
    let hostname = run.stage(
        "hostname",
        |r| {
            // pyre's own directory first (config files go below /run, created as needed).
            let dir = r.paths.run.join("pyre");
            mkdir_pyre(r.paths).map_err(|error| BootError::Record { path: dir, error })?;
            Ok(prepared.set_hostname(caps.apply, &apply_paths)?)
        },
        |h: &Option<String>| h.clone().unwrap_or_else(|| "unchanged".into()),
    )?;
    run.detail("hostname", &hostname);
    let sys = SysPaths {
        sys: run.paths.sys.clone(),
        dev: run.paths.dev.clone(),
    };
    let report = run.stage(
        "volumes",
        |_| match specs.is_empty() {
            true => Ok(volumes::VolumesReport::default()),
            false => volumes::apply(caps.volumes, &sys, &specs, false).map_err(Into::into),
        },
        |r| {
            format!(
                "{} volume(s) ready",
                r.volumes.len() - r.failed_optional().count()
            )
        },
    );
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            if let BootError::Volumes(v) = &e {
                run.detail("volumes", v.report());
            }
            return Err(e);
        }
    };
    run.detail("volumes", &report);
    let files = run.stage(
        "files",
        |_| {
            let mut files = prepared.write_run(caps.apply, &apply_paths)?;
            for v in &report.volumes {
                let mountpoint = v.mountpoint.to_string_lossy();
                if matches!(
                    v.outcome,
                    VolumeOutcome::Mounted | VolumeOutcome::AlreadyMounted
                ) {
                    files.extend(prepared.write_volume_files(
                        caps.apply,
                        &mountpoint,
                        &v.mountpoint,
                    )?);
                } else {
                    log::warn!(
                        "optional volume {} is not mounted: its files are not written",
                        v.name
                    );
                }
            }
            Ok(files)
        },
        |f: &Vec<String>| format!("{} file(s) and /run/pyre/env written", f.len()),
    )?;
    run.detail("files", &files);
    run.detail("environment", config.environment.keys().collect::<Vec<_>>());
    let paths = run.paths;
    run.stage(
        "commit",
        |_| {
            prepared.commit(caps.apply, &apply_paths)?;
            write_instance(paths, &identity)
        },
        |_| "/run/pyre/config.json and instance.json written".into(),
    )?;
    Ok(Outcome::Applied)
}

/// The command line and the policy → provider settings (`--config FILE` wins).
fn settings(run: &mut Run) -> Result<Settings, BootError> {
    let line = std::fs::read_to_string(&run.paths.cmdline).map_err(|error| BootError::Cmdline {
        path: run.paths.cmdline.clone(),
        error,
    })?;
    // Read the command line's report URL even when the policy is broken, so that failure is
    // reported too.
    if let Ok(s) = Settings::from_cmdline(&line) {
        run.report_url = s.report_url;
    }
    run.policy = Policy::load(&run.paths.policy)?;
    let mut s = Settings::for_policy(&line, &run.policy)?;
    run.report_url = s.report_url.clone();
    if let Some(f) = &run.paths.config_file {
        s.provider = Some(ProviderKind::File);
        s.config_file = Some(f.clone());
    }
    Ok(s)
}

/// One provider: its config, then (best effort) its identity, under one deadline.
fn fetch(run: &mut Run, settings: &Settings) -> Result<(Option<Vec<u8>>, Identity), BootError> {
    let hp = host_paths(run.paths);
    let kind = providers::choose(settings, &hp)?;
    run.section.provider = Some(kind.to_string());
    run.policy.check_provider(kind)?;
    if kind == ProviderKind::Qemu {
        fwcfg::ensure(run.caps.modules, &run.paths.sys, &run.paths.modules);
    }
    let (kind, provider) = providers::open(settings, &hp, run.caps.clock.clone())?;
    let Some(provider) = provider else {
        return Ok((None, identity_of(kind)));
    };
    let bytes = provider.config()?;
    let identity = match provider.identity() {
        Ok(id) => id,
        Err(e) => {
            log::debug!("instance identity: {e}");
            identity_of(kind)
        }
    };
    Ok((bytes, identity))
}

fn identity_of(kind: ProviderKind) -> Identity {
    Identity {
        provider: kind.to_string(),
        ..Identity::default()
    }
}

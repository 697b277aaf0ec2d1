//! The volume stage: for each volume in order, find its device (waiting up to its
//! deadline), probe it, decide, format if blank and allowed (after a re-probe), mount, grow.
//! The same code runs for `pyre boot` and `pyre volumes apply`; a dry run stops before the
//! first change.
use std::path::Path;
use std::time::Duration;

use super::discover::{probe_device, BlockDevice, ProbeCache, SysPaths};
use super::host::VolumeHost;
use super::mkfs::{grow_command, mkfs_command, should_grow, shown};
use super::mount::{mounted_at, parse_mountinfo, MountOptions};
use super::policy::{decide, Action, Refusal, FORMATTED, FORMAT_REFUSED};
use super::probe::Probe;
use super::report::{Outcome, Timings, VolumeReport, VolumesReport};
use super::spec::{check_mountpoint, validate, VolumeSpec};
use super::wait::wait_for_device;
use super::{ApplyError, VolumeError};
use crate::sys::errno::errno_text;

struct Stage<'a> {
    host: &'a dyn VolumeHost,
    paths: &'a SysPaths,
    dry_run: bool,
    cache: ProbeCache,
    /// Devices already given to a volume, with the volume's name.
    taken: Vec<((u32, u32), String)>,
}

/// Set up every volume. Optional volumes that fail are warnings in the report; the first
/// required one that fails stops the stage with [`ApplyError::Required`]. Each volume's
/// `wait` counts from the start of the stage.
pub fn apply(
    host: &dyn VolumeHost,
    paths: &SysPaths,
    specs: &[VolumeSpec],
    dry_run: bool,
) -> Result<VolumesReport, ApplyError> {
    validate(specs)?;
    let start = host.now();
    let mut stage = Stage {
        host,
        paths,
        dry_run,
        cache: ProbeCache::default(),
        taken: vec![],
    };
    let mut report = VolumesReport {
        dry_run,
        ..Default::default()
    };
    for spec in specs {
        let t0 = host.now();
        let bytes0 = stage.cache.bytes_read;
        let mut v = new_report(spec);
        let result = stage.volume(spec, start + spec.wait, &mut v);
        v.bytes_probed += stage.cache.bytes_read - bytes0;
        v.seconds.total = secs(host.now().saturating_sub(t0));
        if let Err(error) = result {
            let id = error.message_id();
            v.outcome = Outcome::Failed;
            v.error = Some(error.to_string());
            v.message_id = Some(id.to_string());
            if spec.required {
                log::error!("{id}: required volume {}: {error}", spec.name);
                report.volumes.push(v);
                report.seconds = secs(host.now().saturating_sub(start));
                return Err(ApplyError::Required {
                    volume: spec.name.clone(),
                    error: Box::new(error),
                    report: Box::new(report),
                });
            }
            log::warn!("{id}: optional volume {}: {error}; continuing", spec.name);
        }
        report.volumes.push(v);
    }
    report.seconds = secs(host.now().saturating_sub(start));
    Ok(report)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn new_report(spec: &VolumeSpec) -> VolumeReport {
    let options = MountOptions::parse(&spec.options).map(|o| o.describe());
    VolumeReport {
        name: spec.name.clone(),
        required: spec.required,
        outcome: Outcome::Failed,
        selector: spec.device.to_string(),
        device: None,
        matched_by: None,
        found: None,
        signatures: vec![],
        bytes_probed: 0,
        formatted: false,
        grown: false,
        filesystem: spec.filesystem.clone(),
        mountpoint: spec.mountpoint.clone(),
        options: options.unwrap_or_default(),
        actions: vec![],
        warnings: vec![],
        error: None,
        message_id: None,
        seconds: Timings::default(),
    }
}

impl Stage<'_> {
    fn elapsed(&self, since: Duration) -> f64 {
        secs(self.host.now().saturating_sub(since))
    }

    fn volume(
        &mut self,
        spec: &VolumeSpec,
        deadline: Duration,
        v: &mut VolumeReport,
    ) -> Result<(), VolumeError> {
        let t = self.host.now();
        let selected = wait_for_device(
            self.host,
            self.paths,
            &spec.device,
            deadline,
            &mut self.cache,
        )?;
        v.seconds.wait = self.elapsed(t);
        let dev = selected.device;
        v.matched_by = Some(selected.matched_by.clone());
        v.device = Some(dev.clone());
        log::info!(
            "volume {}: {} matches {}",
            spec.name,
            dev.node.display(),
            selected.matched_by
        );
        if let Some((_, other)) = self.taken.iter().find(|t| t.0 == dev.devnum) {
            return Err(VolumeError::Taken {
                node: dev.node.clone(),
                other: other.clone(),
            });
        }
        self.taken.push((dev.devnum, spec.name.clone()));

        let t = self.host.now();
        let probe = probe_device(self.host, &dev.node).map_err(VolumeError::Probe)?;
        v.seconds.probe = self.elapsed(t);
        v.bytes_probed += probe.bytes_read;
        v.found = Some(probe.describe());
        v.signatures = probe.found.clone();
        log::info!(
            "volume {}: {} holds {} ({} bytes read)",
            spec.name,
            dev.node.display(),
            probe.describe(),
            probe.bytes_read
        );
        let action = decide(&spec.filesystem, spec.format, &dev, &probe)?;
        let opts = MountOptions::parse(&spec.options).expect("validated");

        let table = self
            .host
            .mountinfo()
            .map_err(|e| VolumeError::MountTable(errno_text(&e)))?;
        let table = parse_mountinfo(&table);
        if let Some(m) = mounted_at(&table, &spec.mountpoint) {
            let ours = m.devnum == dev.devnum || Path::new(&m.source) == dev.node;
            if !ours || m.fstype != spec.filesystem {
                return Err(VolumeError::MountpointBusy {
                    mountpoint: spec.mountpoint.clone(),
                    device: m.source.clone(),
                    fstype: m.fstype.clone(),
                });
            }
            v.outcome = Outcome::AlreadyMounted;
            v.actions.push(format!(
                "nothing: already mounted on {}",
                spec.mountpoint.display()
            ));
            log::info!(
                "volume {}: already mounted on {}",
                spec.name,
                spec.mountpoint.display()
            );
            return self.grow(spec, &dev, &probe, &opts, v);
        }

        if self.dry_run {
            if action == Action::FormatAndMount {
                let (p, a) = mkfs_command(&spec.filesystem, spec.label.as_deref(), &dev.node)
                    .expect("validated");
                v.actions.push(format!("format: {}", shown(&p, &a)));
            }
            v.actions.push(mount_action(spec, &dev, &opts));
            if spec.grow && action == Action::Mount {
                let fs_size = probe.found.first().and_then(|s| s.fs_size);
                if should_grow(probe.size, fs_size) {
                    v.actions.push(format!(
                        "grow {} to fill {}",
                        spec.filesystem,
                        dev.node.display()
                    ));
                }
            }
            v.outcome = Outcome::Planned;
            return Ok(());
        }

        let mut fs_probe = probe;
        if action == Action::FormatAndMount {
            let t = self.host.now();
            fs_probe = self.format(spec, &dev, v)?;
            v.seconds.format = self.elapsed(t);
        }

        let t = self.host.now();
        self.mount(spec, &dev, &opts)?;
        v.seconds.mount = self.elapsed(t);
        v.actions.push(mount_action(spec, &dev, &opts));
        v.outcome = Outcome::Mounted;
        log::info!(
            "volume {}: mounted {} on {} ({}, {})",
            spec.name,
            dev.node.display(),
            spec.mountpoint.display(),
            spec.filesystem,
            opts.describe()
        );
        self.grow(spec, &dev, &fs_probe, &opts, v)
    }

    /// Re-probe, then mkfs, then check that the filesystem is there.
    fn format(
        &mut self,
        spec: &VolumeSpec,
        dev: &BlockDevice,
        v: &mut VolumeReport,
    ) -> Result<Probe, VolumeError> {
        let node = &dev.node;
        let again = probe_device(self.host, node).map_err(VolumeError::Probe)?;
        v.bytes_probed += again.bytes_read;
        if !again.is_blank() {
            return Err(Refusal {
                id: FORMAT_REFUSED,
                reason: format!(
                    "{} changed since it was probed: now {}; not formatting it",
                    node.display(),
                    again.describe()
                ),
            }
            .into());
        }
        let (program, args) =
            mkfs_command(&spec.filesystem, spec.label.as_deref(), node).expect("validated");
        let command = shown(&program, &args);
        log::warn!(
            "{FORMATTED}: volume {}: {} is blank; running {command}",
            spec.name,
            node.display()
        );
        let out = self
            .host
            .run(&program, &args)
            .map_err(|e| VolumeError::Command {
                command: command.clone(),
                reason: errno_text(&e),
            })?;
        for line in out.output.lines().filter(|l| !l.trim().is_empty()) {
            log::info!("{program}: {line}");
        }
        if out.status != Some(0) {
            return Err(VolumeError::Mkfs {
                command,
                status: out
                    .status
                    .map_or("killed".into(), |s| format!("exit status {s}")),
                output: out.output.trim().lines().last().unwrap_or("").to_string(),
            });
        }
        v.formatted = true;
        v.actions.push(format!("format: {command}"));
        let made = probe_device(self.host, node).map_err(VolumeError::Probe)?;
        v.bytes_probed += made.bytes_read;
        let ok = made.found.len() == 1 && made.found[0].kind.name() == spec.filesystem;
        if !ok {
            return Err(VolumeError::MkfsResult {
                node: node.clone(),
                want: spec.filesystem.clone(),
                command,
                found: made.describe(),
            });
        }
        Ok(made)
    }

    fn mount(
        &self,
        spec: &VolumeSpec,
        dev: &BlockDevice,
        opts: &MountOptions,
    ) -> Result<(), VolumeError> {
        let at = &spec.mountpoint;
        self.host.mkdir_all(at).map_err(|e| VolumeError::Mkdir {
            path: at.clone(),
            reason: errno_text(&e),
        })?;
        let resolved = self.host.canonicalize(at).map_err(|e| VolumeError::Mkdir {
            path: at.clone(),
            reason: errno_text(&e),
        })?;
        if &resolved != at {
            check_mountpoint(&resolved).map_err(|problem| VolumeError::MountpointEscapes {
                path: at.clone(),
                resolved: resolved.clone(),
                problem,
            })?;
        }
        let data = opts.data_string();
        self.host
            .mount(
                &dev.node,
                &resolved,
                &spec.filesystem,
                opts.flags,
                data.as_deref(),
            )
            .map_err(|e| VolumeError::Mount {
                node: dev.node.clone(),
                fstype: spec.filesystem.clone(),
                mountpoint: resolved.clone(),
                reason: errno_text(&e),
            })
    }

    /// Grow a mounted filesystem that is smaller than its device. Failing to grow is a
    /// warning: the data is mounted and usable.
    fn grow(
        &self,
        spec: &VolumeSpec,
        dev: &BlockDevice,
        probe: &Probe,
        opts: &MountOptions,
        v: &mut VolumeReport,
    ) -> Result<(), VolumeError> {
        let fs_size = probe.found.first().and_then(|s| s.fs_size);
        if !spec.grow || !should_grow(probe.size, fs_size) {
            return Ok(());
        }
        let warn = |v: &mut VolumeReport, w: String| {
            log::warn!("volume {}: {w}", spec.name);
            v.warnings.push(w);
        };
        if opts.read_only() {
            warn(v, "not growing a read-only mount".into());
            return Ok(());
        }
        let Some((program, args)) = grow_command(&spec.filesystem, &dev.node, &spec.mountpoint)
        else {
            warn(v, format!("pyre cannot grow {}", spec.filesystem));
            return Ok(());
        };
        let command = shown(&program, &args);
        let t = self.host.now();
        log::info!(
            "volume {}: growing {} ({} bytes) to fill {} bytes: {command}",
            spec.name,
            spec.filesystem,
            fs_size.unwrap_or(0),
            probe.size
        );
        match self.host.run(&program, &args) {
            Ok(out) if out.status == Some(0) => {
                for line in out.output.lines().filter(|l| !l.trim().is_empty()) {
                    log::info!("{program}: {line}");
                }
                v.grown = true;
                v.actions.push(format!("grow: {command}"));
            }
            Ok(out) => warn(
                v,
                format!("{command} failed ({:?}): {}", out.status, out.output.trim()),
            ),
            Err(e) => warn(v, format!("running {command}: {}", errno_text(&e))),
        }
        v.seconds.grow = self.elapsed(t);
        Ok(())
    }
}

fn mount_action(spec: &VolumeSpec, dev: &BlockDevice, opts: &MountOptions) -> String {
    format!(
        "mount: {} on {} ({}, {})",
        dev.node.display(),
        spec.mountpoint.display(),
        spec.filesystem,
        opts.describe()
    )
}

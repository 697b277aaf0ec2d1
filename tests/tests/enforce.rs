//! Run-time drift enforcement by `pyre daemon` (issue 12, item 7), in the baked image under
//! QEMU TCG, with a host-side report collector (tests/src/collector.rs) and a real rsyslogd
//! receiving the shipped logs. Each scenario asserts the one outcome the design gives it:
//! - **tampered root at run time**: a byte of a sealed file changes in the machine's copy of
//!   rootfs.img from the host while it runs; the next full verification reads it through
//!   dm-verity; the collector gets the report naming the file, rsyslog the security event,
//!   and the machine powers itself off within [`TAMPER_BOUND`] of the change;
//! - **20 clean cycles, then a bind mount** (one boot): an untouched machine runs 20 full
//!   verifications with no incident at all; then a bind mount over /usr/bin/ls (the test-only
//!   trigger of tests/src/live.rs) is reported — by the verification under way or the mount
//!   check right after it, within [`MOUNT_DETECT_BOUND`] plus one cycle — and the machine
//!   powers off;
//! - **report endpoint down, then the next instance** (two boots, one data volume): the
//!   endpoint refuses connections; a bind mount is found by the mount check (the stored report
//!   says `mounts`; verification is hourly here); the machine powers off after the grace (within
//!   [`POWEROFF_BOUND`] past it); the report is on the data volume, unacknowledged; the next
//!   instance, booted with the volume and the collector up, ships it (check `carried`); that
//!   instance has `lifetime.max-age` 1m: drained, reported as rotation, powered off.
//!
//! They need `make image` first and run one machine at a time. Console logs:
//! $OUT/test-logs/enforce-*.log; times: $OUT/test-logs/timings.tsv and `timing:` lines (read
//! by tests/bench/enforce.sh).
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pyre_tests::collector::{Collector, Mode};
use pyre_tests::configs::{self, DATA_MOUNT, DATA_SERIAL};
use pyre_tests::enforcement::{
    self as enf, await_poweroff, await_report, await_syslog, check_of, id_of, named_paths,
};
use pyre_tests::image::{pyre_bin, work_dir, Image};
use pyre_tests::instance::config_fw_cfg;
use pyre_tests::live::{self, guest_trigger, LiveRoot, Trigger};
use pyre_tests::report::record;
use pyre_tests::rsyslog::{self, Input, Rsyslog};
use pyre_tests::scenario::{scaled, MULTI_USER_DEADLINE};
use pyre_tests::{blank_disk, Bus, QemuBuilder, Vm};
use serde_json::{json, Value};

/// The file changed under the running machine: sealed, never read at run time but by pyre.
const TAMPERED: &[&str] = &["/usr/share/common-licenses/GPL-3"];
/// The baked binary the bind mount shadows.
const SHADOWED: &str = "/usr/bin/ls";
/// Full verification interval and grace of the tamper scenario.
const TAMPER_INTERVAL: u64 = 20;
const GRACE: u64 = 10;
/// How long one full verification of the live root may take under TCG on 2 shared cores
/// (every file read through dm-verity with sha256-generic: 8-12 s unloaded).
const CYCLE_BOUND: Duration = Duration::from_secs(60);
/// From the end of the grace to QEMU gone: systemd's orderly power-off (the daemon's own
/// fallback to reboot(2) comes later, at its 90 s stop bound).
const POWEROFF_BOUND: Duration = Duration::from_secs(45);
/// From the change on the host to QEMU gone: a verification under way when the byte changed
/// may have read that file already, so at worst it ends, then an interval (plus its jitter,
/// at most the interval again), the next verification, the grace and the power-off.
const TAMPER_BOUND: Duration = Duration::from_secs(
    2 * CYCLE_BOUND.as_secs() + 2 * TAMPER_INTERVAL + GRACE + POWEROFF_BOUND.as_secs(),
);
/// From the bind mount to its report at the collector (the mount check runs every few seconds).
const MOUNT_DETECT_BOUND: Duration = Duration::from_secs(20);
/// Clean full verifications before the mount is placed.
const CLEAN_CYCLES: u64 = 20;

fn image() -> Image {
    Image::locate().unwrap_or_else(|e| panic!("{e}"))
}

fn pyre() -> PathBuf {
    pyre_bin().expect("a built pyre binary (make static, or PYRE_BIN)")
}

/// A scenario's scratch directory, removed when the scenario passes.
struct Work(PathBuf);

impl Work {
    fn new(scenario: &str) -> Work {
        let dir = work_dir().join(scenario);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {dir:?}: {e}"));
        Work(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Write `config` to `work/name` and check it the way the guest will.
fn write_config(work: &Work, name: &str, config: &Value) -> PathBuf {
    let path = configs::write(&work.path(name), config).unwrap();
    let out = std::process::Command::new(pyre())
        .args(["config", "validate"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyre config validate {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn rsyslog(work: &Work) -> Rsyslog {
    assert!(
        rsyslog::available(),
        "rsyslogd is not installed (make deps)"
    );
    Rsyslog::start(&work.path("rsyslog"), Input::Tcp).unwrap_or_else(|e| panic!("{e}"))
}

fn ok<T>(r: Result<T, pyre_tests::scenario::ScenarioError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn wait_armed(vm: &Vm) -> Duration {
    vm.wait_for(&format!("]: {}", live::ARMED), scaled(MULTI_USER_DEADLINE))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The report names this instance's image and says it is about to power off.
fn assert_incident(vm: &Vm, image: &Image, r: &Value, check: &str, action: &str) {
    let ctx = || format!("report {r:#}; {}", vm.console_context());
    assert_eq!(r["kind"], "pyre.incident", "{}", ctx());
    assert_eq!(check_of(r), check, "{}", ctx());
    assert_eq!(r["event"]["action"], action, "{}", ctx());
    assert_eq!(
        r["instance"]["manifest_digest"],
        format!("sha256:{}", image.manifest_digest()),
        "{}",
        ctx()
    );
}

/// The security event of report `r` at the log receiver.
fn assert_event(rs: &Rsyslog, vm: &Vm, msgid: &str, r: &Value) -> String {
    let id = id_of(r);
    await_syslog(rs, &[msgid, id], scaled(Duration::from_secs(10))).unwrap_or_else(|| {
        panic!(
            "rsyslog got no {msgid} event for {id}; {} lines received; {}",
            rs.lines().len(),
            vm.console_context()
        )
    })
}

/// A byte of a sealed file changes under the running machine: the next full verification
/// reads it through dm-verity, the report names the file, the machine powers itself off.
#[test]
fn a_root_changed_at_run_time_is_reported_and_the_machine_powers_off() {
    let image = image();
    let scenario = "enforce-runtime-tamper";
    let work = Work::new(scenario);
    let live = LiveRoot::copy(&image, TAMPERED, &work.path("rootfs.img")).unwrap();
    let rs = rsyslog(&work);
    let collector = Collector::start(Mode::Answer(200)).unwrap();
    let interval = format!("{TAMPER_INTERVAL}s");
    let drift = enf::drift(&interval, &format!("{GRACE}s"), "poweroff", &collector);
    let cfg = enf::config("pyre-tamper", rs.port(), drift, None, vec![]);
    let file = write_config(&work, "config.json", &cfg);
    let builder = config_fw_cfg(QemuBuilder::new(&image, scenario), &file)
        .rootfs(&live.rootfs)
        .monitor(true);
    let mut vm = builder.spawn().unwrap();
    let ready = vm
        .wait_for_any(pyre_tests::markers::PYRE_READY, scaled(MULTI_USER_DEADLINE))
        .unwrap_or_else(|e| panic!("{e}"))
        .1;
    record(scenario, "pyre-ready.target", ready);
    let changed_at = Instant::now();
    let (before, after) = live.tamper().unwrap();
    eprintln!(
        "tampered {} byte {} ({before:#04x} -> {after:#04x}) at {:?}",
        live.at.file,
        live.at.file_offset,
        vm.elapsed()
    );
    let names_file = |r: &Value| named_paths(r).iter().any(|p| p == &live.at.file);
    let (report, got_at) = ok(await_report(
        &vm,
        &collector,
        scaled(TAMPER_BOUND),
        &format!("report naming {}", live.at.file),
        names_file,
    ));
    let check = check_of(&report).to_string();
    assert!(
        check == "verify" || check == "verity",
        "the report came from check {check:?}, not the verification or dm-verity: {report:#}"
    );
    assert_incident(&vm, &image, &report, &check, "poweroff");
    assert_event(&rs, &vm, enf::DRIFT_MSGID, &report);
    let (exited, gone_at) = ok(await_poweroff(&mut vm, scaled(TAMPER_BOUND)));
    record(
        scenario,
        "change on the host -> report at the collector",
        got_at - changed_at,
    );
    record(
        scenario,
        "report at the collector -> QEMU exited",
        gone_at - got_at,
    );
    record(
        scenario,
        "change on the host -> QEMU exited",
        gone_at - changed_at,
    );
    record(scenario, "QEMU wall time", exited.elapsed);
    assert!(
        gone_at - changed_at <= scaled(TAMPER_BOUND),
        "QEMU exited {:?} after the change: more than {TAMPER_BOUND:?}",
        gone_at - changed_at
    );
}

/// The entry of `check` in a `pyre status --format json` document.
fn check_status<'a>(status: &'a Value, check: &str) -> Option<&'a Value> {
    status["checks"]
        .as_array()?
        .iter()
        .find(|c| c["check"] == check)
}

/// The full verification cycles a `pyre status --format json` document counts.
fn verify_runs(status: &Value) -> Option<u64> {
    check_status(status, "verify")?["runs"].as_u64()
}

/// What one full verification costs in the guest, from the samples: its wall time (the
/// status's last duration, median over the distinct runs seen), and pyre.service's CPU time
/// per run and peak memory (its cgroup; the mount and dm-verity checks and log shipping are
/// in them too).
fn record_cycles(scenario: &str, samples: &[live::Sample]) {
    let mut walls: Vec<(u64, u64)> = samples
        .iter()
        .filter_map(|s| {
            let v = check_status(&s.status, "verify")?;
            Some((v["runs"].as_u64()?, v["last"]["duration_ms"].as_u64()?))
        })
        .collect();
    walls.dedup_by_key(|(runs, _)| *runs);
    let mut ms: Vec<u64> = walls.iter().map(|(_, d)| *d).collect();
    ms.sort_unstable();
    if let Some(m) = ms.get(ms.len() / 2) {
        record(
            scenario,
            &format!(
                "verification cycle wall in the guest (median of {})",
                ms.len()
            ),
            Duration::from_millis(*m),
        );
    }
    let cpu = |s: &live::Sample| Some((verify_runs(&s.status)?, s.cpu_usec?));
    let first = samples.iter().find_map(cpu);
    let last = samples.iter().rev().find_map(cpu);
    if let (Some((r0, c0)), Some((r1, c1))) = (first, last) {
        if r1 > r0 {
            record(
                scenario,
                &format!(
                    "pyre.service CPU per verification cycle in the guest ({} cycles)",
                    r1 - r0
                ),
                Duration::from_micros((c1 - c0) / (r1 - r0)),
            );
        }
    }
    if let Some(peak) = samples.iter().rev().find_map(|s| s.memory_peak) {
        pyre_tests::report::record_value(
            scenario,
            "pyre.service peak memory (cgroup memory.peak)",
            peak as f64 / (1 << 20) as f64,
            "MiB",
        );
    }
}

/// An untouched machine runs [`CLEAN_CYCLES`] full verifications with no incident; then a bind
/// mount over a baked binary is found within seconds, reported, and the machine powers off.
#[test]
fn twenty_clean_cycles_then_a_bind_mount_is_reported_and_the_machine_powers_off() {
    let image = image();
    let scenario = "enforce-clean-then-mount";
    let work = Work::new(scenario);
    let rs = rsyslog(&work);
    let collector = Collector::start(Mode::Answer(200)).unwrap();
    let drift = enf::drift("1s", &format!("{GRACE}s"), "poweroff", &collector);
    let cfg = enf::config("pyre-cycles", rs.port(), drift, None, vec![]);
    let file = write_config(&work, "config.json", &cfg);
    let mut trigger = Trigger::new();
    let builder = guest_trigger(
        config_fw_cfg(QemuBuilder::new(&image, scenario), &file).monitor(true),
        trigger.port(),
        Some(5),
        &live::bind_over(SHADOWED),
    )
    .unwrap();
    let mut vm = builder.spawn().unwrap();
    let armed = wait_armed(&vm);
    record(scenario, "pyre-ready.target (trigger armed)", armed);
    let deadline = Instant::now() + scaled(CYCLE_BOUND * CLEAN_CYCLES as u32);
    let mut samples;
    loop {
        samples = live::samples(&vm.console().text());
        let runs = samples.last().and_then(|s| verify_runs(&s.status));
        if runs.is_some_and(|n| n >= CLEAN_CYCLES) {
            break;
        }
        assert!(
            Instant::now() < deadline && !vm.console().is_closed(),
            "fewer than {CLEAN_CYCLES} verification cycles by {:?} (last status: {runs:?}); {}",
            vm.elapsed(),
            vm.console_context()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let last = samples.last().map(|s| s.status.clone()).unwrap_or_default();
    record_cycles(scenario, &samples);
    let cycles_done = vm.elapsed();
    record(
        scenario,
        &format!("{CLEAN_CYCLES} clean cycles done"),
        cycles_done - armed,
    );
    // Zero false positives: no report, no security event, no drift in the status.
    assert!(
        collector.posts().is_empty(),
        "reports on an untouched machine: {}",
        enf::posts(&collector)
    );
    let events: Vec<String> = rs
        .lines()
        .into_iter()
        .filter(|l| l.contains(enf::DRIFT_MSGID))
        .collect();
    assert!(
        events.is_empty(),
        "security events on an untouched machine: {events:?}"
    );
    for c in last["checks"].as_array().into_iter().flatten() {
        assert!(
            c["last"]["result"] != "found" && c["failures"] == 0,
            "check {} on an untouched machine: {c:#}",
            c["check"]
        );
    }
    assert!(
        check_status(&last, "mounts").is_some_and(|c| c["runs"].as_u64() > Some(0)),
        "the mount check never ran: {last:#}"
    );

    trigger.fire().unwrap();
    let acted = vm
        .wait_for(
            &format!("]: {}", live::ACTED),
            scaled(Duration::from_secs(30)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let mounted_at = vm.started() + acted;
    // The checks share one thread and never overlap: with verifications back to back (1 s
    // interval) the one under way when the mount appears ends first, and either it (a path
    // shadowed by a mount) or the mount check that runs next reports it.
    let shadowed = |r: &Value| named_paths(r).iter().any(|p| p == SHADOWED);
    let (report, got_at) = ok(await_report(
        &vm,
        &collector,
        scaled(MOUNT_DETECT_BOUND + CYCLE_BOUND),
        &format!("report naming {SHADOWED}"),
        shadowed,
    ));
    let check = check_of(&report).to_string();
    assert_incident(&vm, &image, &report, &check, "poweroff");
    if check == "mounts" {
        assert!(
            report["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| f["kind"] == "mount" && f["path"] == SHADOWED),
            "{report:#}"
        );
    } else {
        assert_eq!(check, "verify", "{report:#}");
    }
    assert_event(&rs, &vm, enf::DRIFT_MSGID, &report);
    let (exited, gone_at) = ok(await_poweroff(
        &mut vm,
        scaled(Duration::from_secs(GRACE) + POWEROFF_BOUND),
    ));
    record(
        scenario,
        "bind mount -> report at the collector",
        got_at.saturating_duration_since(mounted_at),
    );
    record(
        scenario,
        "report at the collector -> QEMU exited",
        gone_at - got_at,
    );
    record(scenario, "QEMU wall time", exited.elapsed);
    // The verification may report the same mount (a path shadowed) before the power-off; no
    // report may name anything else.
    for p in collector.posts() {
        let r = p.json().unwrap_or_default();
        assert!(
            named_paths(&r).iter().all(|n| n == SHADOWED) && !named_paths(&r).is_empty(),
            "a report about something else: {r:#}"
        );
    }
}

/// The report endpoint refuses connections: the machine powers off after the grace with the
/// report left on its data volume; the next instance (collector up) ships it as carried, then
/// retires itself at `lifetime.max-age`.
#[test]
fn endpoint_down_leaves_the_report_on_the_volume_for_the_next_instance() {
    let image = image();
    let scenario = "enforce-endpoint-down";
    let work = Work::new(scenario);
    let rs = rsyslog(&work);
    let mut collector = Collector::start(Mode::Refuse).unwrap();
    let data = blank_disk(&work.path("data.img"), configs::DATA_BYTES).unwrap();
    let volume = || {
        vec![configs::volume(
            "data",
            DATA_SERIAL,
            DATA_MOUNT,
            "if-blank",
            "30s",
        )]
    };
    let drift = enf::drift("1h", &format!("{GRACE}s"), "poweroff", &collector);
    let cfg = enf::config("pyre-down", rs.port(), drift, None, volume());
    let file = write_config(&work, "first.json", &cfg);
    let mut trigger = Trigger::new();
    trigger.fire().unwrap();
    let builder = guest_trigger(
        config_fw_cfg(QemuBuilder::new(&image, scenario), &file)
            .disk(Bus::Virtio, &data, DATA_SERIAL)
            .monitor(true),
        trigger.port(),
        None,
        &live::bind_over(SHADOWED),
    )
    .unwrap();
    let mut vm = builder.spawn().unwrap();
    let acted = vm
        .wait_for(&format!("]: {}", live::ACTED), scaled(MULTI_USER_DEADLINE))
        .unwrap_or_else(|e| panic!("{e}"));
    let bound = scaled(MOUNT_DETECT_BOUND + Duration::from_secs(GRACE) + POWEROFF_BOUND);
    let (exited, _) = ok(await_poweroff(&mut vm, bound));
    let after = exited.elapsed.saturating_sub(acted);
    record(scenario, "bind mount -> QEMU exited (endpoint down)", after);
    if let Some(line) = vm.console().find(enf::DRIFT_MSGID) {
        record(
            scenario,
            "bind mount -> incident on the console",
            line.saturating_sub(acted),
        );
        record(
            scenario,
            "incident on the console -> QEMU exited (endpoint down)",
            exited.elapsed.saturating_sub(line),
        );
    }
    assert!(
        after >= Duration::from_secs(GRACE) && after <= bound,
        "QEMU exited {after:?} after the bind mount: expected the {GRACE} s grace, then at \
         most {POWEROFF_BOUND:?}"
    );
    assert!(collector.posts().is_empty(), "{}", enf::posts(&collector));
    let event = await_syslog(
        &rs,
        &[enf::DRIFT_MSGID, "check mounts"],
        scaled(Duration::from_secs(10)),
    )
    .unwrap_or_else(|| {
        panic!(
            "rsyslog got no {} event; {}",
            enf::DRIFT_MSGID,
            vm.console_context()
        )
    });
    drop(vm);

    // The report on the volume, unacknowledged.
    let names = pyre_tests::disk::list_dir(&data, "/pyre/reports")
        .unwrap()
        .unwrap_or_else(|| panic!("no /pyre/reports on the data volume; event: {event}"));
    let stored: Vec<&String> = names.iter().filter(|n| n.ends_with(".json")).collect();
    assert!(
        stored.len() == 1 && !stored[0].ends_with(".acked.json"),
        "expected one unacknowledged report on the volume: {names:?}"
    );
    let bytes = pyre_tests::disk::read_file(&data, &format!("/pyre/reports/{}", stored[0]))
        .unwrap()
        .unwrap();
    let original: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(check_of(&original), "mounts", "{original:#}");
    assert!(event.contains(id_of(&original)), "{event} vs {original:#}");
    let stem = stored[0].trim_end_matches(".json").to_string();

    // The next instance: same volume, endpoint up, max-age one minute.
    let scenario = "enforce-next-instance";
    collector.set_mode(Mode::Answer(200)).unwrap();
    let drift = enf::drift("1h", &format!("{GRACE}s"), "poweroff", &collector);
    let lifetime = json!({ "max-age": "1m", "jitter": "0s" });
    let cfg = enf::config("pyre-next", rs.port(), drift, Some(lifetime), volume());
    let file = write_config(&work, "second.json", &cfg);
    let builder = config_fw_cfg(QemuBuilder::new(&image, scenario), &file)
        .disk(Bus::Virtio, &data, DATA_SERIAL)
        .monitor(true);
    let mut vm = builder.spawn().unwrap();
    let started = vm.started();
    let id = id_of(&original).to_string();
    let (carried, carried_at) = ok(await_report(
        &vm,
        &collector,
        scaled(MULTI_USER_DEADLINE),
        "carried report",
        |r| check_of(r) == "carried" && id_of(r) == id,
    ));
    record(
        scenario,
        "carried report at the collector",
        carried_at - started,
    );
    assert_eq!(carried["findings"], original["findings"], "{carried:#}");
    let (rotation, rotated_at) = ok(await_report(
        &vm,
        &collector,
        scaled(MULTI_USER_DEADLINE),
        "lifetime report",
        |r| check_of(r) == "lifetime",
    ));
    assert_incident(&vm, &image, &rotation, "lifetime", "poweroff");
    assert!(rotation["findings"][0]["kind"] == "max-age", "{rotation:#}");
    assert_event(&rs, &vm, enf::ROTATION_MSGID, &rotation);
    let (exited, gone_at) = ok(await_poweroff(
        &mut vm,
        scaled(Duration::from_secs(GRACE) + POWEROFF_BOUND),
    ));
    record(
        scenario,
        "QEMU start -> lifetime report",
        rotated_at - started,
    );
    record(
        scenario,
        "lifetime report -> QEMU exited",
        gone_at - rotated_at,
    );
    record(scenario, "QEMU wall time", exited.elapsed);
    assert!(
        rotated_at - started >= Duration::from_secs(60),
        "rotated {:?} after QEMU started: before the one-minute max-age",
        rotated_at - started
    );
    drop(vm);
    let names = pyre_tests::disk::list_dir(&data, "/pyre/reports")
        .unwrap()
        .unwrap();
    assert!(
        names.contains(&format!("{stem}.acked.json")) && !names.contains(&format!("{stem}.json")),
        "the carried report is not marked acknowledged on the volume: {names:?}"
    );
}

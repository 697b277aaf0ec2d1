//! `pyre boot` in the baked image, under QEMU TCG: config at boot (issue 9, item 9) and data
//! volumes (issue 10, item 8). Each scenario asserts the one outcome the design gives it:
//! - **first and replacement instance** (two boots, one after the other, the same disks): the
//!   first gets its config through fw_cfg (`pyre.provider=qemu`) and is configured — hostname
//!   at the login prompt, a file under /run, a blank virtio disk found by serial, formatted and
//!   mounted with a config file written on it, a pre-formatted NVMe disk found by serial and
//!   mounted, and its journal and kernel log shipped by pyre.service to two rsyslog receivers
//!   on the host (issue 11, item 8; docs/logs.md, "In a guest"); the replacement gets its
//!   config from the fake AWS endpoint after three 503s and is configured with the data volume
//!   as the first left it (same filesystem UUID, no formatting, the first's file there);
//! - **endpoint down**: nothing listens, `pyre.config.deadline=20`: the reason on the console and
//!   the machine powered off within the deadline plus [`POWEROFF_BOUND`];
//! - **config signed by a key the image does not trust**: refused, powered off;
//! - **a required volume absent**: the reason on the console, powered off.
//!
//! They need `make image` first (`make e2e` does it) and run one machine at a time. Console
//! logs: $OUT/test-logs/<scenario>.log; times: $OUT/test-logs/timings.tsv and `timing:` lines.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pyre_tests::configs::{self, ServerDisks, DATA_LABEL, DATA_MOUNT, NVME_MOUNT};
use pyre_tests::disk;
use pyre_tests::guestlogs::{self, Expected, GuestLogs};
use pyre_tests::image::{pyre_bin, work_dir, Image};
use pyre_tests::instance::{
    boot_configured, boot_ended, config_deadline, config_fw_cfg, config_metadata, guest_check,
    Configured, Ended,
};
use pyre_tests::markers::{CONFIG_SIGNATURE_ID, VOLUME_FORMATTED_ID, VOLUME_MISSING_ID};
use pyre_tests::metadata::MetadataServer;
use pyre_tests::report::record;
use pyre_tests::QemuBuilder;

/// The fetch deadline of the endpoint-down scenario (`pyre.config.deadline=`).
const DEADLINE_SECS: u64 = 20;
/// From `pyre boot`'s failure line to QEMU gone: the power-off itself.
const POWEROFF_BOUND: Duration = Duration::from_secs(30);
/// From pyre-boot.service starting to QEMU gone when the endpoint is down: the fetch deadline,
/// plus what precedes the fetch in `pyre boot` and the power-off.
const ENDPOINT_DOWN_BOUND: Duration = Duration::from_secs(DEADLINE_SECS + 30);

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

/// Run pyre on the host; its stdout, or a panic with its stderr.
fn run_pyre(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(pyre()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "pyre {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Write `config` to `path` and check it the way the guest will (no policy, no keys needed).
fn write_config(path: &Path, config: &serde_json::Value) -> PathBuf {
    configs::write(path, config).unwrap();
    run_pyre(&["config".as_ref(), "validate".as_ref(), path.as_os_str()]);
    path.to_path_buf()
}

/// A string this run alone writes, so data found later cannot be left from an older run.
fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", std::process::id(), t.as_nanos())
}

fn record_configured(scenario: &str, c: &Configured) {
    record(scenario, "pyre-ready.target", c.ready_at);
    record(scenario, "login prompt with the hostname", c.login_at);
    for (stage, secs) in &c.stages {
        record(
            scenario,
            &format!("pyre boot stage {stage} (in the VM)"),
            Duration::from_secs_f64(*secs),
        );
    }
    record(
        scenario,
        &format!("clean shutdown via {}", c.shutdown.via),
        c.shutdown.took,
    );
}

/// What probing read per volume, from `pyre boot`'s `volume NAME: DEV holds … (N bytes read)`
/// lines, printed for the note (past the harness's output capture).
fn report_probes(scenario: &str, text: &str) {
    use std::io::Write;
    for l in text
        .lines()
        .filter(|l| l.contains(" holds ") && l.contains(" bytes read)"))
    {
        let what = l.split_once("volume ").map_or(l, |(_, rest)| rest);
        let name = what.split(':').next().unwrap_or("?");
        let bytes = what
            .rsplit_once(" bytes read)")
            .and_then(|(pre, _)| pre.rsplit_once('(').map(|(_, n)| n))
            .unwrap_or("?");
        let _ = writeln!(
            std::io::stderr(),
            "probe: {scenario}: volume {name}: {bytes} bytes read"
        );
    }
}

fn record_ended(scenario: &str, e: &Ended) {
    if let Some(at) = e.boot_started_at {
        record(scenario, "pyre-boot.service started", at);
    }
    record(scenario, "failure line", e.reason_at);
    record(scenario, "poweroff (QEMU exited)", e.exited.elapsed);
}

/// The guest's journal and kernel log reached both receivers during the boot and up to the
/// power-off, every record with the config's hostname and the image's manifest digest.
fn assert_logs_shipped(scenario: &str, logs: &GuestLogs, c: &Configured, image: &Image) {
    use std::io::Write;
    let manifest = format!("sha256:{}", image.manifest_digest());
    let want = Expected {
        hostname: "pyre-first",
        manifest: &manifest,
        lines: guestlogs::BOOT_LINES,
    };
    let (got, problems) = logs.wait_judged(&want, Duration::from_secs(10));
    assert!(
        problems.is_empty(),
        "log shipping: {problems:#?}; receivers' files {:?} and {:?}; {}",
        logs.tcp.output(),
        logs.relp.output(),
        c.vm.console_context()
    );
    if let Some(at) = logs.first_record_at() {
        let at = at - c.vm.started();
        record(scenario, "first log record at the host receiver", at);
        if let Some(started) = c.vm.console().find("Started pyre.service") {
            let after = at.saturating_sub(started);
            record(scenario, "pyre.service started to first record", after);
        }
    }
    for (sink, records) in [("syslog+tcp", &got.tcp), ("relp", &got.relp)] {
        let (journal, _) = guestlogs::sequence(records, "journal");
        let (kmsg, _) = guestlogs::sequence(records, "kmsg");
        let _ = writeln!(
            std::io::stderr(),
            "shipped: {scenario}: {sink}: {} records received ({journal} journal, {kmsg} kmsg)",
            records.len()
        );
    }
}

/// The guest-side check of a configured instance, in this order.
const CHECK_HOSTNAME: usize = 0;
const CHECK_RUN_FILE: usize = 1;
const CHECK_FIRST_FILE: usize = 2;
const CHECK_DATA_MOUNT: usize = 3;
const CHECK_NVME_MOUNT: usize = 4;
const RUN_FILE: &str = "/run/pyre-e2e/hello.txt";
const FIRST_FILE: &str = "first-instance.txt";

fn guest_commands() -> Vec<String> {
    let findmnt = |at: &str| format!("findmnt -n -o SOURCE,FSTYPE,OPTIONS {at}");
    vec![
        "hostname".into(),
        format!("cat {RUN_FILE}"),
        format!("cat {DATA_MOUNT}/{FIRST_FILE}"),
        findmnt(DATA_MOUNT),
        findmnt(NVME_MOUNT),
    ]
}

fn boot_instance(builder: QemuBuilder, hostname: &str) -> Configured {
    let commands = guest_commands();
    let refs: Vec<&str> = commands.iter().map(String::as_str).collect();
    let builder = guest_check(builder, &refs).unwrap();
    boot_configured(builder, hostname, refs.len()).unwrap_or_else(|e| panic!("{e}"))
}

/// Both volumes mounted from the devices found by serial, ext4, with pyre's default
/// `nodev,nosuid`.
fn assert_mounted(c: &Configured) {
    for (i, want) in [
        (CHECK_DATA_MOUNT, "/dev/vd"),
        (CHECK_NVME_MOUNT, "/dev/nvme"),
    ] {
        let line = c.checks[i].first().cloned().unwrap_or_default();
        let ok = line.starts_with(want)
            && line.contains(" ext4 ")
            && line.contains("nodev")
            && line.contains("nosuid");
        assert!(
            ok,
            "check {i}: expected a {want}* ext4 nodev,nosuid mount, saw {line:?}; {}",
            c.vm.console_context()
        );
    }
}

/// Two instances of one server, one after the other, with the same disks. The first is
/// configured through fw_cfg and formats the blank data disk; the replacement is configured
/// from the fake AWS endpoint (three 503s first) and finds the data the first left.
#[test]
fn first_and_replacement_instances_share_the_data_volume() {
    let image = image();
    let work = Work::new("instances");
    let disks = ServerDisks::create(&work.0).unwrap();
    let nonce = nonce();
    let run_content = format!("run file {nonce}");
    let first_content = format!("written by the first instance {nonce}");

    // The first instance: config through fw_cfg, shipping its journal and kernel log to two
    // rsyslog receivers on the host (plain TCP and RELP).
    let scenario = "first-instance";
    let logs = GuestLogs::start(&work.path("logs")).unwrap_or_else(|e| panic!("{e}"));
    let mut first = configs::config(
        "pyre-first",
        vec![
            configs::file(RUN_FILE, &run_content),
            configs::file(&format!("{DATA_MOUNT}/{FIRST_FILE}"), &first_content),
        ],
        configs::server_volumes(),
    );
    first["logs"] = logs.config();
    let file = write_config(&work.path("first.json"), &first);
    let builder = disks.attach(config_fw_cfg(QemuBuilder::new(&image, scenario), &file));
    let c = boot_instance(builder, "pyre-first");
    record_configured(scenario, &c);
    assert_eq!(c.checks[CHECK_HOSTNAME], ["pyre-first"]);
    assert_eq!(c.checks[CHECK_RUN_FILE], [run_content.as_str()]);
    assert_eq!(c.checks[CHECK_FIRST_FILE], [first_content.as_str()]);
    assert_mounted(&c);
    let text = c.vm.console().text();
    report_probes(scenario, &text);
    // The blank data disk was formatted, the NVMe disk (format: never) was not. (A line may
    // show twice: pyre's stderr and the journal both reach the console.)
    let formats: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(VOLUME_FORMATTED_ID))
        .collect();
    assert!(
        !formats.is_empty() && formats.iter().all(|l| l.contains("volume data:")),
        "expected {VOLUME_FORMATTED_ID} for volume data only: {formats:?}"
    );
    assert_logs_shipped(scenario, &logs, &c, &image);
    drop(c);
    drop(logs);
    let data_id = disk::ext_identity(&disks.data)
        .unwrap()
        .expect("the first instance left an ext4 filesystem on the data disk");
    assert_eq!(data_id.label, DATA_LABEL);
    let nvme_id = disk::ext_identity(&disks.nvme).unwrap();
    assert_eq!(
        nvme_id.as_ref(),
        Some(&disks.nvme_id),
        "the NVMe disk (format: never) changed"
    );
    let on_disk = disk::read_file(&disks.data, &format!("/{FIRST_FILE}")).unwrap();
    assert_eq!(on_disk.as_deref(), Some(first_content.as_bytes()));

    // The replacement: the same disks, config from the fake AWS endpoint after three 503s.
    let scenario = "replacement-instance";
    let second = configs::config(
        "pyre-replacement",
        vec![configs::file(RUN_FILE, &run_content)],
        configs::server_volumes(),
    );
    let file = write_config(&work.path("second.json"), &second);
    let srv = MetadataServer::start(Some(std::fs::read(&file).unwrap())).unwrap();
    srv.inject("503*3").unwrap();
    let url = format!("http://10.0.2.2:{}", srv.port());
    let builder = disks.attach(config_metadata(
        QemuBuilder::new(&image, scenario),
        "aws",
        &url,
    ));
    let c = boot_instance(builder, "pyre-replacement");
    record_configured(scenario, &c);
    assert_eq!(c.checks[CHECK_HOSTNAME], ["pyre-replacement"]);
    assert_eq!(c.checks[CHECK_RUN_FILE], [run_content.as_str()]);
    assert_eq!(
        c.checks[CHECK_FIRST_FILE],
        [first_content.as_str()],
        "the replacement does not see the first instance's file"
    );
    assert_mounted(&c);
    let text = c.vm.console().text();
    report_probes(scenario, &text);
    // pyre found the filesystem the first instance made (the UUID read on the host) and
    // mounted it without formatting anything.
    let found = format!("holds ext4 (label \"{DATA_LABEL}\", uuid {}", data_id.uuid);
    assert!(
        text.lines()
            .any(|l| l.contains("volume data: ") && l.contains(&found)),
        "pyre did not report finding {found:?} on the data disk; {}",
        c.vm.console_context()
    );
    assert!(
        !text.contains(VOLUME_FORMATTED_ID),
        "the replacement formatted a volume; {}",
        c.vm.console_context()
    );
    let user_data: Vec<u16> = srv
        .served()
        .iter()
        .filter(|s| s.target == "/latest/user-data")
        .map(|s| s.status)
        .collect();
    assert_eq!(
        user_data,
        [503, 503, 503, 200],
        "the user data was not fetched after exactly three 503s: {:?}",
        srv.served()
    );
    drop(c);
    assert_eq!(
        disk::ext_identity(&disks.data).unwrap().as_ref(),
        Some(&data_id),
        "the data disk's filesystem changed (reformatted?)"
    );
    let on_disk = disk::read_file(&disks.data, &format!("/{FIRST_FILE}")).unwrap();
    assert_eq!(on_disk.as_deref(), Some(first_content.as_bytes()));
}

/// Nothing listens where the config should come from: `pyre boot` gives up at the deadline,
/// says why, and the machine powers off.
#[test]
fn config_endpoint_down_powers_off_after_the_deadline() {
    let image = image();
    let scenario = "config-endpoint-down";
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("http://10.0.2.2:{port}");
    let builder = config_deadline(
        config_metadata(QemuBuilder::new(&image, scenario), "aws", &url),
        DEADLINE_SECS,
    );
    let e = boot_ended(
        builder,
        pyre_tests::markers::CONFIG_UNREACHABLE_ID,
        &["10.0.2.2", "deadline"],
        POWEROFF_BOUND,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    record_ended(scenario, &e);
    let started = e.boot_started_at.unwrap_or_else(|| {
        panic!(
            "no pyre-boot.service start on the console; {}",
            e.vm.console_context()
        )
    });
    let took = e.exited.elapsed.saturating_sub(started);
    record(scenario, "pyre-boot.service start to QEMU gone", took);
    assert!(
        took <= pyre_tests::scenario::scaled(ENDPOINT_DOWN_BOUND),
        "QEMU exited {took:?} after pyre-boot.service started: more than {ENDPOINT_DOWN_BOUND:?}"
    );
    assert!(
        took >= Duration::from_secs(DEADLINE_SECS),
        "pyre boot gave up after {took:?}, before the {DEADLINE_SECS} s deadline"
    );
}

/// A config signed with a key the image does not trust is refused and the machine powers off.
#[test]
fn config_signed_by_an_untrusted_key_is_refused_and_powered_off() {
    let image = image();
    let scenario = "config-untrusted-key";
    let work = Work::new(scenario);
    let key = work.path("stranger.key");
    let made = run_pyre(&["keygen".as_ref(), "-o".as_ref(), key.as_os_str()]);
    // `key <id> (<secret>, <public>)`
    let key_id = made
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let plain = write_config(
        &work.path("config.json"),
        &configs::config("pyre-stranger", vec![], vec![]),
    );
    let signed = work.path("signed.json");
    run_pyre(&[
        "config".as_ref(),
        "sign".as_ref(),
        plain.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
        "-o".as_ref(),
        signed.as_os_str(),
    ]);
    let builder = config_fw_cfg(QemuBuilder::new(&image, scenario), &signed);
    let e = boot_ended(builder, CONFIG_SIGNATURE_ID, &[&key_id], POWEROFF_BOUND)
        .unwrap_or_else(|e| panic!("{e}"));
    record_ended(scenario, &e);
    let text = e.vm.console().text();
    assert!(
        !text.contains("pyre-stranger login:"),
        "the refused config's hostname was applied"
    );
}

/// A required volume whose disk is not attached: the reason on the console, then power off.
#[test]
fn required_volume_absent_powers_off() {
    let image = image();
    let scenario = "volume-absent";
    let work = Work::new(scenario);
    let config = configs::config(
        "pyre-no-volume",
        vec![],
        vec![configs::volume(
            "archive",
            "pyre-absent-1",
            "/var/lib/archive",
            "never",
            "5s",
        )],
    );
    let file = write_config(&work.path("config.json"), &config);
    let builder = config_fw_cfg(QemuBuilder::new(&image, scenario), &file);
    let e = boot_ended(
        builder,
        VOLUME_MISSING_ID,
        &["archive", "pyre-absent-1"],
        POWEROFF_BOUND,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    record_ended(scenario, &e);
}

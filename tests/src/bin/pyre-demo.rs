//! `make demo`: boot the baked image with a config from the fake metadata server and a blank
//! data disk, and watch pyre verify the root, apply the config, format the disk and ship the
//! guest's journal and kernel log to rsyslog receivers on the host; boot a replacement instance
//! with the same disk and watch the data survive; then boot a copy of the root with one byte
//! changed and watch pyre name the file and power the machine off; last, change a byte of the
//! root under a running machine and watch `pyre daemon` find it, report it to a collector on
//! the host and power the machine off.
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use pyre_tests::collector::{Collector, Mode};
use pyre_tests::configs::{self, ServerDisks, DATA_MOUNT};
use pyre_tests::disk;
use pyre_tests::enforcement::{self as enf, await_poweroff, await_report, named_paths};
use pyre_tests::guestlogs::{sequence, Expected, GuestLogs, BOOT_LINES};
use pyre_tests::image::{work_dir, Image};
use pyre_tests::instance::{boot_configured, config_metadata, guest_check, Configured};
use pyre_tests::live::LiveRoot;
use pyre_tests::markers::PYRE_READY;
use pyre_tests::markers::{line_with, stage_times, VERIFIED, VOLUME_FORMATTED_ID};
use pyre_tests::metadata::MetadataServer;
use pyre_tests::rsyslog::{Input, Rsyslog};
use pyre_tests::scenario::boot_rejected_after_switch_root;
use pyre_tests::scenario::{scaled, MULTI_USER_DEADLINE};
use pyre_tests::tamper::{tamper_root, TAMPER_CANDIDATES};
use pyre_tests::QemuBuilder;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\npyre-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn banner(title: &str, body: &str) {
    let mut out = std::io::stdout().lock();
    let (bold, plain) = if out.is_terminal() {
        ("\x1b[1;36m", "\x1b[0m")
    } else {
        ("", "")
    };
    let rule = "=".repeat(78);
    let _ = writeln!(out, "\n{bold}{rule}\n  {title}{plain}");
    for line in body.lines() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "{bold}{rule}{plain}\n");
    let _ = out.flush();
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn stages_text(stages: &[(String, f64)]) -> String {
    let s: Vec<String> = stages.iter().map(|(n, s)| format!("{n} {s:.2}s")).collect();
    s.join(", ")
}

/// The file the first instance writes on the data volume.
const NOTE: &str = "note-from-instance-1.txt";

/// What the guest shows once pyre-ready.target is reached.
fn checks() -> Vec<String> {
    vec![
        "hostname".into(),
        format!("cat {DATA_MOUNT}/{NOTE}"),
        format!("findmnt -n -o SOURCE,TARGET,FSTYPE,OPTIONS {DATA_MOUNT}"),
    ]
}

/// One instance's column of the summary: (row, value), in row order.
type Column = Vec<(String, String)>;

fn boot_instance(builder: QemuBuilder, hostname: &str) -> anyhow::Result<(Configured, Column)> {
    let commands = checks();
    let refs: Vec<&str> = commands.iter().map(String::as_str).collect();
    let builder = guest_check(builder, &refs).map_err(anyhow::Error::msg)?;
    let c = boot_configured(builder, hostname, refs.len())?;
    let text = c.vm.console().text();
    let verified = line_with(&text, VERIFIED).unwrap_or_default();
    let mut col: Column = vec![("hostname (guest)".into(), c.checks[0].join(" "))];
    for (n, s) in stage_times(verified) {
        if n == "verify" || n == "total" {
            col.push((format!("pyre init {n}"), format!("{s:.2} s")));
        }
    }
    for (n, s) in &c.stages {
        col.push((format!("pyre boot {n}"), format!("{s:.2} s")));
    }
    col.push(("pyre-ready.target (since start)".into(), secs(c.ready_at)));
    col.push(("shutdown on the power button".into(), secs(c.shutdown.took)));
    Ok((c, col))
}

/// Wait for the boot's lines at both receivers (every record with the hostname and the
/// manifest digest), then show a few and the counts. Returns when the first record arrived.
fn show_shipped(
    logs: &GuestLogs,
    c: &Configured,
    image: &Image,
    hostname: &str,
) -> anyhow::Result<String> {
    let manifest = format!("sha256:{}", image.manifest_digest());
    let want = Expected {
        hostname,
        manifest: &manifest,
        lines: BOOT_LINES,
    };
    let (got, problems) = logs.wait_judged(&want, Duration::from_secs(10));
    anyhow::ensure!(
        problems.is_empty(),
        "the guest's logs did not arrive as expected: {problems:#?}"
    );
    let first = logs
        .first_record_at()
        .map_or("?".into(), |at| secs(at - c.vm.started()));
    let mut body = String::from(
        "Received at the host (rsyslog, raw RFC 5424; the SD element pyre@32473 carries the\n\
         image's manifest digest, the boot id, the source and a per-pipeline sequence number):\n",
    );
    let samples = BOOT_LINES.iter().filter_map(|(source, text)| {
        got.relp
            .iter()
            .find(|r| r.source() == *source && r.msg.contains(text))
    });
    for (i, r) in samples.enumerate() {
        if i == 0 {
            // One whole, as received; then the rest shortened to one line each.
            body.push_str(&format!("\n{}\n\n", r.raw));
            continue;
        }
        let msg: String = r.msg.chars().take(90).collect();
        body.push_str(&format!(
            "  {} {} [manifest={}… boot_id={}… source={} seq={}] {msg}\n",
            r.hostname,
            r.app,
            r.param("manifest").chars().take(19).collect::<String>(),
            r.param("boot_id").chars().take(8).collect::<String>(),
            r.source(),
            r.param("seq"),
        ));
    }
    body.push_str(&format!(
        "\nFirst record at the host {first} after QEMU started.\n"
    ));
    for (sink, records) in [("syslog+tcp", &got.tcp), ("relp", &got.relp)] {
        let (journal, _) = sequence(records, "journal");
        let (kmsg, _) = sequence(records, "kmsg");
        body.push_str(&format!(
            "{sink}: {} records, every one from host {hostname} with manifest {}…; \
             journal seq 1..={journal}, kmsg seq 1..={kmsg}, no gap\n",
            records.len(),
            &manifest[..19]
        ));
    }
    banner("the guest's logs, at the host", &body);
    Ok(first)
}

/// Rows of the first column's names, one value per column ("" where a column lacks the row).
fn table(columns: &[(&str, &Column)]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    for (i, (_, col)) in columns.iter().enumerate() {
        for (name, value) in col.iter() {
            let at = match rows.iter().position(|(n, _)| n == name) {
                Some(at) => at,
                None => {
                    rows.push((name.clone(), vec![String::new(); columns.len()]));
                    rows.len() - 1
                }
            };
            rows[at].1[i].clone_from(value);
        }
    }
    let name_w = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .map(|(_, v)| v[i].len())
                .chain([columns[i].0.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |name: &str, values: Vec<&str>| {
        let cells: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:>w$}"))
            .collect();
        format!("{name:<name_w$}  {}", cells.join("  "))
    };
    let mut out = vec![line("", columns.iter().map(|(h, _)| *h).collect())];
    for (name, values) in &rows {
        out.push(line(name, values.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

fn run() -> anyhow::Result<()> {
    let image = Image::locate().context("no image to boot")?;
    let work = work_dir().join("demo");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let disks = ServerDisks::create(&work)?;
    let written = format!(
        "written by instance 1 at unix time {}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    );
    let logs = GuestLogs::start(&work.join("logs")).context("starting the rsyslog receivers")?;
    let mut first = configs::config(
        "pyre-demo-1",
        vec![configs::file(&format!("{DATA_MOUNT}/{NOTE}"), &written)],
        configs::server_volumes(),
    );
    first["logs"] = logs.config();
    let server = MetadataServer::start(Some(serde_json::to_vec_pretty(&first)?))
        .context("starting the fake metadata server")?;
    let url = format!("http://10.0.2.2:{}", server.port());

    banner(
        "pyre demo, part 1 of 4: a clean boot that gets its config",
        &format!(
            "Booting {} under QEMU (software emulation, so it is slow), with a blank 256 MiB\n\
             data disk (virtio, serial {}) and an ext4 NVMe disk (serial {}).\n\
             A fake AWS metadata server runs on 127.0.0.1:{} (the guest reaches it at {url});\n\
             its user data is this config:\n\n{}\n\n\
             What you will see, in order:\n\
             - `pyre init` (PID 1 in the initramfs) opening the read-only root through\n\
             \x20 dm-verity and checking the signed manifest, each stage with its time;\n\
             - systemd taking over; `pyre boot` fetching the config (IMDSv2), setting the\n\
             \x20 hostname, finding the disks by serial, formatting the blank one ({}),\n\
             \x20 mounting both, writing the file onto the volume, and printing its stage times;\n\
             - pyre.service (`pyre daemon`) shipping the journal and the kernel log to two\n\
             \x20 rsyslog receivers on this host (plain TCP on 127.0.0.1:{}, RELP on 127.0.0.1:{});\n\
             - pyre-ready.target, the login prompt with the new hostname, then a test-only\n\
             \x20 check printing the hostname, the file and the mount; then the demo presses the\n\
             \x20 ACPI power button and the machine shuts down cleanly, pyre draining its logs.",
            image.dir.display(),
            configs::DATA_SERIAL,
            configs::NVME_SERIAL,
            server.port(),
            serde_json::to_string_pretty(&first)?,
            VOLUME_FORMATTED_ID,
            logs.tcp.port(),
            logs.relp.port(),
        ),
    );
    let builder = config_metadata(
        QemuBuilder::new(&image, "demo-first").echo(true),
        "aws",
        &url,
    );
    let (c, mut col1) = boot_instance(disks.attach(builder), "pyre-demo-1")?;
    col1.push(("data volume".into(), "blank: formatted".into()));
    let shown = c.checks.clone();
    let first_stages = stages_text(&c.stages);
    let shipped = show_shipped(&logs, &c, &image, "pyre-demo-1")?;
    col1.push(("first log record at the host".into(), shipped));
    drop(c);
    drop(logs);
    let id1 = disk::ext_identity(&disks.data)?.context("no filesystem on the data disk")?;
    banner(
        "part 1 done: verified, configured, data volume formatted",
        &format!(
            "pyre boot's stages: {first_stages}\n\
             The guest said: hostname {:?}; the file: {:?}; mount: {:?}.\n\
             On the host, the data disk now holds ext4 {} (label {:?}).",
            shown[0].join(" "),
            shown[1].join(" "),
            shown[2].join(" "),
            id1.uuid,
            id1.label
        ),
    );

    let second = configs::config("pyre-demo-2", vec![], configs::server_volumes());
    server.set_config(Some(serde_json::to_vec_pretty(&second)?));
    banner(
        "pyre demo, part 2 of 4: the replacement instance",
        "Instance 1 is gone; a new instance of the same image boots with the same disks and a\n\
         config naming itself pyre-demo-2. pyre must find the data disk by serial, see the\n\
         ext4 filesystem instance 1 made, and mount it WITHOUT formatting it: the note\n\
         instance 1 wrote must still be there.",
    );
    let builder = config_metadata(
        QemuBuilder::new(&image, "demo-replacement").echo(true),
        "aws",
        &url,
    );
    let (c, mut col2) = boot_instance(disks.attach(builder), "pyre-demo-2")?;
    let formatted = c.vm.console().text().contains(VOLUME_FORMATTED_ID);
    let shown = c.checks.clone();
    drop(c);
    let id2 = disk::ext_identity(&disks.data)?.context("no filesystem on the data disk")?;
    anyhow::ensure!(
        !formatted && id2 == id1 && shown[1].join(" ") == written,
        "the data volume did not survive: formatted {formatted}, filesystem {} then {}, \
         note {:?}",
        id1.uuid,
        id2.uuid,
        shown[1]
    );
    col2.push(("data volume".into(), "ext4 found: not formatted".into()));
    let survived = format!(
        "filesystem {} kept (not formatted); instance 2 read: {:?}",
        id2.uuid,
        shown[1].join(" ")
    );
    banner("part 2 done: the data volume survived", &survived);

    let t = tamper_root(&image, TAMPER_CANDIDATES, &work.join("rootfs.img"))?;
    banner(
        "pyre demo, part 3 of 4: a tampered root",
        &format!(
            "A copy of rootfs.img now has one byte changed: byte {} of {}\n\
             ({:#04x} became {:#04x}, at offset {} of the image). Nothing else differs.\n\
             What you will see: the same start (pyre init checks the signed manifest, starts\n\
             reading the root through dm-verity and hands over), the kernel refusing the\n\
             changed block, pyre-content.service comparing the tree (intact) and naming the\n\
             file (PYRE_ROOT_CONTENT), and the machine powering itself off before\n\
             pyre-ready.target.",
            t.file_offset, t.file, t.before, t.after, t.offset
        ),
    );
    let builder = QemuBuilder::new(&image, "demo-tampered")
        .echo(true)
        .rootfs(&t.rootfs);
    let refused = boot_rejected_after_switch_root(builder, &t.file)?;
    let reason = refused.line.clone();
    let (refused_at, gone_at) = (refused.rejected_at, refused.exited.elapsed);
    drop(refused);
    drop(server);
    let runtime = runtime_tamper(&image, &work)?;
    let _ = std::fs::remove_dir_all(&work);

    banner(
        "summary",
        &format!(
            "{}\n\n\
             pyre init and pyre boot stages: as timed in the guest (pyre boot volumes: finding,\n\
             probing, formatting if blank and mounting both disks).\n\
             Data volume: {survived}.\n\
             Tampered root: refused {} and QEMU gone {} after start; the machine said:\n  {reason}\n\
             Root changed at run time: {runtime}\n\
             Console logs: {}",
            table(&[("instance 1", &col1), ("instance 2", &col2)]),
            secs(refused_at),
            secs(gone_at),
            pyre_tests::image::log_dir().display()
        ),
    );
    Ok(())
}

/// Part 4: a byte of a sealed file changes under a running machine; `pyre daemon`'s next full
/// verification reads it through dm-verity, the report arrives at the host's collector, the
/// machine powers itself off. Returns the summary line.
fn runtime_tamper(image: &Image, work: &std::path::Path) -> anyhow::Result<String> {
    const GRACE: &str = "10s";
    let live = LiveRoot::copy(
        image,
        &["/usr/share/common-licenses/GPL-3"],
        &work.join("live.img"),
    )?;
    let rs = Rsyslog::start(&work.join("rsyslog"), Input::Tcp)?;
    let collector = Collector::start(Mode::Answer(200))?;
    let drift = enf::drift("20s", GRACE, "poweroff", &collector);
    let cfg = enf::config("pyre-demo-3", rs.port(), drift, None, vec![]);
    let file = configs::write(&work.join("enforced.json"), &cfg)?;
    banner(
        "pyre demo, part 4 of 4: the root changes while the machine runs",
        &format!(
            "A fresh copy of rootfs.img boots with this config (through fw_cfg):\n\n{}\n\n\
             Logs go to a real rsyslogd on 127.0.0.1:{} and incident reports to a collector on\n\
             127.0.0.1:{}. Once pyre-ready.target is reached, the demo changes byte {} of\n\
             {} in that copy, from the host, under the running machine. pyre daemon re-verifies\n\
             the live root every 20 s reading past the page cache, so dm-verity sees the changed\n\
             block; it reports, waits for the collector's and the log receiver's acknowledgements\n\
             (at most {GRACE}), and powers the machine off.",
            serde_json::to_string_pretty(&cfg)?,
            rs.port(),
            collector.port(),
            live.at.file_offset,
            live.at.file
        ),
    );
    let builder = pyre_tests::instance::config_fw_cfg(
        QemuBuilder::new(image, "demo-runtime-tamper").echo(true),
        &file,
    )
    .rootfs(&live.rootfs);
    let mut vm = builder.spawn()?;
    vm.wait_for_any(PYRE_READY, scaled(MULTI_USER_DEADLINE))?;
    let changed = std::time::Instant::now();
    let (before, after) = live.tamper()?;
    banner(
        "changed under the running machine",
        &format!(
            "{} byte {}: {before:#04x} -> {after:#04x}",
            live.at.file, live.at.file_offset
        ),
    );
    let (report, got) = await_report(
        &vm,
        &collector,
        scaled(Duration::from_secs(240)),
        "incident report",
        |r| named_paths(r).contains(&live.at.file),
    )?;
    let text = pyre_tests::image::pyre_bin()
        .and_then(|p| enf::render_text(&p, &report, work))
        .unwrap_or_else(|| serde_json::to_string_pretty(&report).unwrap_or_default());
    banner(
        &format!(
            "the collector received the report {} after the change",
            secs(got - changed)
        ),
        &text,
    );
    let (_, gone) = await_poweroff(&mut vm, scaled(Duration::from_secs(120)))?;
    let summary = format!(
        "reported {} after the change (check {}), QEMU gone {} after the report",
        secs(got - changed),
        enf::check_of(&report),
        secs(gone - got)
    );
    banner("part 4 done: the machine powered itself off", &summary);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_table_aligns_instances_side_by_side() {
        let a: Column = vec![
            ("x".into(), "1.00 s".into()),
            ("long row".into(), "2 s".into()),
        ];
        let b: Column = vec![("long row".into(), "3 s".into()), ("y".into(), "4".into())];
        assert_eq!(
            table(&[("one", &a), ("instance 2", &b)]),
            "             one  instance 2\n\
             x         1.00 s            \n\
             long row     2 s         3 s\n\
             y                          4"
        );
    }
}

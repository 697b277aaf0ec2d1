//! The boot scenarios of the baked image, under QEMU TCG, each asserting the one outcome the
//! design gives it: pyre init's clean boot (with a data disk that takes vda and an NVMe disk
//! beside the root) and four refusals (a tampered root: after switch_root by the default check,
//! in the initramfs by the forced full one), and two boots with an initramfs
//! that is not pyre's (readiness only through pyre-verified.service's live check). They need
//! `make image` first (`make e2e` does it) and run one machine at a time. Deadlines (see
//! `pyre_tests::scenario`): multi-user (or the end of a plain boot) within 300 s of QEMU start;
//! a refused boot must have powered the machine off (QEMU exited by itself) within 240 s.
//! Console logs: $OUT/test-logs/<scenario>.log; times: $OUT/test-logs/timings.tsv and `timing:`
//! lines on stderr.
use std::path::PathBuf;

use pyre_tests::image::{pyre_bin, work_dir, Image};
use pyre_tests::markers::{
    line_with, CODE_DRIFT, CODE_ROOT_MOUNT, CODE_SIGNATURE, CONTENT_METADATA, CONTENT_READ,
    PYRE_READY, ROOT_DEVICE,
};
use pyre_tests::plain::{plain_cmdline, plain_initrd};
use pyre_tests::report::record;
use pyre_tests::scenario::{
    boot_clean, boot_not_ready, boot_ready_live, boot_refused, boot_rejected_after_switch_root,
    scaled, Refused, SHUTDOWN_GRACE,
};
use pyre_tests::tamper::{initrd_signed_by_other_key, tamper_root, TAMPER_CANDIDATES};
use pyre_tests::{blank_disk, Bus, QemuBuilder, VIA_POWER_BUTTON};

fn image() -> Image {
    Image::locate().unwrap_or_else(|e| panic!("{e}"))
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
}

impl Drop for Work {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn record_refusal(scenario: &str, r: &Refused) {
    record(scenario, "refusal line", r.refused_at);
    record(scenario, "poweroff (QEMU exited)", r.exited.elapsed);
}

/// The blank data disk: 256 MiB (more than the root, so pyre reads where a superblock would be).
const DATA_SECTORS: u64 = 524_288;

/// The documented user command plus what every server has: a blank virtio data disk placed so
/// it enumerates first and takes vda, and an NVMe disk beside it. pyre must find the root by
/// its verity superblock (vdb), verify it, and reach pyre-ready.target; then a power-button
/// shutdown.
#[test]
fn clean_boot_beside_data_disks_reaches_pyre_ready_with_a_verified_root() {
    let image = image();
    let scenario = "clean-boot";
    let work = Work::new(scenario);
    let disk = |name: &str, bytes: u64| {
        blank_disk(&work.0.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let builder = QemuBuilder::new(&image, scenario)
        .monitor(true)
        .disk_before_root(Bus::Virtio, disk("data1.img", DATA_SECTORS * 512), "data1")
        .disk(Bus::Nvme, disk("nvme1.img", 64 << 20), "nvme1");
    let mut boot = boot_clean(builder, image.manifest_digest()).unwrap_or_else(|e| panic!("{e}"));
    record(scenario, "pyre verified root", boot.verified_at);
    record(scenario, "multi-user", boot.multi_user_at);
    for (stage, secs) in &boot.stages {
        record(
            scenario,
            &format!("pyre init stage {stage}"),
            std::time::Duration::from_secs_f64(*secs),
        );
    }
    let (_, ready_at) = boot
        .vm
        .wait_for_any(PYRE_READY, std::time::Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    record(scenario, "pyre-ready.target", ready_at);
    let text = boot.vm.console().text();
    // The default root check: the manifest's signature in the initramfs (the record says so,
    // with its time), then the tree compared and every block of the verity device read by
    // pyre-content.service, both before readiness.
    assert!(
        boot.verified_line
            .contains("; manifest passed in initramfs "),
        "the boot record does not name the initramfs check: {:?}",
        boot.verified_line
    );
    let tree_line = line_with(&text, CONTENT_METADATA).unwrap_or_default();
    assert!(
        tree_line.contains(" entries of /run/pyre/root match the signed manifest"),
        "pyre-content.service did not compare the tree: {tree_line:?}; {}",
        boot.vm.console_context()
    );
    let read_line = line_with(&text, CONTENT_READ).unwrap_or_default();
    assert!(
        read_line.contains("every block matches the root hash"),
        "pyre-content.service did not read the root: {read_line:?}; {}",
        boot.vm.console_context()
    );
    let ready_pos = text.find(PYRE_READY[0]);
    for (what, marker) in [("tree", CONTENT_METADATA), ("content read", CONTENT_READ)] {
        assert!(
            matches!((text.find(marker), ready_pos), (Some(r), Some(t)) if r < t),
            "pyre-ready.target came before the {what} check"
        );
    }
    // The premise: the data disk, not the root, is the kernel's first disk.
    let vda = format!("[vda] {DATA_SECTORS} 512-byte logical blocks");
    assert!(
        text.contains(&vda),
        "the data disk did not take vda (no {vda:?}); {}",
        boot.vm.console_context()
    );
    let chose = line_with(&text, ROOT_DEVICE).unwrap_or_default();
    assert!(
        chose.starts_with(&format!("{ROOT_DEVICE}/dev/vdb (")),
        "pyre init did not take vdb (the disk with the verity superblock): {chose:?}"
    );
    let down = boot
        .vm
        .powerdown(scaled(SHUTDOWN_GRACE))
        .unwrap_or_else(|e| panic!("{e}"));
    record(
        scenario,
        &format!("clean shutdown via {}", down.via),
        down.took,
    );
    // A cloud's "stop instance" is the ACPI power button: systemd-logind must act on it.
    assert_eq!(
        down.via,
        VIA_POWER_BUTTON,
        "the guest did not power off on the ACPI power button (needs evdev in the image); {}",
        boot.vm.console_context()
    );
    assert!(
        !down.exited.killed,
        "the guest did not shut down cleanly; {}",
        boot.vm.console_context()
    );
}

fn tampered(scenario: &str, work: &Work) -> pyre_tests::tamper::TamperedRoot {
    let t = tamper_root(&image(), TAMPER_CANDIDATES, &work.0.join("rootfs.img"))
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = writeln_stderr(&format!(
        "{scenario}: changed byte {} of {} (image offset {}): {:#04x} -> {:#04x}",
        t.file_offset, t.file, t.offset, t.before, t.after
    ));
    t
}

/// One byte of a file changed, the default root check: pyre init's metadata check passes (the
/// file's metadata is intact) and hands over; pyre-content.service's read of the verity
/// device meets the changed block (EIO), names the file, and powers the machine off before
/// pyre-ready.target.
#[test]
fn tampered_root_is_refused_and_powered_off() {
    let image = image();
    let scenario = "tampered-root";
    let work = Work::new(scenario);
    let t = tampered(scenario, &work);
    let builder = QemuBuilder::new(&image, scenario).rootfs(&t.rootfs);
    let r = boot_rejected_after_switch_root(builder, &t.file).unwrap_or_else(|e| panic!("{e}"));
    record(scenario, "tampered file named", r.rejected_at);
    record(scenario, "poweroff (QEMU exited)", r.exited.elapsed);
    let text = r.vm.console().text();
    let named = text
        .lines()
        .any(|l| l.contains(&t.file) && l.contains("Input/output error"));
    assert!(
        named && text.contains(pyre_tests::markers::KERNEL_POWER_DOWN),
        "the drift report does not show {} as unreadable (Input/output error), or no power \
         down; {}",
        t.file,
        r.vm.console_context()
    );
}

/// The same root with the full check forced on the kernel command line (`pyre.verify=full`,
/// as the image policy's `root-check: full` would): pyre init reads and hashes every file and
/// refuses in the initramfs (PYRE-INIT-DRIFT), the report naming the file.
#[test]
fn tampered_root_with_the_full_check_is_refused_in_the_initramfs() {
    let image = image();
    let scenario = "tampered-root-full";
    let work = Work::new(scenario);
    let t = tampered(scenario, &work);
    let mut cmdline = image.cmdline.clone();
    cmdline.push("pyre.verify=full");
    let builder = QemuBuilder::new(&image, scenario)
        .rootfs(&t.rootfs)
        .cmdline(cmdline);
    // dm-verity fails the read of the changed block (EIO); the scan records the file as
    // unreadable, which is drift (docs/boot.md): PYRE-INIT-DRIFT, with the report naming it.
    let r = boot_refused(builder, &[CODE_DRIFT]).unwrap_or_else(|e| panic!("{e}"));
    record_refusal(scenario, &r);
    let text = r.vm.console().text();
    let named = text
        .lines()
        .any(|l| l.contains(&t.file) && l.contains("Input/output error"));
    assert!(
        text.contains("unreadable (1)") && named,
        "the drift report does not show {} as unreadable (Input/output error); {}",
        t.file,
        r.vm.console_context()
    );
}

#[test]
fn wrong_root_hash_is_refused_and_powered_off() {
    let image = image();
    let scenario = "wrong-root-hash";
    let cmdline = image
        .cmdline
        .with_wrong_root_hash()
        .expect("cmdline.txt has a root hash");
    let builder = QemuBuilder::new(&image, scenario).cmdline(cmdline);
    // A well-formed root hash is accepted by the verity table load (the kernel checks no
    // block then); the first read, the erofs superblock at mount, fails verification: EIO.
    let r = boot_refused(builder, &[CODE_ROOT_MOUNT]).unwrap_or_else(|e| panic!("{e}"));
    record_refusal(scenario, &r);
    assert!(
        r.reason.contains("EIO") && r.reason.contains("dm-verity rejected a block"),
        "the refusal does not say dm-verity rejected the root: {:?}",
        r.reason
    );
}

#[test]
fn manifest_signed_by_another_key_is_refused_and_powered_off() {
    let image = image();
    let scenario = "foreign-signature";
    let work = Work::new(scenario);
    let initrd = initrd_signed_by_other_key(&image, pyre_bin().as_deref(), &work.0)
        .unwrap_or_else(|e| panic!("{e}"));
    let builder = QemuBuilder::new(&image, scenario).initrd(initrd);
    let r = boot_refused(builder, &[CODE_SIGNATURE]).unwrap_or_else(|e| panic!("{e}"));
    record_refusal(scenario, &r);
    assert!(
        r.reason.to_lowercase().contains("signature"),
        "the refusal does not mention the signature: {:?}",
        r.reason
    );
}

/// An initramfs that is not pyre's (tests/src/plain_init.c: no dm-verity, no check) on the
/// image's own root: pyre-ready.target is reached only through pyre-verified.service's own
/// check of the live root against /etc/pyre/manifest.
#[test]
fn without_pyre_init_readiness_comes_from_a_live_check() {
    let image = image();
    let scenario = "plain-initramfs";
    let work = Work::new(scenario);
    let initrd = plain_initrd(&image, &work.0).unwrap_or_else(|e| panic!("{e}"));
    let builder = QemuBuilder::new(&image, scenario)
        .initrd(initrd)
        .cmdline(plain_cmdline());
    let r = boot_ready_live(builder, image.manifest_digest()).unwrap_or_else(|e| panic!("{e}"));
    record(scenario, "pyre-verified live check done", r.verified_at);
    record(
        scenario,
        "startup finished, pyre-ready.target done",
        r.ready_at,
    );
}

/// The same boot on a root with one byte of a file changed (no dm-verity to notice it):
/// pyre-verified.service fails with the drift report and pyre-ready.target stays down.
#[test]
fn without_pyre_init_a_drifted_root_keeps_readiness_down() {
    let image = image();
    let scenario = "plain-initramfs-drift";
    let work = Work::new(scenario);
    let t = tampered(scenario, &work);
    let initrd = plain_initrd(&image, &work.0).unwrap_or_else(|e| panic!("{e}"));
    let builder = QemuBuilder::new(&image, scenario)
        .initrd(initrd)
        .rootfs(&t.rootfs)
        .cmdline(plain_cmdline());
    let r = boot_not_ready(builder, &t.file).unwrap_or_else(|e| panic!("{e}"));
    record(scenario, "pyre-ready.target dependency failed", r.failed_at);
    assert!(
        r.drift_line.contains("pyre-ready.target stays down"),
        "{:?}",
        r.drift_line
    );
}

fn writeln_stderr(s: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr(), "{s}")
}

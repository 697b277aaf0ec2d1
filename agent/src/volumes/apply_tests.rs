//! The volume stage against the recording fake and a fake sysfs tree.
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::MsFlags;

use super::fake::{write_ext4, write_xfs, FakeSys, Op, RecordingVolumeHost};
use super::spec::{DeviceSelector, FormatPolicy, VolumeSpec};
use super::{apply, ApplyError, Outcome};

pub(super) const MIB: usize = 1 << 20;

pub(super) fn vol(name: &str, device: DeviceSelector) -> VolumeSpec {
    VolumeSpec {
        name: name.into(),
        device,
        filesystem: "ext4".into(),
        label: Some(name.into()),
        mountpoint: PathBuf::from("/var/lib").join(name),
        options: vec!["noexec".into()],
        format: FormatPolicy::IfBlank,
        required: true,
        wait: Duration::from_secs(30),
        grow: false,
    }
}

pub(super) fn serial(s: &str) -> DeviceSelector {
    DeviceSelector::Serial(s.into())
}

/// A fake machine with one virtio disk `vdb` (serial `data-1`) holding `bytes`.
pub(super) fn machine(bytes: Vec<u8>) -> (RecordingVolumeHost, FakeSys, PathBuf) {
    let h = RecordingVolumeHost::new();
    let sys = FakeSys::new();
    let node = sys.add(
        "vdb",
        (254, 16),
        bytes.len() as u64,
        &[("serial", "data-1")],
    );
    h.add_disk(&node, (254, 16), bytes);
    (h, sys, node)
}

pub(super) fn ext4_disk(size: usize, fs_blocks: u32) -> Vec<u8> {
    let mut b = vec![0; size];
    write_ext4(&mut b, fs_blocks, "data");
    b
}

pub(super) fn mount_op(node: &Path, at: &str) -> Op {
    Op::Mount {
        source: node.to_path_buf(),
        target: at.into(),
        fstype: "ext4".into(),
        flags: MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        data: None,
    }
}

pub(super) fn failure(r: Result<super::VolumesReport, ApplyError>) -> (String, String) {
    let e = r.unwrap_err();
    (e.message_id().to_string(), e.to_string())
}

#[test]
fn blank_disk_is_formatted_once_and_mounted() {
    let (h, sys, node) = machine(vec![0; 8 * MIB]);
    let specs = [vol("data", serial("data-1"))];
    let r = apply(&h, &sys.paths, &specs, false).unwrap();
    let v = &r.volumes[0];
    assert_eq!(v.outcome, Outcome::Mounted);
    assert!(v.formatted);
    assert_eq!(v.found.as_deref(), Some("blank"));
    assert_eq!(v.matched_by.as_deref(), Some("serial \"data-1\""));
    assert_eq!(
        v.bytes_probed,
        3 * 2 * (1 << 20) + 3 * 3 * 4096,
        "probe, re-probe, check"
    );
    let mkfs = Op::Run {
        program: "mkfs.ext4".into(),
        args: vec!["-L".into(), "data".into(), node.display().to_string()],
    };
    assert_eq!(
        h.ops(),
        vec![
            Op::Open(node.clone()),
            Op::Open(node.clone()),
            mkfs.clone(),
            Op::Open(node.clone()),
            Op::Mkdir("/var/lib/data".into()),
            mount_op(&node, "/var/lib/data"),
        ]
    );
    // Applied again: already mounted, nothing changes.
    let r = apply(&h, &sys.paths, &specs, false).unwrap();
    assert_eq!(r.volumes[0].outcome, Outcome::AlreadyMounted);
    assert!(!r.volumes[0].formatted);
    let changes = h.changes();
    assert_eq!(changes.iter().filter(|o| **o == mkfs).count(), 1);
    assert_eq!(changes.len(), 3);

    // The next instance (fresh mount table, same disk): mounted, never formatted again.
    let next = RecordingVolumeHost::new();
    next.add_disk(&node, (254, 16), h.disk(&node));
    let r = apply(&next, &sys.paths, &specs, false).unwrap();
    assert_eq!(r.volumes[0].outcome, Outcome::Mounted);
    assert_eq!(
        next.changes(),
        vec![
            Op::Mkdir("/var/lib/data".into()),
            mount_op(&node, "/var/lib/data")
        ]
    );
}

#[test]
fn blank_disk_with_format_never_is_refused() {
    let (h, sys, _) = machine(vec![0; 8 * MIB]);
    let mut v = vol("data", serial("data-1"));
    v.format = FormatPolicy::Never;
    let (id, text) = failure(apply(&h, &sys.paths, &[v], false));
    assert_eq!(id, "PYRE_FORMAT_REFUSED");
    assert!(
        text.ends_with("vdb is blank and format is never: not formatting it"),
        "{text}"
    );
    assert!(h.changes().is_empty());
}

#[test]
fn other_filesystem_is_neither_formatted_nor_mounted() {
    let mut b = vec![0; 8 * MIB];
    write_xfs(&mut b, 2048, "old");
    let (h, sys, _) = machine(b);
    let (id, text) = failure(apply(
        &h,
        &sys.paths,
        &[vol("data", serial("data-1"))],
        false,
    ));
    assert_eq!(id, "PYRE_FORMAT_REFUSED");
    assert!(
        text.contains("is not blank (xfs (label \"old\", uuid f5f5f5f5-f5f5-f5f5-f5f5-f5f5f5f5f5f5)): not formatting it, not mounting it as ext4"),
        "{text}"
    );
    assert!(h.changes().is_empty());
    let mut never = vol("data", serial("data-1"));
    never.format = FormatPolicy::Never;
    let (id, text) = failure(apply(&h, &sys.paths, &[never], false));
    assert_eq!(id, "PYRE_VOLUME_WRONG_TYPE");
    assert!(text.contains(", not ext4: not mounting it"), "{text}");
}

#[test]
fn a_disk_that_changed_before_mkfs_is_not_formatted() {
    let (h, sys, node) = machine(vec![0; 8 * MIB]);
    h.patch_on_open(&node, 2, 4096, b"LABELONE");
    let (id, text) = failure(apply(
        &h,
        &sys.paths,
        &[vol("data", serial("data-1"))],
        false,
    ));
    assert_eq!(id, "PYRE_FORMAT_REFUSED");
    assert!(
        text.contains("changed since it was probed: now no known signature, non-zero data at byte 4096; not formatting it"),
        "{text}"
    );
    assert!(h.changes().is_empty());
}

#[test]
fn missing_disk_fails_at_its_deadline_naming_what_was_seen() {
    let (h, sys, _) = machine(vec![0; 8 * MIB]);
    let mut v = vol("data", serial("vol-0abc"));
    v.wait = Duration::from_secs(2);
    let (id, text) = failure(apply(&h, &sys.paths, &[v], false));
    assert_eq!(id, "PYRE_VOLUME_MISSING");
    assert_eq!(
        text,
        "required volume data: no device matches serial \"vol-0abc\"; \
         seen: vdb (8.0 MiB, serial \"data-1\") (waited 2.0s)"
    );
    assert_eq!(h.now(), Duration::from_secs(2));
    let waits = h.ops().iter().filter(|o| matches!(o, Op::Wait(_))).count();
    assert_eq!(waits, 20, "polled every 100 ms");
}

use super::host::VolumeHost;

#[test]
fn late_disk_is_mounted_within_its_deadline() {
    let h = RecordingVolumeHost::new();
    let sys = FakeSys::new();
    let node = sys.node("nvme1n1");
    let paths = sys.paths.clone();
    let n = node.clone();
    h.at(Duration::from_millis(4500), move |h| {
        let fake = FakeSys {
            dir: tempfile::tempdir().unwrap(),
            paths,
        };
        fake.add(
            "nvme1n1",
            (259, 1),
            8 << 20,
            &[
                ("device/serial", "vol0123456789abcdef0 "),
                ("device/model", "Amazon Elastic Block Store              "),
            ],
        );
        h.add_disk(&n, (259, 1), ext4_disk(8 * MIB, 2048));
    });
    let r = apply(
        &h,
        &sys.paths,
        &[vol("data", serial("vol-0123456789abcdef0"))],
        false,
    )
    .unwrap();
    let v = &r.volumes[0];
    assert_eq!(v.outcome, Outcome::Mounted);
    assert!(!v.formatted);
    assert_eq!(
        v.matched_by.as_deref(),
        Some("serial \"vol0123456789abcdef0\" (EBS vol-0123456789abcdef0)")
    );
    assert!((4.5..4.7).contains(&v.seconds.wait), "{}", v.seconds.wait);
    assert_eq!(
        h.changes(),
        vec![
            Op::Mkdir("/var/lib/data".into()),
            mount_op(&node, "/var/lib/data")
        ]
    );
}

#[test]
fn optional_volume_failure_is_a_warning_and_the_stage_goes_on() {
    let (h, sys, node) = machine(ext4_disk(8 * MIB, 2048));
    let mut missing = vol("scratch", serial("nope"));
    missing.required = false;
    missing.wait = Duration::from_millis(300);
    let r = apply(
        &h,
        &sys.paths,
        &[missing, vol("data", serial("data-1"))],
        false,
    )
    .unwrap();
    assert_eq!(r.volumes[0].outcome, Outcome::Failed);
    assert_eq!(
        r.volumes[0].message_id.as_deref(),
        Some("PYRE_VOLUME_MISSING")
    );
    assert_eq!(r.failed_optional().count(), 1);
    assert_eq!(r.volumes[1].outcome, Outcome::Mounted);
    assert_eq!(
        h.changes(),
        vec![
            Op::Mkdir("/var/lib/data".into()),
            mount_op(&node, "/var/lib/data")
        ]
    );
}

#[test]
fn required_failure_stops_the_stage_with_the_report() {
    let (h, sys, _) = machine(ext4_disk(8 * MIB, 2048));
    let mut missing = vol("first", serial("nope"));
    missing.wait = Duration::ZERO;
    let e = apply(
        &h,
        &sys.paths,
        &[missing, vol("data", serial("data-1"))],
        false,
    )
    .unwrap_err();
    let report = e.report().unwrap();
    assert_eq!(
        report.volumes.len(),
        1,
        "stopped at the first required failure"
    );
    assert_eq!(report.volumes[0].outcome, Outcome::Failed);
    assert!(h.changes().is_empty());
}

#[test]
fn dry_run_changes_nothing_and_says_what_it_would_do() {
    let (h, sys, node) = machine(vec![0; 8 * MIB]);
    let r = apply(&h, &sys.paths, &[vol("data", serial("data-1"))], true).unwrap();
    assert!(h.changes().is_empty());
    let v = &r.volumes[0];
    assert_eq!(v.outcome, Outcome::Planned);
    let n = node.display();
    assert_eq!(
        v.actions,
        vec![
            format!("format: mkfs.ext4 -L data {n}"),
            format!("mount: {n} on /var/lib/data (ext4, rw,nodev,nosuid,noexec)"),
        ]
    );
    let mut text = vec![];
    r.render_text(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("  found:     blank (2109440 bytes read)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("  would  format: mkfs.ext4 -L data {n}")),
        "{text}"
    );
}

#[test]
fn mountpoint_taken_by_another_device_is_an_error() {
    let (h, sys, _) = machine(ext4_disk(8 * MIB, 2048));
    h.add_mount_line("50 1 8:1 / /var/lib/data rw - ext4 /dev/sda1 rw");
    let (_, text) = failure(apply(
        &h,
        &sys.paths,
        &[vol("data", serial("data-1"))],
        false,
    ));
    assert_eq!(
        text,
        "required volume data: /var/lib/data already has /dev/sda1 (ext4) mounted on it"
    );
    assert!(h.changes().is_empty());
}

#[test]
fn grow_runs_when_the_disk_outgrew_the_filesystem() {
    let (h, sys, node) = machine(ext4_disk(8 * MIB, 1024)); // 4 MiB filesystem on 8 MiB
    let mut v = vol("data", serial("data-1"));
    v.grow = true;
    let r = apply(&h, &sys.paths, &[v.clone()], false).unwrap();
    assert!(r.volumes[0].grown);
    let resize = Op::Run {
        program: "resize2fs".into(),
        args: vec![node.display().to_string()],
    };
    assert_eq!(h.changes().last(), Some(&resize));
    // Grown now: the next instance does not grow again.
    let next = RecordingVolumeHost::new();
    next.add_disk(&node, (254, 16), h.disk(&node));
    let r = apply(&next, &sys.paths, &[v], false).unwrap();
    assert!(!r.volumes[0].grown);
    assert!(!next.changes().contains(&resize));
}

#[test]
fn failed_mkfs_is_reported_with_its_output() {
    let (h, sys, _) = machine(vec![0; 8 * MIB]);
    h.exit_when(|op| matches!(op, Op::Run { program, .. } if program == "mkfs.ext4").then_some(1));
    let (id, text) = failure(apply(
        &h,
        &sys.paths,
        &[vol("data", serial("data-1"))],
        false,
    ));
    assert_eq!(id, "PYRE_VOLUME_FAILED");
    assert!(
        text.ends_with("failed (exit status 1): mkfs.ext4: failed"),
        "{text}"
    );
}

#[test]
fn mount_errors_name_device_and_errno() {
    let (h, sys, node) = machine(ext4_disk(8 * MIB, 2048));
    h.fail_when(|op| matches!(op, Op::Mount { .. }).then_some(libc::EBUSY));
    let (_, text) = failure(apply(
        &h,
        &sys.paths,
        &[vol("data", serial("data-1"))],
        false,
    ));
    assert_eq!(
        text,
        format!(
            "required volume data: mounting {} (ext4) on /var/lib/data: EBUSY (Device or resource busy)",
            node.display()
        )
    );
}

#[test]
fn a_disk_in_use_by_device_mapper_is_not_touched() {
    let (h, sys, _) = machine(vec![0; 8 * MIB]);
    sys.add_holder("vdb", "dm-0");
    let (id, text) = failure(apply(
        &h,
        &sys.paths,
        &[vol("data", serial("data-1"))],
        false,
    ));
    assert_eq!(id, "PYRE_VOLUME_IN_USE");
    assert!(
        text.ends_with("vdb is in use by dm-0: not touching it"),
        "{text}"
    );
}

#[test]
fn invalid_specs_are_refused_before_anything_is_touched() {
    let (h, sys, _) = machine(vec![0; 8 * MIB]);
    let mut v = vol("data", serial("data-1"));
    v.mountpoint = "/usr/lib/data".into();
    let (id, text) = failure(apply(&h, &sys.paths, &[v], false));
    assert_eq!(id, "PYRE_CONFIG_INVALID");
    assert!(
        text.starts_with(
            "invalid volume configuration: volumes[0].mountpoint: /usr/lib/data is under /usr"
        ),
        "{text}"
    );
    assert!(h.ops().is_empty());
}

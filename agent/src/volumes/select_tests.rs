//! Selecting devices: serial (EBS), label, uuid, path, GPT partlabel/partuuid, ambiguity.
use std::time::Duration;

use super::apply_tests::{ext4_disk, failure, machine, serial, vol, MIB};
use super::fake::{FakeSys, RecordingVolumeHost};
use super::spec::{DeviceSelector, FormatPolicy};
use super::{apply, Outcome};

#[test]
fn ebs_ids_match_only_an_ebs_controller() {
    let h = RecordingVolumeHost::new();
    let sys = FakeSys::new();
    let node = sys.add(
        "nvme1n1",
        (259, 1),
        8 << 20,
        &[
            ("device/serial", "vol0abc"),
            ("device/model", "QEMU NVMe Ctrl"),
        ],
    );
    h.add_disk(&node, (259, 1), ext4_disk(8 * MIB, 2048));
    let mut v = vol("data", serial("vol-0abc"));
    v.wait = Duration::ZERO;
    let (_, text) = failure(apply(&h, &sys.paths, &[v], false));
    assert!(
        text.contains("seen: nvme1n1 (8.0 MiB, serial \"vol0abc\", model \"QEMU NVMe Ctrl\")"),
        "{text}"
    );
    // Its own serial still matches as written.
    let r = apply(&h, &sys.paths, &[vol("data", serial("vol0abc"))], false).unwrap();
    assert_eq!(r.volumes[0].outcome, Outcome::Mounted);
}

#[test]
fn label_uuid_and_path_selectors() {
    let (h, sys, node) = machine(ext4_disk(8 * MIB, 2048));
    let blank = sys.add("vdc", (254, 32), 4 << 20, &[]);
    h.add_disk(&blank, (254, 32), vec![0; 4 * MIB]);
    for sel in [
        DeviceSelector::Label("data".into()),
        DeviceSelector::Uuid("E4E4E4E4-e4e4-e4e4-e4e4-e4e4e4e4e4e4".into()),
        DeviceSelector::Path(node.clone()),
    ] {
        let host = RecordingVolumeHost::new();
        host.add_disk(&node, (254, 16), h.disk(&node));
        host.add_disk(&blank, (254, 32), vec![0; 4 * MIB]);
        let r = apply(&host, &sys.paths, &[vol("data", sel.clone())], false).unwrap();
        assert_eq!(r.volumes[0].device.as_ref().unwrap().name, "vdb", "{sel}");
    }
    let mut v = vol("data", DeviceSelector::Label("nope".into()));
    v.wait = Duration::ZERO;
    let (_, text) = failure(apply(&h, &sys.paths, &[v], false));
    assert!(
        text.contains("seen: vdb (8.0 MiB, serial \"data-1\", ext4 (label \"data\", uuid e4e4e4e4-e4e4-e4e4-e4e4-e4e4e4e4e4e4, at byte 1080)); vdc (4.0 MiB, blank)"),
        "{text}"
    );
}

#[test]
fn partlabel_and_partuuid_come_from_the_parents_gpt() {
    let h = RecordingVolumeHost::new();
    let sys = FakeSys::new();
    let disk = sys.add("vdb", (254, 16), 8 << 20, &[]);
    h.add_disk(
        &disk,
        (254, 16),
        super::probe::tests_support::gpt_disk(8 * MIB, "data"),
    );
    let part = sys.add_partition("vdb", "vdb1", 1, (254, 17), 4 << 20);
    h.add_disk(&part, (254, 17), ext4_disk(4 * MIB, 1024));
    for sel in [
        DeviceSelector::Partlabel("data".into()),
        DeviceSelector::Partuuid("04030201-0605-0807-090A-0B0C0D0E0F10".into()),
    ] {
        let r = apply(
            &h,
            &sys.paths,
            &[vol(&format!("v{}", h.ops().len()), sel.clone())],
            true,
        )
        .unwrap();
        assert_eq!(r.volumes[0].device.as_ref().unwrap().name, "vdb1", "{sel}");
        assert_eq!(
            r.volumes[0].device.as_ref().unwrap().parent.as_deref(),
            Some("vdb")
        );
    }
    // The whole disk holds a GPT: selecting it by serial-less path and mounting is refused.
    let mut whole = vol("whole", DeviceSelector::Path(disk.clone()));
    whole.format = FormatPolicy::IfBlank;
    let (_, text) = failure(apply(&h, &sys.paths, &[whole], false));
    assert!(text.contains("is not blank (gpt"), "{text}");
}

#[test]
fn two_matching_disks_are_refused_naming_both() {
    let (h, sys, _) = machine(vec![0; 8 * MIB]);
    let other = sys.add("vdc", (254, 32), 4 << 20, &[("serial", "data-1")]);
    h.add_disk(&other, (254, 32), vec![0; 4 * MIB]);
    let (id, text) = failure(apply(
        &h,
        &sys.paths,
        &[vol("data", serial("data-1"))],
        false,
    ));
    assert_eq!(id, "PYRE_VOLUME_AMBIGUOUS");
    assert_eq!(
        text,
        "required volume data: 2 devices match serial \"data-1\": \
         vdb (8.0 MiB, serial \"data-1\"); vdc (4.0 MiB, serial \"data-1\")"
    );
    assert!(h.changes().is_empty());
}

#[test]
fn one_disk_is_not_given_to_two_volumes() {
    let (h, sys, _) = machine(ext4_disk(8 * MIB, 2048));
    let mut second = vol("again", DeviceSelector::Label("data".into()));
    second.format = FormatPolicy::Never;
    let (id, text) = failure(apply(
        &h,
        &sys.paths,
        &[vol("data", serial("data-1")), second],
        false,
    ));
    assert_eq!(id, "PYRE_VOLUME_AMBIGUOUS");
    assert!(
        text.ends_with("vdb was already chosen for volume data"),
        "{text}"
    );
}

//! The volume stage on real loop devices, as root, each case in its own private mount
//! namespace: format once and never again, data kept across applies, refusals that leave
//! the device untouched, ambiguity, a late device, grow, and the CLI's dry run. The fake
//! sysfs lists only the test's own loop devices.
mod volumes_rig;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pyre::volumes::{apply, ApplyError, Outcome, RealVolumeHost, VolumeSpec, VolumesReport};
use volumes_rig::*;

fn spec(rig: &Rig, json: serde_json::Value) -> VolumeSpec {
    let mut v = serde_json::json!({
        "name": "data", "device": {"serial": "pyre-data"}, "filesystem": "ext4",
        "label": "data", "mountpoint": rig.path("mnt/data"), "format": "if-blank", "wait": "0s"
    });
    for (k, val) in json.as_object().unwrap() {
        v[k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn run(rig: &Rig, specs: &[VolumeSpec]) -> Result<VolumesReport, ApplyError> {
    apply(&RealVolumeHost::new(), &rig.paths(), specs, false)
}

fn fs_uuid(dev: &Path) -> String {
    let mut f = fs::File::open(dev).unwrap();
    let p = pyre::volumes::probe::probe(&mut f).unwrap();
    p.found[0].uuid.clone().unwrap()
}

#[test]
fn blank_device_is_formatted_once_and_its_data_survives_reapplies() {
    if !root_or_skip("blank_device_is_formatted_once_and_its_data_survives_reapplies") {
        return;
    }
    let rig = Rig::new();
    let l = rig.loop_dev("data.img", 64 * MIB);
    rig.expose(&l, &[("serial", "pyre-data")]);
    let v = spec(&rig, serde_json::json!({"options": ["noexec"]}));
    let at = v.mountpoint.clone();
    let dev = l.dev.clone();
    in_private_ns(move || {
        let specs = [v];
        let r = run(&rig, &specs).unwrap();
        let first = &r.volumes[0];
        assert_eq!(first.outcome, Outcome::Mounted);
        assert!(first.formatted);
        assert_eq!(first.found.as_deref(), Some("blank"));
        let line = mount_line(&at).expect("mounted");
        assert!(line.contains(" - ext4 "), "{line}");
        let opts = line.split(' ').nth(5).unwrap();
        for o in ["nodev", "nosuid", "noexec"] {
            assert!(opts.split(',').any(|x| x == o), "{o} missing in {opts}");
        }
        let uuid = fs_uuid(&dev);
        fs::write(at.join("kept"), "data written by instance 1\n").unwrap();

        // Applied again while mounted: nothing happens.
        let r = run(&rig, &specs).unwrap();
        assert_eq!(r.volumes[0].outcome, Outcome::AlreadyMounted);
        assert!(!r.volumes[0].formatted);

        // Unmounted (the next boot): mounted again, not formatted, data intact.
        nix::unistd::sync();
        umount(&at);
        for _ in 0..2 {
            let r = run(&rig, &specs).unwrap();
            assert!(!r.volumes[0].formatted);
            assert_eq!(fs_uuid(&dev), uuid, "same filesystem");
            assert_eq!(
                fs::read_to_string(at.join("kept")).unwrap(),
                "data written by instance 1\n"
            );
            umount(&at);
        }
        drop(rig);
    });
    drop(l);
}

#[test]
fn blank_device_becomes_xfs_with_its_label() {
    if !root_or_skip("blank_device_becomes_xfs_with_its_label") || !have("mkfs.xfs") {
        return;
    }
    let rig = Rig::new();
    let l = rig.loop_dev("x.img", 320 * MIB);
    rig.expose(&l, &[("serial", "pyre-data")]);
    let v = spec(
        &rig,
        serde_json::json!({"filesystem": "xfs", "label": "pyrexfs"}),
    );
    let at = v.mountpoint.clone();
    let dev = l.dev.clone();
    in_private_ns(move || {
        let r = run(&rig, &[v]).unwrap();
        assert!(r.volumes[0].formatted);
        assert!(mount_line(&at).unwrap().contains(" - xfs "));
        umount(&at);
        let mut f = fs::File::open(&dev).unwrap();
        let p = pyre::volumes::probe::probe(&mut f).unwrap();
        assert_eq!(p.found[0].label.as_deref(), Some("pyrexfs"));
        drop(rig);
    });
}

#[test]
fn refusals_leave_the_device_bit_identical_and_unmounted() {
    if !root_or_skip("refusals_leave_the_device_bit_identical_and_unmounted") {
        return;
    }
    let rig = Rig::new();
    let blank = rig.loop_dev("blank.img", 32 * MIB);
    rig.expose(&blank, &[("serial", "pyre-blank")]);
    let xfs = rig.loop_dev("xfs.img", 320 * MIB);
    sh("mkfs.xfs", &["-q", "-f", xfs.dev.to_str().unwrap()]).unwrap();
    rig.expose(&xfs, &[("serial", "pyre-xfs")]);
    let hashes = (blank.sha256(), xfs.sha256());
    let never = spec(
        &rig,
        serde_json::json!({"device": {"serial": "pyre-blank"}, "format": "never"}),
    );
    let wrong = spec(
        &rig,
        serde_json::json!({"device": {"serial": "pyre-xfs"}, "format": "never"}),
    );
    let at = never.mountpoint.clone();
    in_private_ns(move || {
        let e = run(&rig, &[never]).unwrap_err();
        assert_eq!(e.message_id(), "PYRE_FORMAT_REFUSED");
        assert!(
            e.to_string()
                .ends_with("is blank and format is never: not formatting it"),
            "{e}"
        );
        let e = run(&rig, &[wrong]).unwrap_err();
        assert_eq!(e.message_id(), "PYRE_VOLUME_WRONG_TYPE");
        assert!(e.to_string().contains(", not ext4: not mounting it"), "{e}");
        assert!(mount_line(&at).is_none());
        drop(rig);
    });
    assert_eq!((blank.sha256(), xfs.sha256()), hashes);
}

#[test]
fn two_devices_with_the_same_serial_are_refused() {
    if !root_or_skip("two_devices_with_the_same_serial_are_refused") {
        return;
    }
    let rig = Rig::new();
    let a = rig.loop_dev("a.img", 16 * MIB);
    let b = rig.loop_dev("b.img", 16 * MIB);
    rig.expose(&a, &[("serial", "pyre-data")]);
    rig.expose(&b, &[("serial", "pyre-data")]);
    let v = spec(&rig, serde_json::json!({}));
    let names = (a.name.clone(), b.name.clone());
    in_private_ns(move || {
        let e = run(&rig, &[v]).unwrap_err();
        assert_eq!(e.message_id(), "PYRE_VOLUME_AMBIGUOUS");
        let text = e.to_string();
        assert!(
            text.contains("2 devices match serial \"pyre-data\""),
            "{text}"
        );
        assert!(text.contains(&names.0) && text.contains(&names.1), "{text}");
        drop(rig);
    });
    assert_eq!(a.sha256(), b.sha256(), "both still all zero");
}

#[test]
fn device_attached_late_is_mounted_within_its_deadline() {
    if !root_or_skip("device_attached_late_is_mounted_within_its_deadline") {
        return;
    }
    let rig = std::sync::Arc::new(Rig::new());
    let file = rig.file("late.img", 32 * MIB);
    let v = spec(&rig, serde_json::json!({"wait": "15s"}));
    let at = v.mountpoint.clone();
    let attacher = {
        let rig = rig.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            let l = Loop::attach(&file);
            rig.expose(&l, &[("serial", "pyre-data")]);
            l
        })
    };
    let (r, took) = {
        let rig = rig.clone();
        in_private_ns(move || {
            let t = Instant::now();
            let r = run(&rig, &[v]).unwrap();
            let took = t.elapsed();
            umount(&at);
            (r, took)
        })
    };
    let l = attacher.join().unwrap();
    assert_eq!(r.volumes[0].outcome, Outcome::Mounted);
    let waited = r.volumes[0].seconds.wait;
    assert!((1.4..5.0).contains(&waited), "waited {waited}s");
    assert!(took < Duration::from_secs(10), "{took:?}");
    drop(l);
}

/// Whether this process may resize ext4 online (CAP_SYS_RESOURCE; some sandboxes drop it).
fn has_cap_sys_resource() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap();
    u64::from_str_radix(eff.trim(), 16).unwrap() & (1 << 24) != 0
}

/// Make `fs` on a device of `from` bytes, grow the device to `to`, apply with `grow: true`.
fn grow_case(fs: &str, mkfs: &[&str], from: u64, to: u64) {
    let rig = Rig::new();
    let l = rig.loop_dev("g.img", from);
    let mut args = mkfs.to_vec();
    args.push(l.dev.to_str().unwrap());
    sh(&format!("mkfs.{fs}"), &args).unwrap();
    rig.expose(&l, &[("serial", "pyre-data")]);
    fs::OpenOptions::new()
        .write(true)
        .open(&l.file)
        .unwrap()
        .set_len(to)
        .unwrap();
    l.refresh_size();
    let v = spec(
        &rig,
        serde_json::json!({"grow": true, "format": "never", "filesystem": fs}),
    );
    let at = v.mountpoint.clone();
    let dev = l.dev.clone();
    in_private_ns(move || {
        let specs = [v];
        let r = run(&rig, &specs).unwrap();
        assert!(r.volumes[0].grown, "{:?}", r.volumes[0]);
        umount(&at);
        let mut f = fs::File::open(&dev).unwrap();
        let p = pyre::volumes::probe::probe(&mut f).unwrap();
        assert_eq!(p.found[0].fs_size, Some(to));
        let r = run(&rig, &specs).unwrap();
        assert!(!r.volumes[0].grown, "grown once only");
        umount(&at);
        drop(rig);
    });
}

#[test]
fn grow_fills_a_device_that_grew_ext4() {
    if !root_or_skip("grow_fills_a_device_that_grew_ext4") {
        return;
    }
    if !has_cap_sys_resource() {
        eprintln!("SKIPPED grow_fills_a_device_that_grew_ext4: no CAP_SYS_RESOURCE here (online ext4 resize needs it)");
        return;
    }
    grow_case("ext4", &["-q", "-F", "-b", "4096"], 64 * MIB, 128 * MIB);
}

#[test]
fn grow_fills_a_device_that_grew_xfs() {
    if !root_or_skip("grow_fills_a_device_that_grew_xfs") || !have("xfs_growfs") {
        return;
    }
    grow_case("xfs", &["-q", "-f"], 320 * MIB, 400 * MIB);
}

#[test]
fn cli_dry_run_prints_the_plan_and_changes_nothing() {
    if !root_or_skip("cli_dry_run_prints_the_plan_and_changes_nothing") {
        return;
    }
    let rig = Rig::new();
    let l = rig.loop_dev("d.img", 16 * MIB);
    let node = rig.expose(&l, &[("serial", "pyre-data")]);
    let mp: PathBuf = rig.path("mnt/data");
    let config = rig.config(serde_json::json!([{
        "name": "data", "device": {"serial": "pyre-data"}, "filesystem": "ext4", "label": "data",
        "mountpoint": mp, "format": "if-blank", "wait": "0s"
    }]));
    let before = l.sha256();
    let (sys, dev) = (rig.sys(), rig.dev());
    let out = in_private_ns(move || {
        let mut cmd = pyre();
        cmd.args(["volumes", "apply", "--dry-run", "--config"])
            .arg(&config);
        cmd.arg("--sys").arg(sys).arg("--dev").arg(dev);
        cmd.output().unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = node.display();
    assert!(stdout.contains("data (required): planned"), "{stdout}");
    assert!(
        stdout.contains("found:     blank (2109440 bytes read)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("would  format: mkfs.ext4 -L data {n}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "would  mount: {n} on {} (ext4, rw,nodev,nosuid)",
            mp.display()
        )),
        "{stdout}"
    );
    assert_eq!(l.sha256(), before);
    assert!(!mp.exists(), "dry run made the mountpoint");
}

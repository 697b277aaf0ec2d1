use super::*;

/// PID 1's mount table of a booted pyre image (trimmed), with `extra` lines appended.
fn table(extra: &str) -> Vec<Mount> {
    let base = "\
22 1 254:0 / / ro,relatime shared:1 - erofs /dev/mapper/pyre-root ro,user_xattr,acl\n\
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw\n\
24 22 0:22 / /sys rw,nosuid shared:3 - sysfs sysfs rw\n\
25 22 0:5 / /dev rw,nosuid shared:4 - devtmpfs devtmpfs rw,size=4096k\n\
26 22 0:23 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755\n\
27 23 0:30 / /proc/sys/fs/binfmt_misc rw,relatime shared:6 - autofs systemd-1 rw\n\
28 22 0:31 / /tmp rw,nosuid,nodev shared:7 - tmpfs tmpfs rw\n\
29 22 254:16 / /srv/data rw,relatime shared:8 - ext4 /dev/vdb rw\n\
30 22 0:32 / /var rw,relatime shared:9 - tmpfs tmpfs rw\n";
    mountinfo::parse(format!("{base}{extra}").as_bytes())
}

fn sealed() -> Sealed {
    let paths = [
        "/",
        "/dev",
        "/etc",
        "/etc/fstab",
        "/proc",
        "/run",
        "/srv",
        "/srv/data",
        "/sys",
        "/tmp",
        "/usr",
        "/usr/bin",
        "/usr/bin/ls",
        "/usr/lib/systemd/system/boot-efi.mount",
        "/usr/lib/systemd/system/tmp.mount",
        "/usr/share/doc/x.mount",
        "/var",
    ];
    Sealed {
        excludes: ["/dev", "/proc", "/run", "/sys", "/tmp", "/var"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        paths: paths.iter().map(|s| s.as_bytes().to_vec()).collect(),
        files: vec![b"/usr/bin/ls".to_vec()],
    }
}

fn declared_volumes() -> Vec<Vec<u8>> {
    vec![b"/srv/data".to_vec()]
}

#[test]
fn a_booted_image_has_no_foreign_mounts() {
    assert_eq!(
        foreign_mounts(&table(""), &sealed(), &declared_volumes()),
        []
    );
}

#[test]
fn a_bind_mount_over_a_baked_binary_is_found() {
    // mount --bind /tmp/x /usr/bin/ls
    let m = table("40 22 0:31 /x /usr/bin/ls rw,relatime shared:7 - tmpfs tmpfs rw\n");
    assert_eq!(
        foreign_mounts(&m, &sealed(), &declared_volumes()),
        [Finding::Mount {
            path: "/usr/bin/ls".into(),
            fstype: "tmpfs".into(),
            source: "tmpfs".into(),
            sealed: "/usr/bin/ls".into(),
        }]
    );
}

#[test]
fn mounts_inside_sealed_directories_and_under_volumes() {
    let extra = "\
41 22 0:40 / /usr/bin/new rw - tmpfs none rw\n\
42 22 0:41 / /mnt\\040x rw - tmpfs none rw\n\
43 29 0:42 / /srv/data/cache rw - tmpfs none rw\n\
44 30 0:43 / /var/lib/docker rw - overlay overlay rw\n";
    let found = foreign_mounts(&table(extra), &sealed(), &declared_volumes());
    let paths: Vec<(String, String)> = found
        .iter()
        .map(|f| match f {
            Finding::Mount { path, sealed, .. } => (path.clone(), sealed.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        paths,
        [
            ("/usr/bin/new".to_string(), "/usr/bin".to_string()),
            (escape(b"/mnt x"), "/".to_string()),
        ]
    );
    // Without the volume declared, its mount point is a mount over a sealed directory.
    let undeclared = foreign_mounts(&table(""), &sealed(), &[]);
    assert!(
        matches!(&undeclared[..], [Finding::Mount { path, .. }] if path == "/srv/data"),
        "{undeclared:?}"
    );
}

#[test]
fn the_image_declares_mounts_by_fstab_and_units() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("etc")).unwrap();
    std::fs::write(
        d.path().join("etc/fstab"),
        "# <file system> <mount point>\nLABEL=x /opt/app\\040one ext4 ro 0 0\n\
         /swapfile none swap sw 0 0\n\ttmpfs\t/scratch tmpfs defaults 0 0\n",
    )
    .unwrap();
    let got = declared(d.path(), &sealed(), &["/srv/data".into()]);
    let want: Vec<Vec<u8>> = ["/boot/efi", "/opt/app one", "/scratch", "/srv/data", "/tmp"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn unit_names_unescape_like_systemd() {
    let cases: [(&str, Option<&str>); 6] = [
        ("srv-data.mount", Some("/srv/data")),
        ("-.mount", Some("/")),
        ("var-lib-my\\x2dapp.mount", Some("/var/lib/my-app")),
        (
            "proc-sys-fs-binfmt_misc.automount",
            Some("/proc/sys/fs/binfmt_misc"),
        ),
        ("tmp.service", None),
        ("bad\\x2.mount", None),
    ];
    for (name, want) in cases {
        let got = unit_mount_point(name.as_bytes()).map(|p| String::from_utf8(p).unwrap());
        assert_eq!(got.as_deref(), want, "{name}");
    }
}

#[test]
fn the_root_must_be_read_only_and_sealed() {
    let ok = table("");
    let root = root_mount(&ok).unwrap();
    let verity = RootExpectation::Verity;
    assert_eq!(root_finding(root, Some("pyre-root"), &verity), None);
    let cases = [
        (
            "1 0 254:0 / / rw,relatime - erofs /dev/mapper/pyre-root rw\n",
            Some("pyre-root"),
            "the root 254:0 (/dev/mapper/pyre-root, erofs) is mounted read-write",
        ),
        (
            "1 0 8:1 / / ro - ext4 /dev/sda1 ro\n",
            None,
            "the root 8:1 (/dev/sda1, ext4) is not pyre's dm-verity device pyre-root",
        ),
        (
            "1 0 254:1 / / ro - erofs /dev/mapper/evil ro\n",
            Some("evil"),
            "the root 254:1 (/dev/mapper/evil, erofs) is not pyre's dm-verity device \
             pyre-root (device-mapper name \"evil\")",
        ),
    ];
    for (line, dm, want) in cases {
        let m = mountinfo::parse(line.as_bytes());
        let got = root_finding(&m[0], dm, &verity);
        assert_eq!(
            got,
            Some(Finding::Root {
                detail: want.into()
            }),
            "{line}"
        );
    }
    // Without pyre's initramfs: the device it started on, read-only.
    let same = RootExpectation::SameDevice("8:1".into());
    let m = mountinfo::parse(b"1 0 8:1 / / ro - ext4 /dev/sda1 ro\n");
    assert_eq!(root_finding(&m[0], None, &same), None);
    let moved = mountinfo::parse(
        b"1 0 8:1 / / ro - ext4 /dev/sda1 ro\n2 1 8:2 / / ro - ext4 /dev/sda2 ro\n",
    );
    let got = root_finding(root_mount(&moved).unwrap(), None, &same);
    assert!(
        matches!(&got, Some(Finding::Root { detail }) if detail.contains("not device 8:1")),
        "{got:?}"
    );
}

#[test]
fn the_check_reads_a_table_and_fails_loudly_without_one() {
    let d = tempfile::tempdir().unwrap();
    let mi = d.path().join("mountinfo");
    let sys = d.path().join("sys");
    std::fs::create_dir_all(sys.join("dev/block/254:0/dm")).unwrap();
    std::fs::write(sys.join("dev/block/254:0/dm/name"), "pyre-root\n").unwrap();
    let text = "\
22 1 254:0 / / ro,relatime shared:1 - erofs /dev/mapper/pyre-root ro\n\
23 22 0:21 / /proc rw - proc proc rw\n";
    std::fs::write(&mi, text).unwrap();
    let mut c = MountsCheck::new(mi.clone(), sys, Arc::new(sealed()), vec![], true);
    assert!(matches!(c.run(), Outcome::Clean(s) if s.contains("2 mounts")));
    let mut root = RootState::default();
    c.root_state(&mut root);
    assert_eq!(root.dm_name.as_deref(), Some("pyre-root"));
    assert_eq!(root.read_only, Some(true));
    std::fs::write(
        &mi,
        format!("{text}40 22 0:31 /x /usr/bin/ls rw - tmpfs tmpfs rw\n"),
    )
    .unwrap();
    match c.run() {
        Outcome::Found(f) => {
            assert_eq!(f.reason, "tmpfs tmpfs mounted over sealed /usr/bin/ls");
            assert_eq!(f.findings.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(&mi).unwrap();
    assert!(matches!(c.run(), Outcome::Failed(e) if e.starts_with("reading the mount table")));
    std::fs::write(&mi, "").unwrap();
    assert!(matches!(c.run(), Outcome::Failed(e) if e.starts_with("no mount on /")));
}

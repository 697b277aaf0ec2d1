//! Every signature kind the prober knows, made on a loop device with the real tool where
//! this machine has it (otherwise written byte by byte from the format's specification), is
//! refused for formatting by `pyre volumes apply` and left bit-identical. Runs as root; the
//! fake sysfs lists only the test's own loop devices.
mod volumes_rig;

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use volumes_rig::*;

/// How a signature is put on the device.
enum Make {
    /// Run a tool on the loop device (`{}` is the device).
    Tool(&'static str, &'static [&'static str]),
    /// Write bytes into the backing file before attaching it.
    Bytes(fn(&mut fs::File, u64)),
    /// `mdadm --create` a one-disk RAID1 with this metadata version, then stop it.
    Mdadm(&'static str),
    /// Build an image from the `src/` directory with a tool (`{img}`, `{src}`), then copy it
    /// to the start of the backing file.
    Image(&'static str, &'static [&'static str]),
}

struct Case {
    kind: &'static str,
    size: u64,
    make: Make,
    /// What the report's `found` must contain.
    found: &'static str,
}

fn put(f: &mut fs::File, at: u64, bytes: &[u8]) {
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
}

/// md 0.90 superblock (mdp_super_t, 4 KiB, host byte order) in the last 64 KiB-aligned
/// 64 KiB block: RAID1 with one disk.
fn md090(f: &mut fs::File, size: u64) {
    let mut w = [0u32; 1024];
    w[0] = 0xA92B_4EFC; // md_magic
    w[2] = 90; // minor_version
    w[5] = 0x1111_1111; // set_uuid0
    w[7] = 1; // level
    w[8] = ((size / 512) & !127) as u32 / 2 - 64; // size in KiB
    w[9] = 1; // nr_disks
    w[10] = 1; // raid_disks
    w[13..16].copy_from_slice(&[0x2222_2222, 0x3333_3333, 0x4444_4444]);
    let sum: u64 = w.iter().map(|x| u64::from(*x)).sum();
    w[38] = (sum & 0xFFFF_FFFF) as u32 + (sum >> 32) as u32; // sb_csum
    let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
    put(f, ((size / 512) & !127) * 512 - 65536, &bytes);
}

/// md 1.2 superblock (mdp_superblock_1, little-endian) 4 KiB from the start.
fn md12(f: &mut fs::File, size: u64) {
    let mut b = vec![0u8; 256 + 2];
    b[0..4].copy_from_slice(&0xA92B_4EFCu32.to_le_bytes());
    b[4..8].copy_from_slice(&1u32.to_le_bytes()); // major_version
    b[16..32].copy_from_slice(&[0x5A; 16]); // set_uuid
    b[32..40].copy_from_slice(b"pyre:md0");
    b[72..76].copy_from_slice(&1u32.to_le_bytes()); // level
    let data_offset = 2048u64;
    let data_size = size / 512 - data_offset;
    b[80..88].copy_from_slice(&data_size.to_le_bytes()); // size
    b[92..96].copy_from_slice(&1u32.to_le_bytes()); // raid_disks
    b[128..136].copy_from_slice(&data_offset.to_le_bytes());
    b[136..144].copy_from_slice(&data_size.to_le_bytes());
    b[144..152].copy_from_slice(&8u64.to_le_bytes()); // super_offset (sectors)
    b[220..224].copy_from_slice(&1u32.to_le_bytes()); // max_dev
    let mut sum: u64 = b
        .chunks(4)
        .filter(|c| c.len() == 4)
        .map(|c| u64::from(u32::from_le_bytes(c.try_into().unwrap())))
        .sum();
    sum += u64::from(u16::from_le_bytes([b[256], b[257]]));
    let csum = (sum & 0xFFFF_FFFF) as u32 + (sum >> 32) as u32;
    b[216..220].copy_from_slice(&csum.to_le_bytes());
    put(f, 4096, &b);
}

/// A ZFS vdev label (XDR nvlist at +16 KiB, one uberblock at +128 KiB) in all four label
/// positions. Embedded checksums are not filled in (the prober, like blkid, does not check).
fn zfs(f: &mut fs::File, size: u64) {
    let mut nv = vec![1u8, 1, 0, 0];
    nv.extend(0u32.to_be_bytes()); // nvl_version
    nv.extend(1u32.to_be_bytes()); // NV_UNIQUE_NAME
    let mut pair = |name: &str, kind: u32, value: Vec<u8>| {
        let mut p = vec![];
        p.extend((name.len() as u32).to_be_bytes());
        p.extend(name.as_bytes());
        p.resize(p.len().div_ceil(4) * 4, 0);
        p.extend(kind.to_be_bytes());
        p.extend(1u32.to_be_bytes());
        p.extend(value);
        nv.extend((p.len() as u32 + 8).to_be_bytes());
        nv.extend((p.len() as u32 + 8).to_be_bytes());
        nv.extend(p);
    };
    let string = |s: &str| {
        let mut v = (s.len() as u32).to_be_bytes().to_vec();
        v.extend(s.as_bytes());
        v.resize(v.len().div_ceil(4) * 4, 0);
        v
    };
    pair("version", 8, 5000u64.to_be_bytes().to_vec());
    pair("name", 9, string("pyretank"));
    pair("state", 8, 0u64.to_be_bytes().to_vec());
    pair("pool_guid", 8, 1234567u64.to_be_bytes().to_vec());
    nv.extend([0; 8]);
    let mut ub = vec![];
    ub.extend(0x00BA_B10Cu64.to_le_bytes()); // ub_magic
    ub.extend(5000u64.to_le_bytes()); // ub_version
    ub.extend(4u64.to_le_bytes()); // ub_txg
    ub.extend(1234567u64.to_le_bytes()); // ub_guid_sum
    let aligned = size & !(256 * 1024 - 1);
    for label in [0, 256 << 10, aligned - (512 << 10), aligned - (256 << 10)] {
        put(f, label + (16 << 10), &nv);
        put(f, label + (128 << 10) + 4 * 1024, &ub);
    }
}

fn one_byte(f: &mut fs::File, _: u64) {
    put(f, 600 * 1024, &[7]);
}

fn cases() -> Vec<Case> {
    use Make::*;
    let m = MIB;
    vec![
        Case {
            kind: "ext2",
            size: 32 * m,
            make: Tool("mkfs.ext2", &["-q", "-F", "{}"]),
            found: "ext2",
        },
        Case {
            kind: "ext3",
            size: 32 * m,
            make: Tool("mkfs.ext3", &["-q", "-F", "{}"]),
            found: "ext3",
        },
        Case {
            kind: "ext4",
            size: 32 * m,
            make: Tool("mkfs.ext4", &["-q", "-F", "-L", "old", "{}"]),
            found: "ext4 (label \"old\"",
        },
        Case {
            kind: "xfs",
            size: 320 * m,
            make: Tool("mkfs.xfs", &["-q", "-f", "{}"]),
            found: "xfs",
        },
        Case {
            kind: "btrfs",
            size: 128 * m,
            make: Tool("mkfs.btrfs", &["-q", "-f", "{}"]),
            found: "btrfs",
        },
        Case {
            kind: "swap",
            size: 32 * m,
            make: Tool("mkswap", &["-L", "sw", "{}"]),
            found: "swap (label \"sw\"",
        },
        Case {
            kind: "luks1",
            size: 32 * m,
            make: Tool(
                "cryptsetup",
                &[
                    "luksFormat",
                    "-q",
                    "--type",
                    "luks1",
                    "--pbkdf",
                    "pbkdf2",
                    "--pbkdf-force-iterations",
                    "1000",
                    "--key-file",
                    "{key}",
                    "{}",
                ],
            ),
            found: "luks1",
        },
        Case {
            kind: "luks2",
            size: 32 * m,
            make: Tool(
                "cryptsetup",
                &[
                    "luksFormat",
                    "-q",
                    "--type",
                    "luks2",
                    "--pbkdf",
                    "pbkdf2",
                    "--pbkdf-force-iterations",
                    "1000",
                    "--key-file",
                    "{key}",
                    "{}",
                ],
            ),
            found: "luks2",
        },
        Case {
            kind: "lvm2",
            size: 32 * m,
            make: Tool("pvcreate", &["-q", "-y", "--devicesfile", "", "{}"]),
            found: "lvm2-pv",
        },
        Case {
            kind: "mdraid-0.90",
            size: 32 * m,
            make: Bytes(md090),
            found: "mdraid-0.90",
        },
        Case {
            kind: "mdraid-1.2",
            size: 32 * m,
            make: Bytes(md12),
            found: "mdraid-1.x (label \"pyre:md0\", uuid 5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a",
        },
        Case {
            kind: "mdadm-0.90",
            size: 32 * m,
            make: Mdadm("0.90"),
            found: "mdraid-0.90",
        },
        Case {
            kind: "mdadm-1.2",
            size: 32 * m,
            make: Mdadm("1.2"),
            found: "mdraid-1.x",
        },
        Case {
            kind: "gpt",
            size: 32 * m,
            make: Tool("sfdisk", &["-q", "--no-reread", "{}", "<label: gpt\n,,L\n"]),
            found: "gpt",
        },
        Case {
            kind: "dos",
            size: 32 * m,
            make: Tool("sfdisk", &["-q", "--no-reread", "{}", "<label: dos\n,,L\n"]),
            found: "dos",
        },
        Case {
            kind: "iso9660",
            size: 16 * m,
            make: Image(
                "genisoimage",
                &["-quiet", "-V", "PYREISO", "-o", "{img}", "{src}"],
            ),
            found: "iso9660 (label \"PYREISO\"",
        },
        Case {
            kind: "squashfs",
            size: 16 * m,
            make: Image(
                "mksquashfs",
                &["{src}", "{img}", "-quiet", "-no-progress", "-noappend"],
            ),
            found: "squashfs",
        },
        Case {
            kind: "erofs",
            size: 16 * m,
            make: Image(
                "mkfs.erofs",
                &[
                    "--quiet",
                    "-U11111111-2222-3333-4444-555555555555",
                    "{img}",
                    "{src}",
                ],
            ),
            found: "erofs (uuid 11111111-2222-3333-4444-555555555555",
        },
        Case {
            kind: "vfat",
            size: 32 * m,
            make: Tool("mkfs.vfat", &["-n", "PYREFAT", "{}"]),
            found: "vfat (label \"PYREFAT\"",
        },
        Case {
            kind: "ntfs",
            size: 32 * m,
            make: Tool("mkfs.ntfs", &["-f", "-q", "{}"]),
            found: "ntfs",
        },
        Case {
            kind: "zfs",
            size: 64 * m,
            make: Bytes(zfs),
            found: "zfs-member (label \"pyretank\", uuid 1234567)",
        },
        Case {
            kind: "unknown",
            size: 32 * m,
            make: Bytes(one_byte),
            found: "no known signature, non-zero data at byte 614400",
        },
    ]
}

/// Put the case's signature on a new loop device in `rig`; `None` when the tool is missing.
fn make(rig: &Rig, c: &Case) -> Option<Loop> {
    let file = rig.file(&format!("{}.img", c.kind), c.size);
    let subst = |a: &str, dev: &str| {
        a.replace("{}", dev)
            .replace("{key}", rig.path("key").to_str().unwrap())
            .replace("{img}", rig.path("tool.img").to_str().unwrap())
            .replace("{src}", rig.path("src").to_str().unwrap())
    };
    fs::write(rig.path("key"), "test key").unwrap();
    match &c.make {
        Make::Bytes(write) => {
            write(
                &mut fs::OpenOptions::new().write(true).open(&file).unwrap(),
                c.size,
            );
            Some(Loop::attach(&file))
        }
        Make::Mdadm(metadata) => {
            if !have("mdadm") || !Path::new("/proc/mdstat").exists() {
                return None;
            }
            let l = Loop::attach(&file);
            let name = format!("/dev/md/pyretest-{}-{}", std::process::id(), c.kind);
            let meta = format!("--metadata={metadata}");
            let dev = l.dev.to_str().unwrap();
            let args = [
                "--create",
                &name,
                &meta,
                "--level=1",
                "--raid-devices=1",
                "--force",
                "--run",
                dev,
            ];
            sh("mdadm", &args).unwrap();
            sh("mdadm", &["--stop", &name]).unwrap();
            Some(l)
        }
        Make::Image(tool, args) => {
            if !have(tool) {
                return None;
            }
            let args: Vec<String> = args.iter().map(|a| subst(a, "")).collect();
            sh(tool, &args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
            let img = fs::read(rig.path("tool.img")).unwrap();
            put(
                &mut fs::OpenOptions::new().write(true).open(&file).unwrap(),
                0,
                &img,
            );
            Some(Loop::attach(&file))
        }
        Make::Tool(tool, args) => {
            if !have(tool) {
                return None;
            }
            let l = Loop::attach(&file);
            let dev = l.dev.to_str().unwrap();
            let mut stdin = None;
            let args: Vec<String> = args
                .iter()
                .filter_map(|a| match a.strip_prefix('<') {
                    Some(input) => {
                        stdin = Some(input.to_string());
                        None
                    }
                    None => Some(subst(a, dev)),
                })
                .collect();
            let mut cmd = std::process::Command::new(tool);
            cmd.args(&args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            let input = stdin.unwrap_or_default();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{tool} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(l)
        }
    }
}

/// `pyre volumes apply` with `format: if-blank` on a device holding `c`'s signature.
fn refused_and_untouched(c: &Case) {
    let rig = Rig::new();
    let Some(l) = make(&rig, c) else {
        eprintln!(
            "SKIPPED signature {}: its tool or the md driver is missing here (scripts/deps.sh \
             installs the tools; the byte-written cases of the same formats still ran)",
            c.kind
        );
        return;
    };
    rig.expose(&l, &[("serial", "pyre-sig")]);
    let fs = if c.kind == "xfs" { "ext4" } else { "xfs" };
    let fs = if c.kind.starts_with("ext") { "xfs" } else { fs };
    let config = rig.config(serde_json::json!([{
        "name": "data", "device": {"serial": "pyre-sig"}, "filesystem": fs, "label": "new",
        "mountpoint": rig.path("mnt/data"), "format": "if-blank", "wait": "0s"
    }]));
    let before = l.sha256();
    let (sys, dev) = (rig.sys(), rig.dev());
    let out = in_private_ns(move || {
        let mut cmd = pyre();
        cmd.args(["volumes", "apply", "--format", "json", "--config"])
            .arg(&config);
        cmd.arg("--sys").arg(sys).arg("--dev").arg(dev);
        cmd.output().unwrap()
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}: {stderr}", c.kind);
    assert!(
        stderr.contains("PYRE_FORMAT_REFUSED"),
        "{}: {stderr}",
        c.kind
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = &report["volumes"][0];
    let found = v["found"].as_str().unwrap();
    assert!(found.contains(c.found), "{}: found {found:?}", c.kind);
    assert_eq!(v["formatted"], false);
    assert_eq!(v["outcome"], "failed");
    assert!(v["bytes-probed"].as_u64().unwrap() > 0);
    assert_eq!(l.sha256(), before, "{}: the device changed", c.kind);
    assert!(
        !rig.path("mnt/data").exists(),
        "{}: a mountpoint was made",
        c.kind
    );
}

#[test]
fn every_signature_is_refused_for_formatting_and_left_bit_identical() {
    if !root_or_skip("every_signature_is_refused_for_formatting_and_left_bit_identical") {
        return;
    }
    let only = std::env::var("PYRE_SIGNATURE").ok();
    for c in cases()
        .iter()
        .filter(|c| only.as_deref().is_none_or(|o| o == c.kind))
    {
        refused_and_untouched(c);
    }
}

#[test]
fn real_tools_are_recognised_with_their_kind() {
    // The same images, straight through the library prober (no CLI), for a quick table.
    if !root_or_skip("real_tools_are_recognised_with_their_kind") {
        return;
    }
    let rig = Rig::new();
    let mut seen = vec![];
    for c in cases()
        .iter()
        .filter(|c| matches!(c.make, Make::Tool(..) | Make::Image(..)))
    {
        let Some(l) = make(&rig, c) else { continue };
        let mut f = fs::File::open(&l.dev).unwrap();
        let p = pyre::volumes::probe::probe(&mut f).unwrap();
        assert!(
            p.describe().contains(c.found),
            "{}: {}",
            c.kind,
            p.describe()
        );
        seen.push(format!(
            "{}: {} ({} bytes read)",
            c.kind,
            p.describe(),
            p.bytes_read
        ));
        drop(l);
        let _ = fs::remove_file(Path::new(&rig.path(&format!("{}.img", c.kind))));
    }
    eprintln!("{}", seen.join("\n"));
}

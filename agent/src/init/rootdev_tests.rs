//! Finding the root over fake device trees: sysfs directories in a temp dir, regular files (or
//! a directory, for an unreadable one) standing in for the device nodes.
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::boot;
use super::boot_tests::{add_disk, clean, dm_requests, fixture, host_with_disk, superblock};
use super::dm::VerityParams;
use super::rootdev::*;
use crate::host::DmRequest;
use crate::host::RecordingHost;

const UUID: [u8; 16] = [0x11; 16];
const OTHER: [u8; 16] = [0x22; 16];
const BLOCKS: u64 = 100;
const OFFSET: u64 = BLOCKS * 4096;
const SALT: [u8; 4] = [0xaa, 0x55, 0x01, 0x02];

/// What a fake device holds.
#[derive(Clone, Copy)]
enum Disk {
    /// This image: its superblock at the hash offset.
    Root,
    /// Zeros, `n` MiB.
    Blank(u64),
    /// Another image's superblock.
    Other,
    /// This image's uuid, another salt.
    OtherSalt,
    /// Smaller than the hash offset.
    Small,
    /// In sysfs, no node in /dev.
    NoNode,
    /// The node is a directory: reads fail with EISDIR.
    Unreadable,
}

struct Tree {
    _dir: tempfile::TempDir,
    sys: PathBuf,
    dev: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let (sys, dev) = (dir.path().join("sys"), dir.path().join("dev"));
        std::fs::create_dir_all(sys.join("class/block")).unwrap();
        std::fs::create_dir_all(&dev).unwrap();
        Tree {
            _dir: dir,
            sys,
            dev,
        }
    }

    fn add(&self, name: &str, minor: u32, disk: Disk) {
        let class = self.sys.join("class/block").join(name);
        std::fs::create_dir_all(&class).unwrap();
        let bytes = match disk {
            Disk::Blank(mib) => mib << 20,
            Disk::Small => OFFSET / 2,
            _ => OFFSET + 2 * 4096,
        };
        std::fs::write(class.join("dev"), format!("254:{minor}\n")).unwrap();
        std::fs::write(class.join("size"), format!("{}\n", bytes / 512)).unwrap();
        let node = self.dev.join(name);
        let sb = match disk {
            Disk::NoNode => return,
            Disk::Unreadable => return std::fs::create_dir(&node).unwrap(),
            Disk::Root => Some(superblock(UUID, BLOCKS, &SALT)),
            Disk::Other => Some(superblock(OTHER, BLOCKS, &SALT)),
            Disk::OtherSalt => Some(superblock(UUID, BLOCKS, &[1, 2])),
            Disk::Blank(_) | Disk::Small => None,
        };
        let f = std::fs::File::create(&node).unwrap();
        f.set_len(bytes).unwrap();
        if let Some(sb) = sb {
            std::os::unix::fs::FileExt::write_all_at(&f, &sb, OFFSET).unwrap();
        }
    }

    fn want(&self, only: Option<&str>) -> Want {
        let v = VerityParams {
            uuid: UUID,
            data_blocks: BLOCKS,
            hash_offset: OFFSET,
            root_hash: "00".repeat(32),
            salt: "aa550102".into(),
        };
        Want::new(&v, only)
    }

    fn find(&self, h: &RecordingHost, only: Option<&str>) -> Result<Found, RootDevError> {
        let want = self.want(only);
        let mut s = Scanner::new(&self.sys, &self.dev, want.clone());
        find_root(h, &want, Duration::from_secs(30), &mut || s.scan())
    }
}

type Case = (
    &'static str,
    &'static [(&'static str, Disk)],
    Option<&'static str>,
    Result<&'static str, &'static [&'static str]>,
);

#[test]
fn the_root_is_found_by_its_superblock_not_its_name() {
    use Disk::*;
    let cases: &[Case] = &[
        ("root alone", &[("vda", Root)], None, Ok("vda")),
        ("blank data disk first", &[("vda", Blank(64)), ("vdb", Root)], None, Ok("vdb")),
        ("another image first", &[("vda", Other), ("vdb", Root)], None, Ok("vdb")),
        ("nvme beside", &[("nvme0n1", Blank(1)), ("vda", Blank(64)), ("vdb", Root)], None, Ok("vdb")),
        ("partition", &[("nvme0n1", Blank(4)), ("nvme0n1p1", Root)], None, Ok("nvme0n1p1")),
        ("override names the root", &[("vda", Blank(64)), ("vdb", Root)], Some("/dev/vdb"), Ok("vdb")),
        ("two matches", &[("vda", Root), ("vdb", Root)], None,
            Err(&["/dev/vda and ", "/dev/vdb both carry this image's verity superblock (uuid 11111111-1111-1111-1111-111111111111)", "refusing to guess"])),
        ("wrong uuid", &[("vda", Other)], None,
            Err(&["vda (254:0, 0.4 MiB): verity superblock of another image (uuid 22222222-2222-2222-2222-222222222222)"])),
        ("same uuid, other salt", &[("vda", OtherSalt)], None,
            Err(&["vda (254:0, 0.4 MiB): this image's uuid but salt 0102 (the command line pins sha256, 4096-byte blocks, 100 data blocks, salt aa550102)"])),
        ("too small", &[("vda", Small)], None,
            Err(&["vda (254:0, 0.2 MiB): too small for the hash offset 409600"])),
        ("blank", &[("vda", Blank(64))], None,
            Err(&["vda (254:0, 64.0 MiB): no verity superblock at offset 409600"])),
        ("unreadable", &[("vda", Unreadable)], None,
            Err(&["vda (254:0, 0.4 MiB): unreadable: EISDIR (Is a directory)"])),
        ("no node", &[("vdb", NoNode)], None, Err(&["vdb (254:0, 0.4 MiB): no device node "])),
        ("override names the data disk", &[("vda", Blank(64)), ("vdb", Root)], Some("/dev/vda"),
            Err(&["(uuid 11111111-1111-1111-1111-111111111111 on pyre.root=/dev/vda) within 30s",
                  "vda (254:0, 64.0 MiB): no verity superblock", "vdb (254:1, 0.4 MiB): not the device pyre.root names"])),
        ("no devices at all", &[], None, Err(&["seen: no block devices (is the disk driver in modules.load?)"])),
    ];
    for (name, disks, only, want) in cases {
        let t = Tree::new();
        for (minor, (dev, disk)) in disks.iter().enumerate() {
            t.add(dev, minor as u32, *disk);
        }
        let h = RecordingHost::new();
        match (t.find(&h, *only), want) {
            (Ok(found), Ok(root)) => {
                assert_eq!(found.root.name, *root, "{name}");
                assert_eq!(found.root.node, t.dev.join(root), "{name}");
                assert_eq!(found.others.len(), disks.len() - 1, "{name}");
                assert!(
                    h.elapsed() < Duration::from_secs(2),
                    "{name}: found at once"
                );
            }
            (Err(e), Err(parts)) => {
                let msg = e.to_string();
                for part in *parts {
                    assert!(msg.contains(part), "{name}: {msg:?} lacks {part:?}");
                }
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn a_late_root_is_found_within_the_deadline() {
    let t = Tree::new();
    t.add("vda", 0, Disk::Blank(64));
    let h = RecordingHost::new();
    let want = t.want(None);
    let mut s = Scanner::new(&t.sys, &t.dev, want.clone());
    let start = h.elapsed();
    let mut scan = || {
        // The root's driver probes 2 s in; its node follows its sysfs entry by 50 ms.
        let now = h.elapsed() - start;
        if now >= Duration::from_secs(2) && !t.sys.join("class/block/vdb").exists() {
            t.add("vdb", 16, Disk::Root);
            std::fs::rename(t.dev.join("vdb"), t.dev.join("vdb.later")).unwrap();
        }
        if now >= Duration::from_millis(2050) && t.dev.join("vdb.later").exists() {
            std::fs::rename(t.dev.join("vdb.later"), t.dev.join("vdb")).unwrap();
        }
        s.scan()
    };
    let found = find_root(&h, &want, Duration::from_secs(30), &mut scan).unwrap();
    assert_eq!(
        (found.root.name.as_str(), found.root.dev()),
        ("vdb", "254:16".into())
    );
    let waited = h.elapsed() - start;
    assert!(
        (Duration::from_millis(2050)..Duration::from_millis(2070)).contains(&waited),
        "polled on the host clock: {waited:?}"
    );
    assert_eq!(
        found.detail(),
        format!(
            "{} (254:16, 0.4 MiB) carries the verity superblock; also seen: vda (254:0, 64.0 MiB): \
             no verity superblock at offset 409600",
            t.dev.join("vdb").display()
        )
    );
}

#[test]
fn the_deadline_passes_with_the_listing() {
    let t = Tree::new();
    t.add("vda", 0, Disk::Blank(64));
    t.add("nvme0n1", 1, Disk::Other);
    let h = RecordingHost::new();
    let start = h.elapsed();
    let err = t.find(&h, None).unwrap_err();
    let waited = h.elapsed() - start;
    assert!(
        (Duration::from_secs(30)..Duration::from_millis(30_020)).contains(&waited),
        "{waited:?}"
    );
    assert_eq!(
        err.to_string(),
        "no block device carries this image's verity superblock (uuid \
         11111111-1111-1111-1111-111111111111) within 30s; seen: nvme0n1 (254:1, 0.4 MiB): \
         verity superblock of another image (uuid 22222222-2222-2222-2222-222222222222); \
         vda (254:0, 64.0 MiB): no verity superblock at offset 409600"
    );
}

#[test]
fn devices_are_read_once_unless_their_node_was_missing() {
    let t = Tree::new();
    t.add("vda", 0, Disk::Blank(64));
    t.add("vdb", 1, Disk::NoNode);
    let mut s = Scanner::new(&t.sys, &t.dev, t.want(None));
    let first = s.scan();
    assert_eq!(first[0].verdict, Verdict::NoSuperblock);
    assert_eq!(first[1].verdict, Verdict::NoNode);
    // Rewriting vda changes nothing (judged for good); vdb's node appearing does.
    std::fs::write(t.dev.join("vda"), superblock(UUID, BLOCKS, &SALT)).unwrap();
    t.add("vdb", 1, Disk::Root);
    let second = s.scan();
    assert_eq!(second[0].verdict, Verdict::NoSuperblock);
    assert_eq!(second[1].verdict, Verdict::Root);
}

#[test]
fn superblock_fields_are_checked() {
    let want = Tree::new().want(None);
    let judge_with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut sb = superblock(UUID, BLOCKS, &SALT);
        edit(&mut sb);
        judge(&sb.try_into().unwrap(), &want)
    };
    assert_eq!(judge_with(&|_| {}), Verdict::Root);
    assert_eq!(judge_with(&|sb| sb[6] = b'X'), Verdict::NoSuperblock);
    let other = |v: Verdict, what: &str| match v {
        Verdict::OtherBuild(why) => assert!(why.starts_with(what), "{why}"),
        v => panic!("{what}: {v:?}"),
    };
    other(judge_with(&|sb| sb[72] = 99), "99 data blocks");
    other(
        judge_with(&|sb| sb[32..38].copy_from_slice(b"sha1\0\0")),
        "sha1 with 4096/4096",
    );
    other(judge_with(&|sb| sb[64] = 1), "sha256 with 4097/4096");
    other(judge_with(&|sb| sb[65] = 2), "sha256 with 512/4096");
    other(judge_with(&|sb| sb[8] = 2), "version 2 hash type 1");
}

#[test]
fn uuids_round_trip() {
    let u = parse_uuid("0F1E2D3C-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
    assert_eq!(uuid_text(&u), "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
    for bad in [
        "",
        "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f",
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fz",
    ] {
        assert_eq!(parse_uuid(bad), None, "{bad}");
    }
}

#[test]
fn a_block_node_of_another_device_is_not_read() {
    let t = Tree::new();
    t.add("vda", 0, Disk::Blank(64));
    let node = t.dev.join("vda");
    std::fs::remove_file(&node).unwrap();
    let dev = nix::sys::stat::makedev(7, 200);
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    if nix::sys::stat::mknod(&node, nix::sys::stat::SFlag::S_IFBLK, mode, dev).is_err() {
        return; // not allowed to create device nodes here (needs CAP_MKNOD)
    }
    let mut s = Scanner::new(&t.sys, &t.dev, t.want(None));
    let seen = s.scan();
    assert_eq!(
        seen[0].verdict,
        Verdict::Unreadable(format!(
            "{} is the node of block device 7:200",
            node.display()
        ))
    );
    assert!(Path::new(&node).exists());
}

#[test]
fn a_data_disk_that_took_vda_is_never_handed_to_device_mapper() {
    let f = fixture("");
    let p = &f.paths;
    std::fs::remove_dir_all(p.sys.join("class/block/vda")).unwrap();
    add_disk(p, "vda", 0, false);
    add_disk(p, "vdb", 16, true);
    let h = host_with_disk();
    boot(&h, p, &clean(), &[]).unwrap();
    let calls = dm_requests(&h.ops());
    let DmRequest::LoadTable { target: table, .. } = &calls[2] else {
        panic!("a table load: {:?}", calls[2])
    };
    assert!(
        table
            .params
            .starts_with("1 254:16 254:16 4096 4096 100 101 sha256 "),
        "{}",
        table.params
    );
    let lines = h.lines().join("\n");
    assert!(
        lines.contains("also seen: vda (254:0, 0.4 MiB): no verity superblock at offset 409600"),
        "{lines}"
    );

    // pyre.root pointing at the data disk: it is not the root, nothing is loaded.
    let f = fixture("pyre.root=/dev/vda pyre.root-wait=2");
    let p = &f.paths;
    std::fs::remove_dir_all(p.sys.join("class/block/vda")).unwrap();
    add_disk(p, "vda", 0, false);
    add_disk(p, "vdb", 16, true);
    let h = host_with_disk();
    let err = boot(&h, p, &clean(), &[]).unwrap_err();
    assert_eq!(err.code(), "PYRE-INIT-ROOT-DEVICE");
    assert!(
        err.to_string().contains("on pyre.root=/dev/vda) within 2s"),
        "{err}"
    );
    assert!(
        dm_requests(&h.ops()).is_empty(),
        "no device-mapper call at all"
    );
}

//! The boot sequence and its failure handling, driven through the recording host.
use std::cell::RefCell;
use std::path::{Path, PathBuf};

use super::record::BootRecord;
use super::rootdev::SUPERBLOCK_SIZE;
use super::verify::{RootVerifier, Verified, VerifyFailure, VerifyInput};
use super::*;
use crate::host::dm::{DmCmd, DmRequest};
use crate::host::{MsFlags, Op, RecordingHost};
use crate::manifest::digest as manifest_digest;

pub(super) const ROOT_HASH: &str =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub(super) const UUID: &str = "11111111-1111-1111-1111-111111111111";
const HASH_OFFSET: u64 = 409_600;
pub(super) const MANIFEST: &[u8] = b"pyre-manifest v1\n/ d 0755 0 0\n";

/// (root, manifest, keys, mountinfo) of one verify call.
type Seen = (PathBuf, PathBuf, Vec<PathBuf>, PathBuf);

pub(super) struct Scripted {
    answer: Result<Verified, VerifyFailure>,
    seen: RefCell<Vec<Seen>>,
}

impl RootVerifier for Scripted {
    fn verify(&self, i: &VerifyInput) -> Result<Verified, VerifyFailure> {
        let seen = (
            i.root.to_path_buf(),
            i.manifest.to_path_buf(),
            i.keys.to_vec(),
            i.mountinfo.to_path_buf(),
        );
        self.seen.borrow_mut().push(seen);
        self.answer.clone()
    }

    /// The signature alone: the scripted signature failure, else the digest (a scripted
    /// drift is in the tree, which this does not look at).
    fn signature(&self, manifest: &Path, keys: &[PathBuf]) -> Result<String, VerifyFailure> {
        let seen = (
            PathBuf::new(),
            manifest.to_path_buf(),
            keys.to_vec(),
            PathBuf::new(),
        );
        self.seen.borrow_mut().push(seen);
        match &self.answer {
            Ok(v) => Ok(v.manifest_digest.clone()),
            Err(e @ VerifyFailure::Signature(_)) => Err(e.clone()),
            Err(_) => Ok(manifest_digest(MANIFEST)),
        }
    }
}

pub(super) fn clean() -> Scripted {
    let v = Verified {
        manifest_digest: manifest_digest(MANIFEST),
        entries: 9912,
        bytes_hashed: 226_000_000,
    };
    Scripted {
        answer: Ok(v),
        seen: RefCell::default(),
    }
}

pub(super) fn failing(f: VerifyFailure) -> Scripted {
    Scripted {
        answer: Err(f),
        seen: RefCell::default(),
    }
}

pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) paths: InitPaths,
}

/// A fake initramfs in a temp dir: the files pyre reads are real, side effects are recorded.
pub(super) fn fixture(extra_cmdline: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let paths = InitPaths {
        rootfs: r.to_path_buf(),
        cmdline: r.join("proc/cmdline"),
        proc: r.join("proc"),
        sys: r.join("sys"),
        dev: r.join("dev"),
        run: r.join("run"),
        etc: r.join("etc/pyre"),
        sysroot: r.join("sysroot"),
        init: "/sbin/init".into(),
    };
    std::fs::create_dir_all(paths.keys()).unwrap();
    std::fs::create_dir_all(&paths.proc).unwrap();
    let cmdline = format!(
        "console=ttyS0 pyre.verity.uuid={UUID} pyre.verity.roothash={ROOT_HASH} pyre.verity.salt=aa55 \
         pyre.verity.data-blocks=100 pyre.verity.hash-offset={HASH_OFFSET} pyre.manifest.digest={} ro {extra_cmdline}",
        manifest_digest(MANIFEST)
    );
    std::fs::write(&paths.cmdline, cmdline).unwrap();
    std::fs::write(
        paths.modules_list(),
        "/lib/modules/dm-mod.ko\n/lib/modules/dm-verity.ko\n",
    )
    .unwrap();
    std::fs::write(paths.manifest(), MANIFEST).unwrap();
    std::fs::write(paths.signature(), b"SIG").unwrap();
    std::fs::write(paths.keys().join("build.pub"), b"KEY").unwrap();
    std::fs::write(paths.keys().join("README"), b"not a key").unwrap();
    add_disk(&paths, "vda", 0, true);
    Fixture { _dir: dir, paths }
}

/// The 512-byte superblock veritysetup writes (format 1, sha256, 4096-byte blocks).
pub(super) fn superblock(uuid: [u8; 16], data_blocks: u64, salt: &[u8]) -> Vec<u8> {
    let mut sb = vec![0u8; SUPERBLOCK_SIZE];
    sb[..8].copy_from_slice(b"verity\0\0");
    sb[8..12].copy_from_slice(&1u32.to_le_bytes());
    sb[12..16].copy_from_slice(&1u32.to_le_bytes());
    sb[16..32].copy_from_slice(&uuid);
    sb[32..38].copy_from_slice(b"sha256");
    sb[64..68].copy_from_slice(&4096u32.to_le_bytes());
    sb[68..72].copy_from_slice(&4096u32.to_le_bytes());
    sb[72..80].copy_from_slice(&data_blocks.to_le_bytes());
    sb[80..82].copy_from_slice(&(salt.len() as u16).to_le_bytes());
    sb[88..88 + salt.len()].copy_from_slice(salt);
    sb
}

/// A fake block device 254:`minor` in sysfs and /dev: the image's root (its verity
/// superblock at the hash offset) or a blank disk of the same size.
pub(super) fn add_disk(p: &InitPaths, name: &str, minor: u32, root: bool) {
    let class = p.sys.join("class/block").join(name);
    std::fs::create_dir_all(&class).unwrap();
    std::fs::create_dir_all(&p.dev).unwrap();
    let bytes = HASH_OFFSET + 3 * 4096;
    std::fs::write(class.join("dev"), format!("254:{minor}\n")).unwrap();
    std::fs::write(class.join("size"), format!("{}\n", bytes / 512)).unwrap();
    let node = std::fs::File::create(p.dev.join(name)).unwrap();
    node.set_len(bytes).unwrap();
    if root {
        let sb = superblock([0x11; 16], 100, &[0xaa, 0x55]);
        std::os::unix::fs::FileExt::write_all_at(&node, &sb, HASH_OFFSET).unwrap();
    }
}

pub(super) fn host_with_disk() -> RecordingHost {
    let h = RecordingHost::new();
    h.set_dm_dev(253 << 8); // 253:0
    h
}

fn mount_op(
    source: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Op {
    Op::Mount {
        source: Some(source.into()),
        target: target.into(),
        fstype: fstype.map(Into::into),
        flags,
        data: data.map(Into::into),
    }
}

pub(super) fn dm_requests(ops: &[Op]) -> Vec<DmRequest> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Dm { request, .. } => Some(request.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_clean_boot_runs_the_exact_sequence() {
    let f = fixture("");
    let p = &f.paths;
    // What the early content reader opens before it is forked (the recording host creates
    // nothing).
    std::fs::create_dir_all(p.run_pyre()).unwrap();
    std::fs::create_dir_all(p.dm_node().parent().unwrap()).unwrap();
    std::fs::write(p.dm_node(), b"").unwrap();
    let h = host_with_disk();
    let v = clean();
    boot(&h, p, &v, &["single".to_string()]).unwrap();
    let ops = h.ops();
    let nn = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let ctl = p.dm_control();
    let mut want = vec![
        Op::Mkdir(p.proc.clone()),
        mount_op("proc", &p.proc, Some("proc"), nn | MsFlags::MS_NOEXEC, None),
        Op::Mkdir(p.sys.clone()),
        mount_op(
            "sysfs",
            &p.sys,
            Some("sysfs"),
            nn | MsFlags::MS_NOEXEC,
            None,
        ),
        Op::Mkdir(p.dev.clone()),
        mount_op(
            "devtmpfs",
            &p.dev,
            Some("devtmpfs"),
            MsFlags::MS_NOSUID,
            Some("mode=0755"),
        ),
        Op::Mkdir(p.run.clone()),
        mount_op("tmpfs", &p.run, Some("tmpfs"), nn, Some("mode=0755")),
        Op::AttachConsole(p.dev.join("console")),
        Op::FinitModule("/lib/modules/dm-mod.ko".into()),
        Op::FinitModule("/lib/modules/dm-verity.ko".into()),
    ];
    let dm_count = 4;
    assert_eq!(ops[..want.len()], want[..]);
    assert!(ops[want.len()..want.len() + dm_count]
        .iter()
        .all(|o| matches!(o, Op::Dm { control, .. } if *control == ctl)));
    let run_pyre = p.run.join("pyre");
    let sysroot = p.sysroot.clone();
    let var_opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        sysroot.join("var").display(),
        run_pyre.join("var/upper").display(),
        run_pyre.join("var/work").display()
    );
    want = vec![
        Op::Mkdir(p.dev.join("mapper")),
        Op::Mknod {
            path: p.dev.join("mapper/pyre-root"),
            major: 253,
            minor: 0,
        },
        Op::Mkdir(sysroot.clone()),
        mount_op(
            &p.dev.join("mapper/pyre-root").to_string_lossy(),
            &sysroot,
            Some("erofs"),
            MsFlags::MS_RDONLY,
            None,
        ),
        Op::Mkdir(run_pyre.clone()),
        Op::ForkChild("content-read".into()),
        Op::Mkdir(run_pyre.join("var/upper")),
        Op::Mkdir(run_pyre.join("var/work")),
        Op::Mkdir(run_pyre.join("keys")),
        mount_op(
            "overlay",
            &sysroot.join("var"),
            Some("overlay"),
            MsFlags::empty(),
            Some(&var_opts),
        ),
        mount_op(
            "tmpfs",
            &sysroot.join("tmp"),
            Some("tmpfs"),
            nn,
            Some("mode=1777"),
        ),
        Op::WriteFile {
            path: run_pyre.join("manifest"),
            contents: MANIFEST.to_vec(),
        },
        Op::WriteFile {
            path: run_pyre.join("manifest.sig"),
            contents: b"SIG".to_vec(),
        },
        Op::WriteFile {
            path: run_pyre.join("keys/build.pub"),
            contents: b"KEY".to_vec(),
        },
    ];
    let rest = &ops[11 + dm_count..];
    assert_eq!(rest[..want.len()], want[..]);
    let Op::WriteFile { path, contents } = &rest[want.len()] else {
        panic!("boot.json expected: {:?}", rest[want.len()])
    };
    assert_eq!(path, &run_pyre.join("boot.json"));
    let record = BootRecord::from_json(contents).unwrap();
    assert!(record.verified);
    // The default root check (`read`): the manifest's signature here, the tree and the content
    // after switch_root (pyre-content.service).
    assert_eq!((record.entries, record.bytes_hashed), (0, 0));
    assert_eq!(record.root_check.as_deref(), Some("read"));
    let checks: Vec<(&str, &str, u64)> = record
        .checks
        .iter()
        .map(|c| (c.name.as_str(), c.place.as_str(), c.bytes))
        .collect();
    assert_eq!(checks, [("manifest", "initramfs", MANIFEST.len() as u64)]);
    assert_eq!(record.content_reader, Some(4242), "the early reader's pid");
    assert_eq!(record.manifest_digest, manifest_digest(MANIFEST));
    assert_eq!(record.root_hash, ROOT_HASH);
    let names: Vec<&str> = record.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "setup",
            "cmdline",
            "modules",
            "root-device",
            "verity",
            "mount",
            "verify"
        ]
    );
    assert_eq!(record.root_device, p.dev.join("vda").to_string_lossy());
    let root = p.rootfs.to_string_lossy();
    let tail = vec![
        mount_op(
            &p.dev.to_string_lossy(),
            &sysroot.join("dev"),
            None,
            MsFlags::MS_MOVE,
            None,
        ),
        mount_op(
            &p.proc.to_string_lossy(),
            &sysroot.join("proc"),
            None,
            MsFlags::MS_MOVE,
            None,
        ),
        mount_op(
            &p.sys.to_string_lossy(),
            &sysroot.join("sys"),
            None,
            MsFlags::MS_MOVE,
            None,
        ),
        mount_op(
            &p.run.to_string_lossy(),
            &sysroot.join("run"),
            None,
            MsFlags::MS_MOVE,
            None,
        ),
        Op::Chdir(sysroot.clone()),
        Op::ClearInitramfs(p.rootfs.clone()),
        mount_op(
            &sysroot.to_string_lossy(),
            Path::new(&*root),
            None,
            MsFlags::MS_MOVE,
            None,
        ),
        Op::Chroot(".".into()),
        Op::Chdir("/".into()),
        Op::Execv {
            path: "/sbin/init".into(),
            args: vec!["/sbin/init".into(), "single".into()],
        },
    ];
    assert_eq!(rest[want.len() + 1..], tail[..]);
    let seen = v.seen.borrow();
    let signature_only = (
        PathBuf::new(),
        p.manifest(),
        vec![p.keys().join("build.pub")],
        PathBuf::new(),
    );
    assert_eq!(
        seen[..],
        [signature_only],
        "no tree walked before switch_root"
    );
    let lines = h.lines().join("\n");
    for want in [
        "pyre init: modules: 2 loaded",
        "pyre: root verified: manifest sha256:",
        "switching root to /sbin/init",
    ] {
        assert!(lines.contains(want), "console lacks {want:?}:\n{lines}");
    }
}

#[test]
fn the_verity_ioctls_carry_the_table() {
    let f = fixture("");
    let h = host_with_disk();
    h.set_dm_dev((253 << 8) | 7);
    boot(&h, &f.paths, &clean(), &[]).unwrap();
    assert!(
        h.lines()
            .iter()
            .any(|l| l.starts_with("pyre init: root-device: ")
                && l.contains("/dev/vda (254:0, 0.4 MiB) carries the verity superblock")),
        "{:?}",
        h.lines()
    );
    let calls = dm_requests(&h.ops());
    let cmds: Vec<DmCmd> = calls.iter().map(DmRequest::cmd).collect();
    assert_eq!(
        cmds,
        [
            DmCmd::Version,
            DmCmd::DevCreate,
            DmCmd::TableLoad,
            DmCmd::DevSuspend
        ]
    );
    let DmRequest::LoadTable {
        name,
        read_only,
        target: t,
    } = &calls[2]
    else {
        panic!("a table load: {:?}", calls[2])
    };
    assert_eq!((name.as_str(), *read_only), ("pyre-root", true));
    assert_eq!(
        (t.sector_start, t.length, t.target_type.as_str()),
        (0, 800, "verity")
    );
    assert_eq!(
        t.params,
        format!("1 254:0 254:0 4096 4096 100 101 sha256 {ROOT_HASH} aa55")
    );
    assert_eq!(
        calls[3],
        DmRequest::Resume {
            name: "pyre-root".into()
        },
        "resume, not suspend"
    );
    assert!(h.ops().contains(&Op::Mknod {
        path: f.paths.dm_node(),
        major: 253,
        minor: 7
    }));
}

/// `full` and `metadata` walk the tree in the initramfs (so a drifted tree is refused there),
/// and the record names the check that ran.
#[test]
fn full_and_metadata_checks_walk_the_tree_before_switch_root() {
    for (mode, name, bytes) in [
        ("full", "content-hash", 226_000_000),
        ("metadata", "metadata", 226_000_000),
    ] {
        let f = fixture(&format!("pyre.verify={mode}"));
        let h = host_with_disk();
        let v = clean();
        boot(&h, &f.paths, &v, &[]).unwrap();
        let seen = v.seen.borrow();
        assert_eq!(seen.len(), 1, "{mode}");
        assert_eq!(seen[0].0, f.paths.sysroot, "{mode}: the tree is walked");
        let record = h
            .ops()
            .into_iter()
            .find_map(|o| match o {
                Op::WriteFile { path, contents } if path.ends_with("boot.json") => {
                    Some(BootRecord::from_json(&contents).unwrap())
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(record.entries, 9912, "{mode}");
        assert_eq!(
            record.content_reader, None,
            "{mode}: nothing read after switch_root"
        );
        assert_eq!(record.root_check.as_deref(), Some(mode));
        let c = &record.checks[0];
        assert_eq!(
            (c.name.as_str(), c.place.as_str(), c.bytes),
            (name, "initramfs", bytes)
        );
        let line = record.summary_line();
        assert!(
            line.contains(", 9912 entries, 226.0 MB hashed; stages: "),
            "{line}"
        );
    }
}

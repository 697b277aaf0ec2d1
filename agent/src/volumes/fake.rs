//! The recording fake of [`VolumeHost`] for unit tests: one ordered list of operations,
//! failures injected by predicate, a fake clock that waits advance, disk images in memory
//! that the fake mkfs/resize tools change, and a mount table built from its own mounts.
use std::collections::HashMap;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use nix::mount::MsFlags;

use super::host::{BlockRead, CommandOutput, VolumeHost};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Open(PathBuf),
    Mkdir(PathBuf),
    Mount {
        source: PathBuf,
        target: PathBuf,
        fstype: String,
        flags: MsFlags,
        data: Option<String>,
    },
    Run {
        program: String,
        args: Vec<String>,
    },
    Wait(Duration),
}

type Rule = Box<dyn Fn(&Op) -> Option<i32> + Send + Sync>;
type Event = Box<dyn FnOnce(&RecordingVolumeHost) + Send>;

struct Disk {
    devnum: (u32, u32),
    bytes: Vec<u8>,
}

#[derive(Default)]
struct State {
    ops: Vec<Op>,
    /// (node, n, offset, bytes): written into the disk at the n-th open of node.
    patches: Vec<(PathBuf, usize, usize, Vec<u8>)>,
    clock: Duration,
    disks: HashMap<PathBuf, Disk>,
    mounts: Vec<String>,
    events: Vec<(Duration, Event)>,
}

#[derive(Default)]
pub struct RecordingVolumeHost {
    state: Mutex<State>,
    /// Calls a rule matches fail with the rule's errno (after being recorded).
    errno_rules: Mutex<Vec<Rule>>,
    /// `Run` calls a rule matches exit with the rule's status.
    exit_rules: Mutex<Vec<Rule>>,
}

impl RecordingVolumeHost {
    pub fn new() -> Self {
        Self::default()
    }
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
    /// A block device node with these bytes.
    pub fn add_disk(&self, node: impl Into<PathBuf>, devnum: (u32, u32), bytes: Vec<u8>) {
        self.state()
            .disks
            .insert(node.into(), Disk { devnum, bytes });
    }
    pub fn disk(&self, node: &Path) -> Vec<u8> {
        self.state().disks[node].bytes.clone()
    }
    pub fn write_disk(&self, node: &Path, at: usize, bytes: &[u8]) {
        let mut s = self.state();
        let d = s.disks.get_mut(node).unwrap();
        d.bytes[at..at + bytes.len()].copy_from_slice(bytes);
    }
    /// Run `f` once the fake clock has advanced by `after` (during a wait).
    pub fn at(&self, after: Duration, f: impl FnOnce(&RecordingVolumeHost) + Send + 'static) {
        let mut s = self.state();
        let when = s.clock + after;
        s.events.push((when, Box::new(f)));
    }
    /// Change the disk when `node` is opened for the `n`-th time (1-based), before it is read:
    /// a device that changes between two probes.
    pub fn patch_on_open(&self, node: &Path, n: usize, at: usize, bytes: &[u8]) {
        self.state()
            .patches
            .push((node.to_path_buf(), n, at, bytes.to_vec()));
    }
    pub fn fail_when(&self, rule: impl Fn(&Op) -> Option<i32> + Send + Sync + 'static) {
        self.errno_rules.lock().unwrap().push(Box::new(rule));
    }
    pub fn exit_when(&self, rule: impl Fn(&Op) -> Option<i32> + Send + Sync + 'static) {
        self.exit_rules.lock().unwrap().push(Box::new(rule));
    }
    pub fn ops(&self) -> Vec<Op> {
        self.state().ops.clone()
    }
    /// The operations that change something (no opens, no waits).
    pub fn changes(&self) -> Vec<Op> {
        self.ops()
            .into_iter()
            .filter(|o| !matches!(o, Op::Open(_) | Op::Wait(_)))
            .collect()
    }
    /// A mountinfo line for something mounted outside the fake's own mounts.
    pub fn add_mount_line(&self, line: &str) {
        self.state().mounts.push(line.to_string());
    }

    fn record(&self, op: Op) -> io::Result<()> {
        let errno = self.errno_rules.lock().unwrap().iter().find_map(|r| r(&op));
        self.state().ops.push(op);
        errno.map_or(Ok(()), |e| Err(io::Error::from_raw_os_error(e)))
    }

    /// What the fake mkfs and grow tools do to the image.
    fn tool(&self, program: &str, args: &[String]) -> String {
        let node = |a: &String| PathBuf::from(a);
        let mut s = self.state();
        let label_of = |args: &[String]| {
            args.iter()
                .position(|a| a == "-L")
                .and_then(|i| args.get(i + 1).cloned())
                .unwrap_or_default()
        };
        match program {
            "mkfs.ext4" | "mkfs.xfs" => {
                let label = label_of(args);
                let Some(d) = args.last().and_then(|a| s.disks.get_mut(&node(a))) else {
                    return "no such device".into();
                };
                let blocks = (d.bytes.len() / 4096) as u32;
                if program == "mkfs.ext4" {
                    write_ext4(&mut d.bytes, blocks, &label);
                } else {
                    write_xfs(&mut d.bytes, u64::from(blocks), &label);
                }
                format!("{program}: made a filesystem of {blocks} blocks")
            }
            "resize2fs" => {
                if let Some(d) = args.last().and_then(|a| s.disks.get_mut(&node(a))) {
                    let blocks = (d.bytes.len() / 4096) as u32;
                    d.bytes[1028..1032].copy_from_slice(&blocks.to_le_bytes());
                }
                "resized".into()
            }
            _ => "ok".into(),
        }
    }
}

/// A minimal ext4 superblock (4 KiB blocks, extents) as the prober reads it.
pub fn write_ext4(img: &mut [u8], blocks: u32, label: &str) {
    let sb = 1024;
    img[sb + 4..sb + 8].copy_from_slice(&blocks.to_le_bytes());
    img[sb + 0x18..sb + 0x1C].copy_from_slice(&2u32.to_le_bytes());
    img[sb + 0x38..sb + 0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
    img[sb + 0x60..sb + 0x64].copy_from_slice(&0x42u32.to_le_bytes());
    img[sb + 0x68..sb + 0x78].copy_from_slice(&[0xE4; 16]);
    img[sb + 0x78..sb + 0x88].fill(0);
    img[sb + 0x78..sb + 0x78 + label.len()].copy_from_slice(label.as_bytes());
}

/// A minimal XFS superblock as the prober reads it.
pub fn write_xfs(img: &mut [u8], blocks: u64, label: &str) {
    img[0..4].copy_from_slice(b"XFSB");
    img[4..8].copy_from_slice(&4096u32.to_be_bytes());
    img[8..16].copy_from_slice(&blocks.to_be_bytes());
    img[32..48].copy_from_slice(&[0xF5; 16]);
    img[108..108 + label.len()].copy_from_slice(label.as_bytes());
}

impl VolumeHost for RecordingVolumeHost {
    fn open_read(&self, node: &Path) -> io::Result<Box<dyn BlockRead>> {
        self.record(Op::Open(node.to_path_buf()))?;
        let mut s = self.state();
        let opens = s
            .ops
            .iter()
            .filter(|o| **o == Op::Open(node.to_path_buf()))
            .count();
        let due: Vec<_> = s
            .patches
            .iter()
            .filter(|p| p.0 == node && p.1 == opens)
            .map(|p| (p.2, p.3.clone()))
            .collect();
        for (at, bytes) in due {
            if let Some(d) = s.disks.get_mut(node) {
                d.bytes[at..at + bytes.len()].copy_from_slice(&bytes);
            }
        }
        let d = s.disks.get(node).ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(Cursor::new(d.bytes.clone())))
    }
    fn block_devnum(&self, path: &Path) -> io::Result<(u32, u32)> {
        let s = self.state();
        let d = s.disks.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(d.devnum)
    }
    fn mountinfo(&self) -> io::Result<Vec<u8>> {
        Ok(self.state().mounts.join("\n").into_bytes())
    }
    fn mkdir_all(&self, path: &Path) -> io::Result<()> {
        self.record(Op::Mkdir(path.to_path_buf()))
    }
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        Ok(path.to_path_buf())
    }
    fn mount(
        &self,
        source: &Path,
        target: &Path,
        fstype: &str,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.record(Op::Mount {
            source: source.to_path_buf(),
            target: target.to_path_buf(),
            fstype: fstype.to_string(),
            flags,
            data: data.map(str::to_string),
        })?;
        let mut s = self.state();
        let (ma, mi) = s.disks.get(source).map_or((0, 0), |d| d.devnum);
        let n = s.mounts.len() + 100;
        let line = format!(
            "{n} 1 {ma}:{mi} / {} rw - {fstype} {} rw",
            target.display(),
            source.display()
        );
        s.mounts.push(line);
        Ok(())
    }
    fn run(&self, program: &str, args: &[String]) -> io::Result<CommandOutput> {
        let op = Op::Run {
            program: program.to_string(),
            args: args.to_vec(),
        };
        let status = self.exit_rules.lock().unwrap().iter().find_map(|r| r(&op));
        self.record(op)?;
        if let Some(code) = status {
            return Ok(CommandOutput {
                status: Some(code),
                output: format!("{program}: failed"),
            });
        }
        Ok(CommandOutput {
            status: Some(0),
            output: self.tool(program, args),
        })
    }
    fn now(&self) -> Duration {
        self.state().clock
    }
    fn wait_uevent(&self, timeout: Duration) -> bool {
        let due: Vec<Event> = {
            let mut s = self.state();
            s.ops.push(Op::Wait(timeout));
            s.clock += timeout;
            let now = s.clock;
            let (due, later): (Vec<_>, Vec<_>) = s.events.drain(..).partition(|e| e.0 <= now);
            s.events = later;
            due.into_iter().map(|e| e.1).collect()
        };
        let any = !due.is_empty();
        for f in due {
            f(self);
        }
        any
    }
}

/// A sysfs tree and a /dev directory in a temp dir: `sys/devices/virtual/block/NAME` with
/// `class/block/NAME` symlinks, as the kernel lays them out.
pub struct FakeSys {
    pub dir: tempfile::TempDir,
    pub paths: super::SysPaths,
}

impl Default for FakeSys {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeSys {
    pub fn new() -> FakeSys {
        let dir = tempfile::tempdir().unwrap();
        let paths = super::SysPaths {
            sys: dir.path().join("sys"),
            dev: dir.path().join("dev"),
        };
        std::fs::create_dir_all(paths.sys.join("class/block")).unwrap();
        std::fs::create_dir_all(paths.sys.join("devices/virtual/block")).unwrap();
        std::fs::create_dir_all(&paths.dev).unwrap();
        FakeSys { dir, paths }
    }

    pub fn node(&self, name: &str) -> PathBuf {
        self.paths.dev.join(name)
    }

    fn write_dev(
        &self,
        dir: &Path,
        name: &str,
        devnum: (u32, u32),
        size: u64,
        attrs: &[(&str, &str)],
    ) {
        std::fs::create_dir_all(dir.join("holders")).unwrap();
        let mut all = vec![
            ("dev".to_string(), format!("{}:{}", devnum.0, devnum.1)),
            ("size".to_string(), (size / 512).to_string()),
            (
                "uevent".to_string(),
                format!("MAJOR={}\nMINOR={}\nDEVNAME={name}\n", devnum.0, devnum.1),
            ),
        ];
        all.extend(attrs.iter().map(|(k, v)| (k.to_string(), format!("{v}\n"))));
        for (k, v) in all {
            let p = dir.join(k);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, v).unwrap();
        }
        let link = self.paths.sys.join("class/block").join(name);
        std::os::unix::fs::symlink(dir, link).unwrap();
    }

    /// A whole disk; `attrs` are sysfs files relative to its directory (`device/serial`).
    pub fn add(
        &self,
        name: &str,
        devnum: (u32, u32),
        size: u64,
        attrs: &[(&str, &str)],
    ) -> PathBuf {
        let dir = self.paths.sys.join("devices/virtual/block").join(name);
        self.write_dev(&dir, name, devnum, size, attrs);
        self.node(name)
    }

    pub fn add_partition(
        &self,
        parent: &str,
        name: &str,
        number: u32,
        devnum: (u32, u32),
        size: u64,
    ) -> PathBuf {
        let dir = self
            .paths
            .sys
            .join("devices/virtual/block")
            .join(parent)
            .join(name);
        self.write_dev(
            &dir,
            name,
            devnum,
            size,
            &[("partition", &number.to_string())],
        );
        self.node(name)
    }

    pub fn add_holder(&self, name: &str, holder: &str) {
        let dir = self
            .paths
            .sys
            .join("class/block")
            .join(name)
            .join("holders")
            .join(holder);
        std::fs::create_dir_all(dir).unwrap();
    }
}

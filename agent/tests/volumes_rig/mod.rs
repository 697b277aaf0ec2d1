//! Shared by the volume tests: loop devices (detached on drop), a fake sysfs tree and /dev
//! directory that list ONLY the test's own loop devices (so no selector, probe or mkfs can
//! ever reach a real disk), private mount namespaces, device hashing.
#![allow(dead_code)]
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

pub const MIB: u64 = 1 << 20;

/// True when the tests can run; otherwise says loudly why they are skipped.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "SKIPPED {test}: volume tests need root (loop devices, mounts); CI runs them as root"
    );
    false
}

pub fn sh(cmd: &str, args: &[&str]) -> Result<String, String> {
    let o = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if o.status.success() {
        Ok(text)
    } else {
        Err(format!("{cmd} {args:?}: {}: {text}", o.status))
    }
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `losetup --find` picks the first free device: serialise attaching within this process.
static LOSETUP: Mutex<()> = Mutex::new(());

/// A loop device over a backing file; detached when dropped.
pub struct Loop {
    pub dev: PathBuf,
    pub name: String,
    pub file: PathBuf,
}

impl Loop {
    pub fn attach(file: &Path) -> Loop {
        let _g = LOSETUP.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = String::new();
        for _ in 0..5 {
            match sh("losetup", &["--find", "--show", file.to_str().unwrap()]) {
                Ok(out) => {
                    let dev = PathBuf::from(out.trim());
                    let name = dev.file_name().unwrap().to_string_lossy().into_owned();
                    assert!(name.starts_with("loop"), "losetup gave {dev:?}");
                    return Loop {
                        dev,
                        name,
                        file: file.to_path_buf(),
                    };
                }
                Err(e) => last = e,
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("attaching {}: {last}", file.display());
    }

    /// Tell the kernel the backing file changed size.
    pub fn refresh_size(&self) {
        sh("losetup", &["--set-capacity", self.dev.to_str().unwrap()]).unwrap();
    }

    /// SHA-256 of the whole device.
    pub fn sha256(&self) -> String {
        let mut f = fs::File::open(&self.dev).unwrap();
        let mut h = Sha256::new();
        let mut buf = vec![0; 1 << 20];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        format!("{:x}", h.finalize())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = sh("losetup", &["-d", self.dev.to_str().unwrap()]);
    }
}

/// A temp dir with backing files, a fake sysfs (`sys/`), a device dir (`dev/`) and room for
/// mountpoints (`mnt/`).
pub struct Rig {
    pub dir: tempfile::TempDir,
}

impl Rig {
    pub fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "sys/class/block",
            "sys/devices/virtual/block",
            "dev",
            "mnt",
            "src",
        ] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        fs::write(dir.path().join("src/hello"), "hello\n").unwrap();
        Rig { dir }
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn sys(&self) -> PathBuf {
        self.path("sys")
    }
    pub fn dev(&self) -> PathBuf {
        self.path("dev")
    }
    pub fn paths(&self) -> pyre::volumes::SysPaths {
        pyre::volumes::SysPaths {
            sys: self.sys(),
            dev: self.dev(),
        }
    }

    /// A sparse backing file of `size` bytes.
    pub fn file(&self, name: &str, size: u64) -> PathBuf {
        let p = self.path(name);
        fs::File::create(&p).unwrap().set_len(size).unwrap();
        p
    }

    /// A loop device over a new sparse file, not yet visible in the fake sysfs.
    pub fn loop_dev(&self, name: &str, size: u64) -> Loop {
        Loop::attach(&self.file(name, size))
    }

    /// Make `l` visible in the fake sysfs (its real `dev` and `size`, plus `attrs` such as
    /// `serial`) with a node in the fake /dev pointing at the real one.
    pub fn expose(&self, l: &Loop, attrs: &[(&str, &str)]) -> PathBuf {
        let real = Path::new("/sys/class/block").join(&l.name);
        let dir = self.sys().join("devices/virtual/block").join(&l.name);
        fs::create_dir_all(dir.join("holders")).unwrap();
        for a in ["dev", "size", "ro", "diskseq"] {
            if let Ok(v) = fs::read_to_string(real.join(a)) {
                fs::write(dir.join(a), v).unwrap();
            }
        }
        for (k, v) in attrs {
            let p = dir.join(k);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, format!("{v}\n")).unwrap();
        }
        let node = self.dev().join(&l.name);
        std::os::unix::fs::symlink(&l.dev, &node).unwrap();
        // The class link last: discovery sees the device only once it is complete.
        std::os::unix::fs::symlink(&dir, self.sys().join("class/block").join(&l.name)).unwrap();
        node
    }

    /// A config v1 file with these volumes.
    pub fn config(&self, volumes: serde_json::Value) -> PathBuf {
        let p = self.path("config.json");
        let doc = serde_json::json!({"version": 1, "hostname": "test", "volumes": volumes});
        fs::write(&p, doc.to_string()).unwrap();
        p
    }
}

/// Run `f` on a thread in a new private mount namespace: its mounts (and those of the
/// processes it starts) never reach the host. The thread's mounts go with the namespace.
pub fn in_private_ns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
        let none: Option<&str> = None;
        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
            .expect("making / rprivate");
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

pub fn umount(at: &Path) {
    nix::mount::umount2(at, nix::mount::MntFlags::MNT_DETACH)
        .unwrap_or_else(|e| panic!("umount {}: {e}", at.display()));
}

/// The mountinfo line of `at`, if mounted.
pub fn mount_line(at: &Path) -> Option<String> {
    let at = at.to_str().unwrap();
    fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(at))
        .map(str::to_string)
}

pub fn pyre() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pyre"))
}

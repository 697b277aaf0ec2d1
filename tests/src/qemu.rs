//! Boot the image under QEMU (TCG) with its serial console captured; see [`crate::vm`] for
//! what to do with the running machine.
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::console::Console;
use crate::image::{log_dir, Cmdline, Image};
use crate::vm::{serial_lock, Vm};

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("starting {bin}: {source}")]
    Spawn { bin: String, source: std::io::Error },
    #[error("creating console log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("[{scenario}] {what} not seen: {why}; {console}")]
    Marker {
        scenario: String,
        what: String,
        why: String,
        console: String,
    },
    #[error("[{scenario}] QEMU still running after {waited:?}; {console}")]
    NoExit {
        scenario: String,
        waited: Duration,
        console: String,
    },
    #[error("[{scenario}] waiting for QEMU: {source}")]
    Wait {
        scenario: String,
        source: std::io::Error,
    },
}

/// How an extra disk is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    /// `-device virtio-blk-pci` (the guest's `vdX`).
    Virtio,
    /// `-device nvme`, one controller per disk (the guest's `nvmeNn1`).
    Nvme,
}

/// An extra raw disk image with a serial number (what a volume selector matches on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub file: PathBuf,
    pub bus: Bus,
    pub serial: String,
    /// Placed before the root disk on QEMU's command line, so it enumerates first (takes vda).
    pub before_root: bool,
}

/// Create (or truncate to) a sparse, all-zero raw disk image of `bytes`.
pub fn blank_disk(path: &Path, bytes: u64) -> std::io::Result<PathBuf> {
    File::create(path)?.set_len(bytes)?;
    Ok(path.to_path_buf())
}

/// One machine to boot. Defaults to exactly the user command of docs/image.md plus
/// `-no-reboot`; the initrd, root disk and command line can be swapped and data disks added
/// for scenarios.
#[derive(Debug, Clone)]
pub struct QemuBuilder {
    pub scenario: String,
    pub qemu: OsString,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub rootfs: PathBuf,
    pub cmdline: Cmdline,
    pub memory: String,
    pub echo: bool,
    pub monitor: bool,
    pub extra: Vec<OsString>,
    pub disks: Vec<Disk>,
    pub log_dir: PathBuf,
}

impl QemuBuilder {
    pub fn new(image: &Image, scenario: &str) -> QemuBuilder {
        QemuBuilder {
            scenario: scenario.to_string(),
            qemu: std::env::var_os("QEMU").unwrap_or_else(|| "qemu-system-x86_64".into()),
            kernel: image.vmlinuz.clone(),
            initrd: image.initrd.clone(),
            rootfs: image.rootfs.clone(),
            cmdline: image.cmdline.clone(),
            memory: "1G".to_string(),
            echo: false,
            monitor: false,
            extra: Vec::new(),
            disks: Vec::new(),
            log_dir: log_dir(),
        }
    }

    pub fn initrd(mut self, p: impl Into<PathBuf>) -> Self {
        self.initrd = p.into();
        self
    }
    pub fn rootfs(mut self, p: impl Into<PathBuf>) -> Self {
        self.rootfs = p.into();
        self
    }
    pub fn cmdline(mut self, c: Cmdline) -> Self {
        self.cmdline = c;
        self
    }
    /// Set `key=value` on the kernel command line (replacing any `key=` already there).
    pub fn kernel_arg(mut self, key: &str, value: &str) -> Self {
        self.cmdline.set(key, value);
        self
    }
    /// Copy the console to stdout as it arrives.
    pub fn echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }
    /// Open a QMP socket so [`Vm::powerdown`] can ask the guest to shut down.
    pub fn monitor(mut self, on: bool) -> Self {
        self.monitor = on;
        self
    }
    /// Hand `file` to the guest through fw_cfg: it appears under
    /// /sys/firmware/qemu_fw_cfg/by_name/<name>/raw (e.g. `opt/org.pyre/config`).
    pub fn fw_cfg(self, name: &str, file: &Path) -> Self {
        let mut a = OsString::from(format!("name={name},file="));
        a.push(file);
        self.arg("-fw_cfg").arg(a)
    }
    /// Attach raw `file` as a data disk on `bus` with `serial`, after the root disk.
    pub fn disk(mut self, bus: Bus, file: impl Into<PathBuf>, serial: &str) -> Self {
        self.disks.push(Disk {
            file: file.into(),
            bus,
            serial: serial.to_string(),
            before_root: false,
        });
        self
    }
    /// Like [`QemuBuilder::disk`], but ahead of the root disk: it enumerates first, so the
    /// kernel's first name (vda) goes to it and the root moves on.
    pub fn disk_before_root(self, bus: Bus, file: impl Into<PathBuf>, serial: &str) -> Self {
        let mut b = self.disk(bus, file, serial);
        b.disks.last_mut().expect("just pushed").before_root = true;
        b
    }
    /// Extra QEMU arguments.
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.extra.push(a.into());
        self
    }

    pub fn log_path(&self) -> PathBuf {
        self.log_dir.join(format!("{}.log", self.scenario))
    }

    fn monitor_path(&self) -> PathBuf {
        std::env::temp_dir().join(format!("pyre-{}-{}.qmp", std::process::id(), self.scenario))
    }

    /// `-drive if=none,… -device …` for each extra disk placed before (or after) the root.
    fn disk_args(&self, before_root: bool) -> Vec<OsString> {
        let mut a = Vec::new();
        for (i, d) in self.disks.iter().enumerate() {
            if d.before_root != before_root {
                continue;
            }
            let id = format!("disk{i}");
            let mut drive = OsString::from(format!("if=none,id={id},format=raw,file="));
            drive.push(qemu_escape(&d.file));
            let device = match d.bus {
                Bus::Virtio => "virtio-blk-pci",
                Bus::Nvme => "nvme",
            };
            let serial = d.serial.replace(',', ",,");
            a.extend([
                "-drive".into(),
                drive,
                "-device".into(),
                format!("{device},drive={id},serial={serial}").into(),
            ]);
        }
        a
    }

    /// The full QEMU argument list.
    pub fn args(&self) -> Vec<OsString> {
        let mut append = OsString::from(self.cmdline.to_string());
        append.push(" console=ttyS0");
        let mut drive = OsString::from("file=");
        drive.push(qemu_escape(&self.rootfs));
        drive.push(",if=virtio,format=raw,readonly=on");
        let mut a: Vec<OsString> = vec![
            "-accel".into(),
            "tcg".into(),
            "-m".into(),
            self.memory.clone().into(),
            "-nographic".into(),
            "-kernel".into(),
            self.kernel.clone().into(),
            "-initrd".into(),
            self.initrd.clone().into(),
            "-append".into(),
            append,
        ];
        a.extend(self.disk_args(true));
        a.extend(["-drive".into(), drive]);
        a.extend(self.disk_args(false));
        a.extend([
            "-nic".into(),
            "user,model=virtio-net-pci".into(),
            "-no-reboot".into(),
        ]);
        if self.monitor {
            let mut m = OsString::from("unix:");
            m.push(self.monitor_path());
            m.push(",server=on,wait=off");
            a.push("-qmp".into());
            a.push(m);
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Start QEMU. Machines boot one at a time per process (2 shared cores).
    pub fn spawn(self) -> Result<Vm, QemuError> {
        let serial = serial_lock();
        let log_path = self.log_path();
        let log_err = |source| QemuError::Log {
            path: log_path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.log_dir).map_err(log_err)?;
        let mut log = File::create(&log_path).map_err(log_err)?;
        let args = self.args();
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        writeln!(log, "# {} {}", self.qemu.to_string_lossy(), shown.join(" ")).map_err(log_err)?;
        let log = Arc::new(Mutex::new(log));
        let monitor_path = self.monitor.then(|| self.monitor_path());
        if let Some(p) = &monitor_path {
            let _ = std::fs::remove_file(p);
        }
        let mut cmd = Command::new(&self.qemu);
        cmd.args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL QEMU when the
        // thread that started it dies, so an aborted test run leaves no QEMU behind.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|source| QemuError::Spawn {
            bin: self.qemu.to_string_lossy().into_owned(),
            source,
        })?;
        let console = Console::new(started);
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let readers = vec![
            console.spawn_reader(stdout, Some(log.clone()), self.echo, true),
            // QEMU's own complaints go to the same log and console (they explain early exits).
            console.spawn_reader(stderr, Some(log), self.echo, false),
        ];
        Ok(Vm {
            scenario: self.scenario,
            stdin: child.stdin.take(),
            child: Some(child),
            console,
            started,
            log_path,
            monitor_path,
            readers,
            _serial: serial,
        })
    }
}

/// A path as a QEMU option value: commas doubled.
fn qemu_escape(path: &Path) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_image() -> Image {
        Image {
            dir: "/img".into(),
            vmlinuz: "/img/vmlinuz".into(),
            initrd: "/img/initrd.img".into(),
            rootfs: "/img/rootfs.img".into(),
            manifest: "/img/manifest".into(),
            manifest_sig: "/img/manifest.sig".into(),
            cmdline: Cmdline::parse("pyre.verity.uuid=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 ro"),
        }
    }

    #[test]
    fn args_are_the_documented_user_command_plus_no_reboot() {
        let b = QemuBuilder::new(&fake_image(), "t");
        let args: Vec<String> = b
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into())
            .collect();
        assert_eq!(
            args.join(" "),
            "-accel tcg -m 1G -nographic -kernel /img/vmlinuz -initrd /img/initrd.img \
             -append pyre.verity.uuid=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 ro console=ttyS0 \
             -drive file=/img/rootfs.img,if=virtio,format=raw,readonly=on \
             -nic user,model=virtio-net-pci -no-reboot"
        );
        let b = b
            .rootfs("/w/r.img")
            .initrd("/w/i.img")
            .monitor(true)
            .fw_cfg("opt/org.pyre/config", Path::new("/w/c.json"))
            .arg("-smp")
            .arg("1");
        let args: Vec<String> = b
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into())
            .collect();
        assert!(args.contains(&"/w/i.img".to_string()));
        assert!(args.iter().any(|a| a.starts_with("file=/w/r.img,")));
        assert!(args
            .iter()
            .any(|a| a.starts_with("unix:") && a.ends_with(",server=on,wait=off")));
        assert_eq!(
            &args[args.len() - 4..],
            [
                "-fw_cfg",
                "name=opt/org.pyre/config,file=/w/c.json",
                "-smp",
                "1"
            ]
        );
    }

    #[test]
    fn data_disks_go_before_or_after_the_root() {
        let b = QemuBuilder::new(&fake_image(), "t")
            .disk_before_root(Bus::Virtio, "/w/data,1.img", "data1")
            .disk(Bus::Nvme, "/w/n.img", "nvme1");
        let args: Vec<String> = b
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into())
            .collect();
        let from = args.iter().position(|a| a == "-append").unwrap() + 2;
        assert_eq!(
            args[from..].join(" "),
            "-drive if=none,id=disk0,format=raw,file=/w/data,,1.img \
             -device virtio-blk-pci,drive=disk0,serial=data1 \
             -drive file=/img/rootfs.img,if=virtio,format=raw,readonly=on \
             -drive if=none,id=disk1,format=raw,file=/w/n.img -device nvme,drive=disk1,serial=nvme1 \
             -nic user,model=virtio-net-pci -no-reboot"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = blank_disk(&dir.path().join("d.img"), 64 << 20).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().len(), 64 << 20);
    }

    /// A stand-in for QEMU (`sh -c`) exercises capture, exit and kill without booting.
    #[test]
    fn captures_output_and_exit_of_a_child_and_kills_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = QemuBuilder::new(&fake_image(), "fake-exit");
        b.log_dir = dir.path().to_path_buf();
        b.qemu = dir.path().join("fake-qemu").into();
        std::fs::write(
            &b.qemu,
            "#!/bin/sh\necho 'pyre: stage one'\nsleep 0.2\necho 'reason: bad' >&2\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&b.qemu, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut vm = b.clone().spawn().unwrap();
        vm.wait_for("stage one", Duration::from_secs(5)).unwrap();
        let e = vm.wait_exit(Duration::from_secs(5)).unwrap();
        assert!(e.by_itself());
        let log = std::fs::read_to_string(dir.path().join("fake-exit.log")).unwrap();
        assert!(log.starts_with("# "), "{log}");
        assert!(log.contains("-no-reboot"));
        assert!(
            log.contains("pyre: stage one") && log.contains("reason: bad"),
            "{log}"
        );
        let err = vm
            .wait_for("never", Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("QEMU exited") && err.contains("reason: bad"),
            "{err}"
        );
        drop(vm);

        std::fs::write(&b.qemu, "#!/bin/sh\necho up\nexec sleep 30\n").unwrap();
        b.scenario = "fake-hang".into();
        let mut vm = b.spawn().unwrap();
        vm.wait_for("up", Duration::from_secs(5)).unwrap();
        let err = vm
            .wait_exit(Duration::from_millis(200))
            .unwrap_err()
            .to_string();
        assert!(err.contains("still running") && err.contains("up"), "{err}");
        assert!(vm.kill().is_none(), "wait_exit already killed it");
    }
}

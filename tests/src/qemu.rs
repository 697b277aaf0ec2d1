//! Boot the image under QEMU (TCG), capture its serial console, wait on it, and never leave a
//! QEMU behind.
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::console::{Console, Missed};
use crate::image::{log_dir, Cmdline, Image};

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

/// How QEMU ended, and when (since it was started).
#[derive(Debug, Clone, Copy)]
pub struct Exited {
    pub status: ExitStatus,
    pub elapsed: Duration,
    /// True when the harness had to kill it (never for a machine that powered itself off).
    pub killed: bool,
}

impl Exited {
    /// QEMU left on its own with status 0: the guest powered off (or rebooted, with -no-reboot).
    pub fn by_itself(&self) -> bool {
        !self.killed && self.status.success()
    }
}

/// How long a shutdown request may take to show on the console before the next way is tried.
pub const SHUTDOWN_START: Duration = Duration::from_secs(15);

/// systemd's console lines once a shutdown is under way (colours stripped).
const SHUTTING_DOWN: &[&str] = &[
    "Stopped target",
    "Stopping ",
    "System is powering down",
    "reboot: ",
];

/// How [`Vm::powerdown`] ended.
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    pub exited: Exited,
    /// What worked: "ACPI power button", "Ctrl-Alt-Del" or "kill".
    pub via: &'static str,
    /// From the first request to QEMU's exit.
    pub took: Duration,
}

/// One machine to boot. Defaults to exactly the user command of docs/image.md plus
/// `-no-reboot`; the initrd, root disk and command line can be swapped for scenarios.
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
    /// Copy the console to stdout as it arrives.
    pub fn echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }
    /// Open a human monitor socket so [`Vm::powerdown`] can ask the guest to shut down.
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
    /// Extra QEMU arguments.
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.extra.push(a.into());
        self
    }

    pub fn log_path(&self) -> PathBuf {
        self.log_dir.join(format!("{}.log", self.scenario))
    }

    fn monitor_path(&self) -> PathBuf {
        std::env::temp_dir().join(format!("pyre-{}-{}.mon", std::process::id(), self.scenario))
    }

    /// The full QEMU argument list.
    pub fn args(&self) -> Vec<OsString> {
        let mut append = OsString::from(self.cmdline.to_string());
        append.push(" console=ttyS0");
        let mut drive = OsString::from("file=");
        drive.push(&self.rootfs);
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
            "-drive".into(),
            drive,
            "-nic".into(),
            "user,model=virtio-net-pci".into(),
            "-no-reboot".into(),
        ];
        if self.monitor {
            let mut m = OsString::from("unix:");
            m.push(self.monitor_path());
            m.push(",server=on,wait=off");
            a.push("-monitor".into());
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
        console.spawn_reader(stdout, Some(log.clone()), self.echo, true);
        // QEMU's own complaints go to the same log and console (they explain early exits).
        console.spawn_reader(stderr, Some(log), self.echo, false);
        Ok(Vm {
            scenario: self.scenario,
            stdin: child.stdin.take(),
            child: Some(child),
            console,
            started,
            log_path,
            monitor_path,
            _serial: serial,
        })
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

fn serial_lock() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running (or finished) QEMU. Dropping it kills QEMU if it still runs.
pub struct Vm {
    pub scenario: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    console: Console,
    started: Instant,
    log_path: PathBuf,
    monitor_path: Option<PathBuf>,
    _serial: MutexGuard<'static, ()>,
}

impl Vm {
    pub fn console(&self) -> &Console {
        &self.console
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub fn started(&self) -> Instant {
        self.started
    }
    /// Time since QEMU was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Where the console log is and its last lines, for failure messages.
    pub fn console_context(&self) -> String {
        format!(
            "console log {}; last lines:\n{}",
            self.log_path.display(),
            self.console.tail(40)
        )
    }

    /// Wait for `marker` on the console; returns when (since start) it arrived.
    pub fn wait_for(&self, marker: &str, timeout: Duration) -> Result<Duration, QemuError> {
        self.wait_for_any(&[marker], timeout).map(|(_, t)| t)
    }

    /// Wait for the first of `markers`; returns its index and when it arrived.
    pub fn wait_for_any(
        &self,
        markers: &[&str],
        timeout: Duration,
    ) -> Result<(usize, Duration), QemuError> {
        let deadline = Instant::now() + timeout;
        self.console.wait_any(markers, deadline).map_err(|missed| {
            let why = match missed {
                Missed::Timeout => format!("deadline of {timeout:?} passed"),
                Missed::Closed => format!("QEMU exited after {:?}", self.elapsed()),
            };
            QemuError::Marker {
                scenario: self.scenario.clone(),
                what: format!("{markers:?}"),
                why,
                console: self.console_context(),
            }
        })
    }

    /// Wait for QEMU to exit by itself within `timeout`; kills it and fails otherwise.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Exited, QemuError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_exited()? {
                return Ok(e);
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(QemuError::NoExit {
                    scenario: self.scenario.clone(),
                    waited: timeout,
                    console: self.console_context(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_exited(&mut self) -> Result<Option<Exited>, QemuError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = child.try_wait().map_err(|source| QemuError::Wait {
            scenario: self.scenario.clone(),
            source,
        })?;
        Ok(status.map(|status| {
            let elapsed = self.started.elapsed();
            self.child = None;
            // Give the reader thread a moment to drain the last console bytes.
            let until = Instant::now() + Duration::from_secs(2);
            while !self.console.is_closed() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            Exited {
                status,
                elapsed,
                killed: false,
            }
        }))
    }

    /// Send a human-monitor command (needs [`QemuBuilder::monitor`]).
    pub fn monitor_command(&self, command: &str) -> std::io::Result<()> {
        let path = self.monitor_path.as_ref().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "started without -monitor")
        })?;
        let mut s = UnixStream::connect(path)?;
        s.write_all(command.as_bytes())?;
        s.write_all(b"\n")?;
        s.flush()?;
        // Let QEMU read the command before the connection closes.
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }

    /// Shut the guest down cleanly: the ACPI power button (systemd-logind powers off); when
    /// no shutdown starts within [`SHUTDOWN_START`] (no power-button input in the guest),
    /// Ctrl-Alt-Del (systemd reboots, which `-no-reboot` turns into an exit). Each way gets
    /// `grace` to finish; QEMU is killed as a last resort.
    pub fn powerdown(&mut self, grace: Duration) -> Result<Shutdown, QemuError> {
        let asked = Instant::now();
        let ways = [
            ("system_powerdown", "ACPI power button"),
            ("sendkey ctrl-alt-delete", "Ctrl-Alt-Del"),
        ];
        for (command, via) in ways {
            let from = self.console.len();
            if self.child.is_none() || self.monitor_command(command).is_err() {
                break;
            }
            let start_by = Instant::now() + SHUTDOWN_START.min(grace);
            let started = self
                .console
                .wait_any_after(SHUTTING_DOWN, from, start_by)
                .is_ok();
            let deadline = Instant::now() + grace;
            loop {
                if let Some(exited) = self.try_exited()? {
                    let took = asked.elapsed();
                    return Ok(Shutdown { exited, via, took });
                }
                if !started || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let exited = match self.kill() {
            Some(e) => e,
            None => self.wait_exit(Duration::from_secs(5))?,
        };
        Ok(Shutdown {
            exited,
            via: "kill",
            took: asked.elapsed(),
        })
    }

    /// Kill QEMU now (if it still runs).
    pub fn kill(&mut self) -> Option<Exited> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        let status = child.wait().ok()?;
        Some(Exited {
            status,
            elapsed: self.started.elapsed(),
            killed: true,
        })
    }

    /// Type into the serial console.
    pub fn type_text(&mut self, text: &str) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or(std::io::ErrorKind::BrokenPipe)?;
        stdin.write_all(text.as_bytes())?;
        stdin.flush()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
        if let Some(p) = &self.monitor_path {
            let _ = std::fs::remove_file(p);
        }
    }
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
            cmdline: Cmdline::parse("pyre.root=/dev/vda ro"),
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
             -append pyre.root=/dev/vda ro console=ttyS0 \
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

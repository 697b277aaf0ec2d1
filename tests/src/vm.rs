//! A running QEMU: waiting on its console, its exit, shutting it down, and never leaving it
//! behind.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::console::{Console, Missed};
use crate::qemu::QemuError;
use crate::qmp::{self, Qmp, QmpError};

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
pub const SHUTDOWN_START: Duration = Duration::from_secs(10);

/// systemd's console lines once a shutdown is under way (colours stripped).
const SHUTTING_DOWN: &[&str] = &[
    "Stopped target",
    "Stopping ",
    "System is powering down",
    "reboot: ",
];

/// [`Shutdown::via`] when the guest powered off on the ACPI power button (a cloud's "stop").
pub const VIA_POWER_BUTTON: &str = "ACPI power button";

/// How [`Vm::powerdown`] ended.
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    pub exited: Exited,
    /// What worked: "ACPI power button", "Ctrl-Alt-Del" or "kill".
    pub via: &'static str,
    /// From the first request to QEMU's exit.
    pub took: Duration,
}

static SERIAL: Mutex<()> = Mutex::new(());

pub(crate) fn serial_lock() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running (or finished) QEMU. Dropping it kills QEMU if it still runs.
pub struct Vm {
    pub scenario: String,
    pub(crate) child: Option<Child>,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) console: Console,
    pub(crate) started: Instant,
    pub(crate) log_path: PathBuf,
    pub(crate) monitor_path: Option<PathBuf>,
    /// The threads copying QEMU's stdout and stderr into the console, joined once it exits.
    pub(crate) readers: Vec<JoinHandle<()>>,
    pub(crate) _serial: MutexGuard<'static, ()>,
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
            self.join_readers();
            Exited {
                status,
                elapsed,
                killed: false,
            }
        }))
    }

    /// Wait for the console reader threads: QEMU has exited, so its pipes are at their end and
    /// every byte it wrote is in the console once they return.
    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// Run a QMP command (needs [`QemuBuilder::monitor`]); returns once QEMU answered it.
    pub fn qmp(&self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let path = self.monitor_path.as_ref().ok_or_else(|| QmpError::Io {
            path: PathBuf::new(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "started without -qmp"),
        })?;
        Qmp::connect(path)?.execute(command, arguments)
    }

    /// Shut the guest down cleanly: the ACPI power button (systemd-logind powers off); when
    /// no shutdown starts within [`SHUTDOWN_START`] (no power-button input in the guest),
    /// Ctrl-Alt-Del (systemd reboots, which `-no-reboot` turns into an exit). Each way gets
    /// `grace` to finish; QEMU is killed as a last resort.
    pub fn powerdown(&mut self, grace: Duration) -> Result<Shutdown, QemuError> {
        let asked = Instant::now();
        let ways = [
            ("system_powerdown", None, VIA_POWER_BUTTON),
            (
                "send-key",
                Some(qmp::keys(&["ctrl", "alt", "delete"])),
                "Ctrl-Alt-Del",
            ),
        ];
        for (command, arguments, via) in ways {
            let from = self.console.len();
            if self.child.is_none() || self.qmp(command, arguments).is_err() {
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
        self.join_readers();
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

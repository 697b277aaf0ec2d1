//! The systemd notification protocol (sd_notify(3)), written by hand: one datagram of
//! `KEY=VALUE` lines to the unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an
//! abstract socket). Without the variable every notification is a no-op, so the daemon runs
//! the same outside systemd.
use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`.
    pub fn from_env() -> io::Result<Notifier> {
        Notifier::new(std::env::var_os("NOTIFY_SOCKET").as_deref())
    }

    /// To the socket `addr` names (`/path` or `@abstract`); `None` or empty: nowhere.
    pub fn new(addr: Option<&OsStr>) -> io::Result<Notifier> {
        let Some(addr) = addr.filter(|a| !a.is_empty()) else {
            return Ok(Notifier { target: None });
        };
        let bytes = addr.as_bytes();
        let sa = match bytes.split_first() {
            Some((b'@', name)) => SocketAddr::from_abstract_name(name)?,
            Some((b'/', _)) => SocketAddr::from_pathname(addr)?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "NOTIFY_SOCKET={}: expected /path or @abstract",
                        addr.to_string_lossy()
                    ),
                ))
            }
        };
        Ok(Notifier {
            target: Some((UnixDatagram::unbound()?, sa)),
        })
    }

    /// Whether notifications go anywhere.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Send `state` (`READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=…`, one per line).
    pub fn notify(&self, state: &str) -> io::Result<()> {
        match &self.target {
            Some((sock, addr)) => sock.send_to_addr(state.as_bytes(), addr).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when `$WATCHDOG_PID` (if set)
/// names this process.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok()? != me {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// [`watchdog_interval`] from the environment.
pub fn watchdog_from_env() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(Some(path.as_os_str())).unwrap();
        assert!(n.enabled());
        n.notify("READY=1").unwrap();
        n.notify("WATCHDOG=1").unwrap();
        assert_eq!(recv(&server), "READY=1");
        assert_eq!(recv(&server), "WATCHDOG=1");
    }

    #[test]
    fn abstract_socket() {
        let name = format!("pyre-notify-test-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let n = Notifier::new(Some(OsStr::new(&format!("@{name}")))).unwrap();
        n.notify("READY=1\nSTATUS=idle").unwrap();
        assert_eq!(recv(&server), "READY=1\nSTATUS=idle");
    }

    #[test]
    fn absent_or_bad_address() {
        let n = Notifier::new(None).unwrap();
        assert!(!n.enabled());
        n.notify("READY=1").unwrap();
        assert!(!Notifier::new(Some(OsStr::new(""))).unwrap().enabled());
        assert!(Notifier::new(Some(OsStr::new("vsock:2:1234"))).is_err());
    }

    #[test]
    fn gone_socket_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let n = Notifier::new(Some(dir.path().join("none").as_os_str())).unwrap();
        assert!(n.notify("READY=1").is_err());
    }

    #[test]
    fn watchdog_intervals() {
        let s = Some;
        let cases = [
            (s("20000000"), None, Some(Duration::from_secs(10))),
            (s("20000000"), s("42"), Some(Duration::from_secs(10))),
            (s("20000000"), s("7"), None),
            (s("0"), None, None),
            (s("x"), None, None),
            (None, s("42"), None),
        ];
        for (usec, pid, want) in cases {
            assert_eq!(watchdog_interval(usec, pid, 42), want, "{usec:?} {pid:?}");
        }
    }
}

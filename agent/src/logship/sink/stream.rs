//! A byte stream to a receiver: TCP, or TLS (rustls) over TCP, counting the bytes put on the
//! wire so a sink can tell, through the kernel's send queue (`SIOCOUTQ`), how far the peer's
//! TCP has acknowledged.
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::logship::sink::SinkError;
use crate::logship::util::poll_in;

/// How long a blocked write may take before the connection counts as broken.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Conn::read_some`] waits (set once per connection, not per read).
const READ_WAIT: Duration = Duration::from_millis(50);

/// A TCP stream that counts the bytes written to it.
pub struct Counted {
    tcp: TcpStream,
    written: u64,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tcp.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

pub enum Conn {
    Plain(Counted),
    Tls(Box<StreamOwned<ClientConnection, Counted>>),
}

/// Connect to `host:port` (each resolved address in turn) within `timeout`.
pub fn connect_tcp(
    name: &str,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, SinkError> {
    let err = |e: io::Error| SinkError::Connect {
        sink: name.to_string(),
        source: e,
    };
    let addrs = (host, port).to_socket_addrs().map_err(err)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                s.set_nodelay(true).map_err(err)?;
                s.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(err)?;
                s.set_read_timeout(Some(READ_WAIT)).map_err(err)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(err(last))
}

impl Conn {
    pub fn plain(tcp: TcpStream) -> Conn {
        Conn::Plain(Counted { tcp, written: 0 })
    }

    /// TLS over `tcp`, the handshake done within `timeout`.
    pub fn tls(
        name: &str,
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        server_name: &str,
        timeout: Duration,
    ) -> Result<Conn, SinkError> {
        let tls_err = |problem: String| SinkError::Tls {
            sink: name.to_string(),
            server_name: server_name.to_string(),
            problem,
        };
        let sn = ServerName::try_from(server_name.to_string())
            .map_err(|e| tls_err(format!("bad server name: {e}")))?;
        let conn = ClientConnection::new(config, sn).map_err(|e| tls_err(e.to_string()))?;
        tcp.set_read_timeout(Some(timeout))
            .map_err(|e| tls_err(e.to_string()))?;
        let mut s = StreamOwned::new(conn, Counted { tcp, written: 0 });
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).map_err(|e| {
                // rustls reports certificate problems as InvalidData carrying its own error.
                match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(r) => tls_err(r.to_string()),
                    None => tls_err(e.to_string()),
                }
            })?;
        }
        s.sock
            .tcp
            .set_read_timeout(Some(READ_WAIT))
            .map_err(|e| tls_err(e.to_string()))?;
        Ok(Conn::Tls(Box::new(s)))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(c) => &c.tcp,
            Conn::Tls(s) => &s.sock.tcp,
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.tcp().as_fd()
    }

    /// Bytes handed to the kernel so far (TLS records included).
    pub fn wire_written(&self) -> u64 {
        match self {
            Conn::Plain(c) => c.written,
            Conn::Tls(s) => s.sock.written,
        }
    }

    /// Bytes in the kernel's send queue not yet acknowledged by the peer's TCP.
    pub fn unacked(&self) -> io::Result<u64> {
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (= SIOCOUTQ on Linux) writes one int for a TCP socket.
        let r = unsafe { libc::ioctl(self.tcp().as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n.max(0) as u64)
    }

    /// Bytes the peer's TCP has acknowledged.
    pub fn wire_acked(&self) -> io::Result<u64> {
        Ok(self.wire_written().saturating_sub(self.unacked()?))
    }

    /// Wait up to `timeout` for something to read; true when there is (or the peer hung up).
    /// (Plaintext rustls already holds is not seen here: read until WouldBlock to drain it.)
    pub fn readable(&self, timeout: Duration) -> io::Result<bool> {
        Ok(poll_in(self.fd(), timeout)? != 0)
    }

    /// Read what is there, waiting at most 50 ms: Ok(0) means the peer closed.
    pub fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(c) => c.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }

    /// Half-close politely (TLS close_notify); errors do not matter here.
    pub fn shutdown(&mut self) {
        if let Conn::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Both);
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(c) => c.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(c) => c.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

//! A real rsyslogd (Debian's) as a log receiver: started in the foreground with its own
//! config, work directory and pid file, listening on 127.0.0.1 only (imtcp octet-counted or
//! plain, imtcp over gnutls, or imrelp, plain or over TLS with librelp's gnutls or openssl
//! back end), writing every message's raw form to one file. The
//! host's own rsyslog is never touched. Stopped (SIGTERM) when dropped.
use std::fs;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The program, overridable for machines that keep it elsewhere.
pub fn rsyslogd() -> PathBuf {
    std::env::var_os("PYRE_RSYSLOGD")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/sbin/rsyslogd".into())
}

/// Whether rsyslogd is installed (scripts/deps.sh installs it).
pub fn available() -> bool {
    rsyslogd().exists()
}

#[derive(Debug, thiserror::Error)]
pub enum RsyslogError {
    #[error("rsyslog receiver in {dir}: {what}: {source}")]
    Io {
        dir: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error("rsyslogd in {dir} did not listen on 127.0.0.1:{port} within 10 s; its output: {log}")]
    NotListening {
        dir: PathBuf,
        port: u16,
        log: String,
    },
}

/// TLS material for a gnutls listener.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require and check a client certificate signed by `ca`.
    pub require_client_cert: bool,
}

#[derive(Debug, Clone)]
pub enum Input {
    /// imtcp (octet-counted and LF framing both accepted).
    Tcp,
    /// imtcp over TLS (rsyslog-gnutls).
    Tls(ServerTls),
    /// imrelp (rsyslog-relp).
    Relp,
    /// imrelp with `tls="on"`, through librelp's gnutls or openssl back end. librelp's gnutls
    /// back end asks every client for a certificate, so `require_client_cert: false` is only
    /// possible with openssl; with a client certificate, `tls.authmode="certvalid"` checks it
    /// against the CA.
    RelpTls(ServerTls, RelpTlsLib),
}

/// librelp's TLS library (imrelp's `tls.tlslib`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelpTlsLib {
    Gnutls,
    Openssl,
}

pub struct Rsyslog {
    dir: PathBuf,
    input: Input,
    port: u16,
    child: Option<Child>,
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl Rsyslog {
    /// Start a receiver keeping its files in `dir` (created).
    pub fn start(dir: &Path, input: Input) -> Result<Rsyslog, RsyslogError> {
        let mut r = Rsyslog {
            dir: dir.to_path_buf(),
            input,
            port: free_port(),
            child: None,
        };
        r.write_config()?;
        r.up()?;
        Ok(r)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The file of received messages, one raw message per line.
    pub fn output(&self) -> PathBuf {
        self.dir.join("received.log")
    }

    /// Every received line so far.
    pub fn lines(&self) -> Vec<String> {
        fs::read(self.output())
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn io(&self, what: &'static str) -> impl Fn(io::Error) -> RsyslogError + '_ {
        move |e| RsyslogError::Io {
            dir: self.dir.clone(),
            what,
            source: e,
        }
    }

    fn write_config(&self) -> Result<(), RsyslogError> {
        let d = self.dir.display();
        fs::create_dir_all(self.dir.join("work"))
            .map_err(self.io("creating the work directory"))?;
        let mut conf = format!("global(workDirectory=\"{d}/work\" maxMessageSize=\"128k\"");
        if let Input::Tls(t) = &self.input {
            conf.push_str(&format!(
                " defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=\"{}\" \
                 defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            ));
        }
        conf.push_str(")\n");
        let port = self.port;
        match &self.input {
            Input::Tcp => conf.push_str(&format!(
                "module(load=\"imtcp\")\ninput(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n"
            )),
            Input::Tls(t) => {
                let auth = if t.require_client_cert { "x509/certvalid" } else { "anon" };
                conf.push_str(&format!(
                    "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" \
                     streamDriver.authMode=\"{auth}\")\n\
                     input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n"
                ))
            }
            Input::Relp => conf.push_str(&format!(
                "module(load=\"imrelp\")\ninput(type=\"imrelp\" port=\"{port}\" address=\"127.0.0.1\")\n"
            )),
            Input::RelpTls(t, lib) => {
                let lib = match lib {
                    RelpTlsLib::Gnutls => "gnutls",
                    RelpTlsLib::Openssl => "openssl",
                };
                let auth = if t.require_client_cert {
                    " tls.authmode=\"certvalid\""
                } else {
                    ""
                };
                conf.push_str(&format!(
                    "module(load=\"imrelp\" tls.tlslib=\"{lib}\")\n\
                     input(type=\"imrelp\" port=\"{port}\" address=\"127.0.0.1\" tls=\"on\" \
                     tls.cacert=\"{}\" tls.mycert=\"{}\" tls.myprivkey=\"{}\"{auth})\n",
                    t.ca.display(),
                    t.cert.display(),
                    t.key.display()
                ))
            }
        }
        conf.push_str(&format!(
            "template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             action(type=\"omfile\" file=\"{d}/received.log\" template=\"raw\")\n"
        ));
        fs::write(self.dir.join("rsyslog.conf"), conf).map_err(self.io("writing rsyslog.conf"))
    }

    /// Start rsyslogd and wait until it listens.
    pub fn up(&mut self) -> Result<(), RsyslogError> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = fs::File::create(self.dir.join("rsyslogd.out"))
            .map_err(self.io("creating rsyslogd.out"))?;
        let log2 = log.try_clone().map_err(self.io("creating rsyslogd.out"))?;
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(self.io("starting rsyslogd"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = fs::read_to_string(self.dir.join("rsyslogd.out")).unwrap_or_default();
        self.down();
        Err(RsyslogError::NotListening {
            dir: self.dir.clone(),
            port: self.port,
            log,
        })
    }

    /// Stop it (SIGTERM: rsyslog's orderly shutdown) and wait.
    pub fn down(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// Kill it (SIGKILL) and wait.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
    }

    fn signal(&mut self, sig: libc::c_int) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(c.id() as libc::pid_t, sig) };
            let _ = c.wait();
        }
        let _ = fs::remove_file(self.dir.join("rsyslogd.pid"));
    }

    pub fn restart(&mut self) -> Result<(), RsyslogError> {
        self.down();
        self.up()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.down();
    }
}

//! `pyre-metadata`: the fake cloud metadata server (AWS IMDSv2, GCE, Azure, OpenStack and
//! `/config.json`) on 127.0.0.1, for `make demo`, QEMU scenarios (the guest reaches it at
//! 10.0.2.2:PORT) and trying `pyre fetch` by hand.
//!
//! ```text
//! pyre-metadata [--port N] [--bind IPV4] [--config FILE] [--fault SPEC]... [--quiet]
//! ```
//! `--bind` (default 127.0.0.1) is for a private network namespace only: `make bench` serves on
//! 169.254.169.254:80 there, because afterburn cannot be given another metadata address.
//! Prints the port on the first line of stdout, then serves until killed. Each request is
//! logged on stderr unless `--quiet`. Faults: see `pyre_tests::metadata::fault` (`503*3`,
//! `429=2*1`, `delay=1500`, `trickle=20`, `token-expiry`, `reset*2`, `truncate*1`,
//! `oversize=2097152`, `redirect=URL`, `content-type=TYPE`, `403`, `404`, `…@token`, `…@any`);
//! more can be added at run time with `POST /__pyre/faults`.
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use pyre_tests::metadata::MetadataServer;

const USAGE: &str =
    "usage: pyre-metadata [--port N] [--bind IPV4] [--config FILE] [--fault SPEC]... [--quiet]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pyre-metadata: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut port = 0u16;
    let mut bind = std::net::Ipv4Addr::LOCALHOST;
    let mut config = None;
    let mut faults = Vec::new();
    let mut quiet = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--port" => port = value("--port")?.parse().map_err(|_| "bad --port")?,
            "--bind" => bind = value("--bind")?.parse().map_err(|_| "bad --bind")?,
            "--config" => {
                let f = value("--config")?;
                config = Some(std::fs::read(&f).map_err(|e| format!("reading {f}: {e}"))?);
            }
            "--fault" => faults.push(value("--fault")?),
            "--quiet" => quiet = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let server =
        MetadataServer::start_at(bind, port, config).map_err(|e| format!("binding: {e}"))?;
    for f in &faults {
        server.inject(f)?;
    }
    server.state().verbose.store(!quiet, Ordering::Relaxed);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", server.port()).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    if !quiet {
        eprintln!("pyre-metadata: serving on {}", server.url());
    }
    loop {
        std::thread::park();
    }
}

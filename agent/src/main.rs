//! pyre command line: dispatch only. Each subcommand lives in `pyre::cmd`.
use std::process::ExitCode;

use clap::Parser;
use pyre::cmd::{Cli, Command};

fn main() -> ExitCode {
    // The kernel runs the initramfs' /init with no subcommand: that is `pyre init`.
    let argv: Vec<String> = std::env::args().collect();
    if pyre::cmd::init::is_kernel_init(&argv, std::process::id() as i32) {
        let forwarded = pyre::cmd::init::forwarded_args(&argv);
        pyre::cmd::init::pid1(std::path::Path::new("/proc/cmdline"), &forwarded);
    }
    let cli = Cli::parse();
    pyre::logging::init(cli.verbose);
    let result = match cli.command {
        Command::Keygen(a) => pyre::cmd::keygen::run(a),
        Command::Seal(a) => pyre::cmd::seal::run(a),
        Command::Sign(a) => pyre::cmd::sign::run(a),
        Command::Verify(a) => pyre::cmd::verify::run(a),
        Command::Diff(a) => pyre::cmd::diff::run(a),
        Command::Init(a) => pyre::cmd::init::run(a),
        Command::BootReport(a) => pyre::cmd::boot_report::run(a),
        Command::Logs(a) => pyre::cmd::logs::run(a),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            log::error!("{e:#}");
            pyre::cmd::Exit::CouldNotCheck.into()
        }
    }
}

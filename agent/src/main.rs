//! pyre command line: dispatch only. Each subcommand lives in `pyre::cmd`; how a command ends
//! maps to an exit code in `pyre::cmd::exit` (docs/exit-codes.md).
use std::process::ExitCode;

use clap::Parser;
use pyre::cmd::Cli;

fn main() -> ExitCode {
    // The kernel runs the initramfs' /init with no subcommand: that is `pyre init`.
    let argv: Vec<String> = std::env::args().collect();
    if pyre::cmd::init::is_kernel_init(&argv, std::process::id() as i32) {
        let forwarded = pyre::cmd::init::forwarded_args(&argv);
        pyre::cmd::init::pid1(std::path::Path::new("/proc/cmdline"), &forwarded);
    }
    let cli = Cli::parse();
    pyre::logging::init(cli.verbose);
    match pyre::cmd::run(cli.command) {
        Ok(exit) => exit.into(),
        Err(e) => {
            e.log();
            e.exit().into()
        }
    }
}

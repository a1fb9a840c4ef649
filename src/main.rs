//! The `outrigger` binary: parse the command line, set up logging, dispatch.
//! Nothing else lives here; each subcommand is a thin layer in `cli/`.
#![forbid(unsafe_code)]

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(&cli.global);
    match cli::run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

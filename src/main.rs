//! The `outrigger` binary: parse the command line, set up logging, dispatch.
//! Nothing else lives here; each subcommand is a thin layer in `cli/`.
#![forbid(unsafe_code)]

mod cli;

use clap::Parser;

/// mimalloc: the webhook allocates many small, short-lived objects per
/// request; with it, an injection costs about 40% less (bench/webhook.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

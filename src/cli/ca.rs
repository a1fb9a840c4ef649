//! `outrigger ca ...`.

use std::process::ExitCode;

use clap::Subcommand;

/// The `ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a new self-signed root CA in a directory.
    Init,
}

/// Runs one `ca` subcommand.
pub fn run(_cmd: CaCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("outrigger ca is not built yet")
}

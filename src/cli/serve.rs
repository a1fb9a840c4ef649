//! `outrigger serve`.

use std::process::ExitCode;

use clap::Args;

/// Flags of `outrigger serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {}

/// Runs `outrigger serve`.
pub fn run(_args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("outrigger serve is not built yet")
}

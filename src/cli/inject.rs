//! `outrigger inject`.

use std::process::ExitCode;

use clap::Args;

/// Flags of `outrigger inject`.
#[derive(Debug, Args)]
pub struct InjectArgs {}

/// Runs `outrigger inject`.
pub fn run(_args: InjectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("outrigger inject is not built yet")
}

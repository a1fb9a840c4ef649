//! `outrigger iptables`.

use std::process::ExitCode;

use clap::Args;

/// Flags of `outrigger iptables`.
#[derive(Debug, Args)]
pub struct IptablesArgs {}

/// Runs `outrigger iptables`.
pub fn run(_args: IptablesArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("outrigger iptables is not built yet")
}

//! `outrigger ca ...`.

pub mod request;

use std::process::ExitCode;

use clap::Subcommand;

/// The `ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a new self-signed root CA in a directory.
    Init,
    /// Get a workload certificate from a running CA service (gRPC), writing
    /// key.pem, cert-chain.pem and root-cert.pem.
    Request(request::RequestArgs),
}

/// Runs one `ca` subcommand.
pub fn run(cmd: CaCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CaCommand::Request(args) => request::run(args),
        CaCommand::Init => anyhow::bail!("outrigger ca init is not built yet"),
    }
}

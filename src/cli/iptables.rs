//! `outrigger iptables`: print, apply or remove the traffic-capture rules.
//! Flags and behaviour are `istio-iptables`' (see `outrigger::iptables`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use outrigger::iptables::apply::{self, Tools};
use outrigger::iptables::{CaptureConfig, CapturePlan, IptablesFlags};
use tracing::info;

/// Flags of `outrigger iptables`.
#[derive(Debug, Args)]
pub struct IptablesArgs {
    /// `istio-iptables`' flags and outrigger's own.
    #[command(flatten)]
    pub flags: Box<IptablesFlags>,
}

/// Runs `outrigger iptables`.
pub fn run(args: IptablesArgs) -> anyhow::Result<ExitCode> {
    let flags = args.flags;
    let resolv_conf = if flags.needs_resolv_conf() {
        let path = &flags.resolv_conf;
        Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --resolv-conf {}", path.display()))?,
        )
    } else {
        None
    };
    let config = CaptureConfig::from_flags(&flags, resolv_conf.as_deref())?;
    let plan = CapturePlan::new(&config);
    let tools = Tools::new(flags.iptables_backend);

    match (flags.cleanup_only, flags.dry_run) {
        (true, true) => print!("{}", plan.cleanup_dry_run()),
        (true, false) => {
            for (family, removal) in apply::cleanup(&tools, &plan)? {
                info!(family = %family, removed = !removal.is_empty(), "cleanup done");
            }
        }
        (false, true) => print!("{}", plan.dry_run()),
        (false, false) => {
            apply::apply(&tools, &plan)?;
            info!(ipv6 = plan.rules.ipv6, "capture rules installed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

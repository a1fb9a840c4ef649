//! Traffic capture compatible with Istio's `istio-iptables`: the rules that
//! send a pod's traffic through its proxy.
//!
//! - [`flags`]: the command line, with `istio-iptables`' flag names and
//!   defaults (also parses an injected init container's arguments);
//! - [`config`]: those flags validated into a [`CaptureConfig`];
//! - [`generate`](mod@generate): pure rule generation, in Istio's order;
//! - [`rules`]: the rule model and its `iptables-restore` rendering;
//! - [`routes`]: the `ip` addresses and routes capture also needs (pure);
//! - [`cleanup`]: what removing the rules takes (pure planning);
//! - [`apply`]: running `iptables-restore` / `ip6tables-restore`.
//!
//! Istio's reference: `tools/istio-iptables` in istio/istio.

pub mod apply;
pub mod cleanup;
pub mod config;
pub mod flags;
pub mod generate;
pub mod routes;
pub mod rules;

pub use config::{CaptureConfig, ConfigError};
pub use flags::{IptablesFlags, parse_istio_iptables_args};
pub use generate::generate;
pub use rules::{Family, RuleSet};

/// Everything capture installs for one configuration: the rules, and the
/// `ip` commands around them. Pure to build; [`apply`] carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturePlan {
    /// The iptables rules, per family.
    pub rules: RuleSet,
    /// `ip` commands run with the rules (IPv6 `::6`, TPROXY routing).
    pub setup: Vec<routes::IpCommand>,
    /// `ip` commands `--cleanup-only` runs.
    pub teardown: Vec<routes::IpCommand>,
}

impl CapturePlan {
    /// Plans capture for a validated configuration.
    pub fn new(config: &CaptureConfig) -> CapturePlan {
        CapturePlan {
            rules: generate(config),
            setup: routes::setup_commands(config),
            teardown: routes::cleanup_commands(config),
        }
    }

    /// What `--dry-run` prints: each family's restore input under a `#`
    /// heading, then the `ip` commands as `#` lines.
    pub fn dry_run(&self) -> String {
        let mut out = String::new();
        for family in self.rules.families() {
            out.push_str(&format!(
                "# {family}: {} --noflush input\n",
                family.restore_command()
            ));
            out.push_str(&self.rules.restore_text(family));
        }
        push_ip_commands(&mut out, &self.setup);
        out
    }

    /// What `--cleanup-only --dry-run` prints: the removal of everything the
    /// configuration installs (assuming all of it is), per family, then the
    /// `ip` commands as `#` lines.
    pub fn cleanup_dry_run(&self) -> String {
        let mut out = String::new();
        for family in self.rules.families() {
            out.push_str(&format!(
                "# {family}: {} --noflush input (cleanup, assuming everything is installed)\n",
                family.restore_command()
            ));
            out.push_str(&cleanup::cleanup_assuming_installed(
                self.rules.family(family),
            ));
        }
        push_ip_commands(&mut out, &self.teardown);
        out
    }
}

fn push_ip_commands(out: &mut String, commands: &[routes::IpCommand]) {
    if commands.is_empty() {
        return;
    }
    out.push_str("# and:\n");
    for command in commands {
        out.push_str(&format!("#   {}\n", command.line()));
    }
}

/// Why an injected init container's arguments cannot be turned into rules.
#[derive(Debug, thiserror::Error)]
pub enum InitArgsError {
    /// The arguments do not parse (unknown flag, missing value, ...).
    #[error("init container arguments do not parse: {0}")]
    Parse(#[source] Box<clap::Error>),
    /// A value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// What an injected init container running `istio-iptables` with `args`
/// installs, planned by `outrigger iptables`' own parser and generator, so
/// that the injector (and its preview) can run or show `outrigger iptables`
/// with the same arguments. `resolv_conf` is the pod's resolv.conf text when
/// known (only used with `--redirect-dns`).
pub fn plan_for_init_args<I, S>(
    args: I,
    resolv_conf: Option<&str>,
) -> Result<CapturePlan, InitArgsError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let flags = parse_istio_iptables_args(args).map_err(|e| InitArgsError::Parse(Box::new(e)))?;
    let config = CaptureConfig::from_flags(&flags, resolv_conf)?;
    Ok(CapturePlan::new(&config))
}

/// The arguments for an init container running `outrigger iptables` in
/// place of `istio-iptables`: `["iptables", <args>...]`, `args` being what
/// the container would pass `istio-iptables` (a leading `istio-iptables` is
/// dropped). Refused, with the reason, when `outrigger iptables` would
/// refuse them, so that a pod is never injected with a failing init container.
pub fn outrigger_init_args<I, S>(args: I) -> Result<Vec<String>, InitArgsError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    if args.first().is_some_and(|first| first == "istio-iptables") {
        args.remove(0);
    }
    plan_for_init_args(&args, None)?;
    Ok(std::iter::once("iptables".to_owned()).chain(args).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_args_become_outrigger_iptables_args() {
        let args =
            outrigger_init_args(["istio-iptables", "-p", "15001", "-b", "*"]).expect("valid");
        assert_eq!(args, ["iptables", "-p", "15001", "-b", "*"]);
        let err = outrigger_init_args(["-p", "0"]).expect_err("refused");
        assert!(err.to_string().contains("-p/--envoy-port"), "{err}");
    }
}

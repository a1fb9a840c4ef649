//! What capture needs besides iptables rules (facts from Istio's
//! `ConfigureRoutes`), as `ip` command lines (pure):
//!
//! - with IPv6, the address `::6/128` on `lo`: the proxy's inbound
//!   passthrough connections use it as their source (the `-s ::6/128` rules);
//! - in TPROXY mode with inbound capture, a policy route sending packets with
//!   the TPROXY mark (`-t`) to table `-r`, whose default route is local
//!   delivery on `lo`.
//!
//! Cleanup removes the TPROXY rule and route; the `::6` address stays (it may
//! have existed before, and on its own it captures nothing).

use super::config::{CaptureConfig, InboundPorts, InterceptionMode};

/// One `ip` invocation (arguments after `ip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpCommand {
    /// The arguments, e.g. `["-4", "rule", "add", ...]`.
    pub args: Vec<String>,
}

impl IpCommand {
    fn new(args: &[&str]) -> IpCommand {
        IpCommand {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// The command line, for logs and dry runs.
    pub fn line(&self) -> String {
        format!("ip {}", self.args.join(" "))
    }

    /// The command that undoes this one (`add` becomes `del`).
    pub fn undo(&self) -> IpCommand {
        IpCommand {
            args: self
                .args
                .iter()
                .map(|a| {
                    if a == "add" {
                        "del".to_owned()
                    } else {
                        a.clone()
                    }
                })
                .collect(),
        }
    }
}

fn tproxy_routing(cfg: &CaptureConfig) -> bool {
    cfg.mode == InterceptionMode::Tproxy && cfg.inbound_ports != InboundPorts::List(Vec::new())
}

/// The TPROXY policy rules and routes, per family.
fn tproxy_commands(cfg: &CaptureConfig) -> Vec<IpCommand> {
    if !tproxy_routing(cfg) {
        return Vec::new();
    }
    let mark = cfg.tproxy_mark.to_string();
    let table = cfg.tproxy_route_table.to_string();
    let mut families = vec![("-4", "0.0.0.0/0")];
    if cfg.ipv6 {
        families.push(("-6", "::/0"));
    }
    let mut commands = Vec::new();
    for (flag, _) in &families {
        commands.push(IpCommand::new(&[
            flag, "rule", "add", "fwmark", &mark, "lookup", &table,
        ]));
    }
    for (flag, all) in &families {
        commands.push(IpCommand::new(&[
            flag, "route", "add", "local", all, "dev", "lo", "table", &table,
        ]));
    }
    commands
}

/// What to run after the rules are in place.
pub fn setup_commands(cfg: &CaptureConfig) -> Vec<IpCommand> {
    let mut commands = Vec::new();
    if cfg.ipv6 {
        commands.push(IpCommand::new(&[
            "-6", "addr", "add", "::6/128", "dev", "lo",
        ]));
    }
    commands.extend(tproxy_commands(cfg));
    commands
}

/// What `--cleanup-only` runs: the TPROXY rule and route removed.
pub fn cleanup_commands(cfg: &CaptureConfig) -> Vec<IpCommand> {
    tproxy_commands(cfg)
        .iter()
        .rev()
        .map(IpCommand::undo)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iptables::flags::parse_istio_iptables_args;

    fn config(args: &[&str]) -> CaptureConfig {
        let flags = parse_istio_iptables_args(args).expect("flags");
        CaptureConfig::from_flags(&flags, None).expect("valid")
    }

    fn lines(commands: &[IpCommand]) -> Vec<String> {
        commands.iter().map(IpCommand::line).collect()
    }

    #[test]
    fn redirect_ipv4_needs_nothing() {
        let c = config(&["-b", "*"]);
        assert!(setup_commands(&c).is_empty());
        assert!(cleanup_commands(&c).is_empty());
    }

    #[test]
    fn tproxy_dual_stack_routes_marked_packets_to_lo() {
        let c = config(&["-m", "TPROXY", "-b", "*", "-t", "7", "-r", "99", "--ipv6"]);
        assert_eq!(
            lines(&setup_commands(&c)),
            [
                "ip -6 addr add ::6/128 dev lo",
                "ip -4 rule add fwmark 7 lookup 99",
                "ip -6 rule add fwmark 7 lookup 99",
                "ip -4 route add local 0.0.0.0/0 dev lo table 99",
                "ip -6 route add local ::/0 dev lo table 99",
            ]
        );
        assert_eq!(
            lines(&cleanup_commands(&c)),
            [
                "ip -6 route del local ::/0 dev lo table 99",
                "ip -4 route del local 0.0.0.0/0 dev lo table 99",
                "ip -6 rule del fwmark 7 lookup 99",
                "ip -4 rule del fwmark 7 lookup 99",
            ]
        );
    }

    #[test]
    fn tproxy_without_inbound_ports_needs_no_route() {
        let c = config(&["-m", "TPROXY"]);
        assert!(setup_commands(&c).is_empty());
    }
}

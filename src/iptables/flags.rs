//! The flags of `outrigger iptables`, with `istio-iptables`' names, meanings
//! and defaults, plus outrigger's own for what Istio reads from the
//! environment.
//!
//! The flags are kept as the strings the user wrote; [`super::config`] turns
//! them into a validated [`super::CaptureConfig`]. The same clap definition
//! parses the `outrigger iptables` command line and the arguments of an
//! injected `istio-init` container ([`parse_istio_iptables_args`]), so that
//! both always mean the same thing.

use std::path::PathBuf;

use clap::{Args, Parser};

use super::apply::Variant;

/// `istio-iptables`-compatible flags (see Istio's
/// `tools/istio-iptables/pkg/cmd/root.go` for their meaning).
///
/// Boolean flags accept both `--flag` and cobra's `--flag=true|false`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct IptablesFlags {
    /// Port to which all outbound TCP traffic is redirected (the proxy's outbound listener).
    #[arg(
        short = 'p',
        long = "envoy-port",
        allow_hyphen_values = true,
        default_value = "15001"
    )]
    pub envoy_port: String,

    /// Port to which all inbound TCP traffic is redirected.
    #[arg(
        short = 'z',
        long = "inbound-capture-port",
        allow_hyphen_values = true,
        default_value = "15006"
    )]
    pub inbound_capture_port: String,

    /// The proxy's tunnel (HBONE) port: inbound traffic to it is never redirected.
    #[arg(
        short = 'e',
        long = "inbound-tunnel-port",
        allow_hyphen_values = true,
        default_value = "15008"
    )]
    pub inbound_tunnel_port: String,

    /// UID(s) of the proxy, comma separated: their traffic is not redirected.
    #[arg(
        short = 'u',
        long = "proxy-uid",
        allow_hyphen_values = true,
        default_value = "1337"
    )]
    pub proxy_uid: String,

    /// GID(s) of the proxy, comma separated (default: the same as --proxy-uid).
    #[arg(short = 'g', long = "proxy-gid", allow_hyphen_values = true)]
    pub proxy_gid: Option<String>,

    /// How inbound connections reach the proxy: REDIRECT or TPROXY (empty means REDIRECT).
    #[arg(
        allow_hyphen_values = true,
        short = 'm',
        long = "istio-inbound-interception-mode",
        default_value = ""
    )]
    pub inbound_interception_mode: String,

    /// Packet mark used in TPROXY mode.
    #[arg(
        allow_hyphen_values = true,
        short = 't',
        long = "istio-inbound-tproxy-mark",
        default_value = "1337"
    )]
    pub inbound_tproxy_mark: String,

    /// Routing table used in TPROXY mode.
    #[arg(
        allow_hyphen_values = true,
        short = 'r',
        long = "istio-inbound-tproxy-route-table",
        default_value = "133"
    )]
    pub inbound_tproxy_route_table: String,

    /// Inbound ports to redirect: comma separated, `*` for all, empty for none.
    #[arg(
        short = 'b',
        long = "istio-inbound-ports",
        allow_hyphen_values = true,
        default_value = ""
    )]
    pub inbound_ports: String,

    /// Inbound ports never redirected (only with `-b '*'`).
    #[arg(
        short = 'd',
        long = "istio-local-exclude-ports",
        allow_hyphen_values = true,
        default_value = ""
    )]
    pub local_exclude_ports: String,

    /// Network interfaces whose traffic is never captured, comma separated.
    #[arg(
        short = 'c',
        long = "istio-exclude-interfaces",
        allow_hyphen_values = true,
        default_value = ""
    )]
    pub exclude_interfaces: String,

    /// Outbound destinations to redirect: CIDRs, `*` for all, empty for none.
    #[arg(
        short = 'i',
        long = "istio-service-cidr",
        allow_hyphen_values = true,
        default_value = ""
    )]
    pub service_cidr: String,

    /// Outbound destinations never redirected (CIDRs).
    #[arg(
        short = 'x',
        long = "istio-service-exclude-cidr",
        allow_hyphen_values = true,
        default_value = ""
    )]
    pub service_exclude_cidr: String,

    /// Outbound ports always redirected, comma separated.
    #[arg(
        short = 'q',
        long = "istio-outbound-ports",
        allow_hyphen_values = true,
        default_value = ""
    )]
    pub outbound_ports: String,

    /// Outbound ports never redirected (TCP and UDP), comma separated.
    #[arg(
        allow_hyphen_values = true,
        short = 'o',
        long = "istio-local-outbound-ports-exclude",
        default_value = ""
    )]
    pub local_outbound_ports_exclude: String,

    /// Virtual interfaces whose inbound traffic is treated as outbound (e.g. KubeVirt VMs).
    #[arg(
        short = 'k',
        long = "kube-virt-interfaces",
        allow_hyphen_values = true,
        default_value = ""
    )]
    pub kube_virt_interfaces: String,

    /// Print the rules (iptables-restore input) instead of applying them.
    #[arg(short = 'n', long = "dry-run", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true")]
    pub dry_run: bool,

    /// Redirect DNS (port 53) to the agent's DNS proxy on 15053.
    #[arg(long = "redirect-dns", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true")]
    pub redirect_dns: bool,

    /// With --redirect-dns: capture all port-53 traffic, not only to the resolv.conf servers.
    #[arg(long = "capture-all-dns", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true")]
    pub capture_all_dns: bool,

    /// Drop packets conntrack considers INVALID instead of resetting the connection.
    #[arg(long = "drop-invalid", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true")]
    pub drop_invalid: bool,

    /// Dual-stack pod: also emit the IPv6 rules (implies --ipv6).
    #[arg(long = "dual-stack", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true")]
    pub dual_stack: bool,

    /// Remove the rules and chains this configuration installs, then exit.
    #[arg(long = "cleanup-only", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true")]
    pub cleanup_only: bool,

    /// Also emit the IPv6 rules (Istio decides this from the pod's addresses).
    #[arg(long = "ipv6", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true")]
    pub ipv6: bool,

    /// DNS servers to capture, comma separated (default: read from --resolv-conf).
    #[arg(allow_hyphen_values = true, long = "dns-servers")]
    pub dns_servers: Option<String>,

    /// Where the DNS servers come from when --dns-servers is not given.
    #[arg(long = "resolv-conf", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,

    /// Groups whose outbound traffic is captured: comma separated, or `*` for all.
    #[arg(
        allow_hyphen_values = true,
        long = "outbound-owner-groups",
        default_value = "*"
    )]
    pub outbound_owner_groups: String,

    /// Groups whose outbound traffic is never captured, comma separated.
    #[arg(
        allow_hyphen_values = true,
        long = "outbound-owner-groups-exclude",
        default_value = ""
    )]
    pub outbound_owner_groups_exclude: String,

    /// The pod's IPv4 loopback range (traffic to it is never redirected).
    #[arg(
        allow_hyphen_values = true,
        long = "host-ipv4-loopback-cidr",
        default_value = "127.0.0.1/32"
    )]
    pub host_ipv4_loopback_cidr: String,

    /// Which iptables build applies the rules: the system's (`iptables-restore`
    /// on PATH), or explicitly `nft` or `legacy` (outrigger's own flag; Istio
    /// guesses from the rules already present).
    #[arg(long = "iptables-backend", value_enum, default_value_t = Variant::System)]
    pub iptables_backend: Variant,

    /// Accepted for compatibility with `pilot-agent istio-iptables`; ignored
    /// (use --log-level).
    #[arg(long = "log_output_level", hide = true)]
    pub log_output_level: Option<String>,
}

impl IptablesFlags {
    /// Whether the DNS servers must be read from `--resolv-conf`: DNS capture
    /// is on, limited to the configured servers, and none were given.
    pub fn needs_resolv_conf(&self) -> bool {
        self.redirect_dns && !self.capture_all_dns && self.dns_servers.is_none()
    }
}

/// The command an injected `istio-init` container runs, parsed with the very
/// flag definitions of `outrigger iptables`.
#[derive(Debug, Parser)]
#[command(name = "istio-iptables", no_binary_name = true)]
struct IstioIptablesCommand {
    #[command(flatten)]
    flags: IptablesFlags,
}

/// Parses the arguments of an injected `istio-init` container (for example
/// `istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*'
/// -d 15090,15021,15020 --log_output_level=default:info`, one argument per
/// element, shell quoting already removed) with the same parser as the
/// `outrigger iptables` command line, so that the injector can run
/// `outrigger iptables` with the arguments it would give `istio-iptables`.
///
/// A leading `istio-iptables` (the `pilot-agent` subcommand name) is skipped;
/// `--log_output_level` is accepted and ignored.
pub fn parse_istio_iptables_args<I, S>(args: I) -> Result<IptablesFlags, clap::Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    if args.first().is_some_and(|first| first == "istio-iptables") {
        args.remove(0);
    }
    IstioIptablesCommand::try_parse_from(args).map(|cmd| cmd.flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_default_args_parse_and_log_level_is_ignored() {
        let flags = parse_istio_iptables_args([
            "istio-iptables",
            "-p",
            "15001",
            "-z",
            "15006",
            "-u",
            "1337",
            "-m",
            "REDIRECT",
            "-i",
            "*",
            "-x",
            "",
            "-b",
            "*",
            "-d",
            "15090,15021,15020",
            "--log_output_level=default:info",
        ])
        .expect("the injected arguments parse");
        assert_eq!(flags.inbound_ports, "*");
        assert_eq!(flags.service_cidr, "*");
        assert_eq!(flags.service_exclude_cidr, "");
        assert_eq!(flags.local_exclude_ports, "15090,15021,15020");
        assert_eq!(flags.inbound_interception_mode, "REDIRECT");
        assert_eq!(flags.proxy_gid, None);
        assert!(!flags.dry_run);
    }

    #[test]
    fn cobra_style_booleans_are_accepted() {
        let flags = parse_istio_iptables_args(["--redirect-dns=true", "-n"]).expect("parses");
        assert!(flags.redirect_dns);
        assert!(flags.dry_run);
        let flags = parse_istio_iptables_args(["--redirect-dns=false"]).expect("parses");
        assert!(!flags.redirect_dns);
    }

    #[test]
    fn unknown_flags_are_refused() {
        let err = parse_istio_iptables_args(["--no-such-flag"]).expect_err("refused");
        assert!(err.to_string().contains("--no-such-flag"), "{err}");
    }
}

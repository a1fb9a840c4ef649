//! The validated traffic-capture configuration: what [`super::flags`] holds
//! as strings, checked and typed. Everything that could make
//! `iptables-restore` fail on user input (a malformed port, CIDR, interface,
//! owner, mark or mode) is refused here, before any rule is generated or
//! applied, with an error naming the flag, the value and the expected form.
//!
//! Pure: the content of resolv.conf is passed in, never read here.

use std::fmt;
use std::net::IpAddr;

use super::flags::IptablesFlags;

/// How inbound connections are handed to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterceptionMode {
    /// NAT `REDIRECT` to the inbound capture port (Istio's default).
    Redirect,
    /// `TPROXY` in the mangle table, keeping the original destination.
    Tproxy,
}

/// A TCP/UDP port, 1-65535.
pub type Port = u16;

/// Which inbound ports are redirected (`-b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundPorts {
    /// `*`: every port, except `-d` exclusions.
    All,
    /// A list (empty: inbound capture off).
    List(Vec<Port>),
}

/// An address range, printed as Istio prints it (`addr/len`, address as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length.
    pub len: u8,
}

impl Cidr {
    /// Whether this is an IPv4 range.
    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Which outbound destinations are redirected (`-i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundRanges {
    /// `*`: everything not excluded.
    All,
    /// A list of ranges (empty: no destination-based capture).
    List(Vec<Cidr>),
}

/// Which groups' outbound traffic is captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerGroups {
    /// Every group except these (`--outbound-owner-groups '*'` plus the exclusions).
    AllExcept(Vec<String>),
    /// Only these groups.
    Only(Vec<String>),
}

/// The validated configuration the rules are generated from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// `-p`: the proxy's outbound listener.
    pub proxy_port: Port,
    /// `-z`: the proxy's inbound listener.
    pub inbound_capture_port: Port,
    /// `-e`: the tunnel port, never redirected inbound.
    pub inbound_tunnel_port: Port,
    /// `-u`: the proxy's user(s).
    pub proxy_uids: Vec<String>,
    /// `-g`: the proxy's group(s).
    pub proxy_gids: Vec<String>,
    /// `-m`.
    pub mode: InterceptionMode,
    /// `-t`.
    pub tproxy_mark: u32,
    /// `-r`.
    pub tproxy_route_table: u32,
    /// `-b`.
    pub inbound_ports: InboundPorts,
    /// `-d`.
    pub inbound_ports_exclude: Vec<Port>,
    /// `-c`.
    pub exclude_interfaces: Vec<String>,
    /// `-i`.
    pub outbound_include: OutboundRanges,
    /// `-x`.
    pub outbound_exclude: Vec<Cidr>,
    /// `-q`.
    pub outbound_ports_include: Vec<Port>,
    /// `-o`.
    pub outbound_ports_exclude: Vec<Port>,
    /// `-k`.
    pub kube_virt_interfaces: Vec<String>,
    /// `--redirect-dns`, already turned off when there is nothing to capture
    /// (no DNS server and not `--capture-all-dns`), as Istio does.
    pub redirect_dns: bool,
    /// `--capture-all-dns`.
    pub capture_all_dns: bool,
    /// `--drop-invalid`.
    pub drop_invalid: bool,
    /// `--ipv6` or `--dual-stack`: emit the IPv6 rules too.
    pub ipv6: bool,
    /// IPv4 DNS servers, as written.
    pub dns_servers_v4: Vec<String>,
    /// IPv6 DNS servers, as written.
    pub dns_servers_v6: Vec<String>,
    /// `--outbound-owner-groups` / `--outbound-owner-groups-exclude`.
    pub owner_groups: OwnerGroups,
    /// `--host-ipv4-loopback-cidr`.
    pub host_ipv4_loopback: Cidr,
}

/// A flag value (or resolv.conf entry) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for {flag}: expected {expected}")]
pub struct ConfigError {
    /// The flag, as `-p/--envoy-port`, or the file the value came from.
    pub flag: String,
    /// The offending value.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

fn bad(flag: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError {
        flag: flag.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

const PORT_FORM: &str = "a port number from 1 to 65535";
const PORT_LIST_FORM: &str = "a comma-separated list of port numbers from 1 to 65535";

/// Istio's list splitting: comma separated, empty items dropped; items are
/// also trimmed of surrounding blanks.
fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|item| !item.is_empty())
}

fn port(flag: &str, value: &str) -> Result<Port, ConfigError> {
    match value.trim().parse::<Port>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(bad(flag, value, PORT_FORM)),
    }
}

fn ports(flag: &str, value: &str, form: &str) -> Result<Vec<Port>, ConfigError> {
    split(value)
        .map(|item| match item.parse::<Port>() {
            Ok(p) if p != 0 => Ok(p),
            _ => Err(bad(
                flag,
                value,
                &format!("{form} ({item:?} is not a port)"),
            )),
        })
        .collect()
}

fn number(flag: &str, value: &str) -> Result<u32, ConfigError> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| bad(flag, value, "a non-negative decimal number"))
}

/// Parses `addr/len` (IPv4 or IPv6). A bare address is refused: Istio's
/// parser refuses it too, and silently widening it would be a surprise.
pub fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let (addr, len) = text
        .split_once('/')
        .ok_or_else(|| "it has no /prefix-length".to_owned())?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("prefix length {len:?} is not 0-{max}"))?;
    Ok(Cidr { addr, len })
}

const CIDR_LIST_FORM: &str =
    "a comma-separated list of CIDRs (IPv4 like 10.0.0.0/8 or IPv6 like fd00::/8)";

fn cidrs(flag: &str, value: &str, form: &str) -> Result<Vec<Cidr>, ConfigError> {
    split(value)
        .map(|item| {
            parse_cidr(item).map_err(|why| bad(flag, value, &format!("{form} ({item:?}: {why})")))
        })
        .collect()
}

/// Interface names: what the kernel accepts (1-15 bytes, no blank, `/` or `:`),
/// with iptables' trailing `+` wildcard allowed.
fn interfaces(flag: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    split(value)
        .map(|item| {
            let ok = item.len() <= 15
                && !item.starts_with(['-', '!'])
                && item
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '/' && c != ':' && c != ',');
            if ok {
                Ok(item.to_owned())
            } else {
                Err(bad(
                    flag,
                    value,
                    &format!(
                        "a comma-separated list of interface names (1-15 characters, no '/', ':' or blanks, not starting with '-' or '!'; {item:?} is not one)"
                    ),
                ))
            }
        })
        .collect()
}

/// User or group names/ids, as iptables' owner match takes them.
fn owners(flag: &str, value: &str, allow_empty: bool) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = split(value).map(str::to_owned).collect();
    let form = "a comma-separated list of numeric ids or user/group names";
    if list.is_empty() && !allow_empty {
        return Err(bad(flag, value, form));
    }
    for item in &list {
        let ok = item.len() <= 32
            && item.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(bad(flag, value, &format!("{form} ({item:?} is not one)")));
        }
    }
    Ok(list)
}

/// Splits DNS servers into IPv4 and IPv6, keeping each as written (Istio
/// writes them into the rules verbatim).
fn dns_servers<'a>(
    source: &str,
    servers: impl Iterator<Item = &'a str>,
) -> Result<(Vec<String>, Vec<String>), ConfigError> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for server in servers {
        match server.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => v4.push(server.to_owned()),
            Ok(IpAddr::V6(_)) => v6.push(server.to_owned()),
            Err(_) => {
                return Err(bad(
                    source,
                    server,
                    "an IPv4 or IPv6 address (a DNS server)",
                ));
            }
        }
    }
    Ok((v4, v6))
}

/// The `nameserver` entries of a resolv.conf text, in order.
pub fn resolv_conf_servers(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(server)) => Some(server),
                _ => None,
            }
        })
        .collect()
}

impl CaptureConfig {
    /// Validates the flags. `resolv_conf` is the text of the `--resolv-conf`
    /// file, needed only when [`IptablesFlags::needs_resolv_conf`] says so
    /// (absent then means: no DNS servers).
    pub fn from_flags(
        flags: &IptablesFlags,
        resolv_conf: Option<&str>,
    ) -> Result<CaptureConfig, ConfigError> {
        let mode = match flags.inbound_interception_mode.as_str() {
            "" | "REDIRECT" => InterceptionMode::Redirect,
            "TPROXY" => InterceptionMode::Tproxy,
            other => {
                return Err(bad(
                    "-m/--istio-inbound-interception-mode",
                    other,
                    "REDIRECT or TPROXY",
                ));
            }
        };

        let inbound_ports = match flags.inbound_ports.trim() {
            "*" => InboundPorts::All,
            other => InboundPorts::List(ports(
                "-b/--istio-inbound-ports",
                other,
                &format!("{PORT_LIST_FORM}, or * for all ports"),
            )?),
        };

        let outbound_include = match flags.service_cidr.trim() {
            "*" => OutboundRanges::All,
            other => OutboundRanges::List(cidrs(
                "-i/--istio-service-cidr",
                other,
                &format!("{CIDR_LIST_FORM}, or * for all destinations"),
            )?),
        };
        if flags.service_exclude_cidr.trim() == "*" {
            return Err(bad(
                "-x/--istio-service-exclude-cidr",
                &flags.service_exclude_cidr,
                CIDR_LIST_FORM,
            ));
        }
        let outbound_exclude = cidrs(
            "-x/--istio-service-exclude-cidr",
            &flags.service_exclude_cidr,
            CIDR_LIST_FORM,
        )?;

        let proxy_uids = owners("-u/--proxy-uid", &flags.proxy_uid, false)?;
        let proxy_gids = match &flags.proxy_gid {
            Some(gid) => owners("-g/--proxy-gid", gid, false)?,
            None => proxy_uids.clone(),
        };

        let include_groups = flags.outbound_owner_groups.trim();
        let exclude_groups = flags.outbound_owner_groups_exclude.trim();
        let owner_groups = if include_groups == "*" {
            OwnerGroups::AllExcept(owners(
                "--outbound-owner-groups-exclude",
                exclude_groups,
                true,
            )?)
        } else if !exclude_groups.is_empty() {
            return Err(bad(
                "--outbound-owner-groups-exclude",
                exclude_groups,
                "nothing when --outbound-owner-groups is not '*' (give one of the two)",
            ));
        } else {
            OwnerGroups::Only(owners("--outbound-owner-groups", include_groups, true)?)
        };
        let (groups_flag, groups_value, group_count) = match &owner_groups {
            OwnerGroups::AllExcept(g) => {
                ("--outbound-owner-groups-exclude", exclude_groups, g.len())
            }
            OwnerGroups::Only(g) => ("--outbound-owner-groups", include_groups, g.len()),
        };
        if group_count > 64 {
            return Err(bad(
                groups_flag,
                groups_value,
                "at most 64 groups (one owner match each)",
            ));
        }

        let loopback_flag = "--host-ipv4-loopback-cidr";
        let loopback_form = "an IPv4 CIDR inside 127.0.0.0/8 with a prefix length of 8-32";
        let host_ipv4_loopback = parse_cidr(flags.host_ipv4_loopback_cidr.trim())
            .ok()
            .filter(|c| match c.addr {
                IpAddr::V4(a) => a.is_loopback() && c.len >= 8,
                IpAddr::V6(_) => false,
            })
            .ok_or_else(|| bad(loopback_flag, &flags.host_ipv4_loopback_cidr, loopback_form))?;

        let (dns_servers_v4, dns_servers_v6) = match (&flags.dns_servers, resolv_conf) {
            (Some(list), _) => dns_servers("--dns-servers", split(list))?,
            (None, Some(text)) if flags.needs_resolv_conf() => {
                let source = format!("nameserver in {}", flags.resolv_conf.display());
                dns_servers(&source, resolv_conf_servers(text).into_iter())?
            }
            (None, _) => (Vec::new(), Vec::new()),
        };
        let redirect_dns = flags.redirect_dns
            && (flags.capture_all_dns || !dns_servers_v4.is_empty() || !dns_servers_v6.is_empty());

        Ok(CaptureConfig {
            proxy_port: port("-p/--envoy-port", &flags.envoy_port)?,
            inbound_capture_port: port("-z/--inbound-capture-port", &flags.inbound_capture_port)?,
            inbound_tunnel_port: port("-e/--inbound-tunnel-port", &flags.inbound_tunnel_port)?,
            proxy_uids,
            proxy_gids,
            mode,
            tproxy_mark: number("-t/--istio-inbound-tproxy-mark", &flags.inbound_tproxy_mark)?,
            tproxy_route_table: number(
                "-r/--istio-inbound-tproxy-route-table",
                &flags.inbound_tproxy_route_table,
            )?,
            inbound_ports,
            inbound_ports_exclude: ports(
                "-d/--istio-local-exclude-ports",
                &flags.local_exclude_ports,
                PORT_LIST_FORM,
            )?,
            exclude_interfaces: interfaces(
                "-c/--istio-exclude-interfaces",
                &flags.exclude_interfaces,
            )?,
            outbound_include,
            outbound_exclude,
            outbound_ports_include: ports(
                "-q/--istio-outbound-ports",
                &flags.outbound_ports,
                PORT_LIST_FORM,
            )?,
            outbound_ports_exclude: ports(
                "-o/--istio-local-outbound-ports-exclude",
                &flags.local_outbound_ports_exclude,
                PORT_LIST_FORM,
            )?,
            kube_virt_interfaces: interfaces(
                "-k/--kube-virt-interfaces",
                &flags.kube_virt_interfaces,
            )?,
            redirect_dns,
            capture_all_dns: flags.capture_all_dns,
            drop_invalid: flags.drop_invalid,
            ipv6: flags.ipv6 || flags.dual_stack,
            dns_servers_v4,
            dns_servers_v6,
            owner_groups,
            host_ipv4_loopback,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iptables::flags::parse_istio_iptables_args;

    fn config(args: &[&str]) -> Result<CaptureConfig, ConfigError> {
        let flags = parse_istio_iptables_args(args).expect("flags parse");
        CaptureConfig::from_flags(&flags, None)
    }

    #[test]
    fn defaults_are_istios() {
        let c = config(&[]).expect("valid");
        assert_eq!(
            (c.proxy_port, c.inbound_capture_port, c.inbound_tunnel_port),
            (15001, 15006, 15008)
        );
        assert_eq!(c.proxy_uids, ["1337"]);
        assert_eq!(c.proxy_gids, ["1337"]);
        assert_eq!(c.mode, InterceptionMode::Redirect);
        assert_eq!((c.tproxy_mark, c.tproxy_route_table), (1337, 133));
        assert_eq!(c.inbound_ports, InboundPorts::List(vec![]));
        assert_eq!(c.outbound_include, OutboundRanges::List(vec![]));
        assert_eq!(c.owner_groups, OwnerGroups::AllExcept(vec![]));
        assert_eq!(c.host_ipv4_loopback.to_string(), "127.0.0.1/32");
        assert!(!c.ipv6 && !c.redirect_dns);
    }

    #[test]
    fn wildcards_and_empty_strings() {
        let c = config(&["-b", "*", "-i", "*", "-x", "", "-d", ""]).expect("valid");
        assert_eq!(c.inbound_ports, InboundPorts::All);
        assert_eq!(c.outbound_include, OutboundRanges::All);
        assert!(c.outbound_exclude.is_empty() && c.inbound_ports_exclude.is_empty());
    }

    #[test]
    fn bad_values_name_flag_value_and_form() {
        let cases: &[(&[&str], &str)] = &[
            (&["-p", "70000"], "-p/--envoy-port"),
            (&["-z", "abc"], "-z/--inbound-capture-port"),
            (&["-b", "80,x"], "-b/--istio-inbound-ports"),
            (&["-d", "0"], "-d/--istio-local-exclude-ports"),
            (&["-i", "10.0.0.0/33"], "-i/--istio-service-cidr"),
            (&["-i", "10.0.0.0"], "-i/--istio-service-cidr"),
            (&["-x", "2001:db8::/129"], "-x/--istio-service-exclude-cidr"),
            (&["-x", "2001:zz8::/32"], "-x/--istio-service-exclude-cidr"),
            (&["-x", "*"], "-x/--istio-service-exclude-cidr"),
            (&["-m", "tproxy"], "-m/--istio-inbound-interception-mode"),
            (&["-t", "-1"], "-t/--istio-inbound-tproxy-mark"),
            (&["-c", "eth0/1"], "-c/--istio-exclude-interfaces"),
            (&["-u", ""], "-u/--proxy-uid"),
            (&["--dns-servers", "1.2.3"], "--dns-servers"),
            (
                &["--host-ipv4-loopback-cidr", "10.0.0.1/8"],
                "--host-ipv4-loopback-cidr",
            ),
        ];
        for (args, flag) in cases {
            let err = config(args).expect_err("refused");
            assert_eq!(err.flag, *flag, "{args:?}");
            assert!(err.to_string().contains(flag), "{err}");
            assert!(err.to_string().contains("expected"), "{err}");
        }
    }

    #[test]
    fn dns_servers_come_from_resolv_conf_only_when_needed() {
        let text =
            "# comment\nsearch svc.cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\n";
        let flags = parse_istio_iptables_args(["--redirect-dns"]).expect("parses");
        let c = CaptureConfig::from_flags(&flags, Some(text)).expect("valid");
        assert_eq!(c.dns_servers_v4, ["10.96.0.10"]);
        assert_eq!(c.dns_servers_v6, ["fd00::a"]);
        assert!(c.redirect_dns);

        let flags = parse_istio_iptables_args(["--redirect-dns"]).expect("parses");
        let c = CaptureConfig::from_flags(&flags, Some("")).expect("valid");
        assert!(!c.redirect_dns, "nothing to capture turns DNS capture off");

        let bad_text = "nameserver not-an-ip\n";
        let err = CaptureConfig::from_flags(&flags, Some(bad_text)).expect_err("refused");
        assert!(err.flag.contains("resolv.conf"), "{err}");
    }
}

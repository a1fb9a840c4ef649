//! Pure rule generation: a [`CaptureConfig`] in, Istio's chains and rules
//! out, in Istio's order (facts from `tools/istio-iptables/pkg/capture/run.go`;
//! the conformance goldens in `../shared/conformance/istio-iptables` pin it).
//!
//! Chains: `ISTIO_INBOUND`, `ISTIO_REDIRECT`, `ISTIO_IN_REDIRECT`,
//! `ISTIO_OUTPUT` in `nat`; `ISTIO_DIVERT`/`ISTIO_TPROXY` in `mangle` for
//! TPROXY; `ISTIO_OUTPUT_DNS` (and `ISTIO_INBOUND` in `raw`) for DNS capture;
//! `ISTIO_DROP` in `mangle` for `--drop-invalid`.

use super::config::{
    CaptureConfig, Cidr, InboundPorts, InterceptionMode, OutboundRanges, OwnerGroups,
};
use super::rules::{Position, Rule, RuleSet, Table};

const INBOUND: &str = "ISTIO_INBOUND";
const REDIRECT: &str = "ISTIO_REDIRECT";
const IN_REDIRECT: &str = "ISTIO_IN_REDIRECT";
const OUTPUT: &str = "ISTIO_OUTPUT";
const OUTPUT_DNS: &str = "ISTIO_OUTPUT_DNS";
const DIVERT: &str = "ISTIO_DIVERT";
const TPROXY: &str = "ISTIO_TPROXY";
const DROP: &str = "ISTIO_DROP";
/// The agent's DNS proxy port.
const DNS_PROXY_PORT: &str = "15053";
/// The mark the proxy's outbound-to-inbound loopback traffic carries in TPROXY mode.
const OUTBOUND_MARK: &str = "1338";
/// The source address of the proxy's inbound passthrough connections.
const INBOUND_PASSTHROUGH_V4: &str = "127.0.0.6/32";
const INBOUND_PASSTHROUGH_V6: &str = "::6/128";
const LOOPBACK_V6: &str = "::1/128";

/// Collects rules for both families, in the order they are added.
struct Builder {
    set: RuleSet,
}

impl Builder {
    fn push_v4(&mut self, table: Table, chain: &str, position: Position, args: &[&str]) {
        self.set.v4.push(rule(table, chain, position, args));
    }

    fn push_v6(&mut self, table: Table, chain: &str, position: Position, args: &[&str]) {
        if self.set.ipv6 {
            self.set.v6.push(rule(table, chain, position, args));
        }
    }

    fn append(&mut self, table: Table, chain: &str, args: &[&str]) {
        self.push_v4(table, chain, Position::Append, args);
        self.push_v6(table, chain, Position::Append, args);
    }

    fn append_v4(&mut self, table: Table, chain: &str, args: &[&str]) {
        self.push_v4(table, chain, Position::Append, args);
    }

    fn append_v6(&mut self, table: Table, chain: &str, args: &[&str]) {
        self.push_v6(table, chain, Position::Append, args);
    }

    fn insert(&mut self, table: Table, chain: &str, at: u32, args: &[&str]) {
        self.push_v4(table, chain, Position::Insert(at), args);
        self.push_v6(table, chain, Position::Insert(at), args);
    }

    /// A rule with one family-specific address: `ADDR` in `args` stands for `v4` or `v6`.
    fn append_versioned(&mut self, v4: &str, v6: &str, table: Table, chain: &str, args: &[&str]) {
        fn with<'a>(args: &[&'a str], addr: &'a str) -> Vec<&'a str> {
            args.iter()
                .map(|a| if *a == ADDR { addr } else { *a })
                .collect()
        }
        let (a4, a6) = (with(args, v4), with(args, v6));
        self.push_v4(table, chain, Position::Append, &a4);
        self.push_v6(table, chain, Position::Append, &a6);
    }

    /// Appends to the family a range belongs to.
    fn append_for(&mut self, cidr: &Cidr, table: Table, chain: &str, args: &[&str]) {
        if cidr.is_v4() {
            self.append_v4(table, chain, args);
        } else {
            self.append_v6(table, chain, args);
        }
    }

    fn insert_for(&mut self, cidr: &Cidr, table: Table, chain: &str, at: u32, args: &[&str]) {
        if cidr.is_v4() {
            self.push_v4(table, chain, Position::Insert(at), args);
        } else {
            self.push_v6(table, chain, Position::Insert(at), args);
        }
    }
}

/// Placeholder for the family-specific address in [`Builder::append_versioned`].
const ADDR: &str = "\u{0}ADDR";

fn rule(table: Table, chain: &str, position: Position, args: &[&str]) -> Rule {
    Rule {
        table,
        chain: chain.to_owned(),
        position,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    }
}

/// Generates the capture rules for a configuration. Pure and deterministic.
pub fn generate(cfg: &CaptureConfig) -> RuleSet {
    let mut b = Builder {
        set: RuleSet {
            ipv6: cfg.ipv6,
            ..RuleSet::default()
        },
    };
    let tproxy = cfg.mode == InterceptionMode::Tproxy;
    let mark = cfg.tproxy_mark.to_string();
    let proxy_port = cfg.proxy_port.to_string();
    let capture_port = cfg.inbound_capture_port.to_string();
    let tunnel_port = cfg.inbound_tunnel_port.to_string();
    let loopback_v4 = cfg.host_ipv4_loopback.to_string();

    // Excluded interfaces: neither inbound nor outbound traffic is captured.
    for nic in &cfg.exclude_interfaces {
        b.append(Table::Nat, "PREROUTING", &["-i", nic, "-j", "RETURN"]);
        b.append(Table::Nat, "OUTPUT", &["-o", nic, "-j", "RETURN"]);
    }
    if tproxy {
        for nic in &cfg.exclude_interfaces {
            b.append(Table::Mangle, "PREROUTING", &["-i", nic, "-j", "RETURN"]);
            b.append(Table::Mangle, "OUTPUT", &["-o", nic, "-j", "RETURN"]);
        }
    }

    // Virtual interfaces are not captured inbound (their traffic is outbound).
    for nic in &cfg.kube_virt_interfaces {
        b.insert(Table::Nat, "PREROUTING", 1, &["-i", nic, "-j", "RETURN"]);
    }

    if cfg.drop_invalid {
        b.append(
            Table::Mangle,
            "PREROUTING",
            &["-m", "conntrack", "--ctstate", "INVALID", "-j", DROP],
        );
        b.append(Table::Mangle, DROP, &["-j", "DROP"]);
    }

    b.append(
        Table::Nat,
        INBOUND,
        &["-p", "tcp", "--dport", &tunnel_port, "-j", "RETURN"],
    );
    b.append(
        Table::Nat,
        REDIRECT,
        &["-p", "tcp", "-j", "REDIRECT", "--to-ports", &proxy_port],
    );
    b.append(
        Table::Nat,
        IN_REDIRECT,
        &["-p", "tcp", "-j", "REDIRECT", "--to-ports", &capture_port],
    );

    inbound_ports(&mut b, cfg, &mark, &capture_port, &loopback_v4);

    b.append(Table::Nat, "OUTPUT", &["-j", OUTPUT]);

    // Port exclusions come before the connections-back-to-self rules.
    for port in &cfg.outbound_ports_exclude {
        let port = port.to_string();
        b.append(
            Table::Nat,
            OUTPUT,
            &["-p", "tcp", "--dport", &port, "-j", "RETURN"],
        );
        b.append(
            Table::Nat,
            OUTPUT,
            &["-p", "udp", "--dport", &port, "-j", "RETURN"],
        );
    }

    b.append_versioned(
        INBOUND_PASSTHROUGH_V4,
        INBOUND_PASSTHROUGH_V6,
        Table::Nat,
        OUTPUT,
        &["-o", "lo", "-s", ADDR, "-j", "RETURN"],
    );

    let include_has_loopback = match &cfg.outbound_include {
        OutboundRanges::All => false,
        OutboundRanges::List(list) => list.iter().any(|c| c.addr.is_loopback()),
    };
    let dns_ports = format!("53,{tunnel_port}");
    for (owner_flag, owners) in [
        ("--uid-owner", &cfg.proxy_uids),
        ("--gid-owner", &cfg.proxy_gids),
    ] {
        for owner in owners {
            // App calls back to itself through a service VIP go through the proxy inbound.
            // With DNS capture the uid rule also skips port 53 (Istio only does it for uids).
            if cfg.redirect_dns && owner_flag == "--uid-owner" {
                b.append_versioned(
                    &loopback_v4,
                    LOOPBACK_V6,
                    Table::Nat,
                    OUTPUT,
                    &[
                        "-o",
                        "lo",
                        "!",
                        "-d",
                        ADDR,
                        "-p",
                        "tcp",
                        "-m",
                        "multiport",
                        "!",
                        "--dports",
                        &dns_ports,
                        "-m",
                        "owner",
                        owner_flag,
                        owner,
                        "-j",
                        IN_REDIRECT,
                    ],
                );
            } else {
                b.append_versioned(
                    &loopback_v4,
                    LOOPBACK_V6,
                    Table::Nat,
                    OUTPUT,
                    &[
                        "-o",
                        "lo",
                        "!",
                        "-d",
                        ADDR,
                        "-p",
                        "tcp",
                        "!",
                        "--dport",
                        &tunnel_port,
                        "-m",
                        "owner",
                        owner_flag,
                        owner,
                        "-j",
                        IN_REDIRECT,
                    ],
                );
            }
            // App-to-self over the endpoint address stays direct, unless loopback is captured.
            if !include_has_loopback {
                if cfg.redirect_dns {
                    b.append(
                        Table::Nat,
                        OUTPUT,
                        &[
                            "-o", "lo", "-p", "tcp", "!", "--dport", "53", "-m", "owner", "!",
                            owner_flag, owner, "-j", "RETURN",
                        ],
                    );
                } else {
                    b.append(
                        Table::Nat,
                        OUTPUT,
                        &[
                            "-o", "lo", "-m", "owner", "!", owner_flag, owner, "-j", "RETURN",
                        ],
                    );
                }
            }
            // The proxy's own traffic is never redirected (no loops).
            b.append(
                Table::Nat,
                OUTPUT,
                &["-m", "owner", owner_flag, owner, "-j", "RETURN"],
            );
        }
    }

    match &cfg.owner_groups {
        OwnerGroups::AllExcept(groups) => {
            for group in groups {
                b.append(
                    Table::Nat,
                    OUTPUT,
                    &["-m", "owner", "--gid-owner", group, "-j", "RETURN"],
                );
            }
        }
        OwnerGroups::Only(groups) => {
            let mut args: Vec<&str> = Vec::new();
            for group in groups {
                args.extend(["-m", "owner", "!", "--gid-owner", group.as_str()]);
            }
            args.extend(["-j", "RETURN"]);
            b.append(Table::Nat, OUTPUT, &args);
        }
    }

    if cfg.redirect_dns {
        dns(&mut b, cfg);
    }

    // Envoy-aware applications and container-to-container traffic use localhost.
    b.append_versioned(
        &loopback_v4,
        LOOPBACK_V6,
        Table::Nat,
        OUTPUT,
        &["-d", ADDR, "-j", "RETURN"],
    );
    for cidr in cfg.outbound_exclude.iter().filter(|c| c.is_v4()) {
        b.append_v4(
            Table::Nat,
            OUTPUT,
            &["-d", &cidr.to_string(), "-j", "RETURN"],
        );
    }
    for cidr in cfg.outbound_exclude.iter().filter(|c| !c.is_v4()) {
        b.append_v6(
            Table::Nat,
            OUTPUT,
            &["-d", &cidr.to_string(), "-j", "RETURN"],
        );
    }

    for port in &cfg.outbound_ports_include {
        let port = port.to_string();
        b.append(
            Table::Nat,
            OUTPUT,
            &["-p", "tcp", "--dport", &port, "-j", REDIRECT],
        );
    }

    match &cfg.outbound_include {
        OutboundRanges::All => {
            b.append(Table::Nat, OUTPUT, &["-j", REDIRECT]);
            for nic in &cfg.kube_virt_interfaces {
                b.insert(Table::Nat, "PREROUTING", 1, &["-i", nic, "-j", REDIRECT]);
            }
        }
        OutboundRanges::List(list) => {
            // IPv4 ranges first, then IPv6, each family in the order given.
            let ordered = list
                .iter()
                .filter(|c| c.is_v4())
                .chain(list.iter().filter(|c| !c.is_v4()));
            for cidr in ordered {
                let dest = cidr.to_string();
                for nic in &cfg.kube_virt_interfaces {
                    b.insert_for(
                        cidr,
                        Table::Nat,
                        "PREROUTING",
                        1,
                        &["-i", nic, "-d", &dest, "-j", REDIRECT],
                    );
                }
                b.append_for(cidr, Table::Nat, OUTPUT, &["-d", &dest, "-j", REDIRECT]);
            }
        }
    }

    if tproxy {
        tproxy_marks(&mut b, cfg, &mark, &loopback_v4);
    }
    b.set
}

/// Inbound capture (`-b`, `-d`), in `nat` (REDIRECT) or `mangle` (TPROXY).
fn inbound_ports(
    b: &mut Builder,
    cfg: &CaptureConfig,
    mark: &str,
    capture_port: &str,
    loopback_v4: &str,
) {
    let tproxy = cfg.mode == InterceptionMode::Tproxy;
    if cfg.inbound_ports == InboundPorts::List(Vec::new()) {
        return;
    }
    let table = if tproxy {
        // Marked packets are routed to loopback, where the proxy listens transparently.
        b.append(Table::Mangle, DIVERT, &["-j", "MARK", "--set-mark", mark]);
        b.append(Table::Mangle, DIVERT, &["-j", "ACCEPT"]);
        let tproxy_mark = format!("{mark}/0xffffffff");
        b.append_versioned(
            loopback_v4,
            LOOPBACK_V6,
            Table::Mangle,
            TPROXY,
            &[
                "!",
                "-d",
                ADDR,
                "-p",
                "tcp",
                "-j",
                "TPROXY",
                "--tproxy-mark",
                &tproxy_mark,
                "--on-port",
                capture_port,
            ],
        );
        Table::Mangle
    } else {
        Table::Nat
    };
    b.append(table, "PREROUTING", &["-p", "tcp", "-j", INBOUND]);

    match &cfg.inbound_ports {
        InboundPorts::All => {
            for port in &cfg.inbound_ports_exclude {
                let port = port.to_string();
                b.append(
                    table,
                    INBOUND,
                    &["-p", "tcp", "--dport", &port, "-j", "RETURN"],
                );
            }
            if tproxy {
                b.append(
                    Table::Mangle,
                    INBOUND,
                    &[
                        "-p",
                        "tcp",
                        "-m",
                        "conntrack",
                        "--ctstate",
                        "RELATED,ESTABLISHED",
                        "-j",
                        DIVERT,
                    ],
                );
                b.append(Table::Mangle, INBOUND, &["-p", "tcp", "-j", TPROXY]);
            } else {
                b.append(Table::Nat, INBOUND, &["-p", "tcp", "-j", IN_REDIRECT]);
            }
        }
        InboundPorts::List(ports) => {
            for port in ports {
                let port = port.to_string();
                if tproxy {
                    b.append(
                        Table::Mangle,
                        INBOUND,
                        &[
                            "-p",
                            "tcp",
                            "--dport",
                            &port,
                            "-m",
                            "conntrack",
                            "--ctstate",
                            "RELATED,ESTABLISHED",
                            "-j",
                            DIVERT,
                        ],
                    );
                    b.append(
                        Table::Mangle,
                        INBOUND,
                        &["-p", "tcp", "--dport", &port, "-j", TPROXY],
                    );
                } else {
                    b.append(
                        Table::Nat,
                        INBOUND,
                        &["-p", "tcp", "--dport", &port, "-j", IN_REDIRECT],
                    );
                }
            }
        }
    }
}

/// DNS capture: redirect to the agent's DNS proxy, and split DNS conntrack
/// into two zones (proxy <-> upstream, app <-> proxy).
fn dns(b: &mut Builder, cfg: &CaptureConfig) {
    b.append(Table::Raw, "OUTPUT", &["-j", OUTPUT_DNS]);
    if cfg.capture_all_dns || !cfg.dns_servers_v4.is_empty() {
        b.append_v4(Table::Nat, OUTPUT, &["-j", OUTPUT_DNS]);
    }
    if cfg.capture_all_dns || !cfg.dns_servers_v6.is_empty() {
        b.append_v6(Table::Nat, OUTPUT, &["-j", OUTPUT_DNS]);
    }
    let v4: Vec<String> = cfg
        .dns_servers_v4
        .iter()
        .map(|s| format!("{s}/32"))
        .collect();
    let v6: Vec<String> = cfg
        .dns_servers_v6
        .iter()
        .map(|s| format!("{s}/128"))
        .collect();

    for (proto, to_ports) in [("tcp", "--to-ports"), ("udp", "--to-port")] {
        if cfg.capture_all_dns {
            b.append(
                Table::Nat,
                OUTPUT_DNS,
                &[
                    "-p",
                    proto,
                    "--dport",
                    "53",
                    "-j",
                    "REDIRECT",
                    to_ports,
                    DNS_PROXY_PORT,
                ],
            );
        } else {
            for server in &v4 {
                b.append_v4(
                    Table::Nat,
                    OUTPUT_DNS,
                    &[
                        "-p",
                        proto,
                        "--dport",
                        "53",
                        "-d",
                        server,
                        "-j",
                        "REDIRECT",
                        to_ports,
                        DNS_PROXY_PORT,
                    ],
                );
            }
            for server in &v6 {
                b.append_v6(
                    Table::Nat,
                    OUTPUT_DNS,
                    &[
                        "-p",
                        proto,
                        "--dport",
                        "53",
                        "-d",
                        server,
                        "-j",
                        "REDIRECT",
                        to_ports,
                        DNS_PROXY_PORT,
                    ],
                );
            }
        }
    }

    for (owner_flag, owners) in [
        ("--uid-owner", &cfg.proxy_uids),
        ("--gid-owner", &cfg.proxy_gids),
    ] {
        for owner in owners {
            b.append(
                Table::Raw,
                OUTPUT_DNS,
                &[
                    "-p", "udp", "--dport", "53", "-m", "owner", owner_flag, owner, "-j", "CT",
                    "--zone", "1",
                ],
            );
            b.append(
                Table::Raw,
                OUTPUT_DNS,
                &[
                    "-p",
                    "udp",
                    "--sport",
                    DNS_PROXY_PORT,
                    "-m",
                    "owner",
                    owner_flag,
                    owner,
                    "-j",
                    "CT",
                    "--zone",
                    "2",
                ],
            );
        }
    }

    if cfg.capture_all_dns {
        b.append(Table::Raw, "PREROUTING", &["-j", INBOUND]);
        b.append(
            Table::Raw,
            OUTPUT_DNS,
            &["-p", "udp", "--dport", "53", "-j", "CT", "--zone", "2"],
        );
        b.append(
            Table::Raw,
            INBOUND,
            &["-p", "udp", "--sport", "53", "-j", "CT", "--zone", "1"],
        );
        return;
    }
    if !v4.is_empty() {
        b.append_v4(Table::Raw, "PREROUTING", &["-j", INBOUND]);
    }
    for server in &v4 {
        b.append_v4(
            Table::Raw,
            OUTPUT_DNS,
            &[
                "-p", "udp", "--dport", "53", "-d", server, "-j", "CT", "--zone", "2",
            ],
        );
        b.append_v4(
            Table::Raw,
            INBOUND,
            &[
                "-p", "udp", "--sport", "53", "-s", server, "-j", "CT", "--zone", "1",
            ],
        );
    }
    if !v6.is_empty() {
        b.append_v6(Table::Raw, "PREROUTING", &["-j", INBOUND]);
    }
    for server in &v6 {
        b.append_v6(
            Table::Raw,
            OUTPUT_DNS,
            &[
                "-p", "udp", "--dport", "53", "-d", server, "-j", "CT", "--zone", "2",
            ],
        );
        b.append_v6(
            Table::Raw,
            INBOUND,
            &[
                "-p", "udp", "--sport", "53", "-s", server, "-j", "CT", "--zone", "1",
            ],
        );
    }
}

/// TPROXY bookkeeping in `mangle`: keep the proxy's marks on the connection
/// and never capture the proxy's own loopback traffic inbound.
fn tproxy_marks(b: &mut Builder, cfg: &CaptureConfig, mark: &str, loopback_v4: &str) {
    b.append(
        Table::Mangle,
        "PREROUTING",
        &[
            "-p",
            "tcp",
            "-m",
            "mark",
            "--mark",
            mark,
            "-j",
            "CONNMARK",
            "--save-mark",
        ],
    );
    b.append(
        Table::Mangle,
        "OUTPUT",
        &[
            "-p", "tcp", "-o", "lo", "-m", "mark", "--mark", mark, "-j", "RETURN",
        ],
    );
    for (owner_flag, owners) in [
        ("--uid-owner", &cfg.proxy_uids),
        ("--gid-owner", &cfg.proxy_gids),
    ] {
        for owner in owners {
            b.append_versioned(
                loopback_v4,
                LOOPBACK_V6,
                Table::Mangle,
                "OUTPUT",
                &[
                    "!",
                    "-d",
                    ADDR,
                    "-p",
                    "tcp",
                    "-o",
                    "lo",
                    "-m",
                    "owner",
                    owner_flag,
                    owner,
                    "-j",
                    "MARK",
                    "--set-mark",
                    OUTBOUND_MARK,
                ],
            );
        }
    }
    b.append(
        Table::Mangle,
        "OUTPUT",
        &[
            "-p",
            "tcp",
            "-m",
            "connmark",
            "--mark",
            mark,
            "-j",
            "CONNMARK",
            "--restore-mark",
        ],
    );
    b.insert(
        Table::Mangle,
        INBOUND,
        1,
        &["-p", "tcp", "-m", "mark", "--mark", mark, "-j", "RETURN"],
    );
    b.push_v4(
        Table::Mangle,
        INBOUND,
        Position::Insert(2),
        &[
            "-p",
            "tcp",
            "-s",
            INBOUND_PASSTHROUGH_V4,
            "-i",
            "lo",
            "-j",
            "RETURN",
        ],
    );
    b.push_v6(
        Table::Mangle,
        INBOUND,
        Position::Insert(2),
        &[
            "-p",
            "tcp",
            "-s",
            INBOUND_PASSTHROUGH_V6,
            "-i",
            "lo",
            "-j",
            "RETURN",
        ],
    );
    b.insert(
        Table::Mangle,
        INBOUND,
        3,
        &[
            "-p",
            "tcp",
            "-i",
            "lo",
            "-m",
            "mark",
            "!",
            "--mark",
            OUTBOUND_MARK,
            "-j",
            "RETURN",
        ],
    );
}

//! DNS capture (`--redirect-dns`): DNS to the configured servers (or all
//! port-53 traffic with `--capture-all-dns`) is redirected to the agent's DNS
//! proxy, and UDP DNS conntrack is split in two zones (proxy <-> upstream,
//! app <-> proxy) so that the two legs never collide.

use super::super::config::CaptureConfig;
use super::super::rules::Table;
use super::{Builder, DNS_PROXY_PORT, INBOUND, OUTPUT, OUTPUT_DNS};

/// Adds the DNS rules (only called when DNS capture is on).
pub fn dns(b: &mut Builder, cfg: &CaptureConfig) {
    let all = cfg.capture_all_dns;
    b.append(Table::Raw, "OUTPUT", &format!("-j {OUTPUT_DNS}"));
    // The nat jump only where that family has something to capture.
    if all || !cfg.dns_servers_v4.is_empty() {
        b.append_v4(Table::Nat, OUTPUT, &format!("-j {OUTPUT_DNS}"));
    }
    if all || !cfg.dns_servers_v6.is_empty() {
        b.append_v6(Table::Nat, OUTPUT, &format!("-j {OUTPUT_DNS}"));
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

    // Istio writes --to-ports for TCP and --to-port for UDP (iptables takes both).
    for (proto, to_ports) in [("tcp", "--to-ports"), ("udp", "--to-port")] {
        let redirect = format!("-j REDIRECT {to_ports} {DNS_PROXY_PORT}");
        if all {
            let spec = format!("-p {proto} --dport 53 {redirect}");
            b.append(Table::Nat, OUTPUT_DNS, &spec);
            continue;
        }
        for server in &v4 {
            let spec = format!("-p {proto} --dport 53 -d {server} {redirect}");
            b.append_v4(Table::Nat, OUTPUT_DNS, &spec);
        }
        for server in &v6 {
            let spec = format!("-p {proto} --dport 53 -d {server} {redirect}");
            b.append_v6(Table::Nat, OUTPUT_DNS, &spec);
        }
    }

    let owners = [
        ("--uid-owner", &cfg.proxy_uids),
        ("--gid-owner", &cfg.proxy_gids),
    ];
    for (match_flag, ids) in owners {
        for id in ids {
            let owner = format!("-m owner {match_flag} {id}");
            // The proxy's queries upstream: zone 1; its answers to apps: zone 2.
            let upstream = format!("-p udp --dport 53 {owner} -j CT --zone 1");
            b.append(Table::Raw, OUTPUT_DNS, &upstream);
            let answers = format!("-p udp --sport {DNS_PROXY_PORT} {owner} -j CT --zone 2");
            b.append(Table::Raw, OUTPUT_DNS, &answers);
        }
    }

    // Apps' queries: zone 2; upstream answers: zone 1.
    if all {
        b.append(Table::Raw, "PREROUTING", &format!("-j {INBOUND}"));
        b.append(Table::Raw, OUTPUT_DNS, "-p udp --dport 53 -j CT --zone 2");
        b.append(Table::Raw, INBOUND, "-p udp --sport 53 -j CT --zone 1");
        return;
    }
    if !v4.is_empty() {
        b.append_v4(Table::Raw, "PREROUTING", &format!("-j {INBOUND}"));
    }
    for server in &v4 {
        let query = format!("-p udp --dport 53 -d {server} -j CT --zone 2");
        b.append_v4(Table::Raw, OUTPUT_DNS, &query);
        let answer = format!("-p udp --sport 53 -s {server} -j CT --zone 1");
        b.append_v4(Table::Raw, INBOUND, &answer);
    }
    if !v6.is_empty() {
        b.append_v6(Table::Raw, "PREROUTING", &format!("-j {INBOUND}"));
    }
    for server in &v6 {
        let query = format!("-p udp --dport 53 -d {server} -j CT --zone 2");
        b.append_v6(Table::Raw, OUTPUT_DNS, &query);
        let answer = format!("-p udp --sport 53 -s {server} -j CT --zone 1");
        b.append_v6(Table::Raw, INBOUND, &answer);
    }
}

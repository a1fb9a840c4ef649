//! Outbound capture in `nat` `ISTIO_OUTPUT`: what is never redirected (the
//! proxy's own traffic, app-to-self traffic, excluded ports, groups and
//! destinations), then what is (`-q` ports, `-i` destinations).

use super::super::config::{CaptureConfig, OutboundRanges, OwnerGroups};
use super::super::rules::{Position, Table};
use super::{
    ADDR, Builder, IN_REDIRECT, INBOUND_PASSTHROUGH_V4, INBOUND_PASSTHROUGH_V6, LOOPBACK_V6,
    OUTPUT, REDIRECT,
};

/// Port exclusions, the inbound passthrough source, and per proxy uid/gid:
/// app calls to itself through a service VIP go through the proxy inbound,
/// app-to-self over the pod address stays direct, the proxy's own traffic is
/// never redirected.
pub fn proxy_and_self_traffic(b: &mut Builder, cfg: &CaptureConfig) {
    // Port exclusions come before the connections-back-to-self rules.
    for port in &cfg.outbound_ports_exclude {
        b.append(
            Table::Nat,
            OUTPUT,
            &format!("-p tcp --dport {port} -j RETURN"),
        );
        b.append(
            Table::Nat,
            OUTPUT,
            &format!("-p udp --dport {port} -j RETURN"),
        );
    }
    b.append_versioned(
        INBOUND_PASSTHROUGH_V4,
        INBOUND_PASSTHROUGH_V6,
        Table::Nat,
        OUTPUT,
        &format!("-o lo -s {ADDR} -j RETURN"),
    );

    // Loopback explicitly captured (`-i 127.0.0.1/32`): app-to-self is redirected too.
    let include_has_loopback = match &cfg.outbound_include {
        OutboundRanges::All => false,
        OutboundRanges::List(list) => list.iter().any(|c| c.addr.is_loopback()),
    };
    let loopback_v4 = cfg.host_ipv4_loopback.to_string();
    let tunnel = cfg.inbound_tunnel_port;
    let owners = [
        ("--uid-owner", &cfg.proxy_uids),
        ("--gid-owner", &cfg.proxy_gids),
    ];
    for (match_flag, ids) in owners {
        for id in ids {
            let owner = format!("-m owner {match_flag} {id}");
            // With DNS capture, Istio's uid rule (not the gid one) also leaves port 53 alone.
            let ports = if cfg.redirect_dns && match_flag == "--uid-owner" {
                format!("-m multiport ! --dports 53,{tunnel}")
            } else {
                format!("! --dport {tunnel}")
            };
            b.append_versioned(
                &loopback_v4,
                LOOPBACK_V6,
                Table::Nat,
                OUTPUT,
                &format!("-o lo ! -d {ADDR} -p tcp {ports} {owner} -j {IN_REDIRECT}"),
            );
            if !include_has_loopback {
                let not_dns = if cfg.redirect_dns {
                    "-p tcp ! --dport 53 "
                } else {
                    ""
                };
                let not_owner = format!("-m owner ! {match_flag} {id}");
                b.append(
                    Table::Nat,
                    OUTPUT,
                    &format!("-o lo {not_dns}{not_owner} -j RETURN"),
                );
            }
            b.append(Table::Nat, OUTPUT, &format!("{owner} -j RETURN"));
        }
    }
}

/// `--outbound-owner-groups` / `--outbound-owner-groups-exclude`.
pub fn owner_groups(b: &mut Builder, cfg: &CaptureConfig) {
    match &cfg.owner_groups {
        OwnerGroups::AllExcept(groups) => {
            for group in groups {
                b.append(
                    Table::Nat,
                    OUTPUT,
                    &format!("-m owner --gid-owner {group} -j RETURN"),
                );
            }
        }
        OwnerGroups::Only(groups) => {
            let none_of: Vec<String> = groups
                .iter()
                .map(|g| format!("-m owner ! --gid-owner {g}"))
                .collect();
            let spec = none_of.into_iter().chain(["-j RETURN".to_owned()]);
            b.append(Table::Nat, OUTPUT, &spec.collect::<Vec<_>>().join(" "));
        }
    }
}

/// Localhost and `-x` destinations return; `-q` ports and `-i` destinations
/// (and, for those, the `-k` virtual interfaces) are redirected.
pub fn destinations(b: &mut Builder, cfg: &CaptureConfig) {
    // Envoy-aware applications and container-to-container traffic use localhost.
    let loopback_v4 = cfg.host_ipv4_loopback.to_string();
    let spec = format!("-d {ADDR} -j RETURN");
    b.append_versioned(&loopback_v4, LOOPBACK_V6, Table::Nat, OUTPUT, &spec);
    // Each range goes to its own family's rules.
    for cidr in &cfg.outbound_exclude {
        let spec = format!("-d {cidr} -j RETURN");
        b.push_for(cidr, Table::Nat, OUTPUT, Position::Append, &spec);
    }

    for port in &cfg.outbound_ports_include {
        b.append(
            Table::Nat,
            OUTPUT,
            &format!("-p tcp --dport {port} -j {REDIRECT}"),
        );
    }

    match &cfg.outbound_include {
        OutboundRanges::All => {
            b.append(Table::Nat, OUTPUT, &format!("-j {REDIRECT}"));
            for nic in &cfg.kube_virt_interfaces {
                let spec = format!("-i {nic} -j {REDIRECT}");
                b.insert(Table::Nat, "PREROUTING", 1, &spec);
            }
        }
        OutboundRanges::List(list) => {
            for cidr in list {
                for nic in &cfg.kube_virt_interfaces {
                    let spec = format!("-i {nic} -d {cidr} -j {REDIRECT}");
                    b.push_for(cidr, Table::Nat, "PREROUTING", Position::Insert(1), &spec);
                }
                let spec = format!("-d {cidr} -j {REDIRECT}");
                b.push_for(cidr, Table::Nat, OUTPUT, Position::Append, &spec);
            }
        }
    }
}

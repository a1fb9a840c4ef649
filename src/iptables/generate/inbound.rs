//! Inbound capture (`-b`, `-d`): `nat` REDIRECT to the inbound capture port,
//! or in TPROXY mode `mangle` rules that mark and divert to it.

use super::super::config::{CaptureConfig, InboundPorts, InterceptionMode};
use super::super::rules::Table;
use super::{ADDR, Builder, DIVERT, IN_REDIRECT, INBOUND, LOOPBACK_V6, TPROXY};

/// Adds the inbound rules (none when `-b` is empty).
pub fn inbound_ports(b: &mut Builder, cfg: &CaptureConfig) {
    if cfg.inbound_ports == InboundPorts::List(Vec::new()) {
        return;
    }
    let tproxy = cfg.mode == InterceptionMode::Tproxy;
    let table = if tproxy {
        // Marked packets are routed to loopback, where the proxy listens transparently.
        let mark = cfg.tproxy_mark;
        b.append(Table::Mangle, DIVERT, &format!("-j MARK --set-mark {mark}"));
        b.append(Table::Mangle, DIVERT, "-j ACCEPT");
        let capture = cfg.inbound_capture_port;
        b.append_versioned(
            &cfg.host_ipv4_loopback.to_string(),
            LOOPBACK_V6,
            Table::Mangle,
            TPROXY,
            &format!(
                "! -d {ADDR} -p tcp -j TPROXY --tproxy-mark {mark}/0xffffffff --on-port {capture}"
            ),
        );
        Table::Mangle
    } else {
        Table::Nat
    };
    b.append(table, "PREROUTING", &format!("-p tcp -j {INBOUND}"));

    match &cfg.inbound_ports {
        InboundPorts::All => {
            for port in &cfg.inbound_ports_exclude {
                b.append(table, INBOUND, &format!("-p tcp --dport {port} -j RETURN"));
            }
            if tproxy {
                let established = "-p tcp -m conntrack --ctstate RELATED,ESTABLISHED";
                b.append(
                    Table::Mangle,
                    INBOUND,
                    &format!("{established} -j {DIVERT}"),
                );
                b.append(Table::Mangle, INBOUND, &format!("-p tcp -j {TPROXY}"));
            } else {
                b.append(Table::Nat, INBOUND, &format!("-p tcp -j {IN_REDIRECT}"));
            }
        }
        InboundPorts::List(ports) => {
            for port in ports {
                if tproxy {
                    let established =
                        format!("-p tcp --dport {port} -m conntrack --ctstate RELATED,ESTABLISHED");
                    b.append(
                        Table::Mangle,
                        INBOUND,
                        &format!("{established} -j {DIVERT}"),
                    );
                    let new = format!("-p tcp --dport {port} -j {TPROXY}");
                    b.append(Table::Mangle, INBOUND, &new);
                } else {
                    let redirect = format!("-p tcp --dport {port} -j {IN_REDIRECT}");
                    b.append(Table::Nat, INBOUND, &redirect);
                }
            }
        }
    }
}

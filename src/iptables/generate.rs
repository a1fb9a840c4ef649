//! Pure rule generation: a [`CaptureConfig`] in, Istio's chains and rules
//! out, in Istio's order (facts from `tools/istio-iptables/pkg/capture/run.go`;
//! the conformance goldens in `../shared/conformance/istio-iptables` pin it).
//!
//! Chains: `ISTIO_INBOUND`, `ISTIO_REDIRECT`, `ISTIO_IN_REDIRECT`,
//! `ISTIO_OUTPUT` in `nat`; `ISTIO_DIVERT`/`ISTIO_TPROXY` in `mangle` for
//! TPROXY; `ISTIO_OUTPUT_DNS` (and `ISTIO_INBOUND` in `raw`) for DNS capture;
//! `ISTIO_DROP` in `mangle` for `--drop-invalid`.
//!
//! Rules are written as iptables text (`"-p tcp -j RETURN"`) and split on
//! blanks: every value spliced in has been validated to contain none.

mod builder;
mod dns;
mod inbound;
mod outbound;
mod tproxy;

use super::config::{CaptureConfig, InterceptionMode};
use super::rules::{RuleSet, Table};
use builder::{ADDR, Builder};

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

/// Generates the capture rules for a configuration. Pure and deterministic.
pub fn generate(cfg: &CaptureConfig) -> RuleSet {
    let mut b = Builder::new(cfg.ipv6);
    let tproxy = cfg.mode == InterceptionMode::Tproxy;

    // Excluded interfaces: neither inbound nor outbound traffic is captured.
    let mut exclusion_tables = vec![Table::Nat];
    if tproxy {
        exclusion_tables.push(Table::Mangle);
    }
    for table in exclusion_tables {
        for nic in &cfg.exclude_interfaces {
            b.append(table, "PREROUTING", &format!("-i {nic} -j RETURN"));
            b.append(table, "OUTPUT", &format!("-o {nic} -j RETURN"));
        }
    }

    // Virtual interfaces are not captured inbound (their traffic is outbound).
    for nic in &cfg.kube_virt_interfaces {
        b.insert(Table::Nat, "PREROUTING", 1, &format!("-i {nic} -j RETURN"));
    }

    if cfg.drop_invalid {
        let jump = format!("-m conntrack --ctstate INVALID -j {DROP}");
        b.append(Table::Mangle, "PREROUTING", &jump);
        b.append(Table::Mangle, DROP, "-j DROP");
    }

    let tunnel = cfg.inbound_tunnel_port;
    b.append(
        Table::Nat,
        INBOUND,
        &format!("-p tcp --dport {tunnel} -j RETURN"),
    );
    let proxy = cfg.proxy_port;
    b.append(
        Table::Nat,
        REDIRECT,
        &format!("-p tcp -j REDIRECT --to-ports {proxy}"),
    );
    let capture = cfg.inbound_capture_port;
    b.append(
        Table::Nat,
        IN_REDIRECT,
        &format!("-p tcp -j REDIRECT --to-ports {capture}"),
    );

    inbound::inbound_ports(&mut b, cfg);

    b.append(Table::Nat, "OUTPUT", &format!("-j {OUTPUT}"));
    outbound::proxy_and_self_traffic(&mut b, cfg);
    outbound::owner_groups(&mut b, cfg);
    if cfg.redirect_dns {
        dns::dns(&mut b, cfg);
    }
    outbound::destinations(&mut b, cfg);

    if tproxy {
        tproxy::marks(&mut b, cfg);
    }
    b.finish()
}

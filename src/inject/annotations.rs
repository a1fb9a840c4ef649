//! The per-pod annotations that tune injection, and their validation, as
//! strict as Istio's (`pkg/kube/inject/validate.go`): a bad value is an
//! error naming the annotation, the value and the accepted form.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use super::InjectError;
use super::quantity;

/// `sidecar.istio.io/inject`.
pub const INJECT: &str = "sidecar.istio.io/inject";
/// `sidecar.istio.io/status`: what injection added.
pub const STATUS: &str = "sidecar.istio.io/status";
/// `proxy.istio.io/config`: per-pod ProxyConfig overrides.
pub const PROXY_CONFIG: &str = "proxy.istio.io/config";
/// `proxy.istio.io/overrides`: the user's own fields of injected containers.
pub const OVERRIDES: &str = "proxy.istio.io/overrides";
/// `sidecar.istio.io/interceptionMode`.
pub const INTERCEPTION_MODE: &str = "sidecar.istio.io/interceptionMode";
/// `status.sidecar.istio.io/port`.
pub const STATUS_PORT: &str = "status.sidecar.istio.io/port";
/// `sidecar.istio.io/nativeSidecar`.
pub const NATIVE_SIDECAR: &str = "sidecar.istio.io/nativeSidecar";
/// `sidecar.istio.io/rewriteAppHTTPProbers`.
pub const REWRITE_PROBERS: &str = "sidecar.istio.io/rewriteAppHTTPProbers";
/// `prometheus.istio.io/merge-metrics`.
pub const MERGE_METRICS: &str = "prometheus.istio.io/merge-metrics";

type Check = fn(&str) -> Result<(), &'static str>;

/// Every validated annotation with its check. The check returns the
/// accepted form when the value is bad.
const CHECKS: &[(&str, Check)] = &[
    (
        "traffic.sidecar.istio.io/includeOutboundIPRanges",
        include_ip_ranges,
    ),
    (
        "traffic.sidecar.istio.io/excludeOutboundIPRanges",
        exclude_ip_ranges,
    ),
    (
        "traffic.sidecar.istio.io/includeInboundPorts",
        include_inbound_ports,
    ),
    (
        "traffic.sidecar.istio.io/excludeInboundPorts",
        exclude_inbound_ports,
    ),
    (
        "traffic.sidecar.istio.io/includeOutboundPorts",
        include_outbound_ports,
    ),
    (
        "traffic.sidecar.istio.io/excludeOutboundPorts",
        exclude_outbound_ports,
    ),
    ("traffic.sidecar.istio.io/excludeInterfaces", interfaces),
    ("traffic.sidecar.istio.io/kubevirtInterfaces", interfaces),
    ("istio.io/reroute-virtual-interfaces", interfaces),
    (INTERCEPTION_MODE, interception_mode),
    ("sidecar.istio.io/proxyCPU", resource_quantity),
    ("sidecar.istio.io/proxyMemory", resource_quantity),
    ("sidecar.istio.io/proxyCPULimit", resource_quantity),
    ("sidecar.istio.io/proxyMemoryLimit", resource_quantity),
    ("sidecar.istio.io/proxyImage", image),
    ("sidecar.istio.io/logLevel", proxy_log_level),
    ("sidecar.istio.io/componentLogLevel", component_log_level),
    ("sidecar.istio.io/agentLogLevel", agent_log_level),
    (REWRITE_PROBERS, boolean),
    (NATIVE_SIDECAR, boolean),
    ("sidecar.istio.io/userVolume", json_object),
    ("sidecar.istio.io/userVolumeMount", json_object),
    (STATUS_PORT, status_port),
    (
        "readiness.status.sidecar.istio.io/initialDelaySeconds",
        uint32,
    ),
    ("readiness.status.sidecar.istio.io/periodSeconds", uint32),
    ("readiness.status.sidecar.istio.io/failureThreshold", uint32),
    (
        "readiness.status.sidecar.istio.io/applicationPorts",
        port_list,
    ),
    (PROXY_CONFIG, proxy_config),
    (MERGE_METRICS, boolean),
];

/// Validates every annotation that tunes injection.
pub fn validate(annotations: &BTreeMap<String, String>) -> Result<(), InjectError> {
    for (name, check) in CHECKS {
        if let Some(value) = annotations.get(*name) {
            check(value).map_err(|form| InjectError::annotation(name, value, form))?;
        }
    }
    Ok(())
}

fn csv(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim)
}

fn cidr(s: &str) -> bool {
    let Some((ip, len)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    len.parse::<u8>().is_ok_and(|l| l <= max)
}

fn cidr_list(value: &str) -> bool {
    value.trim().is_empty() || csv(value).all(cidr)
}

fn port(s: &str) -> bool {
    s.parse::<u16>().is_ok_and(|p| p > 0)
}

fn ports(value: &str) -> bool {
    value.trim().is_empty() || csv(value).all(port)
}

const IP_FORM_INCLUDE: &str = "the includeIPRanges form: \"*\" or a comma-separated list of CIDRs such as 10.0.0.0/8,172.16.0.0/12 (empty for none)";
const IP_FORM_EXCLUDE: &str = "the excludeIPRanges form: a comma-separated list of CIDRs such as 10.96.0.0/12 (empty for none)";

fn include_ip_ranges(v: &str) -> Result<(), &'static str> {
    (v.trim() == "*" || cidr_list(v))
        .then_some(())
        .ok_or(IP_FORM_INCLUDE)
}

fn exclude_ip_ranges(v: &str) -> Result<(), &'static str> {
    cidr_list(v).then_some(()).ok_or(IP_FORM_EXCLUDE)
}

fn include_inbound_ports(v: &str) -> Result<(), &'static str> {
    (v.trim() == "*" || ports(v))
        .then_some(())
        .ok_or("the includeInboundPorts form: \"*\" or a comma-separated list of ports 1-65535 (empty for none)")
}

fn exclude_inbound_ports(v: &str) -> Result<(), &'static str> {
    ports(v).then_some(()).ok_or(
        "the excludeInboundPorts form: a comma-separated list of ports 1-65535 (empty for none)",
    )
}

fn include_outbound_ports(v: &str) -> Result<(), &'static str> {
    ports(v).then_some(()).ok_or(
        "the includeOutboundPorts form: a comma-separated list of ports 1-65535 (empty for none)",
    )
}

fn exclude_outbound_ports(v: &str) -> Result<(), &'static str> {
    ports(v).then_some(()).ok_or(
        "the excludeOutboundPorts form: a comma-separated list of ports 1-65535 (empty for none)",
    )
}

fn port_list(v: &str) -> Result<(), &'static str> {
    ports(v)
        .then_some(())
        .ok_or("a comma-separated list of ports 1-65535")
}

fn interfaces(v: &str) -> Result<(), &'static str> {
    let ok = v.trim().is_empty()
        || csv(v).all(|i| {
            !i.is_empty()
                && i.len() <= 15
                && !i.contains(|c: char| c.is_whitespace() || c == '/' || c == ':')
        });
    ok.then_some(())
        .ok_or("a comma-separated list of network interface names such as net1,net2")
}

fn interception_mode(v: &str) -> Result<(), &'static str> {
    matches!(v, "REDIRECT" | "TPROXY" | "NONE")
        .then_some(())
        .ok_or("one of REDIRECT, TPROXY or NONE")
}

fn resource_quantity(v: &str) -> Result<(), &'static str> {
    quantity::is_valid(v)
        .then_some(())
        .ok_or("a Kubernetes resource quantity such as 100m, 2, 128Mi or 1Gi")
}

fn image(v: &str) -> Result<(), &'static str> {
    (!v.trim().is_empty() && !v.contains(char::is_whitespace))
        .then_some(())
        .ok_or("a container image reference such as docker.io/istio/proxyv2:1.26.0")
}

const PROXY_LEVELS: &[&str] = &[
    "trace", "debug", "info", "warning", "warn", "error", "critical", "off",
];

fn proxy_log_level(v: &str) -> Result<(), &'static str> {
    PROXY_LEVELS
        .contains(&v)
        .then_some(())
        .ok_or("one of trace, debug, info, warning, error, critical or off")
}

fn component_log_level(v: &str) -> Result<(), &'static str> {
    csv(v)
        .all(|item| {
            item.split_once(':')
                .is_some_and(|(c, l)| !c.is_empty() && PROXY_LEVELS.contains(&l))
        })
        .then_some(())
        .ok_or("a comma-separated list of component:level, e.g. misc:error,upstream:debug")
}

fn agent_log_level(v: &str) -> Result<(), &'static str> {
    const LEVELS: &[&str] = &["none", "fatal", "error", "warn", "info", "debug"];
    csv(v)
        .all(|item| match item.split_once(':') {
            Some((scope, level)) => !scope.is_empty() && LEVELS.contains(&level),
            None => LEVELS.contains(&item),
        })
        .then_some(())
        .ok_or("a comma-separated list of scope:level (levels none, error, warn, info, debug), e.g. default:info")
}

fn boolean(v: &str) -> Result<(), &'static str> {
    matches!(v, "true" | "false")
        .then_some(())
        .ok_or("true or false")
}

fn json_object(v: &str) -> Result<(), &'static str> {
    matches!(serde_json::from_str::<Value>(v), Ok(Value::Object(m)) if m.values().all(Value::is_object))
        .then_some(())
        .ok_or("a JSON object mapping names to Kubernetes objects, e.g. {\"certs\":{\"secret\":{\"secretName\":\"certs\"}}}")
}

fn status_port(v: &str) -> Result<(), &'static str> {
    v.parse::<u16>()
        .map(|_| ())
        .map_err(|_| "a port number 0-65535 (0 disables the status port)")
}

fn uint32(v: &str) -> Result<(), &'static str> {
    v.parse::<u32>()
        .map(|_| ())
        .map_err(|_| "a whole number from 0 to 4294967295 (0 keeps the Kubernetes default)")
}

fn proxy_config(v: &str) -> Result<(), &'static str> {
    parse_proxy_config(v).map(|_| ())
}

/// Parses `proxy.istio.io/config` (YAML or JSON ProxyConfig fields).
pub fn parse_proxy_config(v: &str) -> Result<serde_json::Map<String, Value>, &'static str> {
    const FORM: &str = "a YAML or JSON mapping of ProxyConfig fields, e.g. {\"holdApplicationUntilProxyStarts\": true}";
    match serde_yaml::from_str::<Value>(v) {
        Ok(Value::Object(m)) => {
            if m.keys()
                .all(|k| crate::config::PROXY_CONFIG_FIELDS.contains(&k.as_str()))
            {
                Ok(m)
            } else {
                Err(FORM)
            }
        }
        Ok(Value::Null) => Ok(serde_json::Map::new()),
        _ => Err(FORM),
    }
}

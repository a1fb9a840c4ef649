//! The per-pod annotations that tune injection, and their validation, as
//! strict as Istio's (`pkg/kube/inject/validate.go`): a bad value is an
//! error naming the annotation, the value and the accepted form.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use super::InjectError;
use super::bounded_yaml;
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
///
/// The annotation comes from whoever creates the pod, so the text is
/// bounded before it is parsed ([`bounded_yaml::YamlLimits::ANNOTATION`]:
/// 16 KiB, aliases counted as they expand), and each known field must have
/// the type Istio's ProxyConfig gives it (Istio reads the annotation with
/// protobuf's JSON mapping, so a number where a string is expected, or
/// `concurrency: "abc"`, fails there too).
pub fn parse_proxy_config(v: &str) -> Result<serde_json::Map<String, Value>, &'static str> {
    const FORM: &str = "a YAML or JSON mapping of ProxyConfig fields, e.g. {\"holdApplicationUntilProxyStarts\": true}";
    bounded_yaml::check_yaml(v, &bounded_yaml::YamlLimits::ANNOTATION).map_err(|e| match e {
        bounded_yaml::LimitError::TooLarge { .. } => {
            "a ProxyConfig mapping of at most 16384 bytes (the annotation's size limit)"
        }
        bounded_yaml::LimitError::TooDeep { .. } => {
            "a ProxyConfig mapping nested at most 16 levels deep"
        }
        bounded_yaml::LimitError::TooManyNodes { .. }
        | bounded_yaml::LimitError::TooManyBytes { .. } => {
            "a ProxyConfig mapping of at most 4096 values, YAML aliases expanded"
        }
    })?;
    match serde_yaml::from_str::<Value>(v) {
        Ok(Value::Object(m)) => {
            for (key, value) in &m {
                let Some((_, kind)) = PROXY_CONFIG_TYPES.iter().find(|(name, _)| name == key)
                else {
                    return Err(FORM);
                };
                kind.check(value)?;
            }
            Ok(m)
        }
        Ok(Value::Null) => Ok(serde_json::Map::new()),
        _ => Err(FORM),
    }
}

/// The JSON types of ProxyConfig's fields (istio.io/api `mesh/v1alpha1`
/// `ProxyConfig`), as protobuf's JSON mapping reads them.
#[derive(Debug, Clone, Copy)]
enum FieldType {
    /// `string`.
    Text(&'static str),
    /// `google.protobuf.Duration`: decimal seconds with an `s` suffix.
    Duration(&'static str),
    /// An `int32` port: 0-65535 (a number, or a string of digits).
    Port(&'static str),
    /// A non-negative `int32` (or `Int32Value`), e.g. `concurrency`.
    Count(&'static str),
    /// `bool` or `BoolValue`.
    Boolean(&'static str),
    /// An enum: its name (or its number).
    Enum(&'static str),
    /// A message: a mapping.
    Message(&'static str),
    /// `map<string, string>`.
    StringMap(&'static str),
    /// `repeated string`.
    StringList(&'static str),
}

impl FieldType {
    fn check(self, value: &Value) -> Result<(), &'static str> {
        if value.is_null() {
            return Ok(()); // protobuf's JSON mapping: null is the default
        }
        let (ok, form) = match self {
            FieldType::Text(form) => (value.is_string(), form),
            FieldType::Duration(form) => (value.as_str().is_some_and(is_duration), form),
            FieldType::Port(form) => (int32(value).is_some_and(|p| (0..=65535).contains(&p)), form),
            FieldType::Count(form) => (int32(value).is_some_and(|n| n >= 0), form),
            FieldType::Boolean(form) => (value.is_boolean(), form),
            // The name itself is checked where it is used (an unknown
            // interception mode is passed to istio-iptables, which names
            // it); here only its type.
            FieldType::Enum(form) => (value.is_string() || value.is_i64(), form),
            FieldType::Message(form) => (value.is_object(), form),
            FieldType::StringMap(form) => (
                value
                    .as_object()
                    .is_some_and(|m| m.values().all(Value::is_string)),
                form,
            ),
            FieldType::StringList(form) => (
                value
                    .as_array()
                    .is_some_and(|l| l.iter().all(Value::is_string)),
                form,
            ),
        };
        ok.then_some(()).ok_or(form)
    }
}

/// An `int32` as protobuf's JSON mapping reads it: a whole number, or a
/// string holding one.
fn int32(value: &Value) -> Option<i64> {
    let n = match value {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.parse::<i64>().ok()?,
        _ => return None,
    };
    (i64::from(i32::MIN)..=i64::from(i32::MAX))
        .contains(&n)
        .then_some(n)
}

/// `google.protobuf.Duration` in JSON: `1s`, `1.5s`, `0.000001s`.
fn is_duration(s: &str) -> bool {
    let Some(number) = s.strip_suffix('s') else {
        return false;
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    !whole.is_empty()
        && whole.len() <= 12
        && whole.bytes().all(|b| b.is_ascii_digit())
        && !fraction.is_empty()
        && fraction.len() <= 9
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

macro_rules! pc_form {
    ($field:literal, $what:literal) => {
        concat!(
            "a mapping of ProxyConfig fields whose ",
            $field,
            " is ",
            $what
        )
    };
}

/// Every ProxyConfig field the annotation may set, with its type; the
/// names are [`crate::config::PROXY_CONFIG_FIELDS`] (a test keeps the two
/// lists equal).
const PROXY_CONFIG_TYPES: &[(&str, FieldType)] = &[
    (
        "configPath",
        FieldType::Text(pc_form!("configPath", "a string")),
    ),
    (
        "binaryPath",
        FieldType::Text(pc_form!("binaryPath", "a string")),
    ),
    (
        "serviceCluster",
        FieldType::Text(pc_form!("serviceCluster", "a string")),
    ),
    (
        "tracingServiceName",
        FieldType::Enum(pc_form!(
            "tracingServiceName",
            "one of APP_LABEL_AND_NAMESPACE, CANONICAL_NAME_ONLY, CANONICAL_NAME_AND_NAMESPACE"
        )),
    ),
    (
        "drainDuration",
        FieldType::Duration(pc_form!(
            "drainDuration",
            "a duration in seconds such as \"45s\""
        )),
    ),
    (
        "parentShutdownDuration",
        FieldType::Duration(pc_form!(
            "parentShutdownDuration",
            "a duration in seconds such as \"60s\""
        )),
    ),
    (
        "discoveryAddress",
        FieldType::Text(pc_form!(
            "discoveryAddress",
            "a string such as \"istiod.istio-system.svc:15012\""
        )),
    ),
    (
        "discoveryRefreshDelay",
        FieldType::Duration(pc_form!(
            "discoveryRefreshDelay",
            "a duration in seconds such as \"1s\""
        )),
    ),
    (
        "zipkinAddress",
        FieldType::Text(pc_form!("zipkinAddress", "a string")),
    ),
    (
        "statsdUdpAddress",
        FieldType::Text(pc_form!("statsdUdpAddress", "a string")),
    ),
    (
        "envoyMetricsServiceAddress",
        FieldType::Text(pc_form!("envoyMetricsServiceAddress", "a string")),
    ),
    (
        "proxyAdminPort",
        FieldType::Port(pc_form!("proxyAdminPort", "a port number 0-65535")),
    ),
    (
        "availabilityZone",
        FieldType::Text(pc_form!("availabilityZone", "a string")),
    ),
    (
        "controlPlaneAuthPolicy",
        FieldType::Enum(pc_form!(
            "controlPlaneAuthPolicy",
            "a name such as MUTUAL_TLS"
        )),
    ),
    (
        "customConfigFile",
        FieldType::Text(pc_form!("customConfigFile", "a string")),
    ),
    (
        "statNameLength",
        FieldType::Count(pc_form!("statNameLength", "a whole number >= 0")),
    ),
    (
        "concurrency",
        FieldType::Count(pc_form!(
            "concurrency",
            "a whole number >= 0 (0: one worker thread per CPU)"
        )),
    ),
    (
        "proxyBootstrapTemplatePath",
        FieldType::Text(pc_form!("proxyBootstrapTemplatePath", "a string")),
    ),
    (
        "interceptionMode",
        FieldType::Enum(pc_form!("interceptionMode", "a name such as REDIRECT")),
    ),
    (
        "tracing",
        FieldType::Message(pc_form!("tracing", "a mapping")),
    ),
    ("sds", FieldType::Message(pc_form!("sds", "a mapping"))),
    (
        "envoyAccessLogService",
        FieldType::Message(pc_form!("envoyAccessLogService", "a mapping")),
    ),
    (
        "envoyMetricsService",
        FieldType::Message(pc_form!("envoyMetricsService", "a mapping")),
    ),
    (
        "proxyMetadata",
        FieldType::StringMap(pc_form!(
            "proxyMetadata",
            "a mapping of strings to strings (quote numbers and booleans)"
        )),
    ),
    (
        "runtimeValues",
        FieldType::StringMap(pc_form!("runtimeValues", "a mapping of strings")),
    ),
    (
        "statusPort",
        FieldType::Port(pc_form!("statusPort", "a port number 0-65535")),
    ),
    (
        "extraStatTags",
        FieldType::StringList(pc_form!("extraStatTags", "a list of strings")),
    ),
    (
        "gatewayTopology",
        FieldType::Message(pc_form!("gatewayTopology", "a mapping")),
    ),
    (
        "terminationDrainDuration",
        FieldType::Duration(pc_form!(
            "terminationDrainDuration",
            "a duration in seconds such as \"5s\""
        )),
    ),
    ("meshId", FieldType::Text(pc_form!("meshId", "a string"))),
    (
        "readinessProbe",
        FieldType::Message(pc_form!("readinessProbe", "a mapping (a Kubernetes probe)")),
    ),
    (
        "proxyStatsMatcher",
        FieldType::Message(pc_form!("proxyStatsMatcher", "a mapping")),
    ),
    (
        "holdApplicationUntilProxyStarts",
        FieldType::Boolean(pc_form!("holdApplicationUntilProxyStarts", "true or false")),
    ),
    (
        "caCertificatesPem",
        FieldType::StringList(pc_form!("caCertificatesPem", "a list of PEM strings")),
    ),
    (
        "image",
        FieldType::Message(pc_form!(
            "image",
            "a mapping such as {imageType: distroless}"
        )),
    ),
    (
        "privateKeyProvider",
        FieldType::Message(pc_form!("privateKeyProvider", "a mapping")),
    ),
    (
        "proxyHeaders",
        FieldType::Message(pc_form!("proxyHeaders", "a mapping")),
    ),
    (
        "fileFlushInterval",
        FieldType::Duration(pc_form!(
            "fileFlushInterval",
            "a duration in seconds such as \"1s\""
        )),
    ),
    (
        "fileFlushMinSizeKb",
        FieldType::Count(pc_form!("fileFlushMinSizeKb", "a whole number >= 0")),
    ),
    (
        "statsCompression",
        FieldType::Enum(pc_form!(
            "statsCompression",
            "a compression name such as gzip"
        )),
    ),
    (
        "connectionSettings",
        FieldType::Message(pc_form!("connectionSettings", "a mapping")),
    ),
];

#[cfg(test)]
mod proxy_config_tests {
    use super::*;

    #[test]
    fn every_proxy_config_field_has_a_type() {
        let typed: Vec<&str> = PROXY_CONFIG_TYPES.iter().map(|(name, _)| *name).collect();
        assert_eq!(typed, crate::config::PROXY_CONFIG_FIELDS);
    }

    #[test]
    fn fields_of_the_wrong_type_are_refused_by_name() {
        for (text, field) in [
            ("concurrency: abc", "concurrency"),
            ("concurrency: -1", "concurrency"),
            ("statusPort: 99999999", "statusPort"),
            (
                "holdApplicationUntilProxyStarts: \"yes\"",
                "holdApplicationUntilProxyStarts",
            ),
            ("drainDuration: 45", "drainDuration"),
            ("drainDuration: 1m", "drainDuration"),
            ("proxyMetadata: {A: 1}", "proxyMetadata"),
            ("discoveryAddress: 15012", "discoveryAddress"),
            ("interceptionMode: [REDIRECT]", "interceptionMode"),
            ("tracing: zipkin", "tracing"),
        ] {
            let form = parse_proxy_config(text).unwrap_err();
            assert!(form.contains(&format!(" {field} is ")), "{text}: {form}");
        }
    }

    #[test]
    fn fields_of_the_right_type_are_accepted() {
        let text = "{concurrency: 2, statusPort: \"15020\", drainDuration: 1.5s, \
                    holdApplicationUntilProxyStarts: true, proxyMetadata: {A: \"1\"}, \
                    interceptionMode: TPROXY, tracing: {zipkin: {address: z:9411}}, \
                    extraStatTags: [a], image: {imageType: distroless}, meshId: null}";
        let fields = parse_proxy_config(text).unwrap();
        assert_eq!(fields.len(), 10);
    }

    #[test]
    fn an_alias_bomb_in_the_annotation_is_refused_by_its_size() {
        let items = vec!["x"; 300].join(", ");
        let refs = vec!["*a"; 300].join(", ");
        let text = format!("proxyMetadata: {{}}\nextraStatTags: &a [{items}]\nx: [{refs}]\n");
        assert!(text.len() < 16 << 10);
        let form = parse_proxy_config(&text).unwrap_err();
        assert!(form.contains("at most 4096 values"), "{form}");
        let large = format!("meshId: \"{}\"", "m".repeat(20_000));
        let form = parse_proxy_config(&large).unwrap_err();
        assert!(form.contains("16384 bytes"), "{form}");
    }
}

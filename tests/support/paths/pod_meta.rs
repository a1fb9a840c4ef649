//! Pod metadata for `inject_paths`' pod shapes: labels, annotations
//! (Prometheus, kubectl, opt-in and opt-out, tuning ones, an earlier
//! injection's, odd keys and values), namespaces and owner references.

use serde_json::{Map, Value, json};

use super::chance;
use crate::damage::Rng;

/// Tuning annotations: mostly valid, a few refused.
const TUNING: &[(&str, &str)] = &[
    ("sidecar.istio.io/proxyCPU", "200m"),
    ("sidecar.istio.io/proxyMemory", "256Mi"),
    ("sidecar.istio.io/proxyCPULimit", "1"),
    ("sidecar.istio.io/proxyMemoryLimit", "1Gi"),
    ("sidecar.istio.io/logLevel", "debug"),
    (
        "sidecar.istio.io/componentLogLevel",
        "misc:debug,upstream:info",
    ),
    ("sidecar.istio.io/agentLogLevel", "default:debug"),
    ("sidecar.istio.io/interceptionMode", "TPROXY"),
    ("sidecar.istio.io/interceptionMode", "NONE"),
    ("sidecar.istio.io/interceptionMode", "REDIRECT"),
    ("sidecar.istio.io/enableCoreDump", "true"),
    ("sidecar.istio.io/proxyImage", "example.com/proxy:1"),
    ("sidecar.istio.io/rewriteAppHTTPProbers", "false"),
    ("sidecar.istio.io/rewriteAppHTTPProbers", "true"),
    ("sidecar.istio.io/nativeSidecar", "true"),
    ("sidecar.istio.io/nativeSidecar", "false"),
    (
        "sidecar.istio.io/userVolume",
        r#"{"extra":{"emptyDir":{"sizeLimit":"1Gi"}},"cfg":{"configMap":{"name":"c","defaultMode":420}},"f":{"x":{"y":1.5e300}}}"#,
    ),
    (
        "sidecar.istio.io/userVolumeMount",
        r#"{"extra":{"mountPath":"/extra","readOnly":true}}"#,
    ),
    ("sidecar.istio.io/bootstrapOverride", "my-bootstrap"),
    ("sidecar.istio.io/someFutureKey", "x"),
    ("status.sidecar.istio.io/port", "15030"),
    ("status.sidecar.istio.io/port", "0"),
    ("readiness.status.sidecar.istio.io/periodSeconds", "5"),
    ("readiness.status.sidecar.istio.io/initialDelaySeconds", "3"),
    ("readiness.status.sidecar.istio.io/failureThreshold", "10"),
    (
        "readiness.status.sidecar.istio.io/applicationPorts",
        "8080,9090",
    ),
    (
        "traffic.sidecar.istio.io/includeOutboundIPRanges",
        "10.0.0.0/8",
    ),
    (
        "traffic.sidecar.istio.io/excludeOutboundIPRanges",
        "10.96.0.0/12",
    ),
    ("traffic.sidecar.istio.io/includeInboundPorts", "8080"),
    ("traffic.sidecar.istio.io/excludeInboundPorts", "9090"),
    ("traffic.sidecar.istio.io/includeOutboundPorts", "443"),
    ("traffic.sidecar.istio.io/excludeOutboundPorts", "3306"),
    ("traffic.sidecar.istio.io/excludeInterfaces", "eth1"),
    ("traffic.sidecar.istio.io/kubevirtInterfaces", "net1"),
    ("istio.io/reroute-virtual-interfaces", "net1,net2"),
    (
        "proxy.istio.io/config",
        "holdApplicationUntilProxyStarts: true",
    ),
    (
        "proxy.istio.io/config",
        r#"{"proxyMetadata":{"FOO":"pod","ISTIO_KUBE_APP_PROBERS":"{\"/app-health/old/readyz\":{\"tcpSocket\":{\"port\":1}}}"}}"#,
    ),
    (
        "proxy.istio.io/config",
        r#"{"proxyMetadata":{"ISTIO_PROMETHEUS_ANNOTATIONS":"pod"}}"#,
    ),
    ("proxy.istio.io/config", "statusPort: 15030"),
    (
        "proxy.istio.io/config",
        "concurrency: 2\ninterceptionMode: TPROXY",
    ),
    ("proxy.istio.io/config", ""),
    ("prometheus.istio.io/merge-metrics", "false"),
    ("prometheus.istio.io/scrape-targets", "8080:/metrics,9090"),
    // Refused.
    ("sidecar.istio.io/agentLogLevel", "bogus"),
    ("sidecar.istio.io/proxyCPU", "abc"),
    ("traffic.sidecar.istio.io/excludeInboundPorts", "0"),
    ("proxy.istio.io/config", "noSuchField: 1"),
];

/// The pod's labels: absent, null, empty, or canonical-name sources, a
/// too-long app name, non-string values, opt-in and opt-out, odd keys.
fn labels(rng: &mut Rng) -> Option<Value> {
    match rng.below(20) {
        0..=3 => return None,
        4 => return Some(Value::Null),
        5 | 6 => return Some(json!({})),
        _ => {}
    }
    let mut l = Map::new();
    let mut put = |k: &str, v: Value| {
        l.insert(k.to_string(), v);
    };
    match rng.below(6) {
        0 => put("app", json!("reviews")),
        1 => put("app", json!("worker")),
        2 => put("app.kubernetes.io/name", json!("shop")),
        3 => put("service.istio.io/canonical-name", json!("canon")),
        // Longer than a label value may be, a multibyte character at 63.
        4 => put("app", json!(format!("{}é-tail", "n".repeat(62)))),
        _ => {}
    }
    if chance(rng, 2) {
        put("version", json!("v1"));
    }
    if chance(rng, 6) {
        put("tier", json!(3));
    }
    if chance(rng, 8) {
        put("flag", json!(true));
    }
    if chance(rng, 10) {
        put("security.istio.io/tlsMode", json!("disabled"));
    }
    if chance(rng, 12) {
        put("sidecar.istio.io/inject", json!("true"));
    }
    if chance(rng, 25) {
        put("sidecar.istio.io/inject", json!("false"));
    }
    if chance(rng, 12) {
        put("a~b/c", json!(""));
    }
    Some(Value::Object(l))
}

/// The pod's annotations: Prometheus, kubectl, opt-in and opt-out, odd
/// keys and values, sometimes tuning ones or an earlier injection's.
fn annotations(rng: &mut Rng) -> Option<Value> {
    match rng.below(10) {
        0 | 1 => return None,
        2 => return Some(Value::Null),
        3 => return Some(json!({})),
        _ => {}
    }
    let mut a = Map::new();
    let mut put = |k: &str, v: Value| {
        a.insert(k.to_string(), v);
    };
    if chance(rng, 2) {
        put("example.com/note", json!("hello"));
    }
    if chance(rng, 8) {
        put("num", json!(5));
        put("nil", Value::Null);
        put("obj", json!({"a": [1, "x"]}));
    }
    match rng.below(8) {
        0 => put("prometheus.io/scrape", json!("true")),
        1 => put("prometheus.io/scrape", json!("False")),
        2 => {
            put("prometheus.io/scrape", json!("true"));
            put("prometheus.io/port", json!("8080"));
            put("prometheus.io/path", json!("/metrics"));
        }
        3 => put("prometheus.io/port", json!("15020")),
        4 => put("prometheus.io/port", json!("15030")),
        _ => {}
    }
    if chance(rng, 6) {
        put("kubectl.kubernetes.io/default-container", json!("web"));
    }
    if chance(rng, 10) {
        put("kubectl.kubernetes.io/default-logs-container", json!("app"));
    }
    if chance(rng, 10) {
        put("sidecar.istio.io/inject", json!("true"));
    }
    if chance(rng, 30) {
        put("sidecar.istio.io/inject", json!("false"));
    }
    if chance(rng, 15) {
        put("istio.io/rev", json!("canary"));
    }
    if chance(rng, 15) {
        put("~tilde/and/slash", json!("v"));
        put("", json!("empty key"));
        put("ctl\u{1}\"key\u{7f}", json!("\u{2028}"));
    }
    // Often exactly one: the one that sends the pod to the rendered path.
    if chance(rng, 3) {
        let n = if chance(rng, 3) { 2 + rng.below(2) } else { 1 };
        for _ in 0..n {
            let (k, v) = *rng.pick(TUNING);
            put(k, json!(v));
        }
    }
    if chance(rng, 40) {
        put(
            "sidecar.istio.io/status",
            json!(
                r#"{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy"],"imagePullSecrets":null,"revision":"default"}"#
            ),
        );
    }
    if chance(rng, 60) {
        put("sidecar.istio.io/status", json!("not json"));
    }
    if chance(rng, 60) {
        put(
            "proxy.istio.io/overrides",
            json!(r#"{"containers":[{"name":"istio-proxy","resources":{}}]}"#),
        );
    }
    Some(Value::Object(a))
}

/// The pod template's metadata (labels and annotations only).
pub fn template_meta(rng: &mut Rng) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(l) = labels(rng) {
        m.insert("labels".into(), l);
    }
    if let Some(a) = annotations(rng) {
        m.insert("annotations".into(), a);
    }
    m
}

/// An object's own namespace, if any.
pub fn namespace(rng: &mut Rng, meta: &mut Map<String, Value>) {
    match rng.below(5) {
        0 => {
            meta.insert("namespace".into(), json!("prod"));
        }
        1 => {
            meta.insert("namespace".into(), json!(""));
        }
        2 => {
            meta.insert("namespace".into(), json!("default"));
        }
        3 if chance(rng, 4) => {
            meta.insert("namespace".into(), json!("nä\"me\u{1}"));
        }
        _ => {}
    }
}

/// An ownerReference.
pub fn owner(kind: &str, name: &str, api_version: Option<&str>, controller: bool) -> Value {
    let mut o = json!({"kind": kind, "name": name, "uid": "1234", "controller": controller});
    if let Some(v) = api_version {
        o["apiVersion"] = json!(v);
    }
    o
}

//! Probe rewriting: app containers' httpGet/tcpSocket/grpc probes (and
//! httpGet/tcpSocket lifecycle hooks) are redirected to the proxy's status
//! port under `/app-health/<container>/{livez,readyz,startupz}` (or
//! `/app-lifecycle/<container>/{poststartz,prestopz}`), and the originals are
//! recorded for the proxy in `ISTIO_KUBE_APP_PROBERS`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::gojson::{self, Ty};
use super::sidecar::PROXY_NAME;

/// The env var the proxy reads the original probes from.
pub const APP_PROBERS_ENV: &str = "ISTIO_KUBE_APP_PROBERS";

const PROBES: [(&str, &str); 3] = [
    ("livenessProbe", "/app-health/{}/livez"),
    ("readinessProbe", "/app-health/{}/readyz"),
    ("startupProbe", "/app-health/{}/startupz"),
];
const HOOKS: [(&str, &str); 2] = [
    ("postStart", "/app-lifecycle/{}/poststartz"),
    ("preStop", "/app-lifecycle/{}/prestopz"),
];

/// Resolves a named port against the container's ports.
fn resolve_port(port: &Value, container: &Value) -> Option<Value> {
    match port {
        Value::String(name) => {
            if let Ok(n) = name.parse::<i64>() {
                return Some(json!(n));
            }
            container
                .get("ports")?
                .as_array()?
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
                .and_then(|p| p.get("containerPort").cloned())
        }
        Value::Number(_) => Some(port.clone()),
        _ => None,
    }
}

/// Rewrites one probe or hook in place; returns the original prober.
fn rewrite(handler: &mut Value, path: &str, status_port: i64, container: &Value) -> Option<Value> {
    let Value::Object(h) = handler else {
        return None;
    };
    let already = h.get("httpGet").is_some_and(|g| {
        g.get("port").and_then(Value::as_i64) == Some(status_port)
            && g.get("path").and_then(Value::as_str) == Some(path)
    });
    if already {
        return None;
    }
    let mut prober = Map::new();
    let mut scheme_https = false;
    for kind in ["httpGet", "tcpSocket", "grpc"] {
        if let Some(Value::Object(action)) = h.get(kind) {
            let mut action = action.clone();
            let port = action.get("port").cloned().unwrap_or(Value::Null);
            let resolved = resolve_port(&port, container)?;
            action.insert("port".into(), resolved);
            scheme_https = action.get("scheme").and_then(Value::as_str) == Some("HTTPS");
            prober.insert(kind.into(), Value::Object(action));
            break;
        }
    }
    if prober.is_empty() {
        return None;
    }
    if let Some(t) = h.get("timeoutSeconds").filter(|t| t.as_i64() != Some(0)) {
        prober.insert("timeoutSeconds".into(), t.clone());
    }
    h.remove("tcpSocket");
    h.remove("grpc");
    let mut get = json!({ "path": path, "port": status_port });
    if scheme_https {
        get["scheme"] = json!("HTTP");
    }
    h.insert("httpGet".into(), get);
    Some(Value::Object(prober))
}

/// Rewrites the app containers' probes of `spec` in place and returns the
/// originals, keyed by their new path. Containers that are not apps (the
/// proxy) are left alone.
pub fn rewrite_app_probes(spec: &mut Value, status_port: i64) -> BTreeMap<String, Value> {
    let mut probers = BTreeMap::new();
    let Some(spec) = spec.as_object_mut() else {
        return probers;
    };
    let mut apps: Vec<&mut Value> = Vec::new();
    for (field, value) in spec.iter_mut() {
        let Value::Array(list) = value else { continue };
        match field.as_str() {
            "containers" => apps.extend(list.iter_mut()),
            // Native sidecars of the app (init containers that keep running)
            // are probed too.
            "initContainers" => apps.extend(
                list.iter_mut()
                    .filter(|c| c.get("restartPolicy").and_then(Value::as_str) == Some("Always")),
            ),
            _ => {}
        }
    }
    for c in apps {
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name == PROXY_NAME {
            continue;
        }
        // Only the ports are needed to resolve named probe ports.
        let snapshot = json!({ "ports": c.get("ports").cloned().unwrap_or(Value::Null) });
        for (field, pattern) in PROBES {
            let path = pattern.replace("{}", &name);
            if let Some(probe) = c.get_mut(field)
                && let Some(p) = rewrite(probe, &path, status_port, &snapshot)
            {
                probers.insert(path, p);
            }
        }
        for (hook, pattern) in HOOKS {
            let path = pattern.replace("{}", &name);
            if let Some(handler) = c.pointer_mut(&format!("/lifecycle/{hook}")) {
                if handler.get("grpc").is_some() {
                    continue;
                }
                if let Some(p) = rewrite(handler, &path, status_port, &snapshot) {
                    probers.insert(path, p);
                }
            }
        }
    }
    probers
}

/// The `ISTIO_KUBE_APP_PROBERS` value: sorted by path, each prober in Go's
/// field order.
pub fn probers_json(probers: &BTreeMap<String, Value>) -> String {
    let mut out = String::from("{");
    for (i, (path, prober)) in probers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(path.clone()).to_string());
        out.push(':');
        out.push_str(&prober_json(prober));
    }
    out.push('}');
    out
}

fn prober_json(p: &Value) -> String {
    let mut out = String::from("{");
    let mut first = true;
    for (k, ty) in [
        ("httpGet", Ty::HttpGet),
        ("tcpSocket", Ty::TcpSocket),
        ("grpc", Ty::Grpc),
        ("timeoutSeconds", Ty::Any),
    ] {
        if let Some(v) = p.get(k) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&format!("\"{k}\":{}", gojson::to_string(v, ty)));
        }
    }
    out.push('}');
    out
}

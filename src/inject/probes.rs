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
    ("livenessProbe", "livez"),
    ("readinessProbe", "readyz"),
    ("startupProbe", "startupz"),
];
const HOOKS: [(&str, &str); 2] = [("postStart", "poststartz"), ("preStop", "prestopz")];

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
    // The first handler kind present is the one probed. Its port is resolved
    // first (an unresolvable port leaves the handler as it is); then the
    // action is moved into the prober, not copied: the handler gets a new
    // `httpGet` below, and `tcpSocket`/`grpc` are dropped from it anyway.
    let (kind, resolved) = ["httpGet", "tcpSocket", "grpc"]
        .into_iter()
        .find_map(|kind| match h.get(kind) {
            Some(Value::Object(action)) => Some((kind, action)),
            _ => None,
        })
        .map(|(kind, action)| {
            let port = action.get("port").unwrap_or(&Value::Null);
            (kind, resolve_port(port, container))
        })?;
    let resolved = resolved?;
    if let Some(Value::Object(mut action)) = h.remove(kind) {
        action.insert("port".into(), resolved);
        scheme_https = action.get("scheme").and_then(Value::as_str) == Some("HTTPS");
        prober.insert(kind.into(), Value::Object(action));
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
        let Some(container) = c.as_object_mut() else {
            continue;
        };
        let name = container
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name == PROXY_NAME {
            continue;
        }
        // Only the ports are needed to resolve named probe ports: they are
        // lent out of the container while its probes are rewritten.
        let mut ports = Map::new();
        if let Some(p) = container.get_mut("ports") {
            ports.insert("ports".into(), p.take());
        }
        let ports = Value::Object(ports);
        for (field, suffix) in PROBES {
            if let Some(probe) = container.get_mut(field) {
                let path = format!("/app-health/{name}/{suffix}");
                if let Some(p) = rewrite(probe, &path, status_port, &ports) {
                    probers.insert(path, p);
                }
            }
        }
        if let Some(lifecycle) = container.get_mut("lifecycle") {
            for (hook, suffix) in HOOKS {
                let Some(handler) = lifecycle.get_mut(hook) else {
                    continue;
                };
                if handler.get("grpc").is_some() {
                    continue;
                }
                let path = format!("/app-lifecycle/{name}/{suffix}");
                if let Some(p) = rewrite(handler, &path, status_port, &ports) {
                    probers.insert(path, p);
                }
            }
        }
        if let Value::Object(mut lent) = ports
            && let Some(p) = lent.remove("ports")
            && let Some(slot) = container.get_mut("ports")
        {
            *slot = p;
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
        gojson::push_string(&mut out, path);
        out.push(':');
        push_prober(&mut out, prober);
    }
    out.push('}');
    out
}

fn push_prober(out: &mut String, p: &Value) {
    out.push('{');
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
            gojson::push_string(out, k);
            out.push(':');
            gojson::write(out, v, ty);
        }
    }
    out.push('}');
}

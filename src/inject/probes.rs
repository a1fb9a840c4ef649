//! Probe rewriting: app containers' httpGet/tcpSocket/grpc probes (and
//! httpGet/tcpSocket lifecycle hooks) are redirected to the proxy's status
//! port under `/app-health/<container>/{livez,readyz,startupz}` (or
//! `/app-lifecycle/<container>/{poststartz,prestopz}`), and the originals are
//! recorded for the proxy in `ISTIO_KUBE_APP_PROBERS`.
//!
//! What is redirected is decided once, on the pod as it is ([`Plan`]), then
//! applied to the engine's copy of the pod. `uninject` reverses it from the
//! recorded probers.

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

/// Resolves a probe's port, by name against the container's `ports`.
fn resolve_port(port: &Value, ports: Option<&Value>) -> Option<Value> {
    match port {
        Value::String(name) => {
            if let Ok(n) = name.parse::<i64>() {
                return Some(json!(n));
            }
            ports?
                .as_array()?
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
                .and_then(|p| p.get("containerPort").cloned())
        }
        Value::Number(_) => Some(port.clone()),
        _ => None,
    }
}

/// What the rewrite makes of one probe or hook handler: the original
/// prober's JSON text, recorded for the proxy, and whether the new
/// `httpGet` says `scheme: HTTP` (the probed action was HTTPS).
struct Redirect {
    prober: String,
    https: bool,
}

/// How `handler` is redirected to `path` on the status port, or `None`
/// when it is left as it is: not an object, already redirected, without an
/// action the rewrite probes, or probing a named port the container does
/// not have (`ports`).
fn redirect(
    handler: &Value,
    path: &str,
    status_port: i64,
    ports: Option<&Value>,
) -> Option<Redirect> {
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
    // The first action kind present is the one probed, with its port
    // resolved; an unresolvable port leaves the handler as it is.
    let (kind, action) = ["httpGet", "tcpSocket", "grpc"]
        .into_iter()
        .find_map(|kind| match h.get(kind) {
            Some(Value::Object(action)) => Some((kind, action)),
            _ => None,
        })?;
    let resolved = resolve_port(action.get("port").unwrap_or(&Value::Null), ports)?;
    let https = action.get("scheme").and_then(Value::as_str) == Some("HTTPS");
    // The prober is written here, from the pod's own action with its port
    // resolved, in the order `push_prober` writes one (its kind, then the
    // timeout): no copy of the action is made.
    let mut prober = String::with_capacity(PROBER_ROOM);
    prober.push('{');
    gojson::push_string(&mut prober, kind);
    prober.push(':');
    gojson::write_object(
        &mut prober,
        action,
        action_type(kind),
        Some(("port", &resolved)),
    );
    if let Some(t) = h.get("timeoutSeconds").filter(|t| t.as_i64() != Some(0)) {
        prober.push_str(",\"timeoutSeconds\":");
        gojson::write(&mut prober, t, Ty::Any);
    }
    prober.push('}');
    Some(Redirect { prober, https })
}

/// Room for a typical prober's text.
const PROBER_ROOM: usize = 96;

/// The Go type of a probed action.
fn action_type(kind: &str) -> Ty {
    match kind {
        "httpGet" => Ty::HttpGet,
        "tcpSocket" => Ty::TcpSocket,
        _ => Ty::Grpc,
    }
}

/// One handler the rewrite redirects, by where it is in the pod spec.
#[derive(Debug)]
pub struct Redirected {
    /// `containers` or `initContainers`.
    pub list: &'static str,
    /// The container's index in that list.
    pub index: usize,
    /// A probe (`livenessProbe`, ...) or `lifecycle`.
    pub member: &'static str,
    /// The hook (`postStart`, `preStop`), for a lifecycle handler.
    pub hook: Option<&'static str>,
    /// Where it now points, on the status port.
    pub path: String,
    /// The new `httpGet` says `scheme: HTTP`.
    pub https: bool,
}

/// What the rewrite does to a pod spec: decided on the spec as it is, then
/// applied to it ([`rewrite_app_probes`]).
#[derive(Debug)]
pub struct Plan {
    /// The status port the handlers are redirected to.
    pub status_port: i64,
    /// The handlers redirected: container by container, in list order
    /// (`containers` first), and within one container in key order
    /// (`lifecycle`'s hooks, then the probes), as a diff visits them.
    pub redirected: Vec<Redirected>,
    /// The original probers' JSON text (Go's field order), keyed by their
    /// new path.
    pub probers: BTreeMap<String, String>,
}

impl Plan {
    /// The plan for the app containers of `spec`: its containers and its
    /// native sidecars (init containers that keep running), except the
    /// proxy itself.
    pub fn of(spec: &Value, status_port: i64) -> Plan {
        let mut plan = Plan {
            status_port,
            redirected: Vec::new(),
            probers: BTreeMap::new(),
        };
        for list in ["containers", "initContainers"] {
            let Some(Value::Array(items)) = spec.get(list) else {
                continue;
            };
            for (index, container) in items.iter().enumerate() {
                let is_app = list == "containers"
                    || container.get("restartPolicy").and_then(Value::as_str) == Some("Always");
                if is_app && container.is_object() {
                    plan.container(list, index, container);
                }
            }
        }
        plan
    }

    fn container(&mut self, list: &'static str, index: usize, container: &Value) {
        let name = container.get("name").and_then(Value::as_str).unwrap_or("");
        if name == PROXY_NAME {
            return;
        }
        let ports = container.get("ports");
        let mut handle = |member, hook, handler: &Value, path: String| {
            if let Some(r) = redirect(handler, &path, self.status_port, ports) {
                self.redirected.push(Redirected {
                    list,
                    index,
                    member,
                    hook,
                    path: path.clone(),
                    https: r.https,
                });
                self.probers.insert(path, r.prober);
            }
        };
        if let Some(lifecycle) = container.get("lifecycle") {
            for (hook, suffix) in HOOKS {
                match lifecycle.get(hook) {
                    Some(handler) if handler.get("grpc").is_none() => {
                        let path = ["/app-lifecycle/", name, "/", suffix].concat();
                        handle("lifecycle", Some(hook), handler, path);
                    }
                    _ => {}
                }
            }
        }
        for (member, suffix) in PROBES {
            if let Some(probe) = container.get(member) {
                let path = ["/app-health/", name, "/", suffix].concat();
                handle(member, None, probe, path);
            }
        }
    }
}

/// The `httpGet` a redirected handler gets: its members, in key order.
pub fn redirected_get(
    path: &str,
    status_port: i64,
    https: bool,
) -> impl Iterator<Item = (&'static str, Leaf<'_>)> + Clone {
    [
        ("path", Leaf::Str(path)),
        ("port", Leaf::Int(status_port)),
        ("scheme", Leaf::Str("HTTP")),
    ]
    .into_iter()
    .take(if https { 3 } else { 2 })
}

/// A member of a redirected `httpGet`.
#[derive(Debug, Clone, Copy)]
pub enum Leaf<'a> {
    Str(&'a str),
    Int(i64),
}

impl Leaf<'_> {
    pub fn to_value(self) -> Value {
        match self {
            Leaf::Str(s) => Value::String(s.to_string()),
            Leaf::Int(n) => Value::from(n),
        }
    }
}

/// Rewrites the app containers' probes of `spec` in place and returns the
/// originals' JSON text, keyed by their new path. Containers that are not
/// apps (the proxy) are left alone.
pub fn rewrite_app_probes(spec: &mut Value, status_port: i64) -> BTreeMap<String, String> {
    let plan = Plan::of(spec, status_port);
    for r in &plan.redirected {
        let member = spec
            .get_mut(r.list)
            .and_then(|l| l.get_mut(r.index))
            .and_then(|c| c.get_mut(r.member));
        let handler = match r.hook {
            None => member,
            Some(hook) => member.and_then(|l| l.get_mut(hook)),
        };
        if let Some(Value::Object(h)) = handler {
            h.remove("tcpSocket");
            h.remove("grpc");
            let get: Map<String, Value> = redirected_get(&r.path, status_port, r.https)
                .map(|(k, leaf)| (k.to_string(), leaf.to_value()))
                .collect();
            h.insert("httpGet".into(), Value::Object(get));
        }
    }
    plan.probers
}

/// The `ISTIO_KUBE_APP_PROBERS` value: sorted by path, each prober's text
/// as written in Go's field order.
pub fn probers_json(probers: &BTreeMap<String, String>) -> String {
    let room = probers
        .iter()
        .map(|(p, t)| p.len() + t.len() + 4)
        .sum::<usize>();
    let mut out = String::with_capacity(room + 2);
    out.push('{');
    for (i, (path, prober)) in probers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        gojson::push_string(&mut out, path);
        out.push(':');
        out.push_str(prober);
    }
    out.push('}');
    out
}

/// The JSON text of a prober recorded by an earlier injection (or set in
/// ProxyConfig's `proxyMetadata`), as [`probers_json`] writes it.
pub fn prober_text(prober: &Value) -> String {
    let mut out = String::with_capacity(PROBER_ROOM);
    push_prober(&mut out, prober);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::inject::pipeline::probers_env;

    #[test]
    fn a_prober_is_the_probed_action_in_gos_field_order_with_its_port_resolved() {
        let spec = json!({"containers": [{
            "name": "app",
            "ports": [{"name": "http", "containerPort": 8080}],
            "livenessProbe": {
                "httpGet": {"scheme": "HTTPS", "port": "http", "path": "/healthz", "host": "h",
                            "httpHeaders": [{"name": "X", "value": "1"}]},
                "timeoutSeconds": 3, "periodSeconds": 5
            },
            "startupProbe": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 0}
        }]});
        let plan = Plan::of(&spec, 15020);
        assert_eq!(
            plan.probers["/app-health/app/livez"],
            r#"{"httpGet":{"path":"/healthz","port":8080,"host":"h","scheme":"HTTPS","httpHeaders":[{"name":"X","value":"1"}]},"timeoutSeconds":3}"#
        );
        // A zero timeout is left out, as Istio leaves it.
        assert_eq!(
            plan.probers["/app-health/app/startupz"],
            r#"{"tcpSocket":{"port":8080}}"#
        );
    }

    #[test]
    fn probers_an_earlier_injection_recorded_are_kept_unless_found_again() {
        let spec = json!({"containers": [{
            "name": "app",
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}
        }]});
        let plan = Plan::of(&spec, 15020);
        let existing = json!({
            "/app-health/app/readyz": {"httpGet": {"path": "/old", "port": 1}},
            "/app-health/old/livez": {"timeoutSeconds": 2, "httpGet": {"port": 9, "path": "/z"}}
        });
        let env = probers_env(&plan.probers, Some(existing))
            .unwrap()
            .into_value();
        assert_eq!(env["name"], APP_PROBERS_ENV);
        assert_eq!(
            env["value"],
            concat!(
                r#"{"/app-health/app/readyz":{"httpGet":{"path":"/ready","port":8080}},"#,
                r#""/app-health/old/livez":{"httpGet":{"path":"/z","port":9},"timeoutSeconds":2}}"#
            )
        );
    }
}

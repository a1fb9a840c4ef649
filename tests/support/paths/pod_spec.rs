//! Pod specs for `inject_paths`' pod shapes: app containers (ordinary,
//! odd, many, missing, nameless, duplicate, named like injected ones),
//! their ports, probes and lifecycle hooks, init containers and native app
//! sidecars, volumes, pull secrets, and the odd pod-level fields.

use serde_json::{Map, Value, json};

use super::chance;
use crate::damage::Rng;

/// App container names, of lengths around the JSON writer's 8-byte words.
const APP_NAMES: &[&str] = &[
    "app",
    "web",
    "api-server",
    "worker",
    "metrics",
    "exactly8",
    "seven77",
    "a-much-longer-container-name",
    "app",
    "web",
    "frontend",
    "cache",
];
/// Odd app container names: bytes that need escaping, non-ASCII, empty.
const ODD_NAMES: &[&str] = &[
    "ünïcødé",
    "quote\"d",
    "back\\slash-over-eight",
    "tab\tnl\n",
    "del\u{7f}",
    "line\u{2028}sep",
    "🦀crab",
    "ctl\u{1}\u{1f}",
    "ctl\u{8}\u{c}\r",
    "",
];

/// Container ports: named and numbered, with host ports and odd names.
fn port_pool() -> Vec<Value> {
    vec![
        json!({"containerPort": 8080, "name": "http"}),
        json!({"containerPort": 9090, "name": "grpc", "protocol": "TCP"}),
        json!({"containerPort": 8443, "name": "https"}),
        json!({"containerPort": 15020}),
        json!({"containerPort": 7070, "hostPort": 7070, "protocol": "UDP"}),
        json!({"containerPort": 5000, "name": "we\"ird<&>"}),
        json!({"containerPort": 3000, "name": "metrics", "hostIP": "0.0.0.0"}),
    ]
}

/// A probe handler: every kind the rewrite knows and some it leaves alone.
fn handler(rng: &mut Rng, hook: bool) -> Value {
    // Hooks: the first nine kinds (the rewrite leaves grpc hooks alone).
    let mut h = match rng.below(if hook { 9 } else { 12 }) {
        0 => json!({"httpGet": {"path": "/healthz", "port": 8080}}),
        1 => json!({"httpGet": {"path": "/ready", "port": "http"}}),
        2 => json!({"httpGet": {"path": "/x", "port": "no-such-port"}}),
        3 => json!({"httpGet": {"path": "/n", "port": "9090"}}),
        4 => json!({"httpGet": {"path": "/s", "port": "https", "scheme": "HTTPS",
                     "httpHeaders": [{"name": "X-Probe", "value": "1"}]}}),
        5 => json!({"tcpSocket": {"port": 9090}}),
        6 => json!({"tcpSocket": {"port": "grpc"}}),
        7 => json!({"exec": {"command": ["cat", "/tmp/ok"]}}),
        8 => json!({"grpc": {"port": 9090, "service": "health"}}),
        9 => json!({"httpGet": {"path": "/app-health/app/livez", "port": 15020}}),
        10 => json!({"httpGet": {"path": "/p", "host": "10.0.0.1", "port": 8080}}),
        // Handlers the rewrite cannot use.
        _ => rng
            .pick(&[
                json!({"httpGet": {"path": "/q"}}),
                json!({"httpGet": "not-an-action"}),
                json!({"httpGet": {"port": true}}),
                json!({"tcpSocket": {}}),
                json!({"grpc": {"port": "grpc"}}),
                json!({}),
                json!(null),
                json!("not-a-probe"),
            ])
            .clone(),
    };
    // Handlers whose rewrite the diff writes in different ways: a member
    // added to `httpGet`, members of it replaced, a scheme dropped or
    // changed, an action dropped beside the probed one.
    if chance(rng, 4) {
        h = rng
            .pick(&[
                json!({"httpGet": {"port": 8080}}),
                json!({"httpGet": {"path": "/h", "port": 8080, "scheme": "HTTP"}}),
                json!({"httpGet": {"path": "/t", "port": "http", "scheme": "HTTPS"}}),
                json!({"httpGet": {"path": "/app-health/app/livez", "port": "15020"}}),
                json!({"httpGet": {"path": "/app-health/app/readyz", "port": 15020.0}}),
                json!({"httpGet": {"path": "/b", "port": 8080}, "tcpSocket": {"port": 9090}}),
                json!({"httpGet": null, "tcpSocket": {"port": 9090}}),
                json!({"grpc": {"port": 9090}, "httpGet": {"path": "/g", "port": 8080}}),
                json!({"exec": {"command": ["true"]}, "tcpSocket": {"port": 8080}}),
            ])
            .clone();
    }
    if hook && chance(rng, 6) {
        h = json!({"sleep": {"seconds": 3}});
    }
    if !hook && h.is_object() {
        match rng.below(4) {
            0 => h["timeoutSeconds"] = json!(0),
            1 => h["timeoutSeconds"] = json!(5),
            2 => h["periodSeconds"] = json!(10),
            _ => {}
        }
    }
    h
}

/// An app container (or an app's native sidecar, with `restartPolicy:
/// Always`).
fn container(rng: &mut Rng, name: Option<&str>, native: bool) -> Value {
    let mut c = Map::new();
    if let Some(n) = name {
        c.insert("name".into(), json!(n));
    }
    c.insert("image".into(), json!("example.com/app:1.0"));
    match rng.below(5) {
        0 => {}
        1 => {
            c.insert("ports".into(), json!([]));
        }
        _ => {
            let pool = port_pool();
            let n = 1 + rng.below(3);
            let mut ports: Vec<Value> = Vec::new();
            for _ in 0..n {
                let p = rng.pick(&pool).clone();
                if !ports.contains(&p) {
                    ports.push(p);
                }
            }
            c.insert("ports".into(), Value::Array(ports));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if chance(rng, 3) {
            let h = handler(rng, false);
            c.insert(probe.into(), h);
        }
    }
    if chance(rng, 4) {
        let mut l = Map::new();
        for hook in ["postStart", "preStop"] {
            if chance(rng, 2) {
                l.insert(hook.into(), handler(rng, true));
            }
        }
        c.insert("lifecycle".into(), Value::Object(l));
    } else if chance(rng, 40) {
        c.insert("lifecycle".into(), json!(null));
    }
    if chance(rng, 3) {
        c.insert(
            "env".into(),
            json!([{"name": "MODE", "value": "prod"}, {"name": "EMPTY"}]),
        );
    }
    if chance(rng, 4) {
        c.insert(
            "resources".into(),
            json!({"requests": {"cpu": "50m", "memory": 64}}),
        );
    }
    if chance(rng, 8) {
        c.insert("securityContext".into(), json!({"runAsUser": 1000}));
    }
    if native {
        c.insert("restartPolicy".into(), json!("Always"));
    }
    Value::Object(c)
}

/// A container named like something injection adds (the user's own
/// settings for it).
fn injected_lookalike(rng: &mut Rng) -> Value {
    let name = *rng.pick(&[
        "istio-proxy",
        "istio-proxy",
        "istio-init",
        "istio-validation",
        "enable-core-dump",
    ]);
    let mut c = json!({"name": name});
    match rng.below(4) {
        0 => c["image"] = json!("auto"),
        1 => c["securityContext"] = json!({"runAsUser": 1234}),
        2 => c["resources"] = json!({"limits": {"cpu": "3", "memory": "2G"}}),
        _ => c["env"] = json!([{"name": "EXTRA", "value": "1"}]),
    }
    c
}

/// The app containers: absent, null, empty, one to four (now and then more
/// than ten), sometimes with a nameless, duplicate, non-object or
/// injected-name item.
fn containers(rng: &mut Rng) -> Option<Value> {
    match rng.below(40) {
        0 => return None,
        1 => return Some(json!([])),
        2 => return Some(Value::Null),
        // No app container with a name to speak of.
        3 => return Some(json!([{"name": "", "image": "x"}])),
        _ => {}
    }
    let mut names: Vec<String> = Vec::new();
    if chance(rng, 40) {
        // More than ten, for two-digit indexes in the patch.
        names.extend((0..11 + rng.below(3)).map(|i| format!("c{i}")));
    }
    let n = names.len() + 1 + rng.below(4);
    while names.len() < n {
        let name = if chance(rng, 12) {
            *rng.pick(ODD_NAMES)
        } else {
            *rng.pick(APP_NAMES)
        };
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    let mut list: Vec<Value> = names
        .iter()
        .map(|n| container(rng, Some(n), false))
        .collect();
    match rng.below(40) {
        0 => list.push(container(rng, None, false)),
        1 => {
            let dup = list[0].clone();
            list.push(dup);
        }
        2 => list.push(json!("not-a-container")),
        3 => list.push(json!({"name": 7, "image": "x"})),
        4..=6 => list.push(injected_lookalike(rng)),
        _ => {}
    }
    Some(Value::Array(list))
}

/// The init containers: absent, empty, or plain ones, an app's native
/// sidecar, now and then an injected-name item.
fn init_containers(rng: &mut Rng) -> Option<Value> {
    match rng.below(6) {
        0 | 1 => return None,
        2 => return Some(json!([])),
        _ => {}
    }
    let mut list = Vec::new();
    if chance(rng, 2) {
        list.push(json!({"name": "init-db", "image": "busybox",
                         "command": ["sh", "-c", "true"]}));
    }
    if chance(rng, 2) {
        let name = *rng.pick(&["log-shipper", "app", "vault-agent"]);
        list.push(container(rng, Some(name), true));
    }
    if chance(rng, 3) {
        list.push(json!({"name": "migrate", "image": "example.com/migrate:2",
                         "restartPolicy": "Never"}));
    }
    if chance(rng, 30) {
        list.push(injected_lookalike(rng));
    }
    Some(Value::Array(list))
}

/// A list of distinct items of `pool`, empty, or absent.
fn named_list(rng: &mut Rng, pool: &[Value]) -> Option<Value> {
    match rng.below(5) {
        0 | 1 => None,
        2 => Some(json!([])),
        _ => {
            let mut items: Vec<Value> = Vec::new();
            for _ in 0..=rng.below(pool.len()) {
                let item = rng.pick(pool).clone();
                if !items.contains(&item) {
                    items.push(item);
                }
            }
            Some(Value::Array(items))
        }
    }
}

/// A pod spec.
pub fn spec(rng: &mut Rng) -> Value {
    let mut s = Map::new();
    if let Some(c) = containers(rng) {
        s.insert("containers".into(), c);
    }
    if let Some(c) = init_containers(rng) {
        s.insert("initContainers".into(), c);
    }
    let volumes = [
        json!({"name": "data", "emptyDir": {}}),
        json!({"name": "config", "configMap": {"name": "app-config"}}),
        json!({"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}),
    ];
    if let Some(v) = named_list(rng, &volumes) {
        s.insert("volumes".into(), v);
    }
    if chance(rng, 30) {
        let odd = rng
            .pick(&[
                json!([{"name": "istio-envoy", "emptyDir": {"medium": "Memory"}}]),
                json!([{"emptyDir": {}}]),
                json!({"name": "data"}),
            ])
            .clone();
        s.insert("volumes".into(), odd);
    }
    let secrets = [json!({"name": "regcred"}), json!({"name": "mirror"})];
    if let Some(v) = named_list(rng, &secrets) {
        s.insert("imagePullSecrets".into(), v);
    }
    if chance(rng, 30) {
        let odd = rng.pick(&[json!([{"name": "a"}]), json!([{}])]).clone();
        s.insert("imagePullSecrets".into(), odd);
    }
    match rng.below(5) {
        0 => {
            s.insert("serviceAccountName".into(), json!("reviews"));
        }
        1 => {
            s.insert("serviceAccountName".into(), json!(""));
        }
        2 if chance(rng, 3) => {
            s.insert("serviceAccountName".into(), json!("sa-\u{e9}\"x"));
        }
        _ => {}
    }
    if chance(rng, 40) {
        s.insert("hostNetwork".into(), json!(true));
    }
    if chance(rng, 6) {
        s.insert("futureField".into(), json!({"x": [1, 2.5, null]}));
    }
    if chance(rng, 5) {
        s.insert("securityContext".into(), json!({"fsGroup": 1337}));
    }
    Value::Object(s)
}

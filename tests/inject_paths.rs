//! The webhook's patch paths under many configurations: every pod of a
//! seeded, varied set (every supported kind, zero to several app
//! containers, named and numbered ports, all kinds of probes and hooks,
//! native app sidecars, present, absent and empty lists, odd metadata,
//! Prometheus annotations, tuning annotations, a few odd shapes) is
//! injected under every configuration of a seeded set (each setting that
//! changes what the template renders, alone and in combinations), and
//! `inject_patch` must agree with `inject`: the same patch text, byte for
//! byte (`serde_json::to_vec` of `inject`'s patch), the same decision, the
//! same skip, the same error. Some injected pods are injected again, under
//! the same or another configuration (the Value engine's re-injection).
//!
//! The tally of the paths `inject_patch` took must show each of them
//! (`Engine`, `Rendered`, `Compiled`) taken often, so that the test cannot
//! quietly stop exercising one. A disagreement is shrunk (configuration
//! layers dropped, pod nodes removed while it persists) and reported with
//! the first differing byte of the two patches.
//!
//! `PATHS_SEED` picks another series; `PATHS_ROUNDS` (default 1) multiplies
//! the number of combined configurations and generated pods.

#[path = "support/damage.rs"]
mod damage;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use damage::Rng;
use outrigger::config::Config;
use outrigger::inject::{Context, Outcome, PatchOutcome, PatchPath, inject, inject_patch};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------
// Configurations

/// Every setting that changes what the template renders or what
/// post-processing does, by name: a list of layers, each a `--set`
/// assignment (a string) or a values document (a mapping).
const FEATURES: &str = r#"
native-off: [values.pilot.env.ENABLE_NATIVE_SIDECARS=false]
native-on: [values.pilot.env.ENABLE_NATIVE_SIDECARS=true]
hold-mesh: [meshConfig.defaultConfig.holdApplicationUntilProxyStarts=true]
hold-values: [values.global.proxy.holdApplicationUntilProxyStarts=true]
cni: [values.istio_cni.enabled=true]
tproxy: [meshConfig.defaultConfig.interceptionMode=TPROXY]
interception-none: [meshConfig.defaultConfig.interceptionMode=NONE]
mtls-certs: [values.global.mountMtlsCerts=true]
pull-secrets: ["values.global.imagePullSecrets={a,b}"]
pull-secret-regcred: ["values.global.imagePullSecrets={regcred}"]
core-dump: [values.global.proxy.enableCoreDump=true]
proxy-metadata:
- meshConfig.defaultConfig.proxyMetadata.FOO=bar
- meshConfig.defaultConfig.proxyMetadata.EMPTY=
- meshConfig.defaultConfig.proxyMetadata.NUM=5
- meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE=true
proxy-metadata-odd:
- meshConfig: {defaultConfig: {proxyMetadata: {"WEIRD\"NAME": "a\"b\\c\u0001\u00e9\u2028",
    LIST: [1, 2.5], OBJ: {k: v}, "NUL": "\u0000"}}}
metadata-app-probers:
- meshConfig: {defaultConfig: {proxyMetadata:
    {ISTIO_KUBE_APP_PROBERS: '{"/app-health/old/livez":{"httpGet":{"port":8080}}}'}}}
metadata-app-probers-not-json:
- meshConfig.defaultConfig.proxyMetadata.ISTIO_KUBE_APP_PROBERS=not-json
metadata-prometheus:
- meshConfig.defaultConfig.proxyMetadata.ISTIO_PROMETHEUS_ANNOTATIONS=x
lifecycle-exec: ["values.global.proxy.lifecycle.preStop.exec.command={sleep,5}"]
lifecycle-http:
- values: {global: {proxy: {lifecycle: {postStart: {httpGet: {port: 15000, path: /ready}},
    preStop: {sleep: {seconds: 1.5}}}}}}
status-port: [values.global.proxy.statusPort=15030]
status-port-off: [values.global.proxy.statusPort=0]
mesh-status-port: [meshConfig.defaultConfig.statusPort=15030]
no-probe-rewrite: [values.sidecarInjectorWebhook.rewriteAppHTTPProbe=false]
no-prometheus-merge: [meshConfig.enablePrometheusMerge=false]
revision: [values.revision=canary]
startup-probe-off: [values.global.proxy.startupProbe.enabled=false]
startup-probe-on:
- values.global.proxy.startupProbe.enabled=true
- values.global.proxy.startupProbe.failureThreshold=30
log-json: [values.global.logAsJson=true]
outrigger-capture:
- config.trafficCapture=outrigger
- values.global.proxy_init.image=registry.example.com/outrigger:0.1.0
outrigger-capture-name:
- config.trafficCapture=outrigger
- values.global.proxy_init.image=outrigger
privileged: [values.global.proxy.privileged=true]
first-party-jwt: [values.global.jwtPolicy=first-party-jwt]
kubernetes-cert-provider: [values.global.pilotCertProvider=kubernetes]
pull-policy: [values.global.imagePullPolicy=Always]
capture-ranges:
- values.global.proxy.excludeInboundPorts=8081
- values.global.proxy.includeOutboundPorts=443
- values.global.proxy.excludeOutboundPorts=3306
- values.global.proxy.excludeInterfaces=eth1
- values.global.proxy.excludeIPRanges=10.96.0.0/12
- values.global.proxy.includeIPRanges=10.0.0.0/8
mesh-identity:
- values.global.network=net1
- values.global.meshID=mesh1
- values.global.multiCluster.clusterName=east
- meshConfig.trustDomain=example.org
- values.global.caAddress=ca.example.org:15012
- values.global.istioNamespace=mesh-system
resources:
- values.global.proxy.resources.limits.memory=null
- values.global.proxy.resources.requests.cpu=1
- values.global.proxy.resources.requests.memory=0.5Gi
no-resources: [values.global.proxy.resources=null]
injected-annotations:
- config: {injectedAnnotations: {team: mesh, prometheus.io/scrape: "false",
    "odd~key/x": "v\u0001\""}}
policy-disabled: [config.policy=disabled]
selectors:
- config:
    alwaysInjectSelector: [{matchLabels: {tier: "3"}}]
    neverInjectSelector: [{matchExpressions: [{key: app, operator: In, values: [worker]}]}]
localhost-inbound: [meshConfig.inboundTrafficPolicy.mode=LOCALHOST]
images:
- values.global.variant=distroless
- values.global.hub=registry.example.com/istio
- values.global.tag=1.27.0
proxy-image-reference: [values.global.proxy.image=example.com/mesh/proxy:9]
readiness:
- values.global.proxy.readinessFailureThreshold=10
- values.global.proxy.readinessInitialDelaySeconds=2
- values.global.proxy.readinessPeriodSeconds=5
proxy-config-fields:
- meshConfig.defaultConfig.concurrency=2
- meshConfig.defaultConfig.drainDuration=23s
- meshConfig: {defaultConfig: {proxyStatsMatcher: {inclusionPrefixes: ["a\"b", "\u00e9"]},
    tracing: {sampling: 12.5}}}
log-levels:
- values.global.logging.level=default:debug
- values.global.proxy.logLevel=debug
- values.global.proxy.componentLogLevel=misc:info
cluster-domain: [values.global.proxy.clusterDomain=corp.local]
token-audience: [values.global.sds.token.aud=custom-aud]
pull-secret-objects:
- values: {global: {imagePullSecrets: [{name: obj-secret}]}}
trust-domain-legacy: [meshConfig.trustDomain=null, values.global.trustDomain=legacy.local]
no-trust-domain: [meshConfig.trustDomain=null]
webhook-keys:
- values: {sidecarInjectorWebhook: {injectedAnnotations: {from-values: "1"},
    neverInjectSelector: [{matchLabels: {version: v1}}]}}
outrigger-capture-bad-range:
- config.trafficCapture=outrigger
- values.global.proxy_init.image=registry.example.com/outrigger:0.1.0
- values.global.proxy.excludeIPRanges=not-a-range
"#;

/// The features that change what the direct path decides (which items,
/// lists and env vars are added, and where), combined more often.
const STRUCTURAL: &[&str] = &[
    "hold-mesh",
    "hold-values",
    "cni",
    "interception-none",
    "mtls-certs",
    "pull-secrets",
    "pull-secret-regcred",
    "core-dump",
    "metadata-app-probers",
    "metadata-prometheus",
    "lifecycle-http",
    "status-port",
    "status-port-off",
    "mesh-status-port",
    "no-probe-rewrite",
    "no-prometheus-merge",
    "revision",
    "outrigger-capture",
];

/// Features taken alone only: `outrigger iptables` refuses the range, so
/// every injection fails (with the same error on both paths).
const ALONE: &[&str] = &["outrigger-capture-bad-range"];

/// One layer of a configuration.
#[derive(Debug, Clone)]
enum Layer {
    /// A `--set` assignment.
    Set(String),
    /// A values document (JSON text).
    Values(String),
}

/// A setting (one or a few layers that belong together), named.
#[derive(Debug, Clone)]
struct Feature {
    name: String,
    layers: Vec<Layer>,
}

/// [`FEATURES`], parsed.
fn features() -> Vec<Feature> {
    let doc: serde_yaml::Mapping = serde_yaml::from_str(FEATURES).expect("FEATURES is YAML");
    doc.into_iter()
        .map(|(name, layers)| Feature {
            name: name.as_str().expect("a feature name").to_string(),
            layers: layers
                .as_sequence()
                .expect("a feature's layers")
                .iter()
                .map(|l| match l.as_str() {
                    Some(s) => Layer::Set(s.to_string()),
                    None => Layer::Values(serde_json::to_string(l).expect("a values document")),
                })
                .collect(),
        })
        .collect()
}

/// A configuration under test: its features (by index into the feature
/// list) and the built configuration.
struct TestConfig {
    features: Vec<usize>,
    cfg: Config,
}

/// The features' names, joined.
fn names(all: &[Feature], features: &[usize]) -> String {
    if features.is_empty() {
        return "defaults".into();
    }
    let names: Vec<&str> = features.iter().map(|&f| all[f].name.as_str()).collect();
    names.join("+")
}

/// The features' names and layers, one per line.
fn describe(all: &[Feature], features: &[usize]) -> String {
    let layers: Vec<String> = features
        .iter()
        .flat_map(|&f| &all[f].layers)
        .map(|l| match l {
            Layer::Set(s) => format!("--set {s}"),
            Layer::Values(y) => format!("--values {y}"),
        })
        .collect();
    format!("{}\n    {}", names(all, features), layers.join("\n    "))
}

/// The configuration of `features`, or `None` when a layer or the
/// combination is refused.
fn build(all: &[Feature], features: &[usize]) -> Option<Config> {
    let mut b = Config::builder();
    for &f in features {
        for layer in &all[f].layers {
            match layer {
                Layer::Set(s) => b.set(s).ok()?,
                Layer::Values(y) => b.merge_values_yaml(y).ok()?,
            };
        }
    }
    b.build().ok()
}

/// The defaults; each feature alone; native sidecars off with each
/// structural feature; then `combined` random combinations of two to six
/// features (half of them without native sidecars, two thirds of the
/// picks structural). Returns the configurations and how many were
/// refused.
fn configs(all: &[Feature], rng: &mut Rng, combined: usize) -> (Vec<TestConfig>, usize) {
    let index = |name: &str| {
        all.iter()
            .position(|f| f.name == name)
            .unwrap_or_else(|| panic!("no feature {name}"))
    };
    let native_off = index("native-off");
    let structural: Vec<usize> = STRUCTURAL.iter().map(|n| index(n)).collect();
    let combinable: Vec<usize> = (0..all.len())
        .filter(|&f| !ALONE.contains(&all[f].name.as_str()))
        .collect();
    let mut wanted: Vec<Vec<usize>> = vec![Vec::new()];
    wanted.extend((0..all.len()).map(|f| vec![f]));
    wanted.extend(structural.iter().map(|&f| vec![native_off, f]));
    for _ in 0..combined {
        let n = 2 + rng.below(5);
        let mut set = Vec::new();
        if chance(rng, 2) {
            set.push(native_off);
        }
        while set.len() < n {
            let f = if rng.below(3) < 2 {
                *rng.pick(&structural)
            } else {
                *rng.pick(&combinable)
            };
            if !set.contains(&f) {
                set.push(f);
            }
        }
        wanted.push(set);
    }
    let mut refused = 0;
    let built = wanted
        .into_iter()
        .filter_map(|features| match build(all, &features) {
            Some(cfg) => Some(TestConfig { features, cfg }),
            None => {
                refused += 1;
                None
            }
        })
        .collect();
    (built, refused)
}

// ---------------------------------------------------------------------------
// Pods

/// True once in `one_in` times.
fn chance(rng: &mut Rng, one_in: usize) -> bool {
    rng.below(one_in) == 0
}

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
fn spec(rng: &mut Rng) -> Value {
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
fn template_meta(rng: &mut Rng) -> Map<String, Value> {
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
fn namespace(rng: &mut Rng, meta: &mut Map<String, Value>) {
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
fn owner(kind: &str, name: &str, api_version: Option<&str>, controller: bool) -> Value {
    let mut o = json!({"kind": kind, "name": name, "uid": "1234", "controller": controller});
    if let Some(v) = api_version {
        o["apiVersion"] = json!(v);
    }
    o
}

/// A Pod: named, generated, owned by a ReplicaSet of a Deployment, a Job of
/// a CronJob, a StatefulSet, an owner without an apiVersion, or nameless.
fn pod(rng: &mut Rng) -> Value {
    let mut meta = template_meta(rng);
    namespace(rng, &mut meta);
    match rng.below(8) {
        0 | 1 => {
            meta.insert("name".into(), json!("reviews-v1"));
        }
        2 => {
            let name = if chance(rng, 4) {
                "wëb\"7-"
            } else {
                "web-7d9f-"
            };
            meta.insert("generateName".into(), json!(name));
        }
        3 => {
            meta.insert("generateName".into(), json!("reviews-v1-5d8f9c-"));
            meta.insert(
                "ownerReferences".into(),
                json!([owner(
                    "ReplicaSet",
                    "reviews-v1-5d8f9c",
                    Some("apps/v1"),
                    true
                )]),
            );
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Value::Object(l) = labels {
                l.insert("pod-template-hash".into(), json!("5d8f9c"));
            }
        }
        4 => {
            meta.insert("name".into(), json!("nightly-28000000-abcde"));
            meta.insert(
                "ownerReferences".into(),
                json!([owner("Job", "nightly-28000000", Some("batch/v1"), true)]),
            );
        }
        5 => {
            meta.insert("name".into(), json!("db-0"));
            meta.insert(
                "ownerReferences".into(),
                json!([
                    owner("Node", "n1", Some("v1"), false),
                    owner("StatefulSet", "db", Some("apps/v1"), true)
                ]),
            );
        }
        6 => {
            meta.insert("name".into(), json!("orphan"));
            meta.insert(
                "ownerReferences".into(),
                json!([owner("Widget", "w", None, true)]),
            );
        }
        _ => {}
    }
    let mut p = Map::new();
    p.insert("apiVersion".into(), json!("v1"));
    p.insert("kind".into(), json!("Pod"));
    if !meta.is_empty() || chance(rng, 2) {
        p.insert("metadata".into(), Value::Object(meta));
    }
    p.insert("spec".into(), spec(rng));
    Value::Object(p)
}

/// A workload with a pod template.
fn workload(rng: &mut Rng) -> Value {
    let (kind, api) = *rng.pick(&[
        ("Deployment", "apps/v1"),
        ("Deployment", "apps/v1"),
        ("StatefulSet", "apps/v1"),
        ("DaemonSet", "apps/v1"),
        ("ReplicaSet", "apps/v1"),
        ("ReplicationController", "v1"),
        ("Job", "batch/v1"),
        ("CronJob", "batch/v1"),
    ]);
    let mut meta = Map::new();
    if !chance(rng, 15) {
        let name = if chance(rng, 20) {
            "wörk\"load"
        } else {
            "shop"
        };
        meta.insert("name".into(), json!(name));
    }
    namespace(rng, &mut meta);
    if chance(rng, 4) {
        meta.insert("labels".into(), json!({"owner": "team-a"}));
    }
    let template_meta = template_meta(rng);
    let template_meta = match rng.below(12) {
        0 => None,
        1 => Some(Value::Null),
        _ => Some(Value::Object(template_meta)),
    };
    let spec = spec(rng);
    let mut template = Map::new();
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!(api));
    object.insert("kind".into(), json!(kind));
    object.insert("metadata".into(), Value::Object(meta));
    if kind == "CronJob" {
        // The pod's metadata is the job template's.
        template.insert("spec".into(), spec);
        if chance(rng, 3) {
            template.insert("metadata".into(), json!({"labels": {"inner": "x"}}));
        }
        let mut job_template = Map::new();
        if let Some(m) = template_meta {
            job_template.insert("metadata".into(), m);
        }
        job_template.insert("spec".into(), json!({"template": template}));
        object.insert(
            "spec".into(),
            json!({"schedule": "0 0 * * *", "jobTemplate": job_template}),
        );
    } else {
        if let Some(m) = template_meta {
            template.insert("metadata".into(), m);
        }
        template.insert("spec".into(), spec);
        let mut s = Map::new();
        if chance(rng, 2) {
            s.insert("replicas".into(), json!(2));
        }
        s.insert("template".into(), Value::Object(template));
        object.insert("spec".into(), Value::Object(s));
    }
    Value::Object(object)
}

/// A pod shape and the context it is admitted in.
struct Shape {
    object: Value,
    ctx: Context,
}

/// The admission context: mostly none, sometimes a namespace, with or
/// without its labels.
fn context(rng: &mut Rng) -> Context {
    match rng.below(10) {
        0 => Context {
            namespace: Some("prod".into()),
            namespace_labels: None,
        },
        1 => Context {
            namespace: Some("team".into()),
            namespace_labels: Some(BTreeMap::from([(
                "istio-injection".to_string(),
                "enabled".to_string(),
            )])),
        },
        _ => Context::default(),
    }
}

/// `n` pod shapes: Pods, workloads, now and then a List of both.
fn shapes(rng: &mut Rng, n: usize) -> Vec<Shape> {
    (0..n)
        .map(|_| {
            let object = match rng.below(40) {
                0 => json!({"apiVersion": "v1", "kind": "List",
                            "items": [pod(rng), workload(rng)]}),
                1..=17 => pod(rng),
                _ => workload(rng),
            };
            Shape {
                object,
                ctx: context(rng),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The check

/// How `inject_patch` answered.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    pairs: usize,
    skipped: usize,
    refused: usize,
    engine: usize,
    rendered: usize,
    compiled: usize,
    reinjected: usize,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.pairs += o.pairs;
        self.skipped += o.skipped;
        self.refused += o.refused;
        self.engine += o.engine;
        self.rendered += o.rendered;
        self.compiled += o.compiled;
        self.reinjected += o.reinjected;
    }
}

/// Where `a` and `b` first differ, with some context of each.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let around = |t: &[u8]| {
        let start = at.saturating_sub(100);
        let end = (at + 200).min(t.len());
        format!(
            "...{}>>>{}...",
            String::from_utf8_lossy(&t[start..at.min(t.len())]),
            String::from_utf8_lossy(&t[at.min(t.len())..end])
        )
    };
    format!(
        "first difference at byte {at} (lengths {} / {}):\n  inject_patch: {}\n  inject:       {}",
        a.len(),
        b.len(),
        around(a),
        around(b)
    )
}

/// The injected object when both agree on an injection, or the
/// disagreement.
fn check_pair(
    object: &Value,
    ctx: &Context,
    cfg: &Config,
    tally: &mut Tally,
) -> Result<Option<Value>, String> {
    tally.pairs += 1;
    let full = catch_unwind(AssertUnwindSafe(|| inject(object, ctx, cfg)))
        .map_err(|_| "inject panicked".to_string())?;
    let direct = catch_unwind(AssertUnwindSafe(|| inject_patch(object, ctx, cfg)))
        .map_err(|_| "inject_patch panicked".to_string())?;
    match (full, direct) {
        (
            Ok(Outcome::Injected {
                patch,
                mutated,
                decision,
            }),
            Ok(PatchOutcome::Injected {
                patch: text,
                decision: d,
                path,
            }),
        ) => {
            match path {
                PatchPath::Engine => tally.engine += 1,
                PatchPath::Rendered => tally.rendered += 1,
                PatchPath::Compiled => tally.compiled += 1,
            }
            let want = serde_json::to_vec(&patch).map_err(|e| e.to_string())?;
            if text != want {
                return Err(format!(
                    "patches differ ({path:?} path); {}",
                    first_difference(&text, &want)
                ));
            }
            if d != decision {
                return Err(format!(
                    "decisions differ ({path:?} path):\n  inject_patch: {d:?}\n  inject:       {decision:?}"
                ));
            }
            Ok(Some(mutated))
        }
        (Ok(Outcome::Skipped { reason }), Ok(PatchOutcome::Skipped { reason: r })) => {
            tally.skipped += 1;
            if r != reason {
                return Err(format!("skips differ: {r} / {reason}"));
            }
            Ok(None)
        }
        (Err(a), Err(b)) => {
            tally.refused += 1;
            if a != b {
                return Err(format!("errors differ: {b} / {a}"));
            }
            Ok(None)
        }
        (full, direct) => Err(format!(
            "outcomes differ:\n  inject_patch: {}\n  inject:       {}",
            short(&format!("{direct:?}")),
            short(&format!("{full:?}"))
        )),
    }
}

/// `s`, cut to a readable length.
fn short(s: &str) -> String {
    if s.len() > 600 {
        let mut cut = 600;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s.to_string()
    }
}

/// A disagreement, as found.
struct Failure {
    config: usize,
    object: Value,
    ctx: Context,
    problem: String,
}

/// Runs the shared pods and `own` pods of its own under each of the
/// configurations `configs[range]`; re-injects some injected pods under the
/// same or another configuration.
fn run_configs(
    all: &[Feature],
    configs: &[TestConfig],
    range: std::ops::Range<usize>,
    (shared, own): (&[Shape], usize),
    seed: u64,
) -> (Tally, Vec<Failure>) {
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for ci in range {
        let mut rng = Rng::new(seed ^ (ci as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let cfg = &configs[ci].cfg;
        let own = shapes(&mut rng, own);
        for shape in shared.iter().chain(&own) {
            let mutated = match check_pair(&shape.object, &shape.ctx, cfg, &mut tally) {
                Ok(m) => m,
                Err(problem) => {
                    failures.push(Failure {
                        config: ci,
                        object: shape.object.clone(),
                        ctx: shape.ctx.clone(),
                        problem,
                    });
                    continue;
                }
            };
            let Some(mutated) = mutated else { continue };
            if !chance(&mut rng, 8) {
                continue;
            }
            let again = if chance(&mut rng, 2) {
                ci
            } else {
                rng.below(configs.len())
            };
            tally.reinjected += 1;
            if let Err(problem) = check_pair(&mutated, &shape.ctx, &configs[again].cfg, &mut tally)
            {
                failures.push(Failure {
                    config: again,
                    object: mutated,
                    ctx: shape.ctx.clone(),
                    problem: format!(
                        "re-injection of the pod injected under [{}]: {problem}",
                        names(all, &configs[ci].features)
                    ),
                });
            }
        }
    }
    (tally, failures)
}

// ---------------------------------------------------------------------------
// Shrinking a disagreement

/// One step into a JSON value: a key or an index.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// The path of every node of `v` but the root.
fn node_paths(v: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(Step::Key(k.clone()));
                out.push(prefix.clone());
                node_paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(l) => {
            for (i, child) in l.iter().enumerate() {
                prefix.push(Step::Index(i));
                out.push(prefix.clone());
                node_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// `v` without the node at `path` (not the root).
fn without(v: &Value, path: &[Step]) -> Option<Value> {
    let (last, parent) = path.split_last()?;
    let mut copy = v.clone();
    let node = parent.iter().try_fold(&mut copy, |node, step| match step {
        Step::Key(k) => node.get_mut(k.as_str()),
        Step::Index(i) => node.get_mut(*i),
    })?;
    match (node, last) {
        (Value::Object(m), Step::Key(k)) => {
            m.remove(k);
        }
        (Value::Array(l), Step::Index(i)) if *i < l.len() => {
            l.remove(*i);
        }
        _ => return None,
    }
    Some(copy)
}

/// A disagreement made small: the fewest features, the default context if
/// it still disagrees there, and the fewest nodes of the object found
/// (greedily) that still disagree.
struct Shrunk {
    features: Vec<usize>,
    ctx: Context,
    object: Value,
    problem: String,
}

/// Shrinks `f`, found under `features`.
fn shrink(all: &[Feature], f: &Failure, features: &[usize]) -> Shrunk {
    let fails = |features: &[usize], object: &Value, ctx: &Context| -> Option<String> {
        let cfg = build(all, features)?;
        check_pair(object, ctx, &cfg, &mut Tally::default()).err()
    };
    let mut s = Shrunk {
        features: features.to_vec(),
        ctx: f.ctx.clone(),
        object: f.object.clone(),
        problem: String::new(),
    };
    match fails(&s.features, &s.object, &s.ctx) {
        Some(p) => s.problem = p,
        None => {
            s.problem = format!("(does not reproduce alone) {}", f.problem);
            return s;
        }
    }
    if let Some(p) = fails(&s.features, &s.object, &Context::default()) {
        (s.ctx, s.problem) = (Context::default(), p);
    }
    let mut i = 0;
    while i < s.features.len() {
        let mut fewer = s.features.clone();
        fewer.remove(i);
        match fails(&fewer, &s.object, &s.ctx) {
            Some(p) => (s.features, s.problem) = (fewer, p),
            None => i += 1,
        }
    }
    let mut attempts = 0;
    'outer: loop {
        let mut paths = Vec::new();
        node_paths(&s.object, &mut Vec::new(), &mut paths);
        for path in paths {
            // The kind says where the pod is: keep it.
            if matches!(path.as_slice(), [Step::Key(k)] if k == "kind") {
                continue;
            }
            attempts += 1;
            if attempts > 3000 {
                break 'outer;
            }
            if let Some(smaller) = without(&s.object, &path)
                && let Some(p) = fails(&s.features, &smaller, &s.ctx)
            {
                (s.object, s.problem) = (smaller, p);
                continue 'outer;
            }
        }
        break;
    }
    s
}

/// Features that change nothing: the defaults' value.
const DEFAULT_VALUED: &[&str] = &["native-on"];

/// Each feature builds alone and changes what some shared pod gets, alone
/// or with native sidecars off (holding the application changes nothing
/// for a native sidecar): a renamed key would otherwise leave a feature
/// testing the defaults.
fn check_every_feature_counts(all: &[Feature], shared: &[Shape]) {
    let native_off = all
        .iter()
        .position(|f| f.name == "native-off")
        .expect("a native-off feature");
    let mut idle = Vec::new();
    for (f, feature) in all.iter().enumerate() {
        let differs = |base: &[usize]| {
            let with: Vec<usize> = base.iter().copied().chain([f]).collect();
            let (Some(without), Some(with)) = (build(all, base), build(all, &with)) else {
                panic!("feature {} is refused", feature.name);
            };
            shared.iter().any(|shape| {
                inject(&shape.object, &shape.ctx, &with)
                    != inject(&shape.object, &shape.ctx, &without)
            })
        };
        let default_valued = DEFAULT_VALUED.contains(&feature.name.as_str());
        let counts = differs(&[]) || (!default_valued && f != native_off && differs(&[native_off]));
        if counts == default_valued {
            idle.push(feature.name.as_str());
        }
    }
    assert!(
        idle.is_empty(),
        "features that change nothing (or, for {DEFAULT_VALUED:?}, something): {idle:?}"
    );
}

/// A number from the environment, else `default`.
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The contract, on every (configuration, pod) pair; see the module docs.
#[test]
fn direct_and_compiled_paths_agree_with_the_engine_across_configurations() {
    let seed = env_number("PATHS_SEED", 0x0a75_5eed_u64);
    let rounds = env_number("PATHS_ROUNDS", 1).max(1) as usize;
    // Spread the seed's bits: `Rng` only makes it odd.
    let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (seed >> 7));
    let all = features();
    let (configs, refused) = configs(&all, &mut rng, 24 * rounds);
    // Pods every configuration sees, and as many of each configuration's own.
    let per_config = 50 * rounds;
    let shared = shapes(&mut rng, per_config);
    assert!(
        refused * 10 < configs.len(),
        "{refused} configurations refused, {} built",
        configs.len()
    );
    check_every_feature_counts(&all, &shared);

    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    let per = configs.len().div_ceil(threads);
    let (tally, failures) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * per).min(configs.len())..((t + 1) * per).min(configs.len());
                let (all, configs, shared) = (&all, &configs, &shared);
                scope.spawn(move || run_configs(all, configs, range, (shared, per_config), seed))
            })
            .collect();
        let mut tally = Tally::default();
        let mut failures = Vec::new();
        for h in handles {
            let (t, f) = h.join().expect("a worker panicked");
            tally.add(&t);
            failures.extend(f);
        }
        (tally, failures)
    });
    eprintln!(
        "{} configurations ({refused} refused), {per_config} shared and {per_config} own pods each: {tally:?}",
        configs.len()
    );

    let injected = tally.engine + tally.rendered + tally.compiled;
    for (what, n) in [
        ("the Value engine", tally.engine),
        ("the direct path, rendered", tally.rendered),
        ("the direct path, compiled", tally.compiled),
    ] {
        assert!(
            n * 20 > injected,
            "only {n} of {injected} injections by {what}: {tally:?}"
        );
    }
    assert!(
        tally.skipped * 50 > tally.pairs && tally.refused * 100 > tally.pairs,
        "too few skips or refusals to compare: {tally:?}"
    );

    if failures.is_empty() {
        return;
    }
    // Shrink a few: the first of each kind of problem.
    let mut reports = Vec::new();
    let mut seen = Vec::new();
    for f in &failures {
        let kind: String = f.problem.chars().take(40).collect();
        if seen.contains(&kind) || reports.len() >= 6 {
            continue;
        }
        seen.push(kind);
        let s = shrink(&all, f, &configs[f.config].features);
        reports.push(format!(
            "configuration: {}\ncontext: {:?}\nobject (shrunk): {}\n{}\n(as found: {})",
            describe(&all, &s.features),
            s.ctx,
            serde_json::to_string_pretty(&s.object).unwrap_or_default(),
            s.problem,
            short(&f.problem)
        ));
    }
    panic!(
        "{} of {} pairs disagree (seed {seed:#x}); shrunk:\n\n{}",
        failures.len(),
        tally.pairs,
        reports.join("\n\n")
    );
}

//! The configurations `inject_paths` injects under: every setting that
//! changes what the template renders or what post-processing does, named
//! as a feature of one or a few layers (`--set` assignments or values
//! documents), and the seeded set of configurations built from them (the
//! defaults, each feature alone, structural features without native
//! sidecars, random combinations). Included by path by
//! tests/inject_paths.rs only.

use outrigger::config::Config;

use crate::damage::Rng;
use crate::shapes::chance;

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
pub enum Layer {
    /// A `--set` assignment.
    Set(String),
    /// A values document (JSON text).
    Values(String),
}

/// A setting (one or a few layers that belong together), named.
#[derive(Debug, Clone)]
pub struct Feature {
    /// Its key in [`FEATURES`].
    pub name: String,
    /// Its layers, applied in order.
    pub layers: Vec<Layer>,
}

/// [`FEATURES`], parsed.
pub fn features() -> Vec<Feature> {
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
pub struct TestConfig {
    /// The features, as indexes into the feature list.
    pub features: Vec<usize>,
    /// The configuration they build.
    pub cfg: Config,
}

/// The features' names, joined.
pub fn names(all: &[Feature], features: &[usize]) -> String {
    if features.is_empty() {
        return "defaults".into();
    }
    let names: Vec<&str> = features.iter().map(|&f| all[f].name.as_str()).collect();
    names.join("+")
}

/// The features' names and layers, one per line.
pub fn describe(all: &[Feature], features: &[usize]) -> String {
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
pub fn build(all: &[Feature], features: &[usize]) -> Option<Config> {
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
pub fn configs(all: &[Feature], rng: &mut Rng, combined: usize) -> (Vec<TestConfig>, usize) {
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

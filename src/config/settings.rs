//! The configuration resolved into plain fields, once per load, so that the
//! engine reads no tree on the admission path.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ConfigError;
use super::selector::LabelSelector;

/// Whether pods are injected unless they opt out (`enabled`) or only when
/// they opt in (`disabled`), as Istio's `policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Inject unless the pod opts out.
    Enabled,
    /// Inject only when the pod opts in.
    Disabled,
}

/// What the injected traffic-capture init container (`istio-init`) runs,
/// `config.trafficCapture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficCapture {
    /// `istio-iptables` (the default): Istio's `pilot-agent istio-iptables`
    /// from the image `values.global.proxy_init.image` resolves to (Istio's
    /// proxy image by default), exactly as Istio's template renders it.
    IstioIptables,
    /// `outrigger`: `outrigger iptables` from outrigger's own image
    /// (`values.global.proxy_init.image`), with the same capture arguments.
    Outrigger,
}

/// How the pod network reaches Istio's CNI plugin (`values.cni.provider`,
/// Istio's `CNIUsageConfig.provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniProvider {
    /// `default`: the plugin is chained into the node's CNI configuration.
    Default,
    /// `multus`: the plugin is a Multus network attachment, which each pod
    /// asks for in its `k8s.v1.cni.cncf.io/networks` annotation
    /// (`default/istio-cni`, appended to the networks it already names).
    Multus,
}

/// The keys that say whether the CNI plugin captures traffic, the first
/// one set winning: what Istio's injection template reads
/// (`values.pilot.cni.enabled`), what `istioctl` sets it from
/// (`components.cni.enabled`, as `--set components.cni.enabled=true` or an
/// IstioOperator's `spec.components`), then the older `values.cni.enabled`
/// and `values.istio_cni.enabled`.
pub const CNI_ENABLED_KEYS: &[&str] = &[
    "values.pilot.cni.enabled",
    "components.cni.enabled",
    "values.cni.enabled",
    "values.istio_cni.enabled",
];

/// The keys that name the CNI provider, the first one set winning:
/// `values.pilot.cni.provider` (what the template reads, the istiod chart's
/// `pilot.cni.provider`), `values.cni.provider` (as `istioctl` users set
/// it), then the older `values.istio_cni.provider`.
pub const CNI_PROVIDER_KEYS: &[&str] = &[
    "values.pilot.cni.provider",
    "values.cni.provider",
    "values.istio_cni.provider",
];

fn cni_enabled(r: &Reader) -> Result<bool, ConfigError> {
    match CNI_ENABLED_KEYS.iter().find(|k| r.get(k).is_some()) {
        Some(key) => r.boolean(key),
        None => Ok(false),
    }
}

fn cni_provider(r: &Reader) -> Result<CniProvider, ConfigError> {
    let Some(key) = CNI_PROVIDER_KEYS.iter().find(|k| r.get(k).is_some()) else {
        return Ok(CniProvider::Default);
    };
    match r.string(key)?.as_str() {
        "default" | "" => Ok(CniProvider::Default),
        "multus" => Ok(CniProvider::Multus),
        other => Err(invalid(
            key,
            &Value::String(other.into()),
            "default or multus",
        )),
    }
}

/// The names of `meshConfig.defaultConfig` (Istio's ProxyConfig) fields, in
/// the order Istio's protobuf JSON writes them in `PROXY_CONFIG` (their
/// declaration order in istio/api `mesh/v1alpha1/proxy.proto`; the removed
/// `parentShutdownDuration` where it was). Every one of them reaches the
/// proxy through `PROXY_CONFIG`, so every one affects injection.
pub const PROXY_CONFIG_FIELDS: &[&str] = &[
    "configPath",
    "binaryPath",
    "serviceCluster",
    "tracingServiceName",
    "drainDuration",
    "parentShutdownDuration",
    "discoveryAddress",
    "discoveryRefreshDelay",
    "zipkinAddress",
    "statsdUdpAddress",
    "envoyMetricsServiceAddress",
    "proxyAdminPort",
    "availabilityZone",
    "controlPlaneAuthPolicy",
    "customConfigFile",
    "statNameLength",
    "concurrency",
    "proxyBootstrapTemplatePath",
    "interceptionMode",
    "tracing",
    "sds",
    "envoyAccessLogService",
    "envoyMetricsService",
    "proxyMetadata",
    "runtimeValues",
    "statusPort",
    "extraStatTags",
    "gatewayTopology",
    "terminationDrainDuration",
    "meshId",
    "readinessProbe",
    "proxyStatsMatcher",
    "holdApplicationUntilProxyStarts",
    "caCertificatesPem",
    "image",
    "privateKeyProvider",
    "proxyHeaders",
    "fileFlushInterval",
    "fileFlushMinSizeKb",
    "statsCompression",
    "connectionSettings",
];

/// Everything injection reads from the configuration, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `values.global.hub`: registry of the proxy images.
    pub hub: String,
    /// `values.global.tag`: tag of the proxy images.
    pub tag: String,
    /// `values.global.variant`: image variant suffix (e.g. `distroless`).
    pub variant: String,
    /// `values.global.proxy.image`: proxy image name, or a full reference when it contains `/`.
    pub proxy_image: String,
    /// `values.global.proxy_init.image`: capture init image name or reference.
    pub init_image: String,
    /// `values.global.imagePullPolicy` (empty: leave to Kubernetes).
    pub image_pull_policy: String,
    /// `values.global.imagePullSecrets`: secrets added to injected pods.
    pub image_pull_secrets: Vec<String>,
    /// `values.global.istioNamespace`: where istiod runs.
    pub istio_namespace: String,
    /// `values.global.caAddress` (empty: istiod in the Istio namespace).
    pub ca_address: String,
    /// `values.revision` (empty: the default revision).
    pub revision: String,
    /// `values.global.pilotCertProvider`.
    pub pilot_cert_provider: String,
    /// `values.global.jwtPolicy` (`third-party-jwt` mounts the istio-token).
    pub jwt_policy: String,
    /// `values.global.sds.token.aud`: audience of the projected token.
    pub token_audience: String,
    /// `values.global.mountMtlsCerts`: mount `istio.<sa>` secrets at /etc/certs.
    pub mount_mtls_certs: bool,
    /// `values.global.meshID` (empty: the trust domain).
    pub mesh_id: String,
    /// `values.global.network`.
    pub network: String,
    /// `values.global.multiCluster.clusterName` (empty: `Kubernetes`).
    pub cluster_name: String,
    /// `meshConfig.trustDomain`, else `values.global.trustDomain`.
    pub trust_domain: String,
    /// `values.global.logAsJson`.
    pub log_as_json: bool,
    /// `values.global.logging.level`: the agent's `--log_output_level`.
    pub agent_log_level: String,
    /// Whether Istio's CNI plugin captures traffic (pods get
    /// `istio-validation` instead of `istio-init`), from [`CNI_ENABLED_KEYS`].
    pub cni_enabled: bool,
    /// The CNI provider, from [`CNI_PROVIDER_KEYS`].
    pub cni_provider: CniProvider,
    /// `values.global.proxy.clusterDomain`.
    pub cluster_domain: String,
    /// `values.global.proxy.componentLogLevel`.
    pub component_log_level: String,
    /// `values.global.proxy.logLevel`.
    pub log_level: String,
    /// `values.global.proxy.enableCoreDump`.
    pub enable_core_dump: bool,
    /// `values.global.proxy.excludeInboundPorts`.
    pub exclude_inbound_ports: String,
    /// `values.global.proxy.excludeIPRanges`.
    pub exclude_ip_ranges: String,
    /// `values.global.proxy.excludeOutboundPorts`.
    pub exclude_outbound_ports: String,
    /// `values.global.proxy.excludeInterfaces`.
    pub exclude_interfaces: String,
    /// `values.global.proxy.includeIPRanges`.
    pub include_ip_ranges: String,
    /// `values.global.proxy.includeInboundPorts`.
    pub include_inbound_ports: String,
    /// `values.global.proxy.includeOutboundPorts`.
    pub include_outbound_ports: String,
    /// `values.global.proxy.privileged`.
    pub privileged: bool,
    /// `values.global.proxy.readinessFailureThreshold`.
    pub readiness_failure_threshold: i64,
    /// `values.global.proxy.readinessInitialDelaySeconds`.
    pub readiness_initial_delay: i64,
    /// `values.global.proxy.readinessPeriodSeconds`.
    pub readiness_period: i64,
    /// `values.global.proxy.startupProbe.enabled`.
    pub startup_probe_enabled: bool,
    /// `values.global.proxy.startupProbe.failureThreshold`.
    pub startup_failure_threshold: i64,
    /// `values.global.proxy.statusPort` (0 disables the status port).
    pub status_port: i64,
    /// `values.global.proxy.holdApplicationUntilProxyStarts`.
    pub hold_application: bool,
    /// `values.global.proxy.lifecycle`, used verbatim when not empty.
    pub lifecycle: Value,
    /// `values.global.proxy.resources` (quantities as written).
    pub resources: Value,
    /// `resources` in canonical quantities: what every pod without a
    /// resource annotation gets, computed once here rather than per pod.
    pub proxy_resources: Value,
    /// `values.pilot.env.ENABLE_NATIVE_SIDECARS` (default true).
    pub native_sidecars: bool,
    /// `values.sidecarInjectorWebhook.rewriteAppHTTPProbe`.
    pub rewrite_probes: bool,
    /// `meshConfig.defaultConfig` fields the user set, in Istio's order.
    pub proxy_config: Map<String, Value>,
    /// `meshConfig.enablePrometheusMerge`.
    pub enable_prometheus_merge: bool,
    /// `meshConfig.inboundTrafficPolicy.mode` is `LOCALHOST`.
    pub inbound_localhost: bool,
    /// `config.policy`.
    pub policy: Policy,
    /// `config.trafficCapture`: what the capture init container runs.
    pub traffic_capture: TrafficCapture,
    /// `config.neverInjectSelector` and `values.sidecarInjectorWebhook.neverInjectSelector`.
    pub never_inject: Vec<LabelSelector>,
    /// `config.alwaysInjectSelector` and `values.sidecarInjectorWebhook.alwaysInjectSelector`.
    pub always_inject: Vec<LabelSelector>,
    /// `config.injectedAnnotations` and `values.sidecarInjectorWebhook.injectedAnnotations`: added to every injected pod.
    pub injected_annotations: BTreeMap<String, String>,
    /// `values.sidecarInjectorWebhook.enableNamespacesByDefault`: a
    /// namespace with neither `istio-injection` nor `istio.io/rev` is
    /// injected (the shipped selection changes with it: see the README).
    pub enable_namespaces_by_default: bool,
    /// `values.sidecarInjectorWebhook.reinvocationPolicy`: `Never` (Istio's
    /// default) or `IfNeeded`, as the webhook configuration must say it.
    pub reinvocation_policy: String,
    /// `values.sidecarInjectorWebhook.templates`, parsed, with the values
    /// and mesh config they read (shared: cloning settings copies no tree).
    pub user_templates: std::sync::Arc<super::UserTemplates>,
    /// `values.sidecarInjectorWebhook.defaultTemplates` (empty: `sidecar`).
    pub default_templates: Vec<String>,
}

struct Reader<'a> {
    tree: &'a Value,
}

impl Reader<'_> {
    fn get(&self, path: &str) -> Option<&Value> {
        let mut node = self.tree;
        for key in path.split('.') {
            node = node.get(key)?;
        }
        (!node.is_null()).then_some(node)
    }

    fn string(&self, path: &str) -> Result<String, ConfigError> {
        match self.get(path) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(other) => Err(invalid(path, other, "a string")),
        }
    }

    fn boolean(&self, path: &str) -> Result<bool, ConfigError> {
        match self.get(path) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" => Ok(true),
            Some(Value::String(s)) if s == "false" => Ok(false),
            Some(other) => Err(invalid(path, other, "true or false")),
        }
    }

    fn int(&self, path: &str) -> Result<i64, ConfigError> {
        match self.get(path) {
            None => Ok(0),
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| invalid(path, &n.clone().into(), "an integer")),
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| invalid(path, &Value::String(s.clone()), "an integer")),
            Some(other) => Err(invalid(path, other, "an integer")),
        }
    }

    fn selectors(&self, paths: &[&str]) -> Result<Vec<LabelSelector>, ConfigError> {
        let mut out = Vec::new();
        for path in paths {
            match self.get(path) {
                None => {}
                Some(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let at = format!("{path}[{i}]");
                        out.push(LabelSelector::parse(item, &at).map_err(|e| {
                            ConfigError::InvalidValue {
                                path: e.path,
                                value: item.to_string(),
                                expected: e.problem,
                            }
                        })?);
                    }
                }
                Some(other) => return Err(invalid(path, other, "a list of label selectors")),
            }
        }
        Ok(out)
    }

    fn string_map(&self, paths: &[&str]) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        for path in paths {
            match self.get(path) {
                None => {}
                Some(Value::Object(m)) => {
                    for (k, v) in m {
                        let s = match v {
                            Value::String(s) => s.clone(),
                            Value::Number(_) | Value::Bool(_) => v.to_string(),
                            other => {
                                return Err(invalid(&format!("{path}.{k}"), other, "a string"));
                            }
                        };
                        out.insert(k.clone(), s);
                    }
                }
                Some(other) => return Err(invalid(path, other, "a mapping of strings")),
            }
        }
        Ok(out)
    }
}

fn invalid(path: &str, value: &Value, expected: &str) -> ConfigError {
    ConfigError::InvalidValue {
        path: path.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

impl Settings {
    /// Resolves a merged configuration tree.
    pub(super) fn resolve(tree: &Value) -> Result<Settings, ConfigError> {
        let r = Reader { tree };
        let g = "values.global";
        let p = "values.global.proxy";
        let policy = match r.string("config.policy")?.as_str() {
            "enabled" | "" => Policy::Enabled,
            "disabled" => Policy::Disabled,
            other => {
                return Err(invalid(
                    "config.policy",
                    &Value::String(other.into()),
                    "enabled or disabled",
                ));
            }
        };
        let traffic_capture = match r.string("config.trafficCapture")?.as_str() {
            "istio-iptables" | "" => TrafficCapture::IstioIptables,
            "outrigger" => TrafficCapture::Outrigger,
            other => {
                return Err(invalid(
                    "config.trafficCapture",
                    &Value::String(other.into()),
                    "istio-iptables or outrigger",
                ));
            }
        };
        let mut proxy_config = Map::new();
        if let Some(Value::Object(dc)) = r.get("meshConfig.defaultConfig") {
            for field in PROXY_CONFIG_FIELDS {
                // An empty message (`tracing: {}`) is a setting of its own
                // (no tracer): it is kept. An empty map
                // (`proxyMetadata: {}`) sets nothing.
                match dc.get(*field) {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(m))
                        if m.is_empty() && ["proxyMetadata", "runtimeValues"].contains(field) => {}
                    Some(v) => {
                        proxy_config.insert((*field).to_string(), v.clone());
                    }
                }
            }
        }
        let native = match r.get("values.pilot.env.ENABLE_NATIVE_SIDECARS") {
            None => true,
            Some(_) => r.boolean("values.pilot.env.ENABLE_NATIVE_SIDECARS")?,
        };
        let mesh_trust = r.string("meshConfig.trustDomain")?;
        let trust_domain = if mesh_trust.is_empty() {
            r.string(&format!("{g}.trustDomain"))?
        } else {
            mesh_trust
        };
        let user_templates = super::UserTemplates::parse(tree)?;
        let resources = r
            .get(&format!("{p}.resources"))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(Settings {
            hub: r.string(&format!("{g}.hub"))?,
            tag: r.string(&format!("{g}.tag"))?,
            variant: r.string(&format!("{g}.variant"))?,
            proxy_image: r.string(&format!("{p}.image"))?,
            init_image: r.string(&format!("{g}.proxy_init.image"))?,
            image_pull_policy: r.string(&format!("{g}.imagePullPolicy"))?,
            image_pull_secrets: match r.get(&format!("{g}.imagePullSecrets")) {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => Ok(s.clone()),
                        Value::Object(m) => m
                            .get("name")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .ok_or_else(|| {
                                invalid("values.global.imagePullSecrets", i, "secret names")
                            }),
                        other => Err(invalid(
                            "values.global.imagePullSecrets",
                            other,
                            "secret names",
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => {
                    return Err(invalid(
                        "values.global.imagePullSecrets",
                        other,
                        "a list of secret names",
                    ));
                }
            },
            istio_namespace: r.string(&format!("{g}.istioNamespace"))?,
            ca_address: r.string(&format!("{g}.caAddress"))?,
            revision: r.string("values.revision")?,
            pilot_cert_provider: r.string(&format!("{g}.pilotCertProvider"))?,
            jwt_policy: r.string(&format!("{g}.jwtPolicy"))?,
            token_audience: r.string(&format!("{g}.sds.token.aud"))?,
            mount_mtls_certs: r.boolean(&format!("{g}.mountMtlsCerts"))?,
            mesh_id: r.string(&format!("{g}.meshID"))?,
            network: r.string(&format!("{g}.network"))?,
            cluster_name: r.string(&format!("{g}.multiCluster.clusterName"))?,
            trust_domain,
            log_as_json: r.boolean(&format!("{g}.logAsJson"))?,
            agent_log_level: r.string(&format!("{g}.logging.level"))?,
            cni_enabled: cni_enabled(&r)?,
            cni_provider: cni_provider(&r)?,
            cluster_domain: r.string(&format!("{p}.clusterDomain"))?,
            component_log_level: r.string(&format!("{p}.componentLogLevel"))?,
            log_level: r.string(&format!("{p}.logLevel"))?,
            enable_core_dump: r.boolean(&format!("{p}.enableCoreDump"))?,
            exclude_inbound_ports: r.string(&format!("{p}.excludeInboundPorts"))?,
            exclude_ip_ranges: r.string(&format!("{p}.excludeIPRanges"))?,
            exclude_outbound_ports: r.string(&format!("{p}.excludeOutboundPorts"))?,
            exclude_interfaces: r.string(&format!("{p}.excludeInterfaces"))?,
            include_ip_ranges: r.string(&format!("{p}.includeIPRanges"))?,
            include_inbound_ports: r.string(&format!("{p}.includeInboundPorts"))?,
            include_outbound_ports: r.string(&format!("{p}.includeOutboundPorts"))?,
            privileged: r.boolean(&format!("{p}.privileged"))?,
            readiness_failure_threshold: r.int(&format!("{p}.readinessFailureThreshold"))?,
            readiness_initial_delay: r.int(&format!("{p}.readinessInitialDelaySeconds"))?,
            readiness_period: r.int(&format!("{p}.readinessPeriodSeconds"))?,
            startup_probe_enabled: r.boolean(&format!("{p}.startupProbe.enabled"))?,
            startup_failure_threshold: r.int(&format!("{p}.startupProbe.failureThreshold"))?,
            status_port: r.int(&format!("{p}.statusPort"))?,
            hold_application: r.boolean(&format!("{p}.holdApplicationUntilProxyStarts"))?,
            lifecycle: r
                .get(&format!("{p}.lifecycle"))
                .cloned()
                .unwrap_or(Value::Null),
            proxy_resources: crate::inject::canonical_resources(&resources),
            resources,
            native_sidecars: native,
            rewrite_probes: r.boolean("values.sidecarInjectorWebhook.rewriteAppHTTPProbe")?,
            proxy_config,
            enable_prometheus_merge: r.boolean("meshConfig.enablePrometheusMerge")?,
            inbound_localhost: r.string("meshConfig.inboundTrafficPolicy.mode")? == "LOCALHOST",
            policy,
            traffic_capture,
            never_inject: r.selectors(&[
                "config.neverInjectSelector",
                "values.sidecarInjectorWebhook.neverInjectSelector",
            ])?,
            always_inject: r.selectors(&[
                "config.alwaysInjectSelector",
                "values.sidecarInjectorWebhook.alwaysInjectSelector",
            ])?,
            injected_annotations: r.string_map(&[
                "values.sidecarInjectorWebhook.injectedAnnotations",
                "config.injectedAnnotations",
            ])?,
            enable_namespaces_by_default: r
                .boolean("values.sidecarInjectorWebhook.enableNamespacesByDefault")?,
            reinvocation_policy: {
                let key = "values.sidecarInjectorWebhook.reinvocationPolicy";
                let policy = r.string(key)?;
                if !matches!(policy.as_str(), "Never" | "IfNeeded") {
                    return Err(invalid(
                        key,
                        &Value::String(policy),
                        "\"Never\" or \"IfNeeded\"",
                    ));
                }
                policy
            },
            default_templates: super::templates::default_templates(tree, &user_templates)?,
            user_templates: std::sync::Arc::new(user_templates),
        })
    }
}

//! What injection adds, following Istio's sidecar injection template: the
//! traffic-capture init container, the proxy container, their volumes, the
//! pod labels and annotations, and the status record of what was added.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::InjectError;
use super::capture;
use super::cni;
use super::fragments::*;
pub use super::inputs::{Inputs, canonical_value, env, scalar_string};
use super::node::{Node, map, strs};
use super::proxy::proxy_container;
pub use super::status::Status;
use crate::config::{Settings, TrafficCapture};

/// The init container that sets up traffic capture.
pub const INIT_NAME: &str = "istio-init";
/// The init container used instead when the CNI plugin captures traffic.
pub const VALIDATION_NAME: &str = "istio-validation";
/// The proxy container.
pub const PROXY_NAME: &str = "istio-proxy";
/// The optional core-dump init container.
pub const CORE_DUMP_NAME: &str = "enable-core-dump";

/// The rendered template: what is added to the pod, and the names it adds.
pub struct Rendered<'a> {
    /// `metadata.labels` and `metadata.annotations` to merge into the pod's.
    pub metadata: Metadata,
    /// Init containers, in the template's order.
    pub init_containers: Vec<Node<'a>>,
    /// Containers (the proxy, unless it is a native sidecar).
    pub containers: Vec<Node<'a>>,
    /// Volumes.
    pub volumes: Vec<Node<'a>>,
    /// Image pull secrets.
    pub image_pull_secrets: Vec<Node<'a>>,
}

impl<'a> Rendered<'a> {
    /// The partial pod the Value engine merges: `{metadata, spec:
    /// {initContainers, containers, volumes, imagePullSecrets}}`.
    pub fn into_pod(self) -> Value {
        let list =
            |items: Vec<Node>| Value::Array(items.into_iter().map(Node::into_value).collect());
        let mut spec = Map::new();
        spec.insert("initContainers".into(), list(self.init_containers));
        spec.insert("containers".into(), list(self.containers));
        spec.insert("volumes".into(), list(self.volumes));
        if !self.image_pull_secrets.is_empty() {
            spec.insert("imagePullSecrets".into(), list(self.image_pull_secrets));
        }
        let mut pod = Map::new();
        pod.insert("metadata".into(), self.metadata.to_value());
        pod.insert("spec".into(), Value::Object(spec));
        Value::Object(pod)
    }
}

/// Renders the template for one pod. Fails only when the capture init
/// container would run `outrigger iptables` with arguments it refuses.
pub fn render<'a>(i: &Inputs<'a>) -> Result<Rendered<'a>, InjectError> {
    let mut init = Vec::new();
    if i.interception_mode() != "NONE" {
        init.push(init_container(i)?);
    }
    if i.anno(
        "sidecar.istio.io/enableCoreDump",
        if i.s.enable_core_dump {
            "true"
        } else {
            "false"
        },
    ) == "true"
    {
        init.push(core_dump_container(i));
    }
    let mut containers = Vec::new();
    let proxy = proxy_container(i);
    if i.native {
        init.push(proxy);
    } else {
        containers.push(proxy);
    }
    let volumes = volumes(i);
    let secrets: Vec<Node> =
        i.s.image_pull_secrets
            .iter()
            .map(|n| map([("name", n.as_str().into())]))
            .collect();
    let mut metadata = metadata(i);
    metadata.annotations.extend(cni::annotations(i)?);
    metadata.annotations.sort_by_key(|(k, _)| *k);
    Ok(Rendered {
        metadata,
        init_containers: init,
        containers,
        volumes,
        image_pull_secrets: secrets,
    })
}

/// A JSON list of strings, moved in.
pub fn strings<'a>(items: Vec<String>) -> Node<'a> {
    Node::List(items.into_iter().map(Node::from).collect())
}

/// The revision name recorded on the pod (`default` when unnamed).
pub fn revision(s: &Settings) -> String {
    if s.revision.is_empty() {
        "default".into()
    } else {
        s.revision.clone()
    }
}

/// The labels and annotations the template adds to the pod's metadata,
/// each list in key order.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    pub labels: Vec<(&'static str, String)>,
    pub annotations: Vec<(&'static str, String)>,
}

impl Metadata {
    /// `{labels, annotations}`, as the Value engine merges it into the pod.
    pub fn to_value(&self) -> Value {
        let object = |entries: &[(&str, String)]| {
            Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
                    .collect(),
            )
        };
        json!({"labels": object(&self.labels), "annotations": object(&self.annotations)})
    }
}

/// The label that names the pod's service in telemetry.
pub const CANONICAL_NAME: &str = "service.istio.io/canonical-name";
/// The label that names the pod's service version in telemetry.
pub const CANONICAL_REVISION: &str = "service.istio.io/canonical-revision";
/// The label that says the pod takes mutual TLS.
pub const TLS_MODE: &str = "security.istio.io/tlsMode";

fn label<'l>(labels: &'l BTreeMap<String, String>, k: &str) -> Option<&'l String> {
    labels.get(k).filter(|v| !v.is_empty())
}

/// `service.istio.io/canonical-name` as injection sets it: the pod's own,
/// else `app.kubernetes.io/name`, else `app`, else the workload's name, cut
/// to a label value's 63 bytes, then without the `-`, `_` and `.` at either
/// end (Istio's template: `trunc 63 | trimAll "-_."`), since a label value
/// must begin and end with a letter or digit: a workload name of 66
/// characters cut after a `-` would make a pod the API server refuses.
pub fn canonical_name(labels: &BTreeMap<String, String>, workload_name: &str) -> String {
    let mut name = label(labels, CANONICAL_NAME)
        .or_else(|| label(labels, "app.kubernetes.io/name"))
        .or_else(|| label(labels, "app"))
        .cloned()
        .unwrap_or_else(|| workload_name.to_string());
    if name.len() > 63 {
        let mut cut = 63;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    let trimmed = name.trim_matches(['-', '_', '.']);
    if trimmed.len() != name.len() {
        name = trimmed.to_string();
    }
    name
}

/// `service.istio.io/canonical-revision` as injection sets it: the pod's
/// own, else `app.kubernetes.io/version`, else `version`, else `latest`.
pub fn canonical_revision(labels: &BTreeMap<String, String>) -> String {
    label(labels, CANONICAL_REVISION)
        .or_else(|| label(labels, "app.kubernetes.io/version"))
        .or_else(|| label(labels, "version"))
        .cloned()
        .unwrap_or_else(|| "latest".into())
}

/// The labels and annotations the template adds to the pod's metadata.
pub fn metadata(i: &Inputs) -> Metadata {
    let canonical_name = canonical_name(i.labels, &i.workload.name);
    let canonical_revision = canonical_revision(i.labels);
    let mut annotations = vec![("istio.io/rev", revision(i.s))];
    if let Some(first) = i.first_app_container() {
        // In key order.
        for key in [
            "kubectl.kubernetes.io/default-container",
            "kubectl.kubernetes.io/default-logs-container",
        ] {
            if !i.annotations.contains_key(key) {
                annotations.push((key, first.to_string()));
            }
        }
    }
    let mut labels = vec![
        (
            TLS_MODE,
            label(i.labels, TLS_MODE)
                .cloned()
                .unwrap_or_else(|| "istio".into()),
        ),
        (CANONICAL_NAME, canonical_name),
        (CANONICAL_REVISION, canonical_revision),
    ];
    // Istio's injector labels the pod with its network (the pod's own
    // label, else values.global.network) after the template.
    let network = cni::network(i.s, i.labels);
    if !network.is_empty() {
        labels.push((cni::NETWORK_LABEL, network.to_string()));
    }
    Metadata {
        labels,
        annotations,
    }
}

/// A `securityContext` id (`runAsUser`, `runAsGroup`) of the user's own
/// `istio-proxy` container, when it sets one.
pub fn user_proxy_id(spec: &Value, field: &str) -> Option<i64> {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|f| spec.get(*f).and_then(Value::as_array))
        .flatten()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(PROXY_NAME))
        .and_then(|c| c.get("securityContext")?.get(field))
        .and_then(Value::as_i64)
}

/// The proxy's user id for traffic capture: the `runAsUser` of the user's
/// own `istio-proxy` container when set and not root (iptables' owner match
/// must not be 0), else 1337 (Istio's `adjustInitContainerUser`).
fn proxy_uid(i: &Inputs) -> String {
    user_proxy_id(i.spec, "runAsUser")
        .filter(|u| *u != 0)
        .map(|u| u.to_string())
        .unwrap_or_else(|| "1337".into())
}

fn exclude_inbound_ports(i: &Inputs) -> String {
    let status = i.status_port();
    let mut ports: Vec<String> = i
        .anno(
            "traffic.sidecar.istio.io/excludeInboundPorts",
            &i.s.exclude_inbound_ports,
        )
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if status != "0" && !ports.contains(&status) {
        ports.push(status);
    }
    ports.join(",")
}

fn init_container<'a>(i: &Inputs<'a>) -> Result<Node<'a>, InjectError> {
    let s = i.s;
    let mode = i.interception_mode().to_string();
    let mut args: Vec<String> = [
        "istio-iptables",
        "-p",
        "15001",
        "-z",
        "15006",
        "-u",
        &proxy_uid(i),
        "-m",
        &mode,
        "-i",
        i.anno(
            "traffic.sidecar.istio.io/includeOutboundIPRanges",
            &s.include_ip_ranges,
        ),
        "-x",
        i.anno(
            "traffic.sidecar.istio.io/excludeOutboundIPRanges",
            &s.exclude_ip_ranges,
        ),
        "-b",
        i.anno(
            "traffic.sidecar.istio.io/includeInboundPorts",
            &s.include_inbound_ports,
        ),
        "-d",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let excluded = exclude_inbound_ports(i);
    args.push(if excluded.is_empty() {
        "15090,15021".into()
    } else {
        format!("15090,15021,{excluded}")
    });
    let optional = [
        (
            "-q",
            i.anno(
                "traffic.sidecar.istio.io/includeOutboundPorts",
                &s.include_outbound_ports,
            ),
        ),
        (
            "-o",
            i.anno(
                "traffic.sidecar.istio.io/excludeOutboundPorts",
                &s.exclude_outbound_ports,
            ),
        ),
        (
            "-k",
            i.annotations
                .get("istio.io/reroute-virtual-interfaces")
                .or_else(|| {
                    i.annotations
                        .get("traffic.sidecar.istio.io/kubevirtInterfaces")
                })
                .map(String::as_str)
                .unwrap_or(""),
        ),
        (
            "-c",
            i.anno(
                "traffic.sidecar.istio.io/excludeInterfaces",
                &s.exclude_interfaces,
            ),
        ),
    ];
    for (flag, value) in optional {
        if !value.is_empty() {
            args.push(flag.into());
            args.push(value.into());
        }
    }
    args.push(format!(
        "--log_output_level={}",
        i.anno("sidecar.istio.io/agentLogLevel", &s.agent_log_level)
    ));
    if s.log_as_json {
        args.push("--log_as_json".into());
    }
    if s.cni_enabled {
        args.push("--run-validation".into());
        args.push("--skip-rule-apply".into());
    }
    let name = if s.cni_enabled {
        VALIDATION_NAME
    } else {
        INIT_NAME
    };
    // Under CNI the plugin captures and the container only validates with
    // Istio's `istio-iptables`; with outrigger capture, proxy_init.image
    // names outrigger's image, so validation runs from the proxy's image.
    let (image, args) = match (s.traffic_capture, s.cni_enabled) {
        (TrafficCapture::IstioIptables, _) => (i.image(&s.init_image), args),
        (TrafficCapture::Outrigger, true) => (i.image(&s.proxy_image), args),
        (TrafficCapture::Outrigger, false) => {
            (capture::image(i), capture::outrigger_args(&args, i)?)
        }
    };
    let mut c = map([
        ("name", name.into()),
        ("image", image.into()),
        ("args", strings(args)),
    ]);
    if !s.image_pull_policy.is_empty() {
        c.insert("imagePullPolicy", s.image_pull_policy.as_str().into());
    }
    let md = i.metadata_env();
    if !md.is_empty() {
        c.insert("env", Node::List(md));
    }
    c.insert("resources", i.resources());
    let security = if s.cni_enabled {
        // The validation runs as the proxy does: as the user's own
        // istio-proxy's user and group when it sets them (except under
        // TPROXY, where the proxy runs as root and validation as 1337).
        let tproxy = mode == "TPROXY";
        let id = |field| {
            user_proxy_id(i.spec, field)
                .filter(|_| !tproxy)
                .unwrap_or(1337)
        };
        map([
            ("allowPrivilegeEscalation", s.privileged.into()),
            ("privileged", s.privileged.into()),
            ("capabilities", map([("drop", strs(&["ALL"]))])),
            ("readOnlyRootFilesystem", true.into()),
            ("runAsGroup", id("runAsGroup").into()),
            ("runAsUser", id("runAsUser").into()),
            ("runAsNonRoot", true.into()),
        ])
    } else {
        map([
            ("allowPrivilegeEscalation", s.privileged.into()),
            ("privileged", s.privileged.into()),
            (
                "capabilities",
                map([
                    ("add", strs(&["NET_ADMIN", "NET_RAW"])),
                    ("drop", strs(&["ALL"])),
                ]),
            ),
            ("readOnlyRootFilesystem", false.into()),
            ("runAsGroup", 0.into()),
            ("runAsNonRoot", false.into()),
            ("runAsUser", 0.into()),
        ])
    };
    c.insert("securityContext", security);
    Ok(c)
}

fn core_dump_container<'a>(i: &Inputs<'a>) -> Node<'a> {
    let mut c = map([
        ("name", CORE_DUMP_NAME.into()),
        (
            "args",
            strs(&[
                "-c",
                "sysctl -w kernel.core_pattern=/var/lib/istio/data/core.proxy && ulimit -c unlimited",
            ]),
        ),
        ("command", strs(&["/bin/sh"])),
        ("image", i.image(&i.s.init_image).into()),
        ("resources", i.resources()),
        (
            "securityContext",
            map([
                ("allowPrivilegeEscalation", true.into()),
                (
                    "capabilities",
                    map([("add", strs(&["SYS_ADMIN"])), ("drop", strs(&["ALL"]))]),
                ),
                ("privileged", true.into()),
                ("readOnlyRootFilesystem", false.into()),
                ("runAsGroup", 0.into()),
                ("runAsNonRoot", false.into()),
                ("runAsUser", 0.into()),
            ]),
        ),
    ]);
    if !i.s.image_pull_policy.is_empty() {
        c.insert("imagePullPolicy", i.s.image_pull_policy.as_str().into());
    }
    c
}

/// The secret of the `istio-certs` volume: the pod's service account's.
pub fn certs_secret(spec: &Value) -> String {
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    format!("istio.{sa}")
}

fn volumes<'a>(i: &Inputs<'a>) -> Vec<Node<'a>> {
    let s = i.s;
    let mut v = vec![
        raw(&WORKLOAD_SOCKET_VOLUME),
        raw(&CREDENTIAL_SOCKET_VOLUME),
        raw(&WORKLOAD_CERTS_VOLUME),
    ];
    if let Some(cm) = i.annotations.get("sidecar.istio.io/bootstrapOverride") {
        v.push(map([
            ("name", "custom-bootstrap-volume".into()),
            ("configMap", map([("name", cm.as_str().into())])),
        ]));
    }
    v.push(raw(&ENVOY_VOLUME));
    v.push(raw(&DATA_VOLUME));
    v.push(raw(&PODINFO_VOLUME));
    if s.jwt_policy == "third-party-jwt" {
        let token = map([
            ("path", "istio-token".into()),
            ("expirationSeconds", 43200.into()),
            ("audience", s.token_audience.as_str().into()),
        ]);
        v.push(map([
            ("name", "istio-token".into()),
            (
                "projected",
                map([(
                    "sources",
                    Node::List(vec![map([("serviceAccountToken", token)])]),
                )]),
            ),
        ]));
    }
    if s.pilot_cert_provider == "istiod" {
        v.push(raw(&ISTIOD_CA_VOLUME));
        v.push(raw(&CA_CRL_VOLUME));
    }
    if s.mount_mtls_certs {
        let secret_name: Node = certs_secret(i.spec).into();
        v.push(map([
            ("name", "istio-certs".into()),
            (
                "secret",
                map([("optional", true.into()), ("secretName", secret_name)]),
            ),
        ]));
    }
    if let Some(Ok(Value::Object(user))) = i
        .annotations
        .get("sidecar.istio.io/userVolume")
        .map(|t| serde_json::from_str::<Value>(t))
    {
        for (name, body) in user {
            let mut vol = body.as_object().cloned().unwrap_or_default();
            vol.insert("name".into(), Value::String(name));
            v.push(Node::Json(Cow::Owned(Value::Object(vol))));
        }
    }
    v
}

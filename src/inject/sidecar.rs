//! What injection adds, following Istio's sidecar injection template: the
//! traffic-capture init container, the proxy container, their volumes, the
//! pod labels and annotations, and the status record of what was added.

use serde_json::{Map, Value, json};

pub use super::inputs::{Inputs, canonical_value, env, scalar_string};
use super::proxy::proxy_container;
pub use super::status::Status;
use crate::config::Settings;

/// The init container that sets up traffic capture.
pub const INIT_NAME: &str = "istio-init";
/// The init container used instead when the CNI plugin captures traffic.
pub const VALIDATION_NAME: &str = "istio-validation";
/// The proxy container.
pub const PROXY_NAME: &str = "istio-proxy";
/// The optional core-dump init container.
pub const CORE_DUMP_NAME: &str = "enable-core-dump";

/// The rendered template: a partial pod plus the names it adds.
pub struct Rendered {
    /// `{metadata: {labels, annotations}, spec: {initContainers, containers, volumes, imagePullSecrets}}`.
    pub pod: Value,
    /// The status record (`sidecar.istio.io/status`).
    pub status: Status,
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| i.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// Renders the template for one pod.
pub fn render(i: &Inputs) -> Rendered {
    let mut init = Vec::new();
    if i.interception_mode() != "NONE" {
        init.push(init_container(i));
    }
    if i.anno(
        "sidecar.istio.io/enableCoreDump",
        &i.s.enable_core_dump.to_string(),
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
    let secrets: Vec<Value> =
        i.s.image_pull_secrets
            .iter()
            .map(|n| json!({ "name": n }))
            .collect();
    let status = Status {
        init_containers: names(&init),
        containers: names(&containers),
        volumes: names(&volumes),
        image_pull_secrets: names(&secrets),
        revision: revision(i.s),
    };
    let mut spec = Map::new();
    spec.insert("initContainers".into(), Value::Array(init));
    spec.insert("containers".into(), Value::Array(containers));
    spec.insert("volumes".into(), Value::Array(volumes));
    if !secrets.is_empty() {
        spec.insert("imagePullSecrets".into(), Value::Array(secrets));
    }
    let pod = json!({ "metadata": metadata(i), "spec": spec });
    Rendered { pod, status }
}

/// The revision name recorded on the pod (`default` when unnamed).
pub fn revision(s: &Settings) -> String {
    if s.revision.is_empty() {
        "default".into()
    } else {
        s.revision.clone()
    }
}

fn metadata(i: &Inputs) -> Value {
    let label = |k: &str| i.labels.get(k).filter(|v| !v.is_empty()).cloned();
    let mut canonical_name = label("service.istio.io/canonical-name")
        .or_else(|| label("app.kubernetes.io/name"))
        .or_else(|| label("app"))
        .unwrap_or_else(|| i.workload.name.clone());
    if canonical_name.len() > 63 {
        let mut cut = 63;
        while !canonical_name.is_char_boundary(cut) {
            cut -= 1;
        }
        canonical_name.truncate(cut);
    }
    let canonical_revision = label("service.istio.io/canonical-revision")
        .or_else(|| label("app.kubernetes.io/version"))
        .or_else(|| label("version"))
        .unwrap_or_else(|| "latest".into());
    let mut annotations = Map::new();
    if let Some(first) = i.app_containers().first() {
        for key in [
            "kubectl.kubernetes.io/default-logs-container",
            "kubectl.kubernetes.io/default-container",
        ] {
            if !i.annotations.contains_key(key) {
                annotations.insert(key.into(), json!(first));
            }
        }
    }
    json!({
        "labels": {
            "security.istio.io/tlsMode": label("security.istio.io/tlsMode").unwrap_or_else(|| "istio".into()),
            "service.istio.io/canonical-name": canonical_name,
            "service.istio.io/canonical-revision": canonical_revision,
        },
        "annotations": annotations,
    })
}

/// The proxy's user id for traffic capture: the `runAsUser` of the user's
/// own `istio-proxy` container when set, else 1337.
fn proxy_uid(i: &Inputs) -> String {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|f| i.spec.get(*f).and_then(Value::as_array))
        .flatten()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(PROXY_NAME))
        .and_then(|c| c.pointer("/securityContext/runAsUser"))
        .and_then(Value::as_i64)
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

fn init_container(i: &Inputs) -> Value {
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
    let mut c = Map::new();
    let name = if s.cni_enabled {
        VALIDATION_NAME
    } else {
        INIT_NAME
    };
    c.insert("name".into(), json!(name));
    c.insert("image".into(), json!(i.image(&s.init_image)));
    c.insert("args".into(), json!(args));
    if !s.image_pull_policy.is_empty() {
        c.insert("imagePullPolicy".into(), json!(s.image_pull_policy));
    }
    let md = i.metadata_env();
    if !md.is_empty() {
        c.insert("env".into(), Value::Array(md));
    }
    c.insert("resources".into(), i.resources());
    let security = if s.cni_enabled {
        json!({
            "allowPrivilegeEscalation": s.privileged,
            "privileged": s.privileged,
            "capabilities": { "drop": ["ALL"] },
            "readOnlyRootFilesystem": true,
            "runAsGroup": 1337,
            "runAsUser": 1337,
            "runAsNonRoot": true,
        })
    } else {
        json!({
            "allowPrivilegeEscalation": s.privileged,
            "privileged": s.privileged,
            "capabilities": { "add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"] },
            "readOnlyRootFilesystem": false,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "runAsUser": 0,
        })
    };
    c.insert("securityContext".into(), security);
    Value::Object(c)
}

fn core_dump_container(i: &Inputs) -> Value {
    let mut c = json!({
        "name": CORE_DUMP_NAME,
        "args": ["-c", "sysctl -w kernel.core_pattern=/var/lib/istio/data/core.proxy && ulimit -c unlimited"],
        "command": ["/bin/sh"],
        "image": i.image(&i.s.init_image),
        "resources": i.resources(),
        "securityContext": {
            "allowPrivilegeEscalation": true,
            "capabilities": { "add": ["SYS_ADMIN"], "drop": ["ALL"] },
            "privileged": true,
            "readOnlyRootFilesystem": false,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "runAsUser": 0,
        },
    });
    if !i.s.image_pull_policy.is_empty() {
        c["imagePullPolicy"] = json!(i.s.image_pull_policy);
    }
    c
}

fn volumes(i: &Inputs) -> Vec<Value> {
    let s = i.s;
    let mut v = vec![
        json!({ "name": "workload-socket", "emptyDir": {} }),
        json!({ "name": "credential-socket", "emptyDir": {} }),
        json!({ "name": "workload-certs", "emptyDir": {} }),
    ];
    if let Some(cm) = i.annotations.get("sidecar.istio.io/bootstrapOverride") {
        v.push(json!({ "name": "custom-bootstrap-volume", "configMap": { "name": cm } }));
    }
    v.push(json!({ "name": "istio-envoy", "emptyDir": { "medium": "Memory" } }));
    v.push(json!({ "name": "istio-data", "emptyDir": {} }));
    v.push(json!({
        "name": "istio-podinfo",
        "downwardAPI": { "items": [
            { "path": "labels", "fieldRef": { "fieldPath": "metadata.labels" } },
            { "path": "annotations", "fieldRef": { "fieldPath": "metadata.annotations" } },
        ]},
    }));
    if s.jwt_policy == "third-party-jwt" {
        v.push(json!({
            "name": "istio-token",
            "projected": { "sources": [ { "serviceAccountToken": {
                "path": "istio-token", "expirationSeconds": 43200, "audience": s.token_audience,
            }}]},
        }));
    }
    if s.pilot_cert_provider == "istiod" {
        v.push(json!({ "name": "istiod-ca-cert", "configMap": { "name": "istio-ca-root-cert" } }));
        v.push(json!({ "name": "istio-ca-crl", "configMap": { "name": "istio-ca-crl", "optional": true } }));
    }
    if s.mount_mtls_certs {
        let sa = i
            .spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        v.push(json!({
            "name": "istio-certs",
            "secret": { "optional": true, "secretName": format!("istio.{sa}") },
        }));
    }
    if let Some(Ok(Value::Object(user))) = i
        .annotations
        .get("sidecar.istio.io/userVolume")
        .map(|t| serde_json::from_str::<Value>(t))
    {
        for (name, body) in user {
            let mut vol = body.as_object().cloned().unwrap_or_default();
            vol.insert("name".into(), json!(name));
            v.push(Value::Object(vol));
        }
    }
    v
}

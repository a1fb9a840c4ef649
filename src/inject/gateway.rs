//! Istio's `gateway` template: the pod is the proxy (`istio-proxy` runs
//! `proxy router`), as the `istio/gateway` chart's Deployments ask for with
//! `inject.istio.io/templates: gateway`. No traffic capture, no native
//! sidecar, no app containers of its own; the pod may bind low ports.

use serde_json::{Value, json};

use super::fragments::*;
use super::node::Fragment;
use super::proxy::{ca_addr, pod_ports, proxy_config_json};
use super::sidecar::{Inputs, PROXY_NAME, canonical_name, canonical_revision, revision};

/// An env var; an empty value is left out, as Kubernetes writes it.
pub fn env_var(name: &str, value: impl Into<String>) -> Value {
    let value = value.into();
    if value.is_empty() {
        json!({ "name": name })
    } else {
        json!({ "name": name, "value": value })
    }
}

fn fragment(f: &'static Fragment) -> Value {
    raw(f).into_value()
}

/// A value of the install values the resolved settings do not keep.
pub fn value_at<'a>(i: &'a Inputs, pointer: &str) -> Option<&'a Value> {
    i.s.user_templates
        .values
        .pointer(pointer)
        .filter(|v| !v.is_null())
}

/// The proxy's log flags (`sidecar.istio.io/*LogLevel` over the values).
pub fn log_args(i: &Inputs) -> Vec<String> {
    let s = i.s;
    let mut args = vec![
        format!(
            "--proxyLogLevel={}",
            i.anno("sidecar.istio.io/logLevel", &s.log_level)
        ),
        format!(
            "--proxyComponentLogLevel={}",
            i.anno("sidecar.istio.io/componentLogLevel", &s.component_log_level)
        ),
        format!(
            "--log_output_level={}",
            i.anno("sidecar.istio.io/agentLogLevel", &s.agent_log_level)
        ),
    ];
    if let Some(port) = value_at(i, "/global/sts/servicePort").filter(|p| p.as_i64() != Some(0)) {
        args.push(format!("--stsPort={}", super::sidecar::scalar_string(port)));
    }
    if s.log_as_json {
        args.push("--log_as_json".into());
    }
    args
}

/// The env vars every proxy template ends with: network, workload, owner,
/// mesh and trust domain, then ProxyConfig's `proxyMetadata`.
pub fn identity_env(i: &Inputs, bootstrap_override: bool) -> Vec<Value> {
    let s = i.s;
    let mut envs = Vec::new();
    if !s.network.is_empty() {
        envs.push(env_var("ISTIO_META_NETWORK", &s.network));
    }
    if !i.workload.name.is_empty() {
        envs.push(env_var("ISTIO_META_WORKLOAD_NAME", &i.workload.name));
        if !i.workload.api_version.is_empty() {
            envs.push(env_var("ISTIO_META_OWNER", i.workload.owner()));
        }
    }
    if bootstrap_override
        && i.annotations
            .contains_key("sidecar.istio.io/bootstrapOverride")
    {
        envs.push(env_var(
            "ISTIO_BOOTSTRAP_OVERRIDE",
            "/etc/istio/custom-bootstrap/custom_bootstrap.json",
        ));
    }
    let mesh_id = if s.mesh_id.is_empty() {
        &s.trust_domain
    } else {
        &s.mesh_id
    };
    if !mesh_id.is_empty() {
        envs.push(env_var("ISTIO_META_MESH_ID", mesh_id));
    }
    if !s.trust_domain.is_empty() {
        envs.push(env_var("TRUST_DOMAIN", &s.trust_domain));
    }
    envs.extend(i.metadata_env().into_iter().map(|n| n.into_value()));
    envs
}

/// The canonical-service labels and the annotations every proxy template
/// sets: the revision, and the default container for `kubectl`.
pub fn metadata(i: &Inputs, extra: &[(&str, &str)]) -> Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert("istio.io/rev".into(), revision(i.s).into());
    if let Some(first) = i.first_app_container() {
        for key in [
            "kubectl.kubernetes.io/default-logs-container",
            "kubectl.kubernetes.io/default-container",
        ] {
            if !i.annotations.contains_key(key) {
                annotations.insert(key.into(), first.into());
            }
        }
    }
    for (k, v) in extra {
        annotations.insert((*k).into(), (*v).into());
    }
    json!({
        "labels": {
            super::sidecar::CANONICAL_NAME: canonical_name(i.labels, &i.workload.name),
            super::sidecar::CANONICAL_REVISION: canonical_revision(i.labels),
        },
        "annotations": annotations,
    })
}

/// `values.global.caName` is GKE's workload certificates: their CSI volume
/// replaces `workload-certs`.
pub fn gke_certificates(i: &Inputs) -> bool {
    value_at(i, "/global/caName").and_then(Value::as_str) == Some("GkeWorkloadCertificate")
}

/// The workload-certificates mount, as `caName` decides.
pub fn certs_mount(i: &Inputs) -> Value {
    if gke_certificates(i) {
        json!({"name": "gke-workload-certificate", "mountPath": "/var/run/secrets/workload-spiffe-credentials", "readOnly": true})
    } else {
        fragment(&WORKLOAD_CERTS_MOUNT)
    }
}

/// The workload-certificates volume, as `caName` decides.
pub fn certs_volume(i: &Inputs, empty_dir: Value) -> Value {
    if gke_certificates(i) {
        json!({"name": "gke-workload-certificate", "csi": {"driver": "workloadcertificates.security.cloud.google.com"}})
    } else {
        json!({"name": "workload-certs", "emptyDir": empty_dir})
    }
}

/// The token, CA and mTLS-secret volumes every proxy template ends with.
pub fn trust_volumes(i: &Inputs) -> Vec<Value> {
    let s = i.s;
    let mut v = vec![json!({
        "name": "istio-token",
        "projected": {"sources": [{"serviceAccountToken": {
            "path": "istio-token",
            "expirationSeconds": 43200,
            "audience": s.token_audience,
        }}]},
    })];
    if s.pilot_cert_provider == "istiod" {
        let bundle = value_at(i, "/global/trustBundleName").and_then(Value::as_str);
        let trust_bundle_api = value_at(i, "/pilot/env/ENABLE_CLUSTER_TRUST_BUNDLE_API")
            .is_some_and(|v| v == &json!(true) || v == &json!("true"));
        v.push(if trust_bundle_api {
            json!({"name": "istiod-ca-cert", "projected": {"sources": [{"clusterTrustBundle": {
                "name": format!("istio.io:istiod-ca:{}", bundle.unwrap_or("root-cert")),
                "path": "root-cert.pem",
            }}]}})
        } else {
            json!({"name": "istiod-ca-cert", "configMap": {"name": bundle.unwrap_or("istio-ca-root-cert")}})
        });
    }
    if s.mount_mtls_certs {
        v.push(json!({"name": "istio-certs", "secret": {
            "optional": true,
            "secretName": super::sidecar::certs_secret(i.spec),
        }}));
    }
    v
}

/// `values.global.imagePullSecrets`, as the pod's.
pub fn pull_secrets(i: &Inputs) -> Option<Value> {
    (!i.s.image_pull_secrets.is_empty()).then(|| {
        Value::Array(
            i.s.image_pull_secrets
                .iter()
                .map(|n| json!({ "name": n }))
                .collect(),
        )
    })
}

/// The custom bootstrap volume, when `sidecar.istio.io/bootstrapOverride`
/// names its ConfigMap.
pub fn bootstrap_volume(i: &Inputs) -> Option<Value> {
    i.annotations
        .get("sidecar.istio.io/bootstrapOverride")
        .map(|cm| json!({"name": "custom-bootstrap-volume", "configMap": {"name": cm}}))
}

/// Renders the `gateway` template.
pub fn render(i: &Inputs) -> Value {
    let s = i.s;
    let mut args = vec![
        "proxy".to_string(),
        "router".into(),
        "--domain".into(),
        format!("$(POD_NAMESPACE).svc.{}", s.cluster_domain),
    ];
    args.extend(log_args(i));
    let mut envs = vec![
        env_var("PILOT_CERT_PROVIDER", &s.pilot_cert_provider),
        env_var("CA_ADDR", ca_addr(s)),
        fragment(&POD_NAME_ENV),
        fragment(&POD_NAMESPACE_ENV),
        fragment(&INSTANCE_IP_ENV),
        fragment(&SERVICE_ACCOUNT_ENV),
        fragment(&HOST_IP_ENV),
        fragment(&CPU_LIMIT_ENV),
        env_var("PROXY_CONFIG", format!("{}\n", proxy_config_json(i))),
        env_var("ISTIO_META_POD_PORTS", pod_ports(i)),
        fragment(&GOMEMLIMIT_ENV),
        env_var("ISTIO_META_APP_CONTAINERS", i.app_containers().join(",")),
        env_var(
            "ISTIO_META_CLUSTER_ID",
            if s.cluster_name.is_empty() {
                "Kubernetes"
            } else {
                &s.cluster_name
            },
        ),
        fragment(&NODE_NAME_ENV),
        env_var("ISTIO_META_INTERCEPTION_MODE", i.interception_mode()),
    ];
    envs.extend(identity_env(i, true));

    let mut readiness = json!({
        "httpGet": fragment(&READY_GET),
        "periodSeconds": s.readiness_period,
        "timeoutSeconds": 3,
        "failureThreshold": s.readiness_failure_threshold,
    });
    if s.readiness_initial_delay != 0 {
        readiness["initialDelaySeconds"] = s.readiness_initial_delay.into();
    }
    let mut mounts = vec![
        fragment(&WORKLOAD_SOCKET_MOUNT),
        fragment(&CREDENTIAL_SOCKET_MOUNT),
        certs_mount(i),
    ];
    if s.pilot_cert_provider == "istiod" {
        mounts.push(fragment(&ISTIOD_CA_MOUNT));
    }
    mounts.push(fragment(&DATA_MOUNT));
    if bootstrap_volume(i).is_some() {
        mounts.push(fragment(&CUSTOM_BOOTSTRAP_MOUNT));
    }
    mounts.push(fragment(&ENVOY_MOUNT));
    mounts.push(fragment(&TOKEN_MOUNT));
    if s.mount_mtls_certs {
        mounts.push(fragment(&CERTS_MOUNT));
    }
    mounts.push(fragment(&PODINFO_MOUNT));

    let mut proxy = json!({
        "name": PROXY_NAME,
        "image": i.image(&s.proxy_image),
        "ports": fragment(&PROXY_PORTS),
        "args": args,
        "securityContext": {"runAsUser": 1337, "runAsGroup": 1337},
        "env": envs,
        "readinessProbe": readiness,
        "volumeMounts": mounts,
    });
    if matches!(&s.lifecycle, Value::Object(m) if !m.is_empty()) {
        proxy["lifecycle"] = s.lifecycle.clone();
    }
    if !s.image_pull_policy.is_empty() {
        proxy["imagePullPolicy"] = s.image_pull_policy.clone().into();
    }

    let mut volumes = vec![
        json!({"name": "workload-socket"}),
        fragment(&CREDENTIAL_SOCKET_VOLUME),
        certs_volume(i, json!({})),
    ];
    volumes.extend(bootstrap_volume(i));
    volumes.push(fragment(&ENVOY_VOLUME));
    volumes.push(fragment(&DATA_VOLUME));
    volumes.push(fragment(&PODINFO_VOLUME));
    volumes.extend(trust_volumes(i));

    let security = match value_at(i, "/gateways/securityContext") {
        Some(v) if v.as_object().is_some_and(|m| !m.is_empty()) => v.clone(),
        _ => json!({"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}),
    };
    let mut spec = json!({
        "securityContext": security,
        "containers": [proxy],
        "volumes": volumes,
    });
    if let Some(secrets) = pull_secrets(i) {
        spec["imagePullSecrets"] = secrets;
    }
    json!({ "metadata": metadata(i, &[]), "spec": spec })
}

//! The `istio-proxy` container as Istio's template renders it: args, the
//! full env list, probes, security context, resources and volume mounts.

use serde_json::{Map, Value, json};

use super::gojson::{self, Ty};
use super::sidecar::{Inputs, PROXY_NAME, env};

fn field_env(name: &str, path: &str) -> Value {
    json!({ "name": name, "valueFrom": { "fieldRef": { "fieldPath": path } } })
}

fn resource_env(name: &str, resource: &str) -> Value {
    json!({ "name": name, "valueFrom": { "resourceFieldRef": { "divisor": "1", "resource": resource } } })
}

/// `ISTIO_META_POD_PORTS`: the app containers' ports, one JSON object per
/// line, in Istio's layout.
fn pod_ports(i: &Inputs) -> String {
    let mut out = String::from("[");
    let mut first = true;
    let containers = i.spec.get("containers").and_then(Value::as_array);
    for c in containers.into_iter().flatten() {
        let ports = c.get("ports").and_then(Value::as_array);
        for p in ports.into_iter().flatten() {
            out.push_str("\n    ");
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&gojson::to_string(p, Ty::Port));
        }
    }
    out.push_str("\n]");
    out
}

/// The ProxyConfig as Istio writes it into `PROXY_CONFIG`.
fn proxy_config_json(i: &Inputs) -> String {
    let mut out = String::from("{");
    let mut first = true;
    for field in crate::config::PROXY_CONFIG_FIELDS {
        if let Some(v) = i.proxy_config.get(*field) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&Value::String((*field).to_string()).to_string());
            out.push(':');
            out.push_str(&v.to_string());
        }
    }
    out.push('}');
    out
}

fn drain_lifecycle(port: &str) -> Value {
    json!({ "exec": { "command": ["pilot-agent", "request", format!("--debug-port={port}"), "POST", "drain"] } })
}

fn wait_lifecycle() -> Value {
    json!({ "exec": { "command": ["pilot-agent", "wait"] } })
}

fn int_anno(i: &Inputs, name: &str, default: i64) -> i64 {
    i.annotations
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Renders the proxy container.
pub fn proxy_container(i: &Inputs) -> Value {
    let s = i.s;
    let mode = i.interception_mode().to_string();
    let status_port = i.status_port();
    let mut args = vec![
        "proxy".to_string(),
        "sidecar".into(),
        "--domain".into(),
        format!("$(POD_NAMESPACE).svc.{}", s.cluster_domain),
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
    if s.log_as_json {
        args.push("--log_as_json".into());
    }

    let mut envs = Vec::new();
    if s.inbound_localhost {
        envs.push(env("REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION", "true"));
    }
    envs.push(env("PILOT_CERT_PROVIDER", &s.pilot_cert_provider));
    let ca_addr = if s.ca_address.is_empty() {
        let rev = if s.revision.is_empty() || s.revision == "default" {
            String::new()
        } else {
            format!("-{}", s.revision)
        };
        format!("istiod{rev}.{}.svc:15012", s.istio_namespace)
    } else {
        s.ca_address.clone()
    };
    envs.push(env("CA_ADDR", &ca_addr));
    envs.push(field_env("POD_NAME", "metadata.name"));
    envs.push(field_env("POD_NAMESPACE", "metadata.namespace"));
    envs.push(field_env("INSTANCE_IP", "status.podIP"));
    envs.push(field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"));
    envs.push(field_env("HOST_IP", "status.hostIP"));
    envs.push(resource_env("ISTIO_CPU_LIMIT", "limits.cpu"));
    envs.push(env("PROXY_CONFIG", &format!("{}\n", proxy_config_json(i))));
    envs.push(env("ISTIO_META_POD_PORTS", &pod_ports(i)));
    envs.push(env(
        "ISTIO_META_APP_CONTAINERS",
        &i.app_containers().join(","),
    ));
    envs.push(resource_env("GOMEMLIMIT", "limits.memory"));
    let cluster = if s.cluster_name.is_empty() {
        "Kubernetes"
    } else {
        &s.cluster_name
    };
    envs.push(env("ISTIO_META_CLUSTER_ID", cluster));
    envs.push(field_env("ISTIO_META_NODE_NAME", "spec.nodeName"));
    envs.push(env("ISTIO_META_INTERCEPTION_MODE", &mode));
    if !s.network.is_empty() {
        envs.push(env("ISTIO_META_NETWORK", &s.network));
    }
    if !i.workload.name.is_empty() {
        envs.push(env("ISTIO_META_WORKLOAD_NAME", &i.workload.name));
        if !i.workload.api_version.is_empty() {
            envs.push(env("ISTIO_META_OWNER", &i.workload.owner()));
        }
    }
    if i.annotations
        .contains_key("sidecar.istio.io/bootstrapOverride")
    {
        envs.push(env(
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
        envs.push(env("ISTIO_META_MESH_ID", mesh_id));
    }
    if !s.trust_domain.is_empty() {
        envs.push(env("TRUST_DOMAIN", &s.trust_domain));
    }
    envs.extend(i.metadata_env());

    let mut c = Map::new();
    c.insert("name".into(), json!(PROXY_NAME));
    c.insert("image".into(), json!(i.image(&s.proxy_image)));
    c.insert(
        "ports".into(),
        json!([{ "containerPort": 15090, "protocol": "TCP", "name": "http-envoy-prom" }]),
    );
    c.insert("args".into(), json!(args));
    let mut lifecycle = Map::new();
    if matches!(&s.lifecycle, Value::Object(m) if !m.is_empty()) {
        c.insert("lifecycle".into(), s.lifecycle.clone());
    } else {
        if i.hold && !i.native {
            lifecycle.insert("postStart".into(), wait_lifecycle());
        }
        if i.native {
            lifecycle.insert("preStop".into(), drain_lifecycle(&status_port));
        }
        if !lifecycle.is_empty() {
            c.insert("lifecycle".into(), Value::Object(lifecycle));
        }
    }
    c.insert("env".into(), Value::Array(envs));
    if !s.image_pull_policy.is_empty() {
        c.insert("imagePullPolicy".into(), json!(s.image_pull_policy));
    }
    if status_port != "0" {
        let mut readiness = json!({
            "httpGet": { "path": "/healthz/ready", "port": 15021 },
            "periodSeconds": int_anno(i, "readiness.status.sidecar.istio.io/periodSeconds", s.readiness_period),
            "timeoutSeconds": 3,
            "failureThreshold": int_anno(i, "readiness.status.sidecar.istio.io/failureThreshold", s.readiness_failure_threshold),
        });
        let delay = int_anno(
            i,
            "readiness.status.sidecar.istio.io/initialDelaySeconds",
            s.readiness_initial_delay,
        );
        if delay != 0 {
            readiness["initialDelaySeconds"] = json!(delay);
        }
        c.insert("readinessProbe".into(), readiness);
        if s.startup_probe_enabled {
            c.insert(
                "startupProbe".into(),
                json!({
                    "httpGet": { "path": "/healthz/ready", "port": 15021 },
                    "periodSeconds": 1,
                    "timeoutSeconds": 3,
                    "failureThreshold": s.startup_failure_threshold,
                }),
            );
        }
    }
    let tproxy = mode == "TPROXY";
    let mut caps = Map::new();
    if tproxy {
        caps.insert("add".into(), json!(["NET_ADMIN"]));
    }
    caps.insert("drop".into(), json!(["ALL"]));
    let core_dump = i.anno(
        "sidecar.istio.io/enableCoreDump",
        if s.enable_core_dump { "true" } else { "false" },
    ) == "true";
    c.insert(
        "securityContext".into(),
        json!({
            "allowPrivilegeEscalation": s.privileged,
            "capabilities": caps,
            "privileged": s.privileged,
            "readOnlyRootFilesystem": !core_dump,
            "runAsGroup": 1337,
            "runAsNonRoot": !tproxy,
            "runAsUser": if tproxy { 0 } else { 1337 },
        }),
    );
    c.insert("resources".into(), i.resources());
    c.insert("volumeMounts".into(), Value::Array(volume_mounts(i)));
    if i.native {
        c.insert("restartPolicy".into(), json!("Always"));
    }
    Value::Object(c)
}

fn volume_mounts(i: &Inputs) -> Vec<Value> {
    let s = i.s;
    let mut m = vec![
        json!({ "name": "workload-socket", "mountPath": "/var/run/secrets/workload-spiffe-uds" }),
        json!({ "name": "credential-socket", "mountPath": "/var/run/secrets/credential-uds" }),
        json!({ "name": "workload-certs", "mountPath": "/var/run/secrets/workload-spiffe-credentials" }),
    ];
    if s.pilot_cert_provider == "istiod" {
        m.push(json!({ "mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert" }));
        m.push(json!({ "mountPath": "/var/run/secrets/istio/crl", "name": "istio-ca-crl" }));
    }
    m.push(json!({ "mountPath": "/var/lib/istio/data", "name": "istio-data" }));
    if i.annotations
        .contains_key("sidecar.istio.io/bootstrapOverride")
    {
        m.push(json!({ "mountPath": "/etc/istio/custom-bootstrap", "name": "custom-bootstrap-volume" }));
    }
    m.push(json!({ "mountPath": "/etc/istio/proxy", "name": "istio-envoy" }));
    if s.jwt_policy == "third-party-jwt" {
        m.push(json!({ "mountPath": "/var/run/secrets/tokens", "name": "istio-token" }));
    }
    if s.mount_mtls_certs {
        m.push(json!({ "mountPath": "/etc/certs/", "name": "istio-certs", "readOnly": true }));
    }
    m.push(json!({ "name": "istio-podinfo", "mountPath": "/etc/istio/pod" }));
    if let Some(Ok(Value::Object(user))) = i
        .annotations
        .get("sidecar.istio.io/userVolumeMount")
        .map(|t| serde_json::from_str::<Value>(t))
    {
        for (name, body) in user {
            let mut mount = body.as_object().cloned().unwrap_or_default();
            mount.insert("name".into(), json!(name));
            m.push(Value::Object(mount));
        }
    }
    m
}

//! The `istio-proxy` container as Istio's template renders it: args, the
//! full env list, probes, security context, resources and volume mounts.

use std::borrow::Cow;

use serde_json::Value;

use super::cni;
use super::fragments::*;
use super::gojson::{self, Ty};
use super::node::{Node, map, strs};
use super::sidecar::{Inputs, PROXY_NAME, env, strings};

/// The label that names the pod's workload in telemetry
/// (`ISTIO_META_WORKLOAD_NAME`), when the owner's name is not the one.
pub const WORKLOAD_NAME_LABEL: &str = "service.istio.io/workload-name";

/// `ISTIO_META_POD_PORTS`: the app containers' ports, one JSON object per
/// line, in Istio's layout.
pub fn pod_ports(i: &Inputs) -> String {
    // Room for a few ports: the text is built once, without regrowing.
    let mut out = String::with_capacity(256);
    out.push('[');
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
            gojson::write(&mut out, p, Ty::Port);
        }
    }
    out.push_str("\n]");
    out
}

/// ProxyConfig's `map<string, string>` fields: protobuf's JSON leaves
/// them out when empty, as it does empty lists. An empty message (e.g.
/// `tracing: {}`, no tracer) is a value of its own and is written.
const PROXY_CONFIG_MAPS: [&str; 2] = ["proxyMetadata", "runtimeValues"];

/// The ProxyConfig as Istio writes it into `PROXY_CONFIG`.
pub fn proxy_config_json(i: &Inputs) -> String {
    let mut out = String::from("{");
    let mut first = true;
    for field in crate::config::PROXY_CONFIG_FIELDS {
        if let Some(v) = i.proxy_config.get(*field) {
            let empty = match v {
                Value::Null => true,
                Value::Array(l) => l.is_empty(),
                Value::Object(m) => m.is_empty() && PROXY_CONFIG_MAPS.contains(field),
                _ => false,
            };
            if empty {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            gojson::push_string(&mut out, field);
            out.push(':');
            out.push_str(&v.to_string());
        }
    }
    out.push('}');
    out
}

/// `CA_ADDR`: the configured CA, else the revision's istiod.
pub fn ca_addr(s: &crate::config::Settings) -> String {
    if !s.ca_address.is_empty() {
        return s.ca_address.clone();
    }
    let rev = if s.revision.is_empty() || s.revision == "default" {
        String::new()
    } else {
        format!("-{}", s.revision)
    };
    format!("istiod{rev}.{}.svc:15012", s.istio_namespace)
}

fn drain_lifecycle<'a>(port: &str) -> Node<'a> {
    let command = Node::List(vec![
        "pilot-agent".into(),
        "request".into(),
        format!("--debug-port={port}").into(),
        "POST".into(),
        "drain".into(),
    ]);
    map([("exec", map([("command", command)]))])
}

fn int_anno(i: &Inputs, name: &str, default: i64) -> i64 {
    i.annotations
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Renders the proxy container.
pub fn proxy_container<'a>(i: &Inputs<'a>) -> Node<'a> {
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
    envs.push(env("CA_ADDR", ca_addr(s)));
    envs.push(raw(&POD_NAME_ENV));
    envs.push(raw(&POD_NAMESPACE_ENV));
    envs.push(raw(&INSTANCE_IP_ENV));
    envs.push(raw(&SERVICE_ACCOUNT_ENV));
    envs.push(raw(&HOST_IP_ENV));
    envs.push(raw(&CPU_LIMIT_ENV));
    envs.push(env("PROXY_CONFIG", format!("{}\n", proxy_config_json(i))));
    envs.push(env("ISTIO_META_POD_PORTS", pod_ports(i)));
    envs.push(env(
        "ISTIO_META_APP_CONTAINERS",
        i.app_containers().join(","),
    ));
    envs.push(raw(&GOMEMLIMIT_ENV));
    // The cluster and network Istio's injector knows of (a configured
    // cluster name, the pod's network) are written last, after the
    // template's env (its `overwriteClusterInfo`).
    if s.cluster_name.is_empty() {
        envs.push(env("ISTIO_META_CLUSTER_ID", "Kubernetes"));
    }
    envs.push(raw(&NODE_NAME_ENV));
    envs.push(env("ISTIO_META_INTERCEPTION_MODE", mode.clone()));
    let workload_name = i
        .labels
        .get(WORKLOAD_NAME_LABEL)
        .filter(|n| !n.is_empty())
        .unwrap_or(&i.workload.name);
    if !workload_name.is_empty() {
        envs.push(env("ISTIO_META_WORKLOAD_NAME", workload_name.as_str()));
    }
    if !i.workload.name.is_empty() && !i.workload.api_version.is_empty() {
        envs.push(env("ISTIO_META_OWNER", i.workload.owner()));
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
    if !s.cluster_name.is_empty() {
        envs.push(env("ISTIO_META_CLUSTER_ID", &s.cluster_name));
    }
    let network = cni::network(s, i.labels);
    if !network.is_empty() {
        envs.push(env("ISTIO_META_NETWORK", network));
    }

    let mut c = map([
        ("name", PROXY_NAME.into()),
        ("image", i.image(&s.proxy_image).into()),
        ("ports", raw(&PROXY_PORTS)),
        ("args", strings(args)),
    ]);
    if matches!(&s.lifecycle, Value::Object(m) if !m.is_empty()) {
        c.insert("lifecycle", Node::Json(Cow::Borrowed(&s.lifecycle)));
    } else {
        let mut lifecycle = map([]);
        if i.hold && !i.native {
            lifecycle.insert("postStart", raw(&WAIT_LIFECYCLE));
        }
        if i.native {
            lifecycle.insert("preStop", drain_lifecycle(&status_port));
        }
        if !matches!(&lifecycle, Node::Map(m) if m.is_empty()) {
            c.insert("lifecycle", lifecycle);
        }
    }
    c.insert("env", Node::List(envs));
    if !s.image_pull_policy.is_empty() {
        c.insert("imagePullPolicy", s.image_pull_policy.as_str().into());
    }
    if status_port != "0" {
        let mut readiness = map([
            ("httpGet", raw(&READY_GET)),
            (
                "periodSeconds",
                int_anno(
                    i,
                    "readiness.status.sidecar.istio.io/periodSeconds",
                    s.readiness_period,
                )
                .into(),
            ),
            ("timeoutSeconds", 3.into()),
            (
                "failureThreshold",
                int_anno(
                    i,
                    "readiness.status.sidecar.istio.io/failureThreshold",
                    s.readiness_failure_threshold,
                )
                .into(),
            ),
        ]);
        let delay = int_anno(
            i,
            "readiness.status.sidecar.istio.io/initialDelaySeconds",
            s.readiness_initial_delay,
        );
        if delay != 0 {
            readiness.insert("initialDelaySeconds", delay.into());
        }
        c.insert("readinessProbe", readiness);
        if s.startup_probe_enabled {
            c.insert(
                "startupProbe",
                map([
                    ("httpGet", raw(&READY_GET)),
                    ("periodSeconds", 1.into()),
                    ("timeoutSeconds", 3.into()),
                    ("failureThreshold", s.startup_failure_threshold.into()),
                ]),
            );
        }
    }
    let tproxy = mode == "TPROXY";
    let mut caps = map([]);
    if tproxy {
        caps.insert("add", strs(&["NET_ADMIN"]));
    }
    caps.insert("drop", strs(&["ALL"]));
    let core_dump = i.anno(
        "sidecar.istio.io/enableCoreDump",
        if s.enable_core_dump { "true" } else { "false" },
    ) == "true";
    c.insert(
        "securityContext",
        map([
            ("allowPrivilegeEscalation", s.privileged.into()),
            ("capabilities", caps),
            ("privileged", s.privileged.into()),
            ("readOnlyRootFilesystem", (!core_dump).into()),
            ("runAsGroup", 1337.into()),
            ("runAsNonRoot", (!tproxy).into()),
            ("runAsUser", if tproxy { 0 } else { 1337 }.into()),
        ]),
    );
    c.insert("resources", i.resources());
    c.insert("volumeMounts", Node::List(volume_mounts(i)));
    if i.native {
        c.insert("restartPolicy", "Always".into());
    }
    c
}

fn volume_mounts<'a>(i: &Inputs<'a>) -> Vec<Node<'a>> {
    let s = i.s;
    let mut m = vec![
        raw(&WORKLOAD_SOCKET_MOUNT),
        raw(&CREDENTIAL_SOCKET_MOUNT),
        raw(&WORKLOAD_CERTS_MOUNT),
    ];
    if s.pilot_cert_provider == "istiod" {
        m.push(raw(&ISTIOD_CA_MOUNT));
        m.push(raw(&CA_CRL_MOUNT));
    }
    m.push(raw(&DATA_MOUNT));
    if i.annotations
        .contains_key("sidecar.istio.io/bootstrapOverride")
    {
        m.push(raw(&CUSTOM_BOOTSTRAP_MOUNT));
    }
    m.push(raw(&ENVOY_MOUNT));
    if s.jwt_policy == "third-party-jwt" {
        m.push(raw(&TOKEN_MOUNT));
    }
    if s.mount_mtls_certs {
        m.push(raw(&CERTS_MOUNT));
    }
    m.push(raw(&PODINFO_MOUNT));
    if let Some(Ok(Value::Object(user))) = i
        .annotations
        .get("sidecar.istio.io/userVolumeMount")
        .map(|t| serde_json::from_str::<Value>(t))
    {
        for (name, body) in user {
            let mut mount = body.as_object().cloned().unwrap_or_default();
            mount.insert("name".into(), Value::String(name));
            m.push(Node::Json(Cow::Owned(Value::Object(mount))));
        }
    }
    m
}

//! The `istio-proxy` container as Istio's template renders it: args, the
//! full env list, probes, security context, resources and volume mounts.

use std::borrow::Cow;

use serde_json::Value;

use super::gojson::{self, Ty};
use super::node::{Node, map, strs};
use super::sidecar::{Inputs, PROXY_NAME, env, strings};

fn field_env<'a>(name: &'static str, path: &'static str) -> Node<'a> {
    map([
        ("name", name.into()),
        (
            "valueFrom",
            map([("fieldRef", map([("fieldPath", path.into())]))]),
        ),
    ])
}

fn resource_env<'a>(name: &'static str, resource: &'static str) -> Node<'a> {
    map([
        ("name", name.into()),
        (
            "valueFrom",
            map([(
                "resourceFieldRef",
                map([("divisor", "1".into()), ("resource", resource.into())]),
            )]),
        ),
    ])
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
            gojson::push_string(&mut out, field);
            out.push(':');
            out.push_str(&v.to_string());
        }
    }
    out.push('}');
    out
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

fn wait_lifecycle<'a>() -> Node<'a> {
    map([("exec", map([("command", strs(&["pilot-agent", "wait"]))]))])
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
    envs.push(env("CA_ADDR", ca_addr));
    envs.push(field_env("POD_NAME", "metadata.name"));
    envs.push(field_env("POD_NAMESPACE", "metadata.namespace"));
    envs.push(field_env("INSTANCE_IP", "status.podIP"));
    envs.push(field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"));
    envs.push(field_env("HOST_IP", "status.hostIP"));
    envs.push(resource_env("ISTIO_CPU_LIMIT", "limits.cpu"));
    envs.push(env("PROXY_CONFIG", format!("{}\n", proxy_config_json(i))));
    envs.push(env("ISTIO_META_POD_PORTS", pod_ports(i)));
    envs.push(env(
        "ISTIO_META_APP_CONTAINERS",
        i.app_containers().join(","),
    ));
    envs.push(resource_env("GOMEMLIMIT", "limits.memory"));
    let cluster = if s.cluster_name.is_empty() {
        "Kubernetes"
    } else {
        &s.cluster_name
    };
    envs.push(env("ISTIO_META_CLUSTER_ID", cluster));
    envs.push(field_env("ISTIO_META_NODE_NAME", "spec.nodeName"));
    envs.push(env("ISTIO_META_INTERCEPTION_MODE", mode.clone()));
    if !s.network.is_empty() {
        envs.push(env("ISTIO_META_NETWORK", &s.network));
    }
    if !i.workload.name.is_empty() {
        envs.push(env("ISTIO_META_WORKLOAD_NAME", &i.workload.name));
        if !i.workload.api_version.is_empty() {
            envs.push(env("ISTIO_META_OWNER", i.workload.owner()));
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

    let mut c = map([
        ("name", PROXY_NAME.into()),
        ("image", i.image(&s.proxy_image).into()),
        (
            "ports",
            Node::List(vec![map([
                ("containerPort", 15090.into()),
                ("protocol", "TCP".into()),
                ("name", "http-envoy-prom".into()),
            ])]),
        ),
        ("args", strings(args)),
    ]);
    if matches!(&s.lifecycle, Value::Object(m) if !m.is_empty()) {
        c.insert("lifecycle", Node::Json(Cow::Borrowed(&s.lifecycle)));
    } else {
        let mut lifecycle = map([]);
        if i.hold && !i.native {
            lifecycle.insert("postStart", wait_lifecycle());
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
            (
                "httpGet",
                map([("path", "/healthz/ready".into()), ("port", 15021.into())]),
            ),
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
                    (
                        "httpGet",
                        map([("path", "/healthz/ready".into()), ("port", 15021.into())]),
                    ),
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

fn mount<'a>(name: &'static str, path: &'static str) -> Node<'a> {
    map([("name", name.into()), ("mountPath", path.into())])
}

fn volume_mounts<'a>(i: &Inputs<'a>) -> Vec<Node<'a>> {
    let s = i.s;
    let mut m = vec![
        mount("workload-socket", "/var/run/secrets/workload-spiffe-uds"),
        mount("credential-socket", "/var/run/secrets/credential-uds"),
        mount(
            "workload-certs",
            "/var/run/secrets/workload-spiffe-credentials",
        ),
    ];
    if s.pilot_cert_provider == "istiod" {
        m.push(mount("istiod-ca-cert", "/var/run/secrets/istio"));
        m.push(mount("istio-ca-crl", "/var/run/secrets/istio/crl"));
    }
    m.push(mount("istio-data", "/var/lib/istio/data"));
    if i.annotations
        .contains_key("sidecar.istio.io/bootstrapOverride")
    {
        m.push(mount(
            "custom-bootstrap-volume",
            "/etc/istio/custom-bootstrap",
        ));
    }
    m.push(mount("istio-envoy", "/etc/istio/proxy"));
    if s.jwt_policy == "third-party-jwt" {
        m.push(mount("istio-token", "/var/run/secrets/tokens"));
    }
    if s.mount_mtls_certs {
        m.push(map([
            ("name", "istio-certs".into()),
            ("mountPath", "/etc/certs/".into()),
            ("readOnly", true.into()),
        ]));
    }
    m.push(mount("istio-podinfo", "/etc/istio/pod"));
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

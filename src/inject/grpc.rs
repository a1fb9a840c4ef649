//! Istio's proxyless gRPC templates. `grpc-agent`: the agent runs beside
//! the app without Envoy (`DISABLE_ENVOY`), serving xDS and certificates
//! to the gRPC library over a shared volume; the app containers are told
//! where. `grpc-simple`: no agent at all, only a bootstrap file written by
//! an init container that points gRPC at istiod.

use serde_json::{Value, json};

use super::fragments::*;
use super::gateway::{
    bootstrap_volume, certs_mount, certs_volume, env_var, identity_env, log_args, metadata,
    pull_secrets, trust_volumes,
};
use super::node::Fragment;
use super::proxy::{ca_addr, pod_ports, proxy_config_json};
use super::sidecar::{Inputs, PROXY_NAME};

fn fragment(f: &'static Fragment) -> Value {
    raw(f).into_value()
}

fn int_anno(i: &Inputs, name: &str, default: i64) -> i64 {
    i.annotations
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn user_entries(i: &Inputs, annotation: &str) -> Vec<Value> {
    let Some(Ok(Value::Object(user))) = i
        .annotations
        .get(annotation)
        .map(|t| serde_json::from_str::<Value>(t))
    else {
        return Vec::new();
    };
    user.into_iter()
        .map(|(name, body)| {
            let mut entry = body.as_object().cloned().unwrap_or_default();
            entry.insert("name".into(), Value::String(name));
            Value::Object(entry)
        })
        .collect()
}

/// Renders the `grpc-agent` template.
pub fn agent(i: &Inputs) -> Value {
    let s = i.s;
    let mut args = vec![
        "proxy".to_string(),
        "sidecar".into(),
        "--domain".into(),
        format!("$(POD_NAMESPACE).svc.{}", s.cluster_domain),
    ];
    args.extend(log_args(i));
    let mut envs = vec![
        env_var("ISTIO_META_GENERATOR", "grpc"),
        env_var("OUTPUT_CERTS", "/var/lib/istio/data"),
    ];
    if s.inbound_localhost {
        envs.push(env_var(
            "REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION",
            "true",
        ));
    }
    envs.extend([
        env_var("PILOT_CERT_PROVIDER", &s.pilot_cert_provider),
        env_var("CA_ADDR", ca_addr(s)),
        fragment(&POD_NAME_ENV),
        fragment(&POD_NAMESPACE_ENV),
        fragment(&INSTANCE_IP_ENV),
        fragment(&SERVICE_ACCOUNT_ENV),
        fragment(&HOST_IP_ENV),
        env_var("PROXY_CONFIG", format!("{}\n", proxy_config_json(i))),
        env_var("ISTIO_META_POD_PORTS", pod_ports(i)),
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
    ]);
    envs.extend(identity_env(i, false));
    envs.push(env_var("ISTIO_META_DNS_CAPTURE", "false"));
    envs.push(env_var("DISABLE_ENVOY", "true"));

    let xds_mount = json!({"mountPath": "/etc/istio/proxy", "name": "istio-xds"});
    let mut proxy = json!({
        "name": PROXY_NAME,
        "image": i.image(&s.proxy_image),
        "ports": [{"containerPort": 15020, "protocol": "TCP", "name": "mesh-metrics"}],
        "args": args,
        "lifecycle": {"postStart": {"exec": {"command": [
            "pilot-agent", "wait", "--url=http://localhost:15020/healthz/ready",
        ]}}},
        "env": envs,
    });
    if !s.image_pull_policy.is_empty() {
        proxy["imagePullPolicy"] = s.image_pull_policy.clone().into();
    }
    // Without a status port the agent has no readiness endpoint; Istio's
    // template then leaves out its probe, resources and mounts alike.
    if i.status_port() != "0" {
        let mut readiness = json!({
            "httpGet": {"path": "/healthz/ready", "port": 15020},
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
            readiness["initialDelaySeconds"] = delay.into();
        }
        proxy["readinessProbe"] = readiness;
        proxy["resources"] = i.resources().into_value();
        let mut mounts = vec![fragment(&WORKLOAD_SOCKET_MOUNT), certs_mount(i)];
        if s.pilot_cert_provider == "istiod" {
            mounts.push(fragment(&ISTIOD_CA_MOUNT));
        }
        mounts.push(fragment(&DATA_MOUNT));
        mounts.push(xds_mount.clone());
        mounts.push(fragment(&TOKEN_MOUNT));
        if s.mount_mtls_certs {
            mounts.push(fragment(&CERTS_MOUNT));
        }
        mounts.push(fragment(&PODINFO_MOUNT));
        mounts.extend(user_entries(i, "sidecar.istio.io/userVolumeMount"));
        proxy["volumeMounts"] = Value::Array(mounts);
    }

    let mut containers = vec![proxy];
    for name in i.app_containers() {
        containers.push(json!({
            "name": name,
            "env": [
                {"name": "GRPC_XDS_EXPERIMENTAL_SECURITY_SUPPORT", "value": "true"},
                {"name": "GRPC_XDS_BOOTSTRAP", "value": "/etc/istio/proxy/grpc-bootstrap.json"},
            ],
            "volumeMounts": [fragment(&DATA_MOUNT), xds_mount.clone(), certs_mount(i)],
        }));
    }

    let mut volumes = vec![
        json!({"name": "workload-socket"}),
        certs_volume(i, Value::Null),
    ];
    volumes.extend(bootstrap_volume(i));
    volumes.push(json!({"name": "istio-xds", "emptyDir": {"medium": "Memory"}}));
    volumes.push(fragment(&DATA_VOLUME));
    volumes.push(fragment(&PODINFO_VOLUME));
    volumes.extend(trust_volumes(i));
    volumes.extend(user_entries(i, "sidecar.istio.io/userVolume"));

    let mut spec = json!({ "containers": containers, "volumes": volumes });
    if let Some(secrets) = pull_secrets(i) {
        spec["imagePullSecrets"] = secrets;
    }
    json!({
        "metadata": metadata(i, &[("sidecar.istio.io/rewriteAppHTTPProbers", "false")]),
        "spec": spec,
    })
}

/// The shell script of `grpc-simple`'s init container: writes gRPC's xDS
/// bootstrap, pointing at istiod in `ISTIO_NAMESPACE`, into the shared
/// volume.
const BOOTSTRAP_SCRIPT: &str = r#"NODE_ID="sidecar~${INSTANCE_IP}~${POD_NAME}.${POD_NAMESPACE}~cluster.local"
SERVER_URI="dns:///istiod.${ISTIO_NAMESPACE}.svc:15010"
echo '
{
  "xds_servers": [
    {
      "server_uri": "'${SERVER_URI}'",
      "channel_creds": [{"type": "insecure"}],
      "server_features" : ["xds_v3"]
    }
  ],
  "node": {
    "id": "'${NODE_ID}'",
    "metadata": {
      "GENERATOR": "grpc"
    }
  }
}' > /var/lib/grpc/data/bootstrap.json"#;

/// Renders the `grpc-simple` template.
pub fn simple(i: &Inputs) -> Value {
    let mount = json!({"mountPath": "/var/lib/grpc/data/", "name": "grpc-io-proxyless-bootstrap"});
    let init = json!({
        "name": "grpc-bootstrap-init",
        "image": "busybox:1.28",
        "volumeMounts": [mount.clone()],
        "env": [
            fragment(&INSTANCE_IP_ENV),
            fragment(&POD_NAME_ENV),
            fragment(&POD_NAMESPACE_ENV),
            {"name": "ISTIO_NAMESPACE", "value": format!("{}\n", i.s.istio_namespace)},
        ],
        "command": ["sh", "-c", BOOTSTRAP_SCRIPT],
    });
    let containers: Vec<Value> = i
        .spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .map(|name| {
            json!({
                "name": name,
                "env": [
                    {"name": "GRPC_XDS_BOOTSTRAP", "value": "/var/lib/grpc/data/bootstrap.json"},
                    {"name": "GRPC_GO_LOG_VERBOSITY_LEVEL", "value": "99"},
                    {"name": "GRPC_GO_LOG_SEVERITY_LEVEL", "value": "info"},
                ],
                "volumeMounts": [mount.clone()],
            })
        })
        .collect();
    json!({
        "metadata": {"annotations": {"sidecar.istio.io/rewriteAppHTTPProbers": "false"}},
        "spec": {
            "initContainers": [init],
            "containers": containers,
            "volumes": [{"name": "grpc-io-proxyless-bootstrap", "emptyDir": {}}],
        },
    })
}

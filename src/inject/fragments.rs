//! The constant parts of Istio's template, written out as JSON text once:
//! the volumes, mounts and env vars that never depend on the pod or the
//! settings, parsed once on first use (see [`Node::Raw`]) rather than
//! built node by node for every pod.
//!
//! Each text is serde_json's compact form with sorted keys; the tests
//! below hold every fragment to that.

use super::node::{Fragment, Node};

const fn named(name: &'static str, json: &'static str) -> Fragment {
    Fragment::new(Some(name), json)
}

const fn text(json: &'static str) -> Fragment {
    Fragment::new(None, json)
}

/// A fragment as a node.
pub const fn raw<'a>(fragment: &'static Fragment) -> Node<'a> {
    Node::Raw(fragment)
}

pub static WORKLOAD_SOCKET_VOLUME: Fragment = named(
    "workload-socket",
    r#"{"emptyDir":{},"name":"workload-socket"}"#,
);
pub static CREDENTIAL_SOCKET_VOLUME: Fragment = named(
    "credential-socket",
    r#"{"emptyDir":{},"name":"credential-socket"}"#,
);
pub static WORKLOAD_CERTS_VOLUME: Fragment = named(
    "workload-certs",
    r#"{"emptyDir":{},"name":"workload-certs"}"#,
);
pub static ENVOY_VOLUME: Fragment = named(
    "istio-envoy",
    r#"{"emptyDir":{"medium":"Memory"},"name":"istio-envoy"}"#,
);
pub static DATA_VOLUME: Fragment = named("istio-data", r#"{"emptyDir":{},"name":"istio-data"}"#);
pub static PODINFO_VOLUME: Fragment = named(
    "istio-podinfo",
    r#"{"downwardAPI":{"items":[{"fieldRef":{"fieldPath":"metadata.labels"},"path":"labels"},{"fieldRef":{"fieldPath":"metadata.annotations"},"path":"annotations"}]},"name":"istio-podinfo"}"#,
);
pub static ISTIOD_CA_VOLUME: Fragment = named(
    "istiod-ca-cert",
    r#"{"configMap":{"name":"istio-ca-root-cert"},"name":"istiod-ca-cert"}"#,
);
pub static CA_CRL_VOLUME: Fragment = named(
    "istio-ca-crl",
    r#"{"configMap":{"name":"istio-ca-crl","optional":true},"name":"istio-ca-crl"}"#,
);

pub static WORKLOAD_SOCKET_MOUNT: Fragment = named(
    "workload-socket",
    r#"{"mountPath":"/var/run/secrets/workload-spiffe-uds","name":"workload-socket"}"#,
);
pub static CREDENTIAL_SOCKET_MOUNT: Fragment = named(
    "credential-socket",
    r#"{"mountPath":"/var/run/secrets/credential-uds","name":"credential-socket"}"#,
);
pub static WORKLOAD_CERTS_MOUNT: Fragment = named(
    "workload-certs",
    r#"{"mountPath":"/var/run/secrets/workload-spiffe-credentials","name":"workload-certs"}"#,
);
pub static ISTIOD_CA_MOUNT: Fragment = named(
    "istiod-ca-cert",
    r#"{"mountPath":"/var/run/secrets/istio","name":"istiod-ca-cert"}"#,
);
pub static CA_CRL_MOUNT: Fragment = named(
    "istio-ca-crl",
    r#"{"mountPath":"/var/run/secrets/istio/crl","name":"istio-ca-crl"}"#,
);
pub static DATA_MOUNT: Fragment = named(
    "istio-data",
    r#"{"mountPath":"/var/lib/istio/data","name":"istio-data"}"#,
);
pub static CUSTOM_BOOTSTRAP_MOUNT: Fragment = named(
    "custom-bootstrap-volume",
    r#"{"mountPath":"/etc/istio/custom-bootstrap","name":"custom-bootstrap-volume"}"#,
);
pub static ENVOY_MOUNT: Fragment = named(
    "istio-envoy",
    r#"{"mountPath":"/etc/istio/proxy","name":"istio-envoy"}"#,
);
pub static TOKEN_MOUNT: Fragment = named(
    "istio-token",
    r#"{"mountPath":"/var/run/secrets/tokens","name":"istio-token"}"#,
);
pub static CERTS_MOUNT: Fragment = named(
    "istio-certs",
    r#"{"mountPath":"/etc/certs/","name":"istio-certs","readOnly":true}"#,
);
pub static PODINFO_MOUNT: Fragment = named(
    "istio-podinfo",
    r#"{"mountPath":"/etc/istio/pod","name":"istio-podinfo"}"#,
);

pub static POD_NAME_ENV: Fragment = named(
    "POD_NAME",
    r#"{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}"#,
);
pub static POD_NAMESPACE_ENV: Fragment = named(
    "POD_NAMESPACE",
    r#"{"name":"POD_NAMESPACE","valueFrom":{"fieldRef":{"fieldPath":"metadata.namespace"}}}"#,
);
pub static INSTANCE_IP_ENV: Fragment = named(
    "INSTANCE_IP",
    r#"{"name":"INSTANCE_IP","valueFrom":{"fieldRef":{"fieldPath":"status.podIP"}}}"#,
);
pub static SERVICE_ACCOUNT_ENV: Fragment = named(
    "SERVICE_ACCOUNT",
    r#"{"name":"SERVICE_ACCOUNT","valueFrom":{"fieldRef":{"fieldPath":"spec.serviceAccountName"}}}"#,
);
pub static HOST_IP_ENV: Fragment = named(
    "HOST_IP",
    r#"{"name":"HOST_IP","valueFrom":{"fieldRef":{"fieldPath":"status.hostIP"}}}"#,
);
pub static CPU_LIMIT_ENV: Fragment = named(
    "ISTIO_CPU_LIMIT",
    r#"{"name":"ISTIO_CPU_LIMIT","valueFrom":{"resourceFieldRef":{"divisor":"1","resource":"limits.cpu"}}}"#,
);
pub static GOMEMLIMIT_ENV: Fragment = named(
    "GOMEMLIMIT",
    r#"{"name":"GOMEMLIMIT","valueFrom":{"resourceFieldRef":{"divisor":"1","resource":"limits.memory"}}}"#,
);
pub static NODE_NAME_ENV: Fragment = named(
    "ISTIO_META_NODE_NAME",
    r#"{"name":"ISTIO_META_NODE_NAME","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}}"#,
);

/// The proxy's ports.
pub static PROXY_PORTS: Fragment =
    text(r#"[{"containerPort":15090,"name":"http-envoy-prom","protocol":"TCP"}]"#);
/// Where the proxy's readiness and startup probes ask.
pub static READY_GET: Fragment = text(r#"{"path":"/healthz/ready","port":15021}"#);
/// The postStart hook that holds the app until the proxy is ready.
pub static WAIT_LIFECYCLE: Fragment = text(r#"{"exec":{"command":["pilot-agent","wait"]}}"#);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const ALL: &[&Fragment] = &[
        &WORKLOAD_SOCKET_VOLUME,
        &CREDENTIAL_SOCKET_VOLUME,
        &WORKLOAD_CERTS_VOLUME,
        &ENVOY_VOLUME,
        &DATA_VOLUME,
        &PODINFO_VOLUME,
        &ISTIOD_CA_VOLUME,
        &CA_CRL_VOLUME,
        &WORKLOAD_SOCKET_MOUNT,
        &CREDENTIAL_SOCKET_MOUNT,
        &WORKLOAD_CERTS_MOUNT,
        &ISTIOD_CA_MOUNT,
        &CA_CRL_MOUNT,
        &DATA_MOUNT,
        &CUSTOM_BOOTSTRAP_MOUNT,
        &ENVOY_MOUNT,
        &TOKEN_MOUNT,
        &CERTS_MOUNT,
        &PODINFO_MOUNT,
        &POD_NAME_ENV,
        &POD_NAMESPACE_ENV,
        &INSTANCE_IP_ENV,
        &SERVICE_ACCOUNT_ENV,
        &HOST_IP_ENV,
        &CPU_LIMIT_ENV,
        &GOMEMLIMIT_ENV,
        &NODE_NAME_ENV,
        &PROXY_PORTS,
        &READY_GET,
        &WAIT_LIFECYCLE,
    ];

    #[test]
    fn every_fragment_is_serdes_own_text_and_carries_its_name() {
        for f in ALL {
            let value: Value = serde_json::from_str(f.json)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", f.json));
            assert_eq!(serde_json::to_string(&value).unwrap(), f.json);
            assert_eq!(f.value(), &value);
            assert_eq!(
                value.get("name").and_then(Value::as_str),
                f.name,
                "{}",
                f.json
            );
        }
    }
}

//! The request `bench/webhook` posts, shared by the load generator
//! (`bench/webhook_load.rs`) and the in-process benchmark
//! (`benches/admit.rs`), so that both measure the very same review.

use serde_json::{Value, json};

/// A typical Deployment as the API server sends it in a CREATE review.
pub fn deployment(opted_out: bool) -> Value {
    let mut template_annotations =
        json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9090"});
    if opted_out {
        template_annotations["sidecar.istio.io/inject"] = json!("false");
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "checkout",
            "namespace": "shop",
            "labels": {"app": "checkout", "version": "v3", "team": "payments"},
            "annotations": {"deployment.kubernetes.io/revision": "1"}
        },
        "spec": {
            "replicas": 3,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "checkout"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {
                    "labels": {"app": "checkout", "version": "v3"},
                    "annotations": template_annotations
                },
                "spec": {
                    "serviceAccountName": "checkout",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {"runAsNonRoot": true, "fsGroup": 2000},
                    "containers": [{
                        "name": "checkout",
                        "image": "registry.example.com/shop/checkout:3.14.1",
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["--port=8080", "--metrics-port=9090", "--log-level=info"],
                        "ports": [
                            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
                        ],
                        "env": [
                            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "checkout-db", "key": "url"}}},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                            {"name": "CART_SERVICE", "value": "cart.shop.svc.cluster.local:8080"},
                            {"name": "PAYMENT_SERVICE", "value": "payment.shop.svc.cluster.local:8080"}
                        ],
                        "resources": {
                            "requests": {"cpu": "250m", "memory": "256Mi"},
                            "limits": {"cpu": "1", "memory": "512Mi"}
                        },
                        "readinessProbe": {
                            "httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
                            "initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 1,
                            "successThreshold": 1, "failureThreshold": 3
                        },
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                            "initialDelaySeconds": 15, "periodSeconds": 20, "timeoutSeconds": 1,
                            "successThreshold": 1, "failureThreshold": 3
                        },
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/checkout", "readOnly": true},
                            {"name": "tmp", "mountPath": "/tmp"}
                        ],
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"
                    }],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "checkout-config", "defaultMode": 420}},
                        {"name": "tmp", "emptyDir": {}}
                    ]
                }
            }
        }
    })
}

/// What the review's object carries besides the Deployment itself.
///
/// The benchmark's default is [`Envelope::Managed`]: the smallest review
/// the API server actually sends a mutating webhook for this Deployment.
/// [`Envelope::Minimal`] is kept to compare with the figures before
/// session 6, which used it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// The Deployment alone, as the benchmark posted it until session 6: a
    /// review no webhook receives from an API server since
    /// Kubernetes 1.18, every new object having `managedFields` by then.
    Minimal,
    /// What the API server sends for a Deployment created any way that
    /// keeps no client-side record (`kubectl create`, Helm, server-side
    /// apply, a controller): the Deployment with the `managedFields` entry
    /// the API server's field manager sets on every object it creates,
    /// before mutating admission (kubernetes/kubernetes#87672).
    Managed,
    /// What the API server actually sends for a Deployment created by
    /// `kubectl apply` (the review's `options` name its field manager):
    /// the object also carries `kubectl.kubernetes.io/last-applied-configuration`
    /// (the manifest as JSON) and its `managedFields` entry, both set before
    /// mutating admission runs (the create handler runs the field manager
    /// first: kubernetes/kubernetes#87672); the controller's revision
    /// annotation comes only later.
    Applied,
}

/// A CREATE review of the Deployment, with `envelope`.
pub fn review_of(opted_out: bool, envelope: Envelope) -> Vec<u8> {
    let mut object = deployment(opted_out);
    let field_manager = match envelope {
        Envelope::Minimal | Envelope::Applied => "kubectl-client-side-apply",
        Envelope::Managed => "kubectl-create",
    };
    match envelope {
        Envelope::Minimal => {}
        Envelope::Managed => manage(&mut object, field_manager),
        Envelope::Applied => {
            record_last_applied(&mut object);
            manage(&mut object, field_manager);
        }
    }
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "7c1ab3f2-5d0e-4f7b-9a38-2b8e6c4d1f90",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "checkout",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": field_manager}
        }
    });
    serde_json::to_vec(&review).expect("serializable")
}

/// Fields the API server defaults: absent from the user's manifest.
const DEFAULTED: [&str; 9] = [
    "progressDeadlineSeconds",
    "revisionHistoryLimit",
    "strategy",
    "dnsPolicy",
    "restartPolicy",
    "schedulerName",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
];

/// Adds what `kubectl apply` puts on a new object: the manifest it applied,
/// as an annotation.
fn record_last_applied(object: &mut Value) {
    forget_revision(object);
    let mut manifest = object.clone();
    strip(&mut manifest, &DEFAULTED);
    if let Some(Value::Object(m)) = manifest.get_mut("metadata") {
        m.remove("annotations");
    }
    let last_applied = format!(
        "{}\n",
        serde_json::to_string(&manifest).expect("serializable")
    );
    object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        Value::String(last_applied);
}

/// Adds what the API server's field manager puts on a new object before
/// admission: `manager`'s field set.
fn manage(object: &mut Value, manager: &str) {
    forget_revision(object);
    let fields = fields_v1(object, true);
    object["metadata"]["managedFields"] = json!([{
        "manager": manager,
        "operation": "Update",
        "apiVersion": "apps/v1",
        "time": "2026-11-21T10:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields
    }]);
}

/// Removes the Deployment controller's revision annotation, which comes
/// only after the object is created (and the map, if that was all of it).
fn forget_revision(object: &mut Value) {
    let Some(Value::Object(meta)) = object.get_mut("metadata") else {
        return;
    };
    if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
        annotations.remove("deployment.kubernetes.io/revision");
        if annotations.is_empty() {
            meta.remove("annotations");
        }
    }
}

/// Removes `keys` wherever they occur.
fn strip(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(m) => {
            for k in keys {
                m.remove(*k);
            }
            m.values_mut().for_each(|c| strip(c, keys));
        }
        Value::Array(items) => items.iter_mut().for_each(|c| strip(c, keys)),
        _ => {}
    }
}

/// A FieldsV1 set in the shape the field manager writes: `f:` per field,
/// `k:` per item of a keyed list (by name, by port and protocol, by mount
/// path), `.` for a map or item that is itself set, lists of scalars
/// atomic.
fn fields_v1(v: &Value, top: bool) -> Value {
    let Value::Object(m) = v else {
        return json!({});
    };
    let mut out = serde_json::Map::new();
    if !top {
        out.insert(".".into(), json!({}));
    }
    for (k, child) in m {
        if top && (k == "apiVersion" || k == "kind") {
            continue;
        }
        let set = match child {
            Value::Object(_) => fields_v1(child, top && k != "labels" && k != "annotations"),
            Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
                let mut list = serde_json::Map::new();
                for item in items {
                    list.insert(item_key(item), fields_v1(item, false));
                }
                Value::Object(list)
            }
            _ => json!({}),
        };
        out.insert(format!("f:{k}"), set);
    }
    Value::Object(out)
}

/// The `k:` key of a keyed list's item.
fn item_key(item: &Value) -> String {
    let key = if let Some(port) = item.get("containerPort") {
        json!({"containerPort": port, "protocol": item.get("protocol").cloned().unwrap_or(json!("TCP"))})
    } else if let Some(path) = item.get("mountPath") {
        json!({"mountPath": path})
    } else {
        json!({"name": item.get("name").cloned().unwrap_or(Value::Null)})
    };
    format!("k:{key}")
}

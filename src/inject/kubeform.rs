//! The object as `istioctl kube-inject` prints it. Istio's preview goes
//! through Kubernetes' Go types, which write the zero-valued required
//! fields of a workload's `status` (e.g. a DaemonSet's `numberReady: 0`).
//! This is presentation only: the engine's `mutated` object and patch never
//! carry it (the webhook must not patch `status`).

use serde_json::{Value, json};

/// The zero-valued required status fields Go writes for `kind`.
fn zero_status(kind: &str) -> Option<Value> {
    match kind {
        "DaemonSet" => Some(json!({
            "currentNumberScheduled": 0,
            "desiredNumberScheduled": 0,
            "numberMisscheduled": 0,
            "numberReady": 0,
        })),
        "ReplicaSet" | "ReplicationController" => Some(json!({ "replicas": 0 })),
        "StatefulSet" => Some(json!({ "availableReplicas": 0, "replicas": 0 })),
        "DeploymentConfig" => Some(json!({
            "availableReplicas": 0,
            "latestVersion": 0,
            "observedGeneration": 0,
            "replicas": 0,
            "unavailableReplicas": 0,
            "updatedReplicas": 0,
        })),
        _ => None,
    }
}

/// OpenShift's `DeploymentConfigSpec` as Go writes it: `replicas` and
/// `test` always (no `omitempty`), `paused` and `minReadySeconds` only
/// when not zero.
fn deployment_config_spec(spec: &mut serde_json::Map<String, Value>) {
    spec.entry("replicas").or_insert(json!(0));
    spec.entry("test").or_insert(json!(false));
    if spec.get("paused") == Some(&json!(false)) {
        spec.remove("paused");
    }
    if spec.get("minReadySeconds") == Some(&json!(0)) {
        spec.remove("minReadySeconds");
    }
}

/// `object` as `istioctl kube-inject` would print it (each item of a
/// `kind: List` likewise). Fields already present are kept, except the
/// zero values Go leaves out of a DeploymentConfig's spec.
pub fn kube_inject_form(object: &Value) -> Value {
    let mut out = object.clone();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind == "List" {
        if let Some(Value::Array(items)) = out.get_mut("items") {
            for item in items.iter_mut() {
                *item = kube_inject_form(item);
            }
        }
        return out;
    }
    if kind == "DeploymentConfig"
        && let Some(Value::Object(spec)) = out.get_mut("spec")
    {
        deployment_config_spec(spec);
    }
    if let (Some(zero), Value::Object(map)) = (zero_status(kind), &mut out) {
        let status = map
            .entry("status")
            .or_insert_with(|| Value::Object(Default::default()));
        if let (Value::Object(s), Value::Object(z)) = (status, zero) {
            for (k, v) in z {
                s.entry(k).or_insert(v);
            }
        }
    }
    out
}

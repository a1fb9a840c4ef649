//! The status record Istio writes on an injected pod
//! (`sidecar.istio.io/status`): what was added, in Istio's exact JSON form.
//! It is how re-injection recognises and replaces earlier additions.

use serde_json::{Value, json};

/// What injection added, recorded in `sidecar.istio.io/status`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// Added init containers.
    pub init_containers: Vec<String>,
    /// Added containers.
    pub containers: Vec<String>,
    /// Added volumes.
    pub volumes: Vec<String>,
    /// Added image pull secrets.
    pub image_pull_secrets: Vec<String>,
    /// The revision that injected.
    pub revision: String,
}

impl Status {
    /// Istio's exact JSON form (`null` for an empty list).
    pub fn to_json(&self) -> String {
        let list = |v: &Vec<String>| {
            if v.is_empty() { Value::Null } else { json!(v) }
        };
        format!(
            "{{\"initContainers\":{},\"containers\":{},\"volumes\":{},\"imagePullSecrets\":{},\"revision\":{}}}",
            list(&self.init_containers),
            list(&self.containers),
            list(&self.volumes),
            list(&self.image_pull_secrets),
            Value::String(self.revision.clone())
        )
    }

    /// Parses a status annotation (for re-injection).
    pub fn parse(text: &str) -> Option<Status> {
        let v: Value = serde_json::from_str(text).ok()?;
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        Some(Status {
            init_containers: list("initContainers"),
            containers: list("containers"),
            volumes: list("volumes"),
            image_pull_secrets: list("imagePullSecrets"),
            revision: v
                .get("revision")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
        })
    }
}

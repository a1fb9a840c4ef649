//! The status record Istio writes on an injected pod
//! (`sidecar.istio.io/status`): what was added, in Istio's exact JSON form.
//! It is how re-injection recognises and replaces earlier additions.

use serde_json::Value;

use super::gojson;

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
        let mut out = String::with_capacity(256);
        for (key, list) in [
            ("{\"initContainers\":", &self.init_containers),
            (",\"containers\":", &self.containers),
            (",\"volumes\":", &self.volumes),
            (",\"imagePullSecrets\":", &self.image_pull_secrets),
        ] {
            out.push_str(key);
            if list.is_empty() {
                out.push_str("null");
                continue;
            }
            out.push('[');
            for (i, name) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                gojson::push_string(&mut out, name);
            }
            out.push(']');
        }
        out.push_str(",\"revision\":");
        gojson::push_string(&mut out, &self.revision);
        out.push('}');
        out
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

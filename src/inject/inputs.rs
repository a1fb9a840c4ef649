//! What rendering reads for one pod: the resolved configuration, the pod's
//! annotations and labels, and the derived values the template uses
//! (images, interception mode, status port, resources, proxy metadata).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::node::Node;
use super::quantity;
use super::sidecar::PROXY_NAME;
use super::workload::Workload;
use crate::config::Settings;

/// Everything rendering reads.
pub struct Inputs<'a> {
    /// Resolved configuration.
    pub s: &'a Settings,
    /// The pod's annotations.
    pub annotations: &'a BTreeMap<String, String>,
    /// The pod's labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The pod spec, without previously injected containers.
    pub spec: &'a Value,
    /// The owning workload.
    pub workload: &'a Workload,
    /// ProxyConfig: mesh defaults with the pod's `proxy.istio.io/config`.
    pub proxy_config: &'a Map<String, Value>,
    /// The proxy runs as a native sidecar (init container, restartPolicy Always).
    pub native: bool,
    /// The application waits for the proxy to start.
    pub hold: bool,
    /// The proxy's resources ([`resources`]).
    pub resources: Cow<'a, Value>,
}

impl<'a> Inputs<'a> {
    /// The annotation's value, else the configured default.
    pub fn anno<'b>(&'b self, name: &str, default: &'b str) -> &'b str
    where
        'a: 'b,
    {
        self.annotations
            .get(name)
            .map(String::as_str)
            .unwrap_or(default)
    }

    /// The interception mode: annotation, else ProxyConfig, else REDIRECT.
    pub fn interception_mode(&self) -> &str {
        let mesh = self
            .proxy_config
            .get("interceptionMode")
            .and_then(Value::as_str)
            .unwrap_or("REDIRECT");
        self.anno("sidecar.istio.io/interceptionMode", mesh)
    }

    /// The status port: annotation, else `values.global.proxy.statusPort`.
    pub fn status_port(&self) -> String {
        self.annotations
            .get("status.sidecar.istio.io/port")
            .cloned()
            .unwrap_or_else(|| self.s.status_port.to_string())
    }

    /// Names of the pod's application containers.
    pub fn app_containers(&self) -> Vec<&str> {
        self.app_container_names().collect()
    }

    /// The name of the pod's first application container.
    pub fn first_app_container(&self) -> Option<&str> {
        self.app_container_names().next()
    }

    fn app_container_names(&self) -> impl Iterator<Item = &str> {
        self.spec
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .filter(|n| *n != PROXY_NAME)
    }

    /// An image: the annotation when set, else the configured name (used as
    /// is when it contains a `/`, else under hub and tag).
    pub fn image(&self, configured: &str) -> String {
        if let Some(img) = self.annotations.get("sidecar.istio.io/proxyImage") {
            return img.clone();
        }
        if configured.contains('/') {
            return configured.to_string();
        }
        let variant = if self.s.variant.is_empty() {
            String::new()
        } else {
            format!("-{}", self.s.variant)
        };
        format!("{}/{}:{}{}", self.s.hub, configured, self.s.tag, variant)
    }

    /// The proxy's resources (see [`resources`]), computed once per pod.
    pub fn resources(&self) -> Node<'a> {
        Node::Json(self.resources.clone())
    }

    /// `ProxyConfig.proxyMetadata`, sorted by name, as env vars.
    pub fn metadata_env(&self) -> Vec<Node<'a>> {
        let Some(Value::Object(md)) = self.proxy_config.get("proxyMetadata") else {
            return Vec::new();
        };
        let sorted: BTreeMap<_, _> = md.iter().collect();
        sorted
            .into_iter()
            .map(|(k, v)| env(k.as_str(), scalar_string(v)))
            .collect()
    }
}

/// The proxy's resources: the resource annotations when any is set, else
/// `values.global.proxy.resources`, in canonical quantities.
pub fn resources<'a>(s: &'a Settings, annotations: &BTreeMap<String, String>) -> Cow<'a, Value> {
    const KEYS: [(&str, &str, &str); 4] = [
        ("sidecar.istio.io/proxyCPU", "requests", "cpu"),
        ("sidecar.istio.io/proxyMemory", "requests", "memory"),
        ("sidecar.istio.io/proxyCPULimit", "limits", "cpu"),
        ("sidecar.istio.io/proxyMemoryLimit", "limits", "memory"),
    ];
    let mut out = Map::new();
    if KEYS.iter().any(|(a, _, _)| annotations.contains_key(*a)) {
        for (anno, section, key) in KEYS {
            if let Some(v) = annotations.get(anno) {
                let entry = out
                    .entry(section.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(key.into(), Value::String(quantity::canonical(v)));
                }
            }
        }
    } else {
        // The same for every pod: canonicalized once, when the settings
        // were resolved.
        return Cow::Borrowed(&s.proxy_resources);
    }
    Cow::Owned(Value::Object(out))
}

/// `values.global.proxy.resources` in canonical quantities (null
/// quantities left out), as an object: the proxy's resources when no pod
/// annotation sets any. Computed once per [`Settings`].
pub fn canonical_resources(resources: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(res) = resources {
        for (section, v) in res {
            if let Value::Object(q) = v {
                let m: Map<String, Value> = q
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), canonical_value(v)))
                    .collect();
                out.insert(section.clone(), Value::Object(m));
            } else {
                out.insert(section.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// A quantity value in canonical form.
pub fn canonical_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(quantity::canonical(s)),
        Value::Number(n) => Value::String(quantity::canonical(&n.to_string())),
        other => other.clone(),
    }
}

/// A string, or the JSON text of a non-string.
pub fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An env var; an empty value is left out, as Kubernetes writes it.
pub fn env<'a>(name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) -> Node<'a> {
    let value: Cow<str> = value.into();
    let name = Node::Str(name.into());
    if value.is_empty() {
        Node::Map(vec![(Cow::Borrowed("name"), name)])
    } else {
        Node::Map(vec![
            (Cow::Borrowed("name"), name),
            (Cow::Borrowed("value"), Node::Str(value)),
        ])
    }
}

//! Layering a configuration: defaults, then a config document, then
//! `--values` documents, then `--set` assignments, in that order. Keys that
//! only make sense together are checked once every layer is on
//! ([`ConfigBuilder::build`]), so that a combination may be completed by a
//! later layer (a config file choosing `config.trafficCapture: outrigger`
//! and a `--set` naming the init image).

use std::path::Path;

use serde_json::Value;

use super::derived::Derived;
use super::settings::{Settings, TrafficCapture};
use super::{Config, ConfigError, schema, tree};

/// The name Istio's proxy image goes by (`values.global.proxy.image` and
/// `values.global.proxy_init.image` default to it). It carries
/// `pilot-agent`, not outrigger.
const ISTIO_PROXY_IMAGE: &str = "proxyv2";

/// A configuration being layered; [`ConfigBuilder::build`] checks the
/// combination and gives the [`Config`] the engine reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigBuilder {
    /// Every layer so far, each key checked, the combination not yet.
    config: Config,
}

impl ConfigBuilder {
    /// Istio's defaults, no layer yet.
    pub fn new() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The defaults with a configuration document (YAML with top-level
    /// `values`, `meshConfig` and `config`) on top.
    pub fn from_yaml(text: &str) -> Result<ConfigBuilder, ConfigError> {
        let doc = parse_yaml(text)?;
        let mut builder = ConfigBuilder::new();
        match doc {
            Value::Null => {}
            Value::Object(_) => builder.overlay(&doc)?,
            other => {
                return Err(ConfigError::InvalidValue {
                    path: "(document)".into(),
                    value: other.to_string(),
                    expected: "a mapping with values, meshConfig and config".into(),
                });
            }
        }
        Ok(builder)
    }

    /// The defaults with a configuration file on top.
    pub fn load(path: &Path) -> Result<ConfigBuilder, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ConfigBuilder::from_yaml(&text)
    }

    /// Applies one `--set` override, `path=value`, in Istio's install-value
    /// key space (`values.global.hub=...`, `meshConfig.defaultConfig.X=...`).
    /// A key Istio types as a string takes the text as it is; elsewhere
    /// `true`/`false` become booleans, integers become numbers, `null`
    /// removes the key, `{a,b}` is a list, anything else is a string.
    pub fn set(&mut self, assignment: &str) -> Result<&mut ConfigBuilder, ConfigError> {
        let (path, raw) = assignment
            .split_once('=')
            .filter(|(p, _)| !p.is_empty())
            .ok_or_else(|| ConfigError::BadAssignment(assignment.to_string()))?;
        let mut doc = schema::set_value(path, raw).unwrap_or_else(|| tree::scalar_from_str(raw));
        for key in path.rsplit('.') {
            if key.is_empty() {
                return Err(ConfigError::BadAssignment(assignment.to_string()));
            }
            let mut map = serde_json::Map::new();
            map.insert(key.to_string(), doc);
            doc = Value::Object(map);
        }
        self.overlay(&doc)?;
        Ok(self)
    }

    /// Merges a `--values` document: plain install values (`global: ...`),
    /// a config document (`values: ...`), or an IstioOperator whose
    /// `spec.values` and `spec.meshConfig` are used.
    pub fn merge_values_yaml(&mut self, text: &str) -> Result<&mut ConfigBuilder, ConfigError> {
        let doc = parse_yaml(text)?;
        let Value::Object(map) = doc else {
            return Err(ConfigError::InvalidValue {
                path: "(values document)".into(),
                value: doc.to_string(),
                expected: "a mapping of install values or an IstioOperator".into(),
            });
        };
        let wrapped = if map.get("kind").and_then(Value::as_str) == Some("IstioOperator") {
            from_istio_operator(&map)?
        } else if ["values", "meshConfig", "config", "components"]
            .iter()
            .any(|k| map.contains_key(*k))
        {
            map
        } else {
            from_chart_values(map)
        };
        self.overlay(&Value::Object(wrapped))?;
        Ok(self)
    }

    /// The configuration of every layer, once the keys that only work
    /// together are checked together.
    pub fn build(&self) -> Result<Config, ConfigError> {
        check_combination(&self.config.settings)?;
        if !self.config.ignored.is_empty() {
            let keys: Vec<&str> = self.config.ignored_keys().collect();
            tracing::debug!(
                keys = %keys.join(", "),
                "Istio keys that do not affect injection, ignored"
            );
        }
        Ok(self.config.clone())
    }

    /// Validates `doc` against the known keys, merges it and re-resolves.
    /// Nothing changes when any part is invalid.
    fn overlay(&mut self, doc: &Value) -> Result<(), ConfigError> {
        let mut ignored = self.config.ignored.clone();
        schema::check(doc, tree::defaults(), &mut ignored)?;
        let mut next = self.config.tree.clone();
        tree::merge(&mut next, doc);
        let settings = Settings::resolve(&next)?;
        self.config.tree = next;
        self.config.settings = settings;
        self.config.ignored = ignored;
        self.config.derived = Derived::default();
        Ok(())
    }
}

/// The fields of an IstioOperator's `spec` (Istio's `IstioOperatorSpec`).
/// `values`, `meshConfig` and `components` are read (of the components,
/// `components.cni.enabled`: whether the CNI plugin captures traffic);
/// `hub`, `tag` and `revision` are what `istioctl` makes of them,
/// `values.global.hub`, `values.global.tag` and `values.revision` (the
/// values win when both are given); the others do not affect injection.
const OPERATOR_SPEC: &[&str] = &[
    "profile",
    "installPackagePath",
    "hub",
    "tag",
    "namespace",
    "revision",
    "compatibilityVersion",
    "meshConfig",
    "components",
    "values",
    "unvalidatedValues",
];

/// The `{values, meshConfig, components}` document an IstioOperator
/// stands for.
fn from_istio_operator(
    operator: &serde_json::Map<String, Value>,
) -> Result<serde_json::Map<String, Value>, ConfigError> {
    let spec = match operator.get("spec") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(spec)) => spec.clone(),
        Some(other) => {
            return Err(ConfigError::InvalidValue {
                path: "spec".into(),
                value: other.to_string(),
                expected: "an IstioOperator spec (a mapping)".into(),
            });
        }
    };
    if let Some(key) = spec.keys().find(|k| !OPERATOR_SPEC.contains(&k.as_str())) {
        return Err(ConfigError::InvalidValue {
            path: format!("spec.{key}"),
            value: spec[key].to_string(),
            expected: format!(
                "a field of an IstioOperator spec: {}",
                OPERATOR_SPEC.join(", ")
            ),
        });
    }
    let mut values = serde_json::json!({});
    for (field, path) in [
        ("hub", &["global", "hub"][..]),
        ("tag", &["global", "tag"][..]),
        ("revision", &["revision"][..]),
    ] {
        if let Some(value) = spec.get(field).filter(|v| !v.is_null()) {
            let mut node = &mut values;
            for key in &path[..path.len() - 1] {
                node = node
                    .as_object_mut()
                    .map(|m| m.entry(*key).or_insert_with(|| serde_json::json!({})))
                    .expect("built as mappings");
            }
            node[path[path.len() - 1]] = value.clone();
        }
    }
    if let Some(given) = spec.get("values") {
        tree::merge(&mut values, given);
    }
    let mut wrapped = serde_json::Map::new();
    wrapped.insert("values".into(), values);
    if let Some(mesh) = spec.get("meshConfig") {
        wrapped.insert("meshConfig".into(), mesh.clone());
    }
    if let Some(components) = spec.get("components") {
        wrapped.insert("components".into(), components.clone());
    }
    Ok(wrapped)
}

/// The `{values, meshConfig}` document a plain install-values file stands
/// for, as Istio's istio-discovery chart reads one: the chart's
/// `_internal_defaults_do_not_set` wrapper is lifted, `meshConfig` is the
/// mesh config, and istiod's own settings at the top level (`env`,
/// `autoscaleEnabled`, ... the fields of `values.pilot`) are `pilot`'s.
fn from_chart_values(mut map: serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    if let Some(Value::Object(inner)) = map.remove("_internal_defaults_do_not_set") {
        let mut lifted = Value::Object(inner);
        tree::merge(&mut lifted, &Value::Object(std::mem::take(&mut map)));
        if let Value::Object(m) = lifted {
            map = m;
        }
    }
    let mut wrapped = serde_json::Map::new();
    if let Some(mesh) = map.remove("meshConfig") {
        wrapped.insert("meshConfig".into(), mesh);
    }
    let schema = schema::istio();
    let pilot_keys: Vec<String> = map
        .keys()
        .filter(|k| {
            schema.kind(&format!("values.{k}")).is_none()
                && schema.kind(&format!("values.pilot.{k}")).is_some()
        })
        .cloned()
        .collect();
    for key in pilot_keys {
        let value = map.remove(&key).expect("listed from the map");
        let pilot = map
            .entry("pilot")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Value::Object(pilot) = pilot {
            pilot.insert(key, value);
        }
    }
    wrapped.insert("values".into(), Value::Object(map));
    wrapped
}

/// `config.trafficCapture: outrigger` runs `outrigger` from
/// `values.global.proxy_init.image`: that image must be outrigger's, so the
/// key must have been changed from Istio's proxy image (its default), or
/// every injected pod would get an init container that cannot start.
fn check_combination(s: &Settings) -> Result<(), ConfigError> {
    if s.traffic_capture != TrafficCapture::Outrigger {
        return Ok(());
    }
    let image = s.init_image.trim();
    if image.is_empty() || repository_name(image) == ISTIO_PROXY_IMAGE {
        return Err(ConfigError::CaptureImage {
            image: s.init_image.clone(),
        });
    }
    Ok(())
}

/// The last path segment of an image reference, without tag or digest:
/// `docker.io/istio/proxyv2:1.26.0` and `proxyv2` are both `proxyv2`.
fn repository_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last)
}

fn parse_yaml(text: &str) -> Result<Value, ConfigError> {
    serde_yaml::from_str::<Value>(text).map_err(|source| ConfigError::Yaml { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_name_drops_registry_tag_and_digest() {
        for (image, name) in [
            ("proxyv2", "proxyv2"),
            ("docker.io/istio/proxyv2:1.26.0", "proxyv2"),
            ("localhost:5000/proxyv2", "proxyv2"),
            ("registry.example.com/outrigger:0.1.0", "outrigger"),
            ("example.com/proxyv2@sha256:abc", "proxyv2"),
            ("example.com/proxyv2-outrigger:1", "proxyv2-outrigger"),
        ] {
            assert_eq!(repository_name(image), name, "{image}");
        }
    }
}

//! The injector's configuration, in Istio's own key space, so that Istio
//! users can reuse what they already have:
//!
//! - `values:` the injection-related subset of Istio's install values
//!   (`global.hub`, `global.proxy.*`, `pilot.env.ENABLE_NATIVE_SIDECARS`, ...);
//! - `meshConfig:` the mesh config fields injection reads (`defaultConfig`
//!   ProxyConfig fields, `trustDomain`, `inboundTrafficPolicy`, ...);
//! - `config:` the webhook's own policy (`policy`, `neverInjectSelector`,
//!   `alwaysInjectSelector`, `injectedAnnotations`).
//!
//! Defaults are Istio's (see `config/defaults.yaml`). Unknown keys are
//! rejected with their path. The configuration is parsed and resolved into
//! [`Settings`] once, when it is loaded or changed, so that the engine reads
//! plain fields on every admission.

mod selector;
mod settings;
mod tree;

use std::path::Path;

use serde_json::Value;

pub use selector::{LabelSelector, SelectorError};
pub use settings::{PROXY_CONFIG_FIELDS, Policy, Settings};

/// The injector's configuration: Istio's defaults with the user's overrides
/// on top, resolved once into [`Settings`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `{values, meshConfig, config}` merged over the defaults.
    tree: Value,
    /// The resolved form the engine reads.
    settings: Settings,
}

/// A configuration file or override that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML.
    #[error("config is not valid YAML: {source}")]
    Yaml {
        /// Why.
        #[source]
        source: serde_yaml::Error,
    },
    /// A key that outrigger does not know.
    #[error(
        "unknown config key `{path}` (expected one of Istio's injection-related keys under values, meshConfig or config)"
    )]
    UnknownKey {
        /// The key's full path, dot-separated.
        path: String,
    },
    /// A value of the wrong shape.
    #[error("config key `{path}` has an invalid value {value}: expected {expected}")]
    InvalidValue {
        /// The key's full path.
        path: String,
        /// The value, as given.
        value: String,
        /// The accepted form.
        expected: String,
    },
    /// Any other invalid configuration (kept from the original contract).
    #[error("invalid config: {0}")]
    Invalid(String),
    /// A `--set` argument that is not `path=value`.
    #[error("--set {0:?}: expected path=value, e.g. values.global.hub=docker.io/istio")]
    BadAssignment(String),
}

impl Default for Config {
    fn default() -> Self {
        let tree = tree::defaults().clone();
        // The built-in defaults always resolve; a failure here is a defect in
        // defaults.yaml that every test would reveal.
        let settings = Settings::resolve(&tree).unwrap_or_else(|e| {
            panic!("built-in config defaults do not resolve: {e}");
        });
        Config { tree, settings }
    }
}

impl Config {
    /// Parses a configuration document (YAML with top-level `values`,
    /// `meshConfig` and `config`).
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let doc = parse_yaml(text)?;
        let mut cfg = Config::default();
        match doc {
            Value::Null => {}
            Value::Object(_) => cfg.overlay(&doc, "")?,
            other => {
                return Err(ConfigError::InvalidValue {
                    path: "(document)".into(),
                    value: other.to_string(),
                    expected: "a mapping with values, meshConfig and config".into(),
                });
            }
        }
        Ok(cfg)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_yaml(&text)
    }

    /// Applies one `--set` override, `path=value`, in Istio's install-value
    /// key space (`values.global.hub=...`, `meshConfig.defaultConfig.X=...`).
    /// `true`/`false` become booleans, integers become numbers, `null`
    /// removes the key, anything else is a string.
    pub fn set(&mut self, assignment: &str) -> Result<(), ConfigError> {
        let (path, raw) = assignment
            .split_once('=')
            .filter(|(p, _)| !p.is_empty())
            .ok_or_else(|| ConfigError::BadAssignment(assignment.to_string()))?;
        let value = tree::scalar_from_str(raw);
        let mut doc = value;
        for key in path.rsplit('.') {
            if key.is_empty() {
                return Err(ConfigError::BadAssignment(assignment.to_string()));
            }
            let mut map = serde_json::Map::new();
            map.insert(key.to_string(), doc);
            doc = Value::Object(map);
        }
        self.overlay(&doc, "")
    }

    /// Merges a `--values` document: plain install values (`global: ...`),
    /// a config document (`values: ...`), or an IstioOperator whose
    /// `spec.values` and `spec.meshConfig` are used.
    pub fn merge_values_yaml(&mut self, text: &str) -> Result<(), ConfigError> {
        let doc = parse_yaml(text)?;
        let Value::Object(map) = doc else {
            return Err(ConfigError::InvalidValue {
                path: "(values document)".into(),
                value: doc.to_string(),
                expected: "a mapping of install values or an IstioOperator".into(),
            });
        };
        if map.get("kind").and_then(Value::as_str) == Some("IstioOperator") {
            let spec = map.get("spec").cloned().unwrap_or(Value::Null);
            let mut wrapped = serde_json::Map::new();
            if let Some(values) = spec.get("values") {
                wrapped.insert("values".into(), values.clone());
            }
            if let Some(mesh) = spec.get("meshConfig") {
                wrapped.insert("meshConfig".into(), mesh.clone());
            }
            return self.overlay(&Value::Object(wrapped), "");
        }
        if ["values", "meshConfig", "config"]
            .iter()
            .any(|k| map.contains_key(*k))
        {
            return self.overlay(&Value::Object(map), "");
        }
        let mut wrapped = serde_json::Map::new();
        wrapped.insert("values".into(), Value::Object(map));
        self.overlay(&Value::Object(wrapped), "")
    }

    /// The resolved settings the engine reads.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Validates `doc` against the known keys, merges it and re-resolves.
    /// Nothing changes when any part is invalid.
    fn overlay(&mut self, doc: &Value, prefix: &str) -> Result<(), ConfigError> {
        tree::check_known(doc, tree::defaults(), prefix)?;
        let mut next = self.tree.clone();
        tree::merge(&mut next, doc);
        let settings = Settings::resolve(&next)?;
        self.tree = next;
        self.settings = settings;
        Ok(())
    }
}

fn parse_yaml(text: &str) -> Result<Value, ConfigError> {
    serde_yaml::from_str::<Value>(text).map_err(|source| ConfigError::Yaml { source })
}

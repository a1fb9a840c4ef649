//! The injector's configuration, in Istio's own key space (`values`,
//! `meshConfig`, `config`), with Istio's defaults.

use std::path::Path;

/// The injector's configuration. Placeholder until the engine lands: only the
/// contract (constructors and their errors) is fixed here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {}

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
    /// The YAML is not a valid configuration.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Parses a configuration document (YAML).
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let _: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(Config::default())
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
    pub fn set(&mut self, assignment: &str) -> Result<(), ConfigError> {
        match assignment.split_once('=') {
            Some((path, _)) if !path.is_empty() => Ok(()),
            _ => Err(ConfigError::Invalid(format!(
                "--set {assignment:?}: expected path=value"
            ))),
        }
    }

    /// Merges a `--values` document: plain install values, or an IstioOperator
    /// whose `spec.values` (and `spec.meshConfig`) are used.
    pub fn merge_values_yaml(&mut self, text: &str) -> Result<(), ConfigError> {
        let _: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(())
    }
}

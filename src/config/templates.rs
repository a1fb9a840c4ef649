//! `values.sidecarInjectorWebhook.templates` and `defaultTemplates`: the
//! user's own injection templates, parsed once when the configuration
//! loads (a broken one is refused then, with its name and line), and the
//! data every template sees from the configuration (`.Values`,
//! `.MeshConfig`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::ConfigError;
use crate::template::Template;

/// Where the user's templates are configured.
pub const TEMPLATES_KEY: &str = "values.sidecarInjectorWebhook.templates";
/// Where the templates used without `inject.istio.io/templates` are named.
pub const DEFAULT_TEMPLATES_KEY: &str = "values.sidecarInjectorWebhook.defaultTemplates";

/// The templates built into the engine, by name.
pub const BUILT_IN_TEMPLATES: &[&str] = &["sidecar", "gateway", "grpc-agent", "grpc-simple"];

/// The user's templates, parsed, with the configuration they read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserTemplates {
    /// By name; a name of a built-in template replaces it, as in Istio.
    pub templates: BTreeMap<String, Template>,
    /// The install values (`.Values`).
    pub values: Value,
    /// The mesh config (`.MeshConfig`).
    pub mesh_config: Value,
}

impl UserTemplates {
    /// Parses the templates of a merged configuration tree.
    pub(super) fn parse(tree: &Value) -> Result<UserTemplates, ConfigError> {
        let mut templates = BTreeMap::new();
        match tree.pointer("/values/sidecarInjectorWebhook/templates") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (name, text) in m {
                    let Value::String(text) = text else {
                        return Err(ConfigError::InvalidValue {
                            path: format!("{TEMPLATES_KEY}.{name}"),
                            value: text.to_string(),
                            expected: "the template's text, a string".into(),
                        });
                    };
                    let parsed = Template::parse(name, text)
                        .map_err(|source| ConfigError::Template { source })?;
                    templates.insert(name.clone(), parsed);
                }
            }
            Some(other) => {
                return Err(ConfigError::InvalidValue {
                    path: TEMPLATES_KEY.into(),
                    value: other.to_string(),
                    expected: "a mapping of template names to template texts".into(),
                });
            }
        }
        Ok(UserTemplates {
            templates,
            values: tree.get("values").cloned().unwrap_or(Value::Null),
            mesh_config: tree.get("meshConfig").cloned().unwrap_or(Value::Null),
        })
    }
}

/// `defaultTemplates` of a merged configuration tree (empty: `sidecar`),
/// each a built-in template or one of `user`'s: a name that is neither
/// would fail every pod's injection, so it is refused when the
/// configuration loads.
pub(super) fn default_templates(
    tree: &Value,
    user: &UserTemplates,
) -> Result<Vec<String>, ConfigError> {
    let invalid = |v: &Value| ConfigError::InvalidValue {
        path: DEFAULT_TEMPLATES_KEY.into(),
        value: v.to_string(),
        expected: "a list of template names".into(),
    };
    let names: Vec<String> = match tree.pointer("/values/sidecarInjectorWebhook/defaultTemplates") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(|| invalid(i)))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(invalid(other)),
    };
    if let Some(unknown) = names
        .iter()
        .find(|n| !BUILT_IN_TEMPLATES.contains(&n.as_str()) && !user.templates.contains_key(*n))
    {
        let mut known: Vec<&str> = BUILT_IN_TEMPLATES.to_vec();
        known.extend(user.templates.keys().map(String::as_str));
        return Err(ConfigError::InvalidValue {
            path: DEFAULT_TEMPLATES_KEY.into(),
            value: Value::from(names.clone()).to_string(),
            expected: format!(
                "names of templates, built in or in {TEMPLATES_KEY} ({unknown:?} is neither): {}",
                known.join(", ")
            ),
        });
    }
    Ok(names)
}

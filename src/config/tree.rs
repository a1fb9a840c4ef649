//! The configuration as a JSON tree: Istio's defaults (which are also the
//! keys injection reads) and the merge rules (`null` removes a key, lists are replaced).

use std::sync::OnceLock;

use serde_json::Value;

/// Istio's defaults, parsed once.
pub(super) fn defaults() -> &'static Value {
    static DEFAULTS: OnceLock<Value> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        serde_yaml::from_str(include_str!("defaults.yaml")).unwrap_or_else(|e| {
            panic!("built-in config/defaults.yaml is not valid YAML: {e}");
        })
    })
}

/// Merges `overlay` into `base`: mappings merge key by key, `null` removes
/// the key, anything else replaces.
pub(super) fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (key, value) in o {
                if value.is_null() {
                    b.remove(key);
                } else if let Some(existing) = b.get_mut(key) {
                    if existing.is_object() && value.is_object() {
                        merge(existing, value);
                    } else {
                        *existing = value.clone();
                    }
                } else {
                    b.insert(key.clone(), value.clone());
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Reads a `--set` value the way `istioctl --set` does: booleans and
/// integers are typed, `null` removes, `{a,b}` is a list, anything else is
/// a string.
pub(super) fn scalar_from_str(raw: &str) -> Value {
    if let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        return Value::Array(
            inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(scalar_from_str)
                .collect(),
        );
    }
    match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        _ => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_string())),
    }
}

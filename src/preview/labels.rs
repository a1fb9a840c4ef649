//! Namespace labels given as `key=value` (the CLI's `--namespace-label`):
//! parsed and validated as Kubernetes label keys and values, so that a typo
//! is an error instead of a label that silently never matches.
//!
//! The syntax is Kubernetes' (`apimachinery` validation): a key is an
//! optional DNS-subdomain prefix and `/`, then a name of at most 63
//! characters; a value is empty or a name of at most 63 characters; names
//! are alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.

use std::collections::BTreeMap;

/// A `key=value` namespace label that is not a valid Kubernetes label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "namespace label {given:?}: {problem}; expected key=value, a Kubernetes label such as \
     istio-injection=enabled or istio.io/rev=canary"
)]
pub struct NamespaceLabelError {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Parses one `key=value` label.
pub fn parse_namespace_label(given: &str) -> Result<(String, String), NamespaceLabelError> {
    let error = |problem: String| NamespaceLabelError {
        given: given.to_owned(),
        problem,
    };
    let (key, value) = given
        .split_once('=')
        .ok_or_else(|| error("no '='".to_owned()))?;
    check_key(key).map_err(|p| error(format!("key {key:?} {p}")))?;
    if !value.is_empty() {
        check_name(value).map_err(|p| error(format!("value {value:?} {p}")))?;
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Parses every `key=value` label into the map the engine's context takes.
/// A key given twice is an error: which one was meant is not clear.
pub fn parse_namespace_labels<S: AsRef<str>>(
    given: &[S],
) -> Result<BTreeMap<String, String>, NamespaceLabelError> {
    let mut labels = BTreeMap::new();
    for label in given {
        let label = label.as_ref();
        let (key, value) = parse_namespace_label(label)?;
        if labels.contains_key(&key) {
            return Err(NamespaceLabelError {
                given: label.to_owned(),
                problem: format!("key {key:?} is given more than once"),
            });
        }
        labels.insert(key, value);
    }
    Ok(labels)
}

fn check_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            check_prefix(prefix).map_err(|p| format!("has prefix {prefix:?} that {p}"))?;
            name
        }
        None => key,
    };
    check_name(name)
}

/// A label name or value: 1..=63 of `[A-Za-z0-9._-]`, alphanumeric at both
/// ends.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    if name.len() > 63 {
        return Err(format!("is {} characters long (at most 63)", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "has {c:?} (only letters, digits, '-', '_' and '.')"
        ));
    }
    let alnum_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !alnum_ends {
        return Err("must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

/// A DNS-1123 subdomain: at most 253 characters, dot-separated lower-case
/// alphanumeric parts, `-` inside a part.
fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > 253 {
        return Err("is not 1 to 253 characters long".to_owned());
    }
    let part_ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !part.starts_with('-')
            && !part.ends_with('-')
    };
    if prefix.split('.').all(part_ok) {
        Ok(())
    } else {
        Err("is not a DNS subdomain (lower-case letters, digits, '-' and '.')".to_owned())
    }
}

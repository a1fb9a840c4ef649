//! The operations on the pod's metadata, written directly when its labels
//! and annotations are plain maps of strings (nearly every pod's are): the
//! very operations the Value engine's merge and diff give, without copying
//! the metadata, merging into it or walking it.
//!
//! What the diff gives for a map of strings that only gains keys or
//! changes values: a `replace` per changed key, in the map's order, then an
//! `add` per new key, in order; a map that loses a key (the consumed
//! `prometheus.istio.io/scrape-targets`) is replaced whole; a map the pod
//! does not have is added whole, after the maps it has.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ops::Ops;

/// One operation on the metadata.
pub struct MetaOp<'a> {
    /// `add` or `replace`.
    kind: &'static str,
    /// `annotations` or `labels`.
    map: &'static str,
    /// The key in it, or `None` for the whole map.
    key: Option<&'a str>,
    /// Its value.
    value: MetaValue<'a>,
}

enum MetaValue<'a> {
    Str(&'a str),
    Strings(&'a BTreeMap<String, String>),
}

/// The operations that turn the pod's metadata `original` into one with `labels` and `annotations`, or `None` when it is not a
/// plain object whose labels and annotations are absent or maps of strings
/// (the engine's diff then handles it).
pub fn ops<'a>(
    original: Option<&Value>,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
) -> Option<Vec<MetaOp<'a>>> {
    let Some(Value::Object(meta)) = original else {
        return None;
    };
    let strings = |key: &str| -> Option<Option<&Map<String, Value>>> {
        match meta.get(key) {
            None => Some(None),
            Some(Value::Object(m)) if m.values().all(Value::is_string) => Some(Some(m)),
            Some(_) => None,
        }
    };
    let maps = [
        ("annotations", strings("annotations")?, annotations),
        ("labels", strings("labels")?, labels),
    ];
    let mut ops = Vec::new();
    // Maps the pod has, in key order ("annotations" < "labels"), then the
    // ones it gains.
    for (map, before, after) in maps {
        let Some(before) = before else { continue };
        if before.keys().any(|k| !after.contains_key(k)) {
            ops.push(MetaOp {
                kind: "replace",
                map,
                key: None,
                value: MetaValue::Strings(after),
            });
            continue;
        }
        for (k, v) in before {
            // Every key is still there (checked above).
            let Some((key, new)) = after.get_key_value(k.as_str()) else {
                continue;
            };
            if v.as_str() != Some(new.as_str()) {
                ops.push(MetaOp {
                    kind: "replace",
                    map,
                    key: Some(key),
                    value: MetaValue::Str(new),
                });
            }
        }
        for (k, v) in after {
            if !before.contains_key(k) {
                ops.push(MetaOp {
                    kind: "add",
                    map,
                    key: Some(k),
                    value: MetaValue::Str(v),
                });
            }
        }
    }
    for (map, before, after) in maps {
        if before.is_none() {
            ops.push(MetaOp {
                kind: "add",
                map,
                key: None,
                value: MetaValue::Strings(after),
            });
        }
    }
    Some(ops)
}

/// Writes the operations on the metadata at `meta_ptr`; a value that is
/// `written.0` is written as `written.1`, its JSON text made beforehand.
pub fn write(meta_ptr: &str, ops: &[MetaOp], written: Option<(&str, &[u8])>, out: &mut Ops) {
    let mut path = String::with_capacity(128);
    for op in ops {
        path.clear();
        path.push_str(meta_ptr);
        path.push('/');
        path.push_str(op.map);
        if let Some(key) = op.key {
            path.push('/');
            push_token(&mut path, key);
        }
        out.op(op.kind, &path, |o| match op.value {
            MetaValue::Str(s) => match written {
                Some((value, text)) if value == s => o.put_slice(text),
                _ => o.string(s),
            },
            MetaValue::Strings(map) => o.object(map, |o, v| o.string(v)),
        });
    }
}

/// Appends `name` as one JSON pointer token (`~` as `~0`, `/` as `~1`).
fn push_token(path: &mut String, name: &str) {
    let mut rest = name;
    while let Some(at) = rest.find(['~', '/']) {
        path.push_str(&rest[..at]);
        path.push_str(if rest.as_bytes()[at] == b'~' {
            "~0"
        } else {
            "~1"
        });
        rest = &rest[at + 1..];
    }
    path.push_str(rest);
}

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

use super::super::patch::push_token;
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
    let mut ops = Vec::with_capacity(16);
    // Maps the pod has, in key order ("annotations" < "labels"), then the
    // ones it gains.
    for (map, before, after) in maps {
        let Some(before) = before else { continue };
        // Both maps are sorted the same way: one walk pairs their keys.
        let mut changed = Vec::with_capacity(before.len());
        let mut gained = Vec::with_capacity(after.len());
        let mut old = before.iter().peekable();
        let mut lost = false;
        for (key, new) in after {
            match old.peek() {
                Some((k, _)) if k.as_str() < key.as_str() => {
                    lost = true;
                    break;
                }
                Some((k, v)) if k.as_str() == key.as_str() => {
                    if v.as_str() != Some(new.as_str()) {
                        changed.push(MetaOp {
                            kind: "replace",
                            map,
                            key: Some(key),
                            value: MetaValue::Str(new),
                        });
                    }
                    old.next();
                }
                _ => gained.push(MetaOp {
                    kind: "add",
                    map,
                    key: Some(key),
                    value: MetaValue::Str(new),
                }),
            }
        }
        if lost || old.peek().is_some() {
            ops.push(MetaOp {
                kind: "replace",
                map,
                key: None,
                value: MetaValue::Strings(after),
            });
        } else {
            ops.extend(changed);
            ops.extend(gained);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::super::ops::Ops;
    use super::{ops, write};

    fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The patch that turns `original` into `labels` and `annotations`.
    fn patch(original: Value, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Value {
        let (labels, annotations) = (strings(labels), strings(annotations));
        let meta_ops = ops(Some(&original), &labels, &annotations).expect("plain metadata");
        let mut out = Ops::new();
        write("/metadata", &meta_ops, None, &mut out);
        serde_json::from_slice(&out.finish()).unwrap()
    }

    #[test]
    fn changed_keys_are_replaced_then_new_ones_added_in_key_order() {
        let original = json!({"labels": {"app": "a", "v": "1"}});
        assert_eq!(
            patch(original, &[("app", "a"), ("b/c", "x"), ("v", "2")], &[]),
            json!([
                {"op": "replace", "path": "/metadata/labels/v", "value": "2"},
                {"op": "add", "path": "/metadata/labels/b~1c", "value": "x"},
                {"op": "add", "path": "/metadata/annotations", "value": {}}
            ])
        );
    }

    #[test]
    fn a_map_that_loses_a_key_is_replaced_whole_wherever_the_key_sorts() {
        for lost in ["a", "m", "z"] {
            let original = json!({"annotations": {lost: "1", "k": "2"}});
            assert_eq!(
                patch(original, &[], &[("k", "2"), ("n", "3")]),
                json!([
                    {"op": "replace", "path": "/metadata/annotations", "value": {"k": "2", "n": "3"}},
                    {"op": "add", "path": "/metadata/labels", "value": {}}
                ]),
                "lost key {lost}"
            );
        }
    }
}

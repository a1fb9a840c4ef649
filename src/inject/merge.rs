//! A strategic merge of Kubernetes pod objects, with the rules Istio's
//! injector relies on: mappings merge, lists of containers, volumes, env
//! vars, ports and mounts merge by their key, other lists are replaced; and
//! the order of merged lists follows Kubernetes' strategic merge patch
//! (the patch's items first, items only in the original placed after their
//! predecessors).

use serde_json::{Map, Value};

/// The merge key of a list field, by the field's name.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "volumes" | "imagePullSecrets" | "env" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ports" => Some("containerPort"),
        _ => None,
    }
}

/// Merges `patch` onto `original`; the patch wins on conflicts.
pub fn merge(original: &Value, patch: &Value) -> Value {
    merge_field(original, patch, "")
}

fn merge_field(original: &Value, patch: &Value, field: &str) -> Value {
    match (original, patch) {
        (Value::Object(o), Value::Object(p)) => {
            let mut out: Map<String, Value> = o.clone();
            for (k, pv) in p {
                let merged = match o.get(k) {
                    Some(ov) => merge_field(ov, pv, k),
                    None => pv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(o), Value::Array(p)) => match merge_key(field) {
            Some(key) => Value::Array(merge_list(o, p, key, field)),
            None => patch.clone(),
        },
        _ => patch.clone(),
    }
}

fn key_of<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item.get(key)
}

fn merge_list(original: &[Value], patch: &[Value], key: &str, field: &str) -> Vec<Value> {
    let index_in_original =
        |k: Option<&Value>| k.and_then(|k| original.iter().position(|o| key_of(o, key) == Some(k)));
    let patch_items: Vec<Value> = patch
        .iter()
        .map(|p| match index_in_original(key_of(p, key)) {
            Some(i) => merge_field(&original[i], p, field),
            None => p.clone(),
        })
        .collect();
    let server_only: Vec<&Value> = original
        .iter()
        .filter(|o| {
            let k = key_of(o, key);
            k.is_none() || !patch.iter().any(|p| key_of(p, key) == k)
        })
        .collect();
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let (mut i, mut j) = (0, 0);
    while i < server_only.len() || j < patch_items.len() {
        if i >= server_only.len() {
            out.push(patch_items[j].clone());
            j += 1;
        } else if j >= patch_items.len() {
            out.push(server_only[i].clone());
            i += 1;
        } else {
            let li = index_in_original(key_of(server_only[i], key));
            let ri = index_in_original(key_of(&patch_items[j], key));
            match (li, ri) {
                (Some(l), Some(r)) if l < r => {
                    out.push(server_only[i].clone());
                    i += 1;
                }
                _ => {
                    out.push(patch_items[j].clone());
                    j += 1;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::merge;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_patch_wins() {
        let original = json!({"containers": [{"name": "a", "image": "x", "tty": true}]});
        let patch = json!({"containers": [{"name": "p"}, {"name": "a", "image": "y"}]});
        assert_eq!(
            merge(&original, &patch),
            json!({"containers": [{"name": "p"}, {"name": "a", "image": "y", "tty": true}]})
        );
    }

    #[test]
    fn server_only_items_keep_their_place() {
        let original = json!({"env": [{"name": "A"}, {"name": "B"}, {"name": "C"}]});
        let patch = json!({"env": [{"name": "B", "value": "1"}, {"name": "N"}]});
        let merged = merge(&original, &patch);
        let names: Vec<_> = merged["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["A", "B", "N", "C"]);
    }

    #[test]
    fn plain_lists_are_replaced() {
        let merged = merge(&json!({"args": ["a", "b"]}), &json!({"args": ["c"]}));
        assert_eq!(merged, json!({"args": ["c"]}));
    }
}

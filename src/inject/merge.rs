//! A strategic merge of Kubernetes pod objects, with the rules Istio's
//! injector relies on: mappings merge, lists of containers, volumes, env
//! vars, ports and mounts merge by their key, other lists are replaced; and
//! the order of merged lists follows Kubernetes' strategic merge patch
//! (the patch's items first, items only in the original placed after their
//! predecessors).

use serde_json::Value;

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
#[cfg(test)]
pub fn merge(original: &Value, patch: &Value) -> Value {
    let mut out = original.clone();
    merge_into(&mut out, patch.clone());
    out
}

/// Merges `patch` into `base` in place, moving the patch's values (no copy
/// of either side's data).
pub fn merge_into(base: &mut Value, patch: Value) {
    merge_field(base, patch, "");
}

fn merge_field(base: &mut Value, patch: Value, field: &str) {
    match (base, patch) {
        (Value::Object(o), Value::Object(p)) => {
            for (k, pv) in p {
                match o.get_mut(&k) {
                    Some(ov) => merge_field(ov, pv, &k),
                    None => {
                        o.insert(k, pv);
                    }
                }
            }
        }
        (Value::Array(o), Value::Array(p)) if merge_key(field).is_some() => {
            let key = merge_key(field).unwrap_or("name");
            let original = std::mem::take(o);
            *o = merge_list(original, p, key, field);
        }
        (b, p) => *b = p,
    }
}

fn merge_list(original: Vec<Value>, patch: Vec<Value>, key: &str, field: &str) -> Vec<Value> {
    let keys: Vec<Option<Value>> = original.iter().map(|o| o.get(key).cloned()).collect();
    let index_in_original =
        |k: Option<&Value>| k.and_then(|k| keys.iter().position(|o| o.as_ref() == Some(k)));
    let mut slots: Vec<Option<Value>> = original.into_iter().map(Some).collect();
    let mut patch_items = Vec::with_capacity(patch.len());
    for p in patch {
        let matched = index_in_original(p.get(key)).and_then(|i| slots[i].take().map(|v| (i, v)));
        match matched {
            Some((i, mut item)) => {
                if field == "volumes" {
                    retain_source(&mut item, &p);
                }
                merge_field(&mut item, p, field);
                patch_items.push((Some(i), item));
            }
            None => patch_items.push((None, p)),
        }
    }
    let server_only: Vec<(usize, Value)> = slots
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((r, _))) => matches!(r, Some(r) if l < r),
        };
        let next = if take_left {
            left.next().map(|(_, v)| v)
        } else {
            right.next().map(|(_, v)| v)
        };
        out.extend(next);
    }
    out
}

/// A volume has one source: when the patch gives a volume of the same name
/// a source, the original's other keys go (Kubernetes marks `volumes`
/// `retainKeys`), so that SPIRE's template turning `workload-socket` into
/// a CSI volume does not leave it an `emptyDir` too, which the API server
/// would refuse.
fn retain_source(original: &mut Value, patch: &Value) {
    if let (Value::Object(o), Value::Object(p)) = (original, patch)
        && p.keys().any(|k| k != "name")
    {
        o.retain(|k, _| k == "name" || p.contains_key(k));
    }
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
    fn a_volume_given_another_source_keeps_only_that_source() {
        let original =
            json!({"volumes": [{"name": "s", "emptyDir": {}}, {"name": "t", "emptyDir": {}}]});
        let patch = json!({"volumes": [{"name": "s", "csi": {"driver": "d"}}, {"name": "t"}]});
        assert_eq!(
            merge(&original, &patch),
            json!({"volumes": [{"name": "s", "csi": {"driver": "d"}}, {"name": "t", "emptyDir": {}}]})
        );
    }

    #[test]
    fn plain_lists_are_replaced() {
        let merged = merge(&json!({"args": ["a", "b"]}), &json!({"args": ["c"]}));
        assert_eq!(merged, json!({"args": ["c"]}));
    }
}

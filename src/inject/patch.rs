//! The RFC 6902 patch, computed by diffing the original and the mutated
//! object. Lists of named items (containers, volumes, env vars) are diffed
//! by name, so inserting the proxy is an `add` at its index rather than a
//! rewrite of every following container. The patch has no `remove`.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::Value;

/// The operations that turn `original` into `mutated`.
pub fn diff(original: &Value, mutated: &Value) -> Patch {
    let mut ops = Vec::new();
    let mut path = PointerBuf::root();
    diff_value(original, mutated, &mut path, &mut ops);
    Patch(ops)
}

fn diff_value(a: &Value, b: &Value, path: &mut PointerBuf, ops: &mut Vec<PatchOperation>) {
    // Containers and objects are walked (each node once); only leaves and
    // mismatched kinds are compared whole.
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            // A key that disappears (a rewritten probe's tcpSocket, a
            // consumed annotation) replaces its parent: the patch never
            // carries a `remove`.
            if ma.keys().any(|k| !mb.contains_key(k)) && !path.is_root() {
                ops.push(PatchOperation::Replace(ReplaceOperation {
                    path: path.clone(),
                    value: b.clone(),
                }));
                return;
            }
            for (k, va) in ma {
                path.push_back(k.as_str());
                match mb.get(k) {
                    Some(vb) => diff_value(va, vb, path, ops),
                    // Only reachable at the root, which cannot be replaced.
                    None => ops.push(PatchOperation::Remove(RemoveOperation {
                        path: path.clone(),
                    })),
                }
                path.pop_back();
            }
            for (k, vb) in mb {
                if !ma.contains_key(k) {
                    path.push_back(k.as_str());
                    ops.push(PatchOperation::Add(AddOperation {
                        path: path.clone(),
                        value: vb.clone(),
                    }));
                    path.pop_back();
                }
            }
        }
        (Value::Array(la), Value::Array(lb)) => diff_array(la, lb, path, ops),
        _ if a == b => {}
        _ => ops.push(PatchOperation::Replace(ReplaceOperation {
            path: path.clone(),
            value: b.clone(),
        })),
    }
}

fn item_key(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

/// Whether `a`'s items all appear in `b`, by name and in the same order.
fn is_named_insertion(a: &[Value], b: &[Value]) -> bool {
    let (Some(ka), Some(kb)) = (
        a.iter().map(item_key).collect::<Option<Vec<_>>>(),
        b.iter().map(item_key).collect::<Option<Vec<_>>>(),
    ) else {
        return false;
    };
    let mut unique = ka.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != ka.len() {
        return false;
    }
    let mut it = kb.iter();
    ka.iter().all(|k| it.any(|x| x == k))
}

fn diff_array(a: &[Value], b: &[Value], path: &mut PointerBuf, ops: &mut Vec<PatchOperation>) {
    if is_named_insertion(a, b) {
        let mut i = 0;
        for (j, vb) in b.iter().enumerate() {
            path.push_back(j);
            if i < a.len() && item_key(&a[i]) == item_key(vb) {
                diff_value(&a[i], vb, path, ops);
                i += 1;
            } else {
                ops.push(PatchOperation::Add(AddOperation {
                    path: path.clone(),
                    value: vb.clone(),
                }));
            }
            path.pop_back();
        }
    } else if a.len() == b.len() {
        for (j, (va, vb)) in a.iter().zip(b).enumerate() {
            path.push_back(j);
            diff_value(va, vb, path, ops);
            path.pop_back();
        }
    } else {
        ops.push(PatchOperation::Replace(ReplaceOperation {
            path: path.clone(),
            value: Value::Array(b.to_vec()),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::diff;
    use serde_json::json;

    #[test]
    fn insertion_by_name_is_an_add() {
        let a = json!({"c": [{"name": "app", "x": 1}]});
        let b = json!({"c": [{"name": "init"}, {"name": "app", "x": 2}]});
        let p = diff(&a, &b);
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains(r#""op":"add","path":"/c/0""#), "{text}");
        assert!(text.contains(r#""op":"replace","path":"/c/1/x""#), "{text}");
        let mut applied = a.clone();
        json_patch::patch(&mut applied, &p).unwrap();
        assert_eq!(applied, b);
    }

    #[test]
    fn slash_in_keys_is_escaped() {
        let a = json!({"annotations": {}});
        let b = json!({"annotations": {"sidecar.istio.io/status": "x"}});
        let text = serde_json::to_string(&diff(&a, &b)).unwrap();
        assert!(text.contains("sidecar.istio.io~1status"), "{text}");
    }
}

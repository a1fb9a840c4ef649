//! The RFC 6902 patch, computed by diffing the original and the mutated
//! object. Lists of named items (containers, volumes, env vars) are diffed
//! by name, so inserting the proxy is an `add` at its index rather than a
//! rewrite of every following container. The patch has no `remove`.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::Value;

/// The operations that turn `original` into `mutated`.
pub fn diff(original: &Value, mutated: &Value) -> Patch {
    let mut ops = Vec::new();
    let mut path = Path::default();
    diff_value(original, mutated, &mut path, &mut ops);
    Patch(ops)
}

/// One step of the path being walked, borrowed from the documents: the
/// walk allocates nothing; a pointer is built only for an operation.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

#[derive(Default)]
struct Path<'a>(Vec<Step<'a>>);

impl<'a> Path<'a> {
    /// The RFC 6901 pointer, written into one string sized up front
    /// (`PointerBuf::from_tokens` grows its string token by token and
    /// allocates a string per index: most of the patch's cost per operation).
    fn pointer(&self) -> PointerBuf {
        use std::fmt::Write as _;
        let len = self
            .0
            .iter()
            .map(|step| match *step {
                // Room for a few `~0`/`~1` escapes; rarely needed.
                Step::Key(k) => 1 + k.len() + 4,
                Step::Index(_) => 1 + 20,
            })
            .sum();
        let mut text = String::with_capacity(len);
        for step in &self.0 {
            text.push('/');
            match *step {
                Step::Key(k) => {
                    for ch in k.chars() {
                        match ch {
                            '~' => text.push_str("~0"),
                            '/' => text.push_str("~1"),
                            other => text.push(other),
                        }
                    }
                }
                Step::Index(i) => {
                    // Writing to a String cannot fail.
                    let _ = write!(text, "{i}");
                }
            }
        }
        // Every key is escaped above, so the text parses; should it not, the
        // crate's own (slower) construction gives the same pointer.
        PointerBuf::parse(text).unwrap_or_else(|_| {
            PointerBuf::from_tokens(self.0.iter().map(|step| match *step {
                Step::Key(k) => Token::new(k),
                Step::Index(i) => Token::from(i),
            }))
        })
    }
    fn with<R>(&mut self, step: Step<'a>, f: impl FnOnce(&mut Self) -> R) -> R {
        self.0.push(step);
        let r = f(self);
        self.0.pop();
        r
    }
}

fn add(path: &Path, value: &Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: path.pointer(),
        value: value.clone(),
    })
}

fn replace(path: &Path, value: &Value) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation {
        path: path.pointer(),
        value: value.clone(),
    })
}

fn diff_value<'a>(a: &'a Value, b: &'a Value, path: &mut Path<'a>, ops: &mut Vec<PatchOperation>) {
    // Containers and objects are walked (each node once); only leaves and
    // mismatched kinds are compared whole.
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            // The same keys in the same order (most objects): pair the
            // values up without a lookup per key.
            if ma.len() == mb.len() && ma.keys().zip(mb.keys()).all(|(x, y)| x == y) {
                for ((k, va), vb) in ma.iter().zip(mb.values()) {
                    if va != vb {
                        path.with(Step::Key(k), |path| diff_value(va, vb, path, ops));
                    }
                }
                return;
            }
            // A key that disappears (a rewritten probe's tcpSocket, a
            // consumed annotation) replaces its parent: the patch never
            // carries a `remove`.
            if !path.0.is_empty() && ma.keys().any(|k| !mb.contains_key(k)) {
                ops.push(replace(path, b));
                return;
            }
            for (k, va) in ma {
                path.with(Step::Key(k), |path| match mb.get(k) {
                    Some(vb) => diff_value(va, vb, path, ops),
                    // Only reachable at the root, which cannot be replaced.
                    None => ops.push(PatchOperation::Remove(RemoveOperation {
                        path: path.pointer(),
                    })),
                });
            }
            for (k, vb) in mb {
                if !ma.contains_key(k) {
                    path.with(Step::Key(k), |path| ops.push(add(path, vb)));
                }
            }
        }
        (Value::Array(la), Value::Array(lb)) => diff_array(la, lb, path, ops),
        _ if a == b => {}
        _ => ops.push(replace(path, b)),
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

fn diff_array<'a>(
    a: &'a [Value],
    b: &'a [Value],
    path: &mut Path<'a>,
    ops: &mut Vec<PatchOperation>,
) {
    // Same length and the same names (or none) at every index: both the
    // by-name and the positional walk pair item i with item i, so take the
    // positional one without collecting and sorting names (the common case:
    // an app container's unchanged env list).
    let same_names = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| item_key(x) == item_key(y));
    if !same_names && is_named_insertion(a, b) {
        let mut i = 0;
        for (j, vb) in b.iter().enumerate() {
            path.with(Step::Index(j), |path| {
                if i < a.len() && item_key(&a[i]) == item_key(vb) {
                    if a[i] != *vb {
                        diff_value(&a[i], vb, path, ops);
                    }
                    i += 1;
                } else {
                    ops.push(add(path, vb));
                }
            });
        }
    } else if a.len() == b.len() {
        for (j, (va, vb)) in a.iter().zip(b).enumerate() {
            // Most items of a list (env vars, mounts, untouched containers)
            // are unchanged: a plain comparison is far cheaper than a walk.
            if va != vb {
                path.with(Step::Index(j), |path| diff_value(va, vb, path, ops));
            }
        }
    } else {
        ops.push(PatchOperation::Replace(ReplaceOperation {
            path: path.pointer(),
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
    fn pointers_match_the_crate_encoding() {
        use super::{Path, Step};
        use json_patch::jsonptr::{PointerBuf, Token};
        let steps = [
            Step::Key("spec"),
            Step::Key("a/b~c"),
            Step::Index(12),
            Step::Key(""),
            Step::Key("~1/~0"),
        ];
        let path = Path(steps.to_vec());
        let expected = PointerBuf::from_tokens(steps.iter().map(|s| match *s {
            Step::Key(k) => Token::new(k),
            Step::Index(i) => Token::from(i),
        }));
        assert_eq!(path.pointer(), expected);
        assert_eq!(path.pointer().as_str(), "/spec/a~1b~0c/12//~01~1~00");
    }

    #[test]
    fn slash_in_keys_is_escaped() {
        let a = json!({"annotations": {}});
        let b = json!({"annotations": {"sidecar.istio.io/status": "x"}});
        let text = serde_json::to_string(&diff(&a, &b)).unwrap();
        assert!(text.contains("sidecar.istio.io~1status"), "{text}");
    }
}

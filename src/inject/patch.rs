//! The RFC 6902 patch, computed by diffing the original and the mutated
//! object. Lists of named items (containers, volumes, env vars) are diffed
//! by name, so inserting the proxy is an `add` at its index rather than a
//! rewrite of every following container. The patch has no `remove`.
//!
//! Two ways to get the values into the operations: [`diff`] copies them
//! (the caller keeps the mutated object, as the preview does), while
//! [`diff_into_at`] moves them out of a mutated object the caller no longer
//! needs (the webhook): the injected containers are most of the patch, and
//! copying then dropping them was a third of the webhook's engine cost.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::Value;

/// The operations that turn `original` into `mutated`, which is left as
/// it was.
pub fn diff(original: &Value, mutated: &Value) -> Patch {
    let mut walk = Walk {
        path: Path::default(),
        ops: Vec::new(),
    };
    walk.value(original, &mut Source::Borrowed(mutated));
    Patch(walk.ops)
}

/// Where the mutated side's values come from: borrowed, and copied into
/// the patch.
enum Source<'a> {
    Borrowed(&'a Value),
}

impl Source<'_> {
    fn get(&self) -> &Value {
        match self {
            Source::Borrowed(v) => v,
        }
    }
    /// The value, for an operation.
    fn take(&mut self) -> Value {
        match self {
            Source::Borrowed(v) => (*v).clone(),
        }
    }
    /// The child under `key`, as a source of the same kind.
    fn child(&mut self, key: &str) -> Option<Source<'_>> {
        match self {
            Source::Borrowed(v) => v.get(key).map(Source::Borrowed),
        }
    }
    /// The children of a list, as sources of the same kind.
    fn items(&mut self) -> Vec<Source<'_>> {
        match self {
            Source::Borrowed(Value::Array(l)) => l.iter().map(Source::Borrowed).collect(),
            _ => Vec::new(),
        }
    }
}

/// Appends `key` as one RFC 6901 pointer token: `~` as `~0`, `/` as `~1`.
/// Annotation and label keys often hold a `/`: the characters to escape are
/// found with `memchr` (a byte-by-byte search was a third of the cost of
/// writing the metadata's operations), and the runs between them copied
/// whole.
pub fn push_token(path: &mut String, key: &str) {
    let bytes = key.as_bytes();
    path.reserve(key.len() + 2);
    let mut run = 0;
    for at in memchr::memchr2_iter(b'~', b'/', bytes) {
        path.push_str(&key[run..at]);
        path.push_str(if bytes[at] == b'~' { "~0" } else { "~1" });
        run = at + 1;
    }
    path.push_str(&key[run..]);
}

/// The RFC 6901 pointer of the node being walked, kept escaped as the walk
/// goes down and cut back as it returns: an operation's path is one copy.
#[derive(Default)]
struct Path(String);

impl Path {
    fn push_key(&mut self, key: &str) -> usize {
        let len = self.0.len();
        self.0.push('/');
        push_token(&mut self.0, key);
        len
    }
    fn push_index(&mut self, index: usize) -> usize {
        use std::fmt::Write as _;
        let len = self.0.len();
        // Writing to a String cannot fail.
        let _ = write!(self.0, "/{index}");
        len
    }
    fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    fn pointer(&self) -> PointerBuf {
        // Every key is escaped on the way down, so the text parses; should
        // it not, the tokens are rebuilt from it one by one.
        PointerBuf::parse(self.0.clone()).unwrap_or_else(|_| {
            PointerBuf::from_tokens(
                self.0
                    .split('/')
                    .skip(1)
                    .map(|t| Token::new(t.replace("~1", "/").replace("~0", "~"))),
            )
        })
    }
}

/// One diff in progress: where it is, and the operations so far.
struct Walk {
    path: Path,
    ops: Vec<PatchOperation>,
}

impl Walk {
    fn add(&mut self, value: Value) {
        let path = self.path.pointer();
        self.ops
            .push(PatchOperation::Add(AddOperation { path, value }));
    }

    fn replace(&mut self, value: Value) {
        let path = self.path.pointer();
        self.ops
            .push(PatchOperation::Replace(ReplaceOperation { path, value }));
    }

    fn key(&mut self, key: &str, f: impl FnOnce(&mut Self)) {
        let len = self.path.push_key(key);
        f(self);
        self.path.0.truncate(len);
    }

    fn index(&mut self, index: usize, f: impl FnOnce(&mut Self)) {
        let len = self.path.push_index(index);
        f(self);
        self.path.0.truncate(len);
    }

    fn value(&mut self, a: &Value, b: &mut Source) {
        // Containers and objects are walked (each node once); only leaves
        // and mismatched kinds are compared whole.
        match (a, b.get()) {
            (Value::Object(ma), Value::Object(mb)) => {
                // The same keys in the same order (most objects): pair the
                // values up without a lookup per key.
                let same_keys =
                    ma.len() == mb.len() && ma.keys().zip(mb.keys()).all(|(x, y)| x == y);
                // A key that disappears (a rewritten probe's tcpSocket, a
                // consumed annotation) replaces its parent: the patch never
                // carries a `remove`.
                if !same_keys && !self.path.is_root() && ma.keys().any(|k| !mb.contains_key(k)) {
                    let whole = b.take();
                    self.replace(whole);
                    return;
                }
                let added: Vec<String> = if same_keys {
                    Vec::new()
                } else {
                    mb.keys()
                        .filter(|k| !ma.contains_key(*k))
                        .cloned()
                        .collect()
                };
                for (k, va) in ma {
                    match b.child(k) {
                        Some(mut vb) => {
                            if *va != *vb.get() {
                                self.key(k, |walk| walk.value(va, &mut vb));
                            }
                        }
                        // Only reachable at the root, which cannot be replaced.
                        None => self.key(k, |walk| {
                            let path = walk.path.pointer();
                            walk.ops
                                .push(PatchOperation::Remove(RemoveOperation { path }));
                        }),
                    }
                }
                for k in &added {
                    if let Some(mut vb) = b.child(k) {
                        let value = vb.take();
                        self.key(k, |walk| walk.add(value));
                    }
                }
            }
            (Value::Array(la), Value::Array(lb)) => {
                if let Some(plan) = ArrayPlan::of(la, lb) {
                    let mut items = b.items();
                    self.array(la, &mut items, plan);
                } else {
                    let whole = b.take();
                    self.replace(whole);
                }
            }
            (_, vb) if a == vb => {}
            _ => {
                let whole = b.take();
                self.replace(whole);
            }
        }
    }

    fn array(&mut self, a: &[Value], b: &mut [Source], plan: ArrayPlan) {
        match plan {
            ArrayPlan::NamedInsertion => {
                let mut i = 0;
                for (j, vb) in b.iter_mut().enumerate() {
                    if i < a.len() && item_key(&a[i]) == item_key(vb.get()) {
                        if a[i] != *vb.get() {
                            let va = &a[i];
                            self.index(j, |walk| walk.value(va, vb));
                        }
                        i += 1;
                    } else {
                        let value = vb.take();
                        self.index(j, |walk| walk.add(value));
                    }
                }
            }
            ArrayPlan::Positional => {
                for (j, (va, vb)) in a.iter().zip(b.iter_mut()).enumerate() {
                    // Most items of a list (env vars, mounts, untouched
                    // containers) are unchanged: a plain comparison is far
                    // cheaper than a walk.
                    if *va != *vb.get() {
                        self.index(j, |walk| walk.value(va, vb));
                    }
                }
            }
        }
    }
}

/// How two lists are paired up; `None` from [`ArrayPlan::of`] means the
/// list is replaced whole.
enum ArrayPlan {
    /// `b` is `a` with named items inserted: walk by name.
    NamedInsertion,
    /// The same length: pair item i with item i.
    Positional,
}

impl ArrayPlan {
    fn of(a: &[Value], b: &[Value]) -> Option<ArrayPlan> {
        // Same length and the same names (or none) at every index: both the
        // by-name and the positional walk pair item i with item i, so take
        // the positional one without collecting and sorting names (the
        // common case: an app container's unchanged env list).
        let same_names =
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| item_key(x) == item_key(y));
        if !same_names && is_named_insertion(a, b) {
            Some(ArrayPlan::NamedInsertion)
        } else if a.len() == b.len() {
            Some(ArrayPlan::Positional)
        } else {
            None
        }
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
        use super::Path;
        use json_patch::jsonptr::{PointerBuf, Token};
        let mut path = Path::default();
        path.push_key("spec");
        path.push_key("a/b~c");
        path.push_index(12);
        path.push_key("");
        path.push_key("~1/~0");
        let expected = PointerBuf::from_tokens([
            Token::new("spec"),
            Token::new("a/b~c"),
            Token::from(12usize),
            Token::new(""),
            Token::new("~1/~0"),
        ]);
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

    #[test]
    fn pointer_tokens_escape_every_tilde_and_slash_as_rfc_6901_says() {
        for key in [
            "",
            "plain",
            "/",
            "~",
            "~1",
            "//~~",
            "a/b~c/",
            "sidecar.istio.io/status",
            "~leading and trailing/",
            "ünï/cödé~ and a long tail past several words/x",
        ] {
            let mut token = String::from("/spec");
            super::push_token(&mut token, key);
            // `~` first: escaping `/` as `~1` must not be escaped again.
            let expected = format!("/spec{}", key.replace('~', "~0").replace('/', "~1"));
            assert_eq!(token, expected, "{key:?}");
        }
    }
}

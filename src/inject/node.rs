//! What the template renders: a JSON tree that costs one allocation per
//! object or list (not one per key and string, as `serde_json::Value`
//! does) and borrows its strings where it can. The engine turns it into a
//! `Value` ([`Node::into_value`]) to merge it into the pod.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// A JSON value as rendered.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    /// A string.
    Str(Cow<'a, str>),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A list.
    List(Vec<Node<'a>>),
    /// An object, its keys unique and sorted (serde_json's order): built
    /// by [`map`] and [`Node::insert`], which keep them so.
    Map(Vec<(Cow<'a, str>, Node<'a>)>),
    /// A value taken as it is (configured lifecycles, user volumes).
    Json(Cow<'a, Value>),
    /// A constant part of the template, as JSON text
    /// ([`super::fragments`]).
    Raw(&'static Fragment),
}

/// A constant part of the template as JSON text: serde_json's compact form
/// with sorted keys (the fragments' tests check each), and as a `Value`,
/// parsed once, for the Value engine.
#[derive(Debug)]
pub struct Fragment {
    /// Its `name` member, for the items of named lists (the fragments'
    /// tests check it against the text; the status record is read from the
    /// rendered templates).
    #[cfg_attr(not(test), allow(dead_code))]
    pub name: Option<&'static str>,
    /// The text.
    pub json: &'static str,
    /// The text parsed, on first use.
    parsed: OnceLock<Value>,
}

impl Fragment {
    /// A fragment of `json`, named `name` if it is an item of a named list.
    pub const fn new(name: Option<&'static str>, json: &'static str) -> Fragment {
        Fragment {
            name,
            json,
            parsed: OnceLock::new(),
        }
    }

    /// The fragment as a `Value`.
    pub fn value(&self) -> &Value {
        // Every fragment is JSON (checked by the fragments' tests).
        self.parsed
            .get_or_init(|| serde_json::from_str(self.json).unwrap_or(Value::Null))
    }
}

impl PartialEq for Fragment {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

/// An object from `(key, value)` pairs with distinct keys, in any order.
pub fn map<'a, const N: usize>(mut entries: [(&'static str, Node<'a>); N]) -> Node<'a> {
    // A handful of entries, most already in order: an insertion sort's
    // few comparisons.
    entries.sort_by_key(|(k, _)| *k);
    debug_assert!(
        entries.windows(2).all(|w| w[0].0 != w[1].0),
        "duplicate key"
    );
    Node::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), v))
            .collect(),
    )
}

/// A list of string slices.
pub fn strs<'a>(items: &[&'a str]) -> Node<'a> {
    Node::List(items.iter().map(|s| Node::Str(Cow::Borrowed(*s))).collect())
}

impl<'a> From<&'a str> for Node<'a> {
    fn from(s: &'a str) -> Self {
        Node::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Node<'_> {
    fn from(s: String) -> Self {
        Node::Str(Cow::Owned(s))
    }
}

impl From<i64> for Node<'_> {
    fn from(n: i64) -> Self {
        Node::Int(n)
    }
}

impl From<bool> for Node<'_> {
    fn from(b: bool) -> Self {
        Node::Bool(b)
    }
}

impl<'a> Node<'a> {
    /// Sets the member `key` of an object (replacing it if present).
    pub fn insert(&mut self, key: &'static str, value: Node<'a>) {
        if let Node::Map(entries) = self {
            match entries.binary_search_by(|(k, _)| k.as_ref().cmp(key)) {
                Ok(at) => entries[at].1 = value,
                Err(at) => entries.insert(at, (Cow::Borrowed(key), value)),
            }
        }
    }

    /// The same tree as a `serde_json::Value`.
    pub fn into_value(self) -> Value {
        match self {
            Node::Str(s) => Value::String(s.into_owned()),
            Node::Int(n) => Value::from(n),
            Node::Bool(b) => Value::Bool(b),
            Node::List(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            Node::Map(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_value()))
                    .collect::<Map<String, Value>>(),
            ),
            Node::Json(v) => v.into_owned(),
            Node::Raw(f) => f.value().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn insert_replaces_a_present_key() {
        let mut node = map([("name", "a".into())]);
        node.insert("name", "b".into());
        node.insert("image", "i".into());
        assert_eq!(node.into_value(), json!({"name": "b", "image": "i"}));
    }
}

//! Bounds on YAML (and JSON) that arrives from outside: checked before the
//! text is turned into values, so that a small input cannot cost a large
//! amount of memory or CPU.
//!
//! Two attacks motivate it. An anchor of K items referenced M times
//! (`a: &a [x, x, ...]`, `b: [*a, *a, ...]`) expands to K x M nodes from a
//! few kilobytes of text; serde_yaml expands aliases while deserializing, so
//! the expansion has to be counted as it happens. And deeply nested flow
//! collections (`{a: {a: {a: ...`) make libyaml's scanner quadratic (it
//! revisits every open flow level for each token), long before serde_yaml's
//! own recursion limit refuses the document; so their depth is measured by
//! a linear pre-scan before libyaml sees the text.
//!
//! [`check_yaml`] runs both checks over every document of a text; callers
//! then parse it as they did before, knowing that the parse is bounded.
//! [`check_json`] counts the nodes of a JSON text the same way (JSON has no
//! aliases and serde_json is linear, but a dense 3 MiB array still becomes
//! tens of megabytes of values).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// How much a YAML or JSON text may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    /// Bytes of text.
    pub max_bytes: usize,
    /// Nesting of flow collections (`{`, `[`), measured before parsing.
    pub max_flow_depth: usize,
    /// Nodes (mappings, sequences, scalars) after alias expansion, over all
    /// documents of the text.
    pub max_nodes: usize,
}

impl YamlLimits {
    /// A request body (`POST /preview`, `POST /inject`): the API server's
    /// own cap on request bodies is 3 MiB, and no real object reaches
    /// 100,000 nodes (a Deployment with 50 containers has a few thousand).
    /// 64 levels of flow nesting is more than any Kubernetes object in JSON
    /// form (a Pod's deepest path is about 12).
    pub const REQUEST: YamlLimits = YamlLimits {
        max_bytes: 3 << 20,
        max_flow_depth: 64,
        max_nodes: 100_000,
    };

    /// One annotation parsed as YAML or JSON (`proxy.istio.io/config`):
    /// a ProxyConfig override is a few hundred bytes; 16 KiB and 4,096
    /// nodes leave room for a long `proxyMetadata` map.
    pub const ANNOTATION: YamlLimits = YamlLimits {
        max_bytes: 16 << 10,
        max_flow_depth: 16,
        max_nodes: 4_096,
    };

    /// A local file given to the CLI: no size limit, but no hang either
    /// (the alias budget still holds, 20 million nodes being far beyond
    /// any manifest a person writes).
    pub const LOCAL_FILE: YamlLimits = YamlLimits {
        max_bytes: usize::MAX,
        max_flow_depth: 256,
        max_nodes: 20_000_000,
    };
}

/// A text over one of the [`YamlLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// More bytes than `max_bytes`.
    #[error("the text is {bytes} bytes long: the limit is {limit} bytes")]
    TooLarge {
        /// The text's length.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Flow collections nested deeper than `max_flow_depth`.
    #[error(
        "flow collections ({{...}} or [...]) are nested more than {limit} deep (line {line}): \
         the limit is {limit} levels"
    )]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Where the limit was passed (1-based).
        line: usize,
    },
    /// More nodes than `max_nodes`, aliases expanded.
    #[error(
        "the text expands to more than {limit} nodes (values, list items and mapping entries, \
         YAML aliases expanded): the limit is {limit} nodes"
    )]
    TooManyNodes {
        /// The limit.
        limit: usize,
    },
    /// Scalars that add up to far more text than was sent: aliases of long
    /// strings.
    #[error(
        "the text's strings expand to more than {limit} bytes (YAML aliases of long strings): \
         the limit is twice the text's length"
    )]
    TooManyBytes {
        /// The limit.
        limit: usize,
    },
}

/// Checks every document of the YAML `text` against `limits`. Syntax errors
/// are not reported here (the caller's parse reports them with its own
/// message); only a passed limit is.
pub fn check_yaml(text: &str, limits: &YamlLimits) -> Result<(), LimitError> {
    check_size(text.len(), limits)?;
    check_flow_depth(text.as_bytes(), limits.max_flow_depth)?;
    let budget = Budget::new(text.len(), limits);
    for document in serde_yaml::Deserializer::from_str(text) {
        if Count(&budget).deserialize(document).is_err() {
            // Either a limit (recorded in the budget) or a syntax error
            // (the caller's parse will say so): stop counting either way.
            break;
        }
    }
    budget.result()
}

/// Checks the JSON `bytes` (one value or a stream) against `limits`' size
/// and node count. Syntax errors are left to the caller's parse.
pub fn check_json(bytes: &[u8], limits: &YamlLimits) -> Result<(), LimitError> {
    check_size(bytes.len(), limits)?;
    let budget = Budget::new(bytes.len(), limits);
    let mut stream = serde_json::Deserializer::from_slice(bytes);
    while Count(&budget).deserialize(&mut stream).is_ok() {
        if stream.end().is_ok() {
            break;
        }
    }
    budget.result()
}

fn check_size(bytes: usize, limits: &YamlLimits) -> Result<(), LimitError> {
    if bytes > limits.max_bytes {
        return Err(LimitError::TooLarge {
            bytes,
            limit: limits.max_bytes,
        });
    }
    Ok(())
}

/// The deepest nesting of flow collections, measured in one pass without
/// parsing. Brackets inside quoted scalars and comments do not count. The
/// scan errs on the side of counting: an apostrophe inside a plain scalar
/// (`don't`) is not taken for a quote, since a quoted scalar only starts a
/// token (after a space, a line break, `[`, `{`, `,` or `:`).
fn check_flow_depth(text: &[u8], limit: usize) -> Result<(), LimitError> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut previous = b'\n';
    let mut i = 0;
    while i < text.len() {
        let byte = text[i];
        match byte {
            b'\n' => line += 1,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(LimitError::TooDeep { limit, line });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'#' if previous.is_ascii_whitespace() => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\'' | b'"'
                if matches!(
                    previous,
                    b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b',' | b':'
                ) =>
            {
                i += 1;
                while i < text.len() {
                    match text[i] {
                        b'\n' => line += 1,
                        b'\\' if byte == b'"' => i += 1,
                        b'\'' if byte == b'\'' && text.get(i + 1) == Some(&b'\'') => i += 1,
                        quote if quote == byte => break,
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        previous = text.get(i).copied().unwrap_or(b'\n');
        i += 1;
    }
    Ok(())
}

/// What counting has used so far, and the first limit passed.
struct Budget {
    nodes: Cell<usize>,
    bytes: Cell<usize>,
    max_nodes: usize,
    max_bytes: usize,
    exceeded: Cell<Option<LimitError>>,
}

impl Budget {
    fn new(text_len: usize, limits: &YamlLimits) -> Budget {
        Budget {
            nodes: Cell::new(0),
            bytes: Cell::new(0),
            max_nodes: limits.max_nodes,
            // Without aliases the scalars hold at most the text itself (an
            // escape such as `\L` is two characters for three bytes).
            max_bytes: text_len.saturating_mul(2).saturating_add(4096),
            exceeded: Cell::new(None),
        }
    }

    fn node<E: de::Error>(&self, scalar_bytes: usize) -> Result<(), E> {
        let nodes = self.nodes.get() + 1;
        self.nodes.set(nodes);
        if nodes > self.max_nodes {
            return self.exceed(LimitError::TooManyNodes {
                limit: self.max_nodes,
            });
        }
        let bytes = self.bytes.get().saturating_add(scalar_bytes);
        self.bytes.set(bytes);
        if bytes > self.max_bytes {
            return self.exceed(LimitError::TooManyBytes {
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    fn exceed<E: de::Error>(&self, error: LimitError) -> Result<(), E> {
        let message = error.to_string();
        self.exceeded.set(Some(error));
        Err(E::custom(message))
    }

    fn result(self) -> Result<(), LimitError> {
        match self.exceeded.into_inner() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Visits a value node by node, building nothing, stopping at the budget.
#[derive(Clone, Copy)]
struct Count<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML or JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.0.node(0)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.0.node(0)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.0.node(0)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.0.node(0)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.0.node(0)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.0.node(0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.node(v.len())
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.0.node(v.len())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.node(0)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.node(0)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<(), D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.node(0)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.node(0)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }

    /// A tagged node (`!Thing value`), which serde_yaml presents as an enum.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use de::VariantAccess as _;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One anchor of `k` items referenced `m` times: a few bytes of text
    /// per reference, k x m nodes once expanded.
    fn alias_bomb(k: usize, m: usize) -> String {
        let items = vec!["x"; k].join(", ");
        let refs = vec!["*a"; m].join(", ");
        format!("kind: Pod\nitems: &a [{items}]\nrefs: [{refs}]\n")
    }

    #[test]
    fn an_alias_bomb_is_refused_by_its_expanded_size() {
        let text = alias_bomb(1000, 1000);
        assert!(text.len() < 20_000, "{} bytes", text.len());
        // Each `x` is a node and a byte: the byte budget (twice the text)
        // trips first; a bomb of empty mappings trips the node count.
        let err = check_yaml(&text, &YamlLimits::REQUEST).unwrap_err();
        assert!(matches!(err, LimitError::TooManyBytes { .. }), "{err}");
        let empty = alias_bomb(1000, 1000).replace("x", "{}");
        let err = check_yaml(&empty, &YamlLimits::REQUEST).unwrap_err();
        assert_eq!(err, LimitError::TooManyNodes { limit: 100_000 });
        assert!(err.to_string().contains("aliases expanded"), "{err}");
    }

    #[test]
    fn a_few_aliases_are_fine() {
        let text = "base: &b {cpu: 100m}\nrequests: *b\nlimits: *b\n";
        assert_eq!(check_yaml(text, &YamlLimits::ANNOTATION), Ok(()));
        assert_eq!(
            check_yaml(&alias_bomb(10, 10), &YamlLimits::REQUEST),
            Ok(())
        );
    }

    #[test]
    fn aliases_of_long_strings_are_counted_by_bytes() {
        let long = "y".repeat(10_000);
        let refs = vec!["*s"; 50].join(", ");
        let text = format!("s: &s \"{long}\"\nrefs: [{refs}]\n");
        let err = check_yaml(&text, &YamlLimits::REQUEST).unwrap_err();
        assert!(matches!(err, LimitError::TooManyBytes { .. }), "{err}");
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let deep = format!("{}{}", "{a: ".repeat(40_000), "}".repeat(40_000));
        let err = check_yaml(&deep, &YamlLimits::REQUEST).unwrap_err();
        assert_eq!(err, LimitError::TooDeep { limit: 64, line: 1 });
        let within = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(check_yaml(&within, &YamlLimits::REQUEST), Ok(()));
    }

    #[test]
    fn brackets_in_quotes_and_comments_do_not_nest() {
        let text = format!(
            "a: \"{}\"\nb: '{}'\n# {}\nc: don't [x]\n",
            "{".repeat(100),
            "[".repeat(100),
            "{".repeat(100)
        );
        assert_eq!(check_yaml(&text, &YamlLimits::REQUEST), Ok(()));
    }

    #[test]
    fn closing_brackets_in_quotes_cannot_hide_nesting() {
        let level = "{a: \"}}\", b: ";
        let text = format!("{}{}", level.repeat(100), "}".repeat(100));
        assert!(matches!(
            check_yaml(&text, &YamlLimits::REQUEST),
            Err(LimitError::TooDeep { .. })
        ));
    }

    #[test]
    fn size_is_checked_first() {
        let text = "a: b\n".repeat(4000);
        let err = check_yaml(&text, &YamlLimits::ANNOTATION).unwrap_err();
        assert_eq!(
            err,
            LimitError::TooLarge {
                bytes: 20_000,
                limit: 16 << 10
            }
        );
    }

    #[test]
    fn syntax_errors_are_left_to_the_parser() {
        assert_eq!(check_yaml("{unclosed", &YamlLimits::REQUEST), Ok(()));
        assert_eq!(check_json(b"{\"a\":", &YamlLimits::REQUEST), Ok(()));
    }

    #[test]
    fn json_nodes_are_counted_across_a_stream() {
        let one = format!("[{}]", vec!["0"; 3000].join(","));
        assert_eq!(check_json(one.as_bytes(), &YamlLimits::ANNOTATION), Ok(()));
        let two = format!("{one}\n{one}");
        assert_eq!(
            check_json(two.as_bytes(), &YamlLimits::ANNOTATION),
            Err(LimitError::TooManyNodes { limit: 4096 })
        );
    }

    #[test]
    fn every_document_counts_towards_the_budget() {
        let doc = format!("a: [{}]\n", vec!["1"; 2100].join(", "));
        let text = format!("{doc}---\n{doc}");
        assert_eq!(
            check_yaml(&text, &YamlLimits::ANNOTATION),
            Err(LimitError::TooManyNodes { limit: 4096 })
        );
    }
}

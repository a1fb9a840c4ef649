//! Istio's whole install key space (`istio_keys.tsv`, flattened from Istio's
//! `values_types.proto` and `MeshConfig`/`ProxyConfig` protos) and the check
//! of a configuration document against it.
//!
//! A key is accepted when injection reads it (the tree of
//! `defaults.yaml`) or when Istio's schema has it; a key Istio has but
//! injection does not read is recorded as ignored, so that a whole Istio
//! profile or chart values file loads while a typo is still refused, with
//! the closest known key suggested. Every value Istio's schema types is
//! checked against that type (a number where Istio expects a string, a port
//! outside 0-65535, a duration that is not one) on load and on reload alike.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use serde_json::Value;

use super::ConfigError;

/// Subtrees whose keys are the user's own (env vars, annotations, resource
/// names, lifecycle hooks): any key is accepted below them, and injection
/// reads them.
const FREE_FORM: &[&str] = &[
    "values.pilot.env",
    "values.sidecarInjectorWebhook.injectedAnnotations",
    "values.sidecarInjectorWebhook.templates",
    "values.global.proxy.lifecycle",
    "values.global.proxy.resources",
    "values.global.proxy_init.resources",
    "meshConfig.defaultConfig.proxyMetadata",
    "config.injectedAnnotations",
];

/// The type Istio's schema gives a key.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    /// A message: its keys are listed in the table.
    Object,
    /// A string (a number or boolean is refused, as Istio refuses it).
    Str,
    /// `true` or `false`.
    Bool,
    /// An integer within the range of its protobuf type (a port: 0-65535).
    Int {
        /// Smallest accepted.
        min: i64,
        /// Largest accepted.
        max: i64,
    },
    /// Any number.
    Number,
    /// A duration in Go's form (`10s`, `500ms`, `1m30s`).
    Duration,
    /// A number or a string (Kubernetes' IntOrString).
    IntOrString,
    /// A list.
    List,
    /// A mapping with keys of the user's choosing.
    Map,
    /// Free-form (a protobuf Struct or Value, or another API's type).
    Any,
    /// One of the names (or a number, as protobuf JSON allows).
    Enum(Vec<&'static str>),
}

impl Kind {
    fn parse(path: &str, text: &'static str) -> Kind {
        let int = |min: i64, max: i64| {
            // Istio types ports as plain integers; a port is 0-65535.
            if path.ends_with("Port") || path.ends_with(".port") {
                Kind::Int { min: 0, max: 65535 }
            } else {
                Kind::Int { min, max }
            }
        };
        match text {
            "object" => Kind::Object,
            "string" => Kind::Str,
            "bool" => Kind::Bool,
            "int32" => int(i32::MIN.into(), i32::MAX.into()),
            "int64" => int(i64::MIN, i64::MAX),
            "uint32" => int(0, u32::MAX.into()),
            "uint64" => int(0, i64::MAX),
            "number" => Kind::Number,
            "duration" => Kind::Duration,
            "intorstring" => Kind::IntOrString,
            "list" => Kind::List,
            "map" => Kind::Map,
            "any" => Kind::Any,
            other => match other.strip_prefix("enum:") {
                Some(names) => Kind::Enum(names.split('|').collect()),
                None => panic!("config/istio_keys.tsv: unknown type {other:?} for {path}"),
            },
        }
    }

    /// What a value of this kind looks like, for error messages.
    fn expected(&self) -> String {
        match self {
            Kind::Object | Kind::Map => "a mapping".into(),
            Kind::Str => "a string (quote it if it looks like a number or a boolean)".into(),
            Kind::Bool => "true or false".into(),
            Kind::Int { min, max } => format!("an integer from {min} to {max}"),
            Kind::Number => "a number".into(),
            Kind::Duration => "a duration such as 10s, 500ms or 1m30s".into(),
            Kind::IntOrString => "an integer or a string".into(),
            Kind::List => "a list (with --set: {a,b})".into(),
            Kind::Any => "any value".into(),
            Kind::Enum(names) => format!("one of {}", names.join(", ")),
        }
    }

    /// Whether `value` has this kind.
    fn accepts(&self, value: &Value) -> bool {
        match (self, value) {
            (Kind::Any, _) => true,
            (Kind::Object | Kind::Map, Value::Object(_)) => true,
            (Kind::Str, Value::String(_)) => true,
            (Kind::Bool, Value::Bool(_)) => true,
            (Kind::Bool, Value::String(s)) => s == "true" || s == "false",
            (Kind::Int { min, max }, v) => integer(v).is_some_and(|n| n >= *min && n <= *max),
            (Kind::Number, Value::Number(_)) => true,
            (Kind::Number, Value::String(s)) => s.parse::<f64>().is_ok(),
            (Kind::Duration, Value::String(s)) => is_duration(s),
            (Kind::IntOrString, Value::Number(_) | Value::String(_)) => true,
            (Kind::List, Value::Array(_)) => true,
            (Kind::Enum(names), Value::String(s)) => s.is_empty() || names.contains(&s.as_str()),
            (Kind::Enum(_), Value::Number(n)) => n.is_i64(),
            _ => false,
        }
    }
}

/// An integer, or a string holding one (protobuf JSON writes 64-bit
/// integers as strings).
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A non-negative duration in Go's `time.ParseDuration` form: one or more
/// `<number><unit>` with units ns, us, µs, ms, s, m, h; or `0`.
pub(super) fn is_duration(text: &str) -> bool {
    if text == "0" {
        return true;
    }
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..digits];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[digits..];
        // Two-letter units first: `1ms` is a millisecond, not a minute.
        let Some(unit) = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .into_iter()
            .find(|u| rest.starts_with(u))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

/// Istio's key table: every known path, its kind, and each path's children
/// (for suggestions).
pub(super) struct Schema {
    kinds: HashMap<&'static str, Kind>,
    children: HashMap<String, Vec<&'static str>>,
}

/// Istio's key space, parsed once from `istio_keys.tsv`.
pub(super) fn istio() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut kinds = HashMap::new();
        let mut children: HashMap<String, Vec<&'static str>> = HashMap::new();
        for line in include_str!("istio_keys.tsv").lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (path, kind) = line.split_once('\t').unwrap_or_else(|| {
                panic!("config/istio_keys.tsv: expected path<TAB>type, got {line:?}")
            });
            let (parent, name) = path.rsplit_once('.').unwrap_or(("", path));
            children.entry(parent.to_string()).or_default().push(name);
            kinds.insert(path, Kind::parse(path, kind));
        }
        Schema { kinds, children }
    })
}

impl Schema {
    /// The kind of the key at `path`, if Istio has that key.
    pub(super) fn kind(&self, path: &str) -> Option<&Kind> {
        self.kinds.get(path)
    }

    fn children(&self, path: &str) -> &[&'static str] {
        self.children.get(path).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// How much of a subtree injection reads.
#[derive(Clone, Copy)]
enum Read<'a> {
    /// The keys of this node of `defaults.yaml`.
    Tree(&'a Value),
    /// All of it (a free-form or whole-value key).
    All,
    /// None of it: Istio's key, ignored by injection.
    Nothing,
}

/// Checks every key and typed value of `doc` (a `{values, meshConfig,
/// config}` document) against the keys injection reads (`read`, the
/// defaults tree) and Istio's schema. Keys Istio knows but injection does
/// not read are added to `ignored` (the top of each such subtree only).
pub(super) fn check(
    doc: &Value,
    read: &Value,
    ignored: &mut BTreeSet<String>,
) -> Result<(), ConfigError> {
    walk(doc, Read::Tree(read), "", ignored)
}

fn walk(
    doc: &Value,
    read: Read<'_>,
    prefix: &str,
    ignored: &mut BTreeSet<String>,
) -> Result<(), ConfigError> {
    let Value::Object(map) = doc else {
        return Ok(());
    };
    let schema = istio();
    for (key, value) in map {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if FREE_FORM.contains(&path.as_str()) {
            if !value.is_object() && !value.is_null() {
                return Err(invalid(&path, value, "a mapping"));
            }
            continue;
        }
        let kind = schema.kind(&path);
        // Injection reads a key that defaults.yaml lists, or that lies
        // inside one it reads whole; an Istio key it does not read is
        // ignored; a key in neither is refused.
        let read_here = match read {
            Read::Tree(node) => match node.get(key) {
                Some(Value::Object(child)) if !child.is_empty() => Some(Read::Tree(&node[key])),
                Some(_) => Some(Read::All),
                None => None,
            },
            Read::All => kind.map(|_| Read::All),
            Read::Nothing => kind.map(|_| Read::Nothing),
        };
        let read_here = match (read_here, kind) {
            (Some(r), _) => r,
            (None, Some(_)) => {
                ignored.insert(path.clone());
                Read::Nothing
            }
            (None, None) => {
                let mut siblings: BTreeSet<&str> =
                    schema.children(prefix).iter().copied().collect();
                if let Read::Tree(Value::Object(node)) = read {
                    siblings.extend(node.keys().map(String::as_str));
                }
                return Err(ConfigError::UnknownKey {
                    suggestion: closest(key, siblings.into_iter()).map(|s| {
                        if prefix.is_empty() {
                            s.to_string()
                        } else {
                            format!("{prefix}.{s}")
                        }
                    }),
                    path,
                });
            }
        };
        if value.is_null() {
            continue;
        }
        match kind {
            Some(kind) if !kind.accepts(value) => {
                return Err(invalid(&path, value, &kind.expected()));
            }
            Some(Kind::Object) => walk(value, read_here, &path, ignored)?,
            Some(_) => {}
            // A key only outrigger has (`config.*`): a mapping where
            // defaults.yaml has one.
            None => {
                if let Read::Tree(_) = read_here {
                    if !value.is_object() {
                        return Err(invalid(&path, value, "a mapping"));
                    }
                    walk(value, read_here, &path, ignored)?;
                }
            }
        }
    }
    Ok(())
}

fn invalid(path: &str, value: &Value, expected: &str) -> ConfigError {
    ConfigError::InvalidValue {
        path: path.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// The known key closest to a mistyped one: the same letters in another
/// case, or a few edits away (at most a third of the key's length).
fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let budget = (key.chars().count() / 3).max(1);
    candidates
        .map(|c| {
            let d = if c.eq_ignore_ascii_case(key) {
                0
            } else {
                edit_distance(&key.to_ascii_lowercase(), &c.to_ascii_lowercase()).max(1)
            };
            (d, c)
        })
        .filter(|(d, _)| *d <= budget)
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// A `--set` value typed as Istio's schema types its key: text where Istio
/// expects a string (`--set values.global.proxy.excludeInboundPorts=15020`
/// stays the string `"15020"`), `istioctl`'s guesses elsewhere.
pub(super) fn set_value(path: &str, raw: &str) -> Option<Value> {
    match istio().kind(path) {
        Some(Kind::Str | Kind::Duration | Kind::Enum(_)) if raw != "null" => {
            Some(Value::String(raw.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_go_form_only() {
        for ok in [
            "0", "10s", "500ms", "1m30s", "1.5h", "2h45m", "100us", "3µs", "5ns",
        ] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in [
            "",
            "10",
            "s",
            "-1s",
            "10 s",
            "1d",
            "1.2.3s",
            "ten seconds",
            "5sm",
        ] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    #[test]
    fn closest_key_is_a_few_edits_or_a_case_away() {
        let keys = ["hub", "tag", "imagePullPolicy", "proxy", "istioNamespace"];
        assert_eq!(closest("hubb", keys.into_iter()), Some("hub"));
        assert_eq!(
            closest("imagepullpolicy", keys.into_iter()),
            Some("imagePullPolicy")
        );
        assert_eq!(
            closest("istioNamspace", keys.into_iter()),
            Some("istioNamespace")
        );
        assert_eq!(closest("somethingElse", keys.into_iter()), None);
    }

    #[test]
    fn every_key_injection_reads_is_one_of_istios() {
        // defaults.yaml is outrigger's list of keys injection reads; under
        // values and meshConfig each must be Istio's, with Istio's type.
        // Down to the first key Istio types as a whole (a Struct, a map).
        fn each(node: &Value, prefix: &str, out: &mut Vec<String>) {
            if let Value::Object(m) = node {
                for (k, v) in m {
                    let path = format!("{prefix}.{k}");
                    out.push(path.clone());
                    let whole = istio().kind(&path).is_some_and(|k| *k != Kind::Object);
                    if !FREE_FORM.contains(&path.as_str()) && !whole {
                        each(v, &path, out);
                    }
                }
            }
        }
        let defaults = super::super::tree::defaults();
        let mut paths = Vec::new();
        each(&defaults["values"], "values", &mut paths);
        each(&defaults["meshConfig"], "meshConfig", &mut paths);
        assert!(paths.len() > 90, "{paths:?}");
        for path in paths {
            let kind = istio()
                .kind(&path)
                .unwrap_or_else(|| panic!("{path} is read by injection but is not Istio's"));
            let value = path.split('.').try_fold(defaults, |v, k| v.get(k)).unwrap();
            assert!(
                value.is_null() || kind.accepts(value),
                "the default of {path} ({value}) is not {}",
                kind.expected()
            );
        }
    }
}

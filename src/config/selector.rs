//! Kubernetes label selectors (`matchLabels` + `matchExpressions`), as used
//! by `neverInjectSelector` and `alwaysInjectSelector`.

use std::collections::BTreeMap;

use serde_json::Value;

/// A Kubernetes label selector. An empty selector matches everything, as in
/// Kubernetes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    match_labels: BTreeMap<String, String>,
    expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Operator,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A selector that does not have the Kubernetes shape.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid label selector at {path}: {problem}")]
pub struct SelectorError {
    /// Where in the configuration.
    pub path: String,
    /// What is wrong, with the accepted form.
    pub problem: String,
}

impl LabelSelector {
    /// Parses a selector from its JSON form.
    pub fn parse(value: &Value, path: &str) -> Result<LabelSelector, SelectorError> {
        let err = |problem: String| SelectorError {
            path: path.to_string(),
            problem,
        };
        let Value::Object(map) = value else {
            return Err(err(
                "expected a mapping with matchLabels and/or matchExpressions".into(),
            ));
        };
        let mut sel = LabelSelector::default();
        for (key, v) in map {
            match key.as_str() {
                "matchLabels" => {
                    let Value::Object(labels) = v else {
                        return Err(err("matchLabels must be a mapping of label to value".into()));
                    };
                    for (k, val) in labels {
                        let Some(s) = val.as_str() else {
                            return Err(err(format!("matchLabels.{k} must be a string")));
                        };
                        sel.match_labels.insert(k.clone(), s.to_string());
                    }
                }
                "matchExpressions" => {
                    let Value::Array(items) = v else {
                        return Err(err("matchExpressions must be a list".into()));
                    };
                    for item in items {
                        sel.expressions.push(Requirement::parse(item).map_err(err)?);
                    }
                }
                other => {
                    return Err(err(format!(
                        "unknown field {other:?} (expected matchLabels or matchExpressions)"
                    )));
                }
            }
        }
        Ok(sel)
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    fn parse(item: &Value) -> Result<Requirement, String> {
        let key = item
            .get("key")
            .and_then(Value::as_str)
            .ok_or("each matchExpressions entry needs a string key")?
            .to_string();
        let op = match item.get("operator").and_then(Value::as_str) {
            Some("In") => Operator::In,
            Some("NotIn") => Operator::NotIn,
            Some("Exists") => Operator::Exists,
            Some("DoesNotExist") => Operator::DoesNotExist,
            other => {
                return Err(format!(
                    "operator {other:?} of key {key:?}: expected In, NotIn, Exists or DoesNotExist"
                ));
            }
        };
        let values: Vec<String> = match item.get("values") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(vs)) => vs
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("values of key {key:?} must be strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(format!("values of key {key:?} must be a list")),
        };
        let needs_values = matches!(op, Operator::In | Operator::NotIn);
        if needs_values == values.is_empty() {
            return Err(format!(
                "key {key:?}: In and NotIn need values, Exists and DoesNotExist take none"
            ));
        }
        Ok(Requirement { key, op, values })
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let got = labels.get(&self.key);
        match self.op {
            Operator::In => got.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => got.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => got.is_some(),
            Operator::DoesNotExist => got.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = LabelSelector::parse(
            &json!({"matchLabels": {"app": "a"},
                    "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}),
            "t",
        )
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "a")])));
        assert!(!sel.matches(&labels(&[("app", "a"), ("tier", "db")])));
        assert!(!sel.matches(&labels(&[("app", "b")])));
    }

    #[test]
    fn bad_operator_is_named() {
        let e = LabelSelector::parse(
            &json!({"matchExpressions": [{"key": "k", "operator": "Maybe"}]}),
            "config.neverInjectSelector[0]",
        )
        .unwrap_err();
        assert!(e.to_string().contains("Maybe"), "{e}");
        assert!(e.to_string().contains("neverInjectSelector"), "{e}");
    }
}

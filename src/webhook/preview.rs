//! `POST /preview`: what the webhook would do to one object, for tools and CI
//! pipelines that cannot run the `outrigger inject` CLI.
//!
//! The body is one Kubernetes object, YAML or JSON; the query says where it
//! would be admitted: `namespace=NS` and any number of `namespaceLabel=k=v`.
//! The answer comes from the same engine call as an admission:
//!
//! ```json
//! {"decision": "inject", "reason": "...", "skipReason": null, "patch": [...], "object": {...}}
//! ```
//!
//! `decision` is `inject`, `skip` (with `skipReason`, the stable machine name)
//! or `deny` (HTTP 422, `reason` being the engine's message); `object` is the
//! injected object, or the input unchanged.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::inject::bounded_yaml::{LimitError, YamlLimits, check_json, check_yaml};
use crate::inject::{self, Context, Outcome};
use crate::webhook::error::ApiError;

/// The preview's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// `inject`, `skip` or `deny`.
    pub decision: &'static str,
    /// Why, in a sentence (or the engine's error message).
    pub reason: String,
    /// For a skip, its stable machine name.
    pub skip_reason: Option<&'static str>,
    /// The RFC 6902 patch (empty unless injected).
    pub patch: json_patch::Patch,
    /// The object after injection, or unchanged.
    pub object: Value,
}

/// Parses the query string into the engine's context. Unknown parameters and
/// labels without `=` are errors, so that typos do not go unnoticed.
pub fn context_from_query(query: Option<&str>) -> Result<Context, ApiError> {
    let mut ctx = Context::default();
    let mut labels = BTreeMap::new();
    let mut any_label = false;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "namespace" if value.is_empty() => {
                return Err(ApiError::BadRequest(
                    "query parameter namespace is empty: expected namespace=NAME".into(),
                ));
            }
            "namespace" => ctx.namespace = Some(value.into_owned()),
            "namespaceLabel" => {
                let Some((k, v)) = value.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                    return Err(ApiError::BadRequest(format!(
                        "query parameter namespaceLabel={value:?}: expected namespaceLabel=KEY=VALUE"
                    )));
                };
                any_label = true;
                labels.insert(k.to_string(), v.to_string());
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {other:?}: expected namespace and namespaceLabel"
                )));
            }
        }
    }
    if any_label {
        ctx.namespace_labels = Some(labels);
    }
    Ok(ctx)
}

/// Parses the body: exactly one object, as YAML (which includes JSON).
///
/// The body comes from the network, so it is bounded before it is parsed
/// ([`YamlLimits::REQUEST`]: aliases counted as they expand, flow nesting
/// measured before libyaml sees it); a body over a limit is a 400 naming
/// the limit. A body that is JSON is read by serde_json, which is linear
/// whatever its shape; only what is not JSON goes through the YAML parser.
pub fn parse_object(body: &[u8]) -> Result<Value, ApiError> {
    let refused = |e: LimitError| ApiError::OverLimit(format!("the body is refused: {e}"));
    let value: Value = if looks_like_json(body) {
        check_json(body, &YamlLimits::REQUEST).map_err(refused)?;
        match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(_) => parse_yaml(body).map_err(|e| e.either(refused))?,
        }
    } else {
        parse_yaml(body).map_err(|e| e.either(refused))?
    };
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Err(ApiError::BadRequest(
            "the body is empty: expected one Kubernetes object (YAML or JSON)".into(),
        )),
        _ => Err(ApiError::BadRequest(
            "the body is not a mapping: expected one Kubernetes object (YAML or JSON)".into(),
        )),
    }
}

/// A YAML body's failure: over a limit, or not YAML.
enum YamlFailure {
    Limit(LimitError),
    Syntax(ApiError),
}

impl YamlFailure {
    fn either(self, limit: impl FnOnce(LimitError) -> ApiError) -> ApiError {
        match self {
            YamlFailure::Limit(e) => limit(e),
            YamlFailure::Syntax(e) => e,
        }
    }
}

fn parse_yaml(body: &[u8]) -> Result<Value, YamlFailure> {
    let text = std::str::from_utf8(body).map_err(|e| {
        YamlFailure::Syntax(ApiError::BadRequest(format!(
            "the body is not UTF-8 text ({e}): expected one YAML or JSON Kubernetes object"
        )))
    })?;
    check_yaml(text, &YamlLimits::REQUEST).map_err(YamlFailure::Limit)?;
    serde_yaml::from_str(text).map_err(|e| {
        YamlFailure::Syntax(ApiError::BadRequest(format!(
            "the body is not one YAML or JSON Kubernetes object: {e}"
        )))
    })
}

fn looks_like_json(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// Runs the engine on `object` and describes the outcome.
pub fn preview(object: Value, ctx: &Context, config: &Config) -> Preview {
    match inject::inject(&object, ctx, config) {
        Ok(Outcome::Injected {
            patch,
            mutated,
            decision,
        }) => Preview {
            decision: "inject",
            reason: decision.rule,
            skip_reason: None,
            patch,
            object: mutated,
        },
        Ok(Outcome::Skipped { reason }) => Preview {
            decision: "skip",
            reason: reason.sentence().to_string(),
            skip_reason: Some(reason.name()),
            patch: json_patch::Patch(Vec::new()),
            object,
        },
        Err(err) => Preview {
            decision: "deny",
            reason: err.to_string(),
            skip_reason: None,
            patch: json_patch::Patch(Vec::new()),
            object,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn query_gives_namespace_and_labels() {
        let ctx = context_from_query(Some(
            "namespace=shop&namespaceLabel=istio-injection%3Denabled&namespaceLabel=team=a",
        ))
        .unwrap();
        assert_eq!(ctx.namespace.as_deref(), Some("shop"));
        let labels = ctx.namespace_labels.unwrap();
        assert_eq!(labels["istio-injection"], "enabled");
        assert_eq!(labels["team"], "a");
        assert_eq!(context_from_query(None).unwrap(), Context::default());
    }

    #[test]
    fn bad_queries_name_the_parameter() {
        let err = context_from_query(Some("namespaceLabel=novalue")).unwrap_err();
        assert!(
            err.to_string().contains("namespaceLabel=KEY=VALUE"),
            "{err}"
        );
        let err = context_from_query(Some("ns=shop")).unwrap_err();
        assert!(
            err.to_string().contains("unknown query parameter \"ns\""),
            "{err}"
        );
        let err = context_from_query(Some("namespace=")).unwrap_err();
        assert!(err.to_string().contains("namespace is empty"), "{err}");
    }

    #[test]
    fn yaml_and_json_bodies_parse_to_the_same_object() {
        let yaml = parse_object(b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n").unwrap();
        let json =
            parse_object(br#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}"#)
                .unwrap();
        assert_eq!(yaml, json);
    }

    #[test]
    fn bodies_that_are_not_one_object_are_rejected() {
        for (body, needle) in [
            (&b""[..], "empty"),
            (b"- a\n- b\n", "not a mapping"),
            (b"kind: Pod\n---\nkind: Pod\n", "not one YAML or JSON"),
            (b"{unclosed", "not one YAML or JSON"),
        ] {
            let err = parse_object(body).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn hostile_bodies_are_refused_naming_the_limit() {
        let items = vec!["x"; 1000].join(", ");
        let refs = vec!["*a"; 1000].join(", ");
        let bomb = format!("kind: Pod\nitems: &a [{items}]\nrefs: [{refs}]\n");
        let err = parse_object(bomb.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("YAML aliases"), "{err}");
        let deep = format!("{}{}", "{a: ".repeat(40_000), "}".repeat(40_000));
        let err = parse_object(deep.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("limit is 64 levels"), "{err}");
        let dense = format!("{{\"a\": [{}]}}", vec!["0"; 100_001].join(","));
        let err = parse_object(dense.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("limit is 100000 nodes"), "{err}");
    }

    #[test]
    fn preview_matches_the_engine() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": [{"name": "app", "image": "app"}]}});
        let ctx = Context::default();
        let config = Config::default();
        let got = preview(pod.clone(), &ctx, &config);
        match inject::inject(&pod, &ctx, &config) {
            Ok(Outcome::Injected { patch, mutated, .. }) => {
                assert_eq!(got.decision, "inject");
                assert_eq!(got.patch, patch);
                assert_eq!(got.object, mutated);
            }
            Ok(Outcome::Skipped { reason }) => {
                assert_eq!(got.decision, "skip");
                assert_eq!(got.skip_reason, Some(reason.name()));
                assert_eq!(got.object, pod);
            }
            Err(err) => {
                assert_eq!(got.decision, "deny");
                assert_eq!(got.reason, err.to_string());
            }
        }
    }
}

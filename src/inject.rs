//! THE ENGINE: decides whether an object gets the sidecar, renders what is
//! added, and computes the JSON patch. Pure: no IO, no async.
//!
//! PLACEHOLDER: only the contract from DESIGN.md is fixed here; the engine
//! issue replaces the body. The placeholder adds a bare `istio-proxy`
//! container to a Pod or pod template so that callers can be built and tested
//! against the contract.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::Config;

/// What the caller knows about where the object is being admitted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    /// The namespace the object is admitted into (the admission request's, or
    /// `--namespace`). `None` means "the object's own, else `default`".
    pub namespace: Option<String>,
    /// The namespace's labels, when the caller knows them.
    pub namespace_labels: Option<BTreeMap<String, String>>,
}

/// Why injection happened: the rule that decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The rule, in a sentence.
    pub rule: String,
}

/// Why an object was left alone. Skips are values, not errors.
#[derive(Debug, Clone, PartialEq)]
pub struct SkipReason {
    name: &'static str,
    sentence: String,
}

impl SkipReason {
    /// Stable kebab-case machine name (metrics, `--output explain`).
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// A human sentence.
    pub fn sentence(&self) -> &str {
        &self.sentence
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.sentence)
    }
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The object gets the sidecar.
    Injected {
        /// RFC 6902 operations that turn the input into `mutated`.
        patch: json_patch::Patch,
        /// The injected object.
        mutated: Value,
        /// Why.
        decision: Decision,
    },
    /// The object is left as it is.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
}

/// Injection failed because of the input (e.g. an invalid annotation value).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InjectError(pub String);

/// Injects the sidecar into `object` (placeholder: see the module docs).
pub fn inject(object: &Value, _ctx: &Context, _cfg: &Config) -> Result<Outcome, InjectError> {
    let pointer = match object.get("kind").and_then(Value::as_str) {
        Some("Pod") => "/spec",
        Some("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job") => {
            "/spec/template/spec"
        }
        _ => {
            return Ok(Outcome::Skipped {
                reason: SkipReason {
                    name: "unsupported-kind",
                    sentence: "this kind has no pod template".into(),
                },
            });
        }
    };
    let mut mutated = object.clone();
    let containers = mutated
        .pointer_mut(&format!("{pointer}/containers"))
        .and_then(Value::as_array_mut)
        .ok_or_else(|| InjectError(format!("{pointer}/containers is not a list")))?;
    if containers
        .iter()
        .any(|c| c.get("name").and_then(Value::as_str) == Some("istio-proxy"))
    {
        return Ok(Outcome::Skipped {
            reason: SkipReason {
                name: "already-injected",
                sentence: "the pod already has an istio-proxy container".into(),
            },
        });
    }
    containers.push(serde_json::json!({"name": "istio-proxy", "image": "proxyv2"}));
    let patch = json_patch::diff(object, &mutated);
    Ok(Outcome::Injected {
        patch,
        mutated,
        decision: Decision {
            rule: "placeholder".into(),
        },
    })
}

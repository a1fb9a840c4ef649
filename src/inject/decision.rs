//! Whether a pod gets the sidecar, in the order of Istio's
//! `injectRequired`: host network, ignored namespaces, the pod's own
//! opt-in/opt-out (label, then annotation), the never/always selectors, the
//! namespace's labels (when known, as the webhook's namespace selector would
//! judge them), then the policy. Skips are values with stable names.

use std::collections::BTreeMap;

use super::annotations::INJECT;
use super::{InjectError, SkipReason};
use crate::config::{Policy, Settings};

/// Namespaces Istio never injects into.
pub const IGNORED_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

/// The rule that decided to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The pod's `sidecar.istio.io/inject=true` label.
    PodLabel,
    /// The pod's `sidecar.istio.io/inject=true` annotation.
    PodAnnotation,
    /// `alwaysInjectSelector` matched.
    AlwaysInjectSelector,
    /// The pod's `istio.io/rev` label names this revision, in a namespace
    /// with neither injection label (Istio's object-level revision
    /// selection).
    PodRevision,
    /// The policy is `enabled` and nothing opted out.
    Policy,
}

impl Rule {
    /// A sentence for `--output explain`.
    pub fn sentence(self) -> &'static str {
        match self {
            Rule::PodLabel => "the pod's label sidecar.istio.io/inject is \"true\"",
            Rule::PodAnnotation => "the pod's annotation sidecar.istio.io/inject is \"true\"",
            Rule::AlwaysInjectSelector => "the pod's labels match alwaysInjectSelector",
            Rule::PodRevision => "the pod's label istio.io/rev names this revision",
            Rule::Policy => "the injection policy is enabled and nothing opted the pod out",
        }
    }
}

/// What the caller knows about the namespace.
pub struct NamespaceView<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its labels, when known.
    pub labels: Option<&'a BTreeMap<String, String>>,
}

/// Decides for one pod.
pub fn decide(
    ns: &NamespaceView,
    host_network: bool,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    s: &Settings,
) -> Result<Result<Rule, SkipReason>, InjectError> {
    if host_network {
        return Ok(Err(SkipReason::new(
            "host-network",
            "the pod uses the host's network (hostNetwork: true), which the sidecar cannot capture",
        )));
    }
    if IGNORED_NAMESPACES.contains(&ns.name) {
        return Ok(Err(SkipReason::new(
            "ignored-namespace",
            format!(
                "namespace {} is a Kubernetes system namespace that is never injected",
                ns.name
            ),
        )));
    }
    // The label wins over the annotation, as in Istio; a value other than
    // true/false is as if neither were set (see [`inject_value_warning`]).
    let explicit = match (labels.get(INJECT), annotations.get(INJECT)) {
        (Some(v), _) => parse_inject(v).map(|b| (b, Rule::PodLabel)),
        (None, Some(v)) => parse_inject(v).map(|b| (b, Rule::PodAnnotation)),
        (None, None) => None,
    };
    let mut decided = match explicit {
        Some((false, Rule::PodLabel)) => {
            return Ok(Err(SkipReason::new(
                "pod-label-opt-out",
                "the pod's label sidecar.istio.io/inject is \"false\"",
            )));
        }
        Some((false, _)) => {
            return Ok(Err(SkipReason::new(
                "pod-annotation-opt-out",
                "the pod's annotation sidecar.istio.io/inject is \"false\"",
            )));
        }
        Some((true, rule)) => Some(rule),
        None => None,
    };
    if decided.is_none() {
        if s.never_inject.iter().any(|sel| sel.matches(labels)) {
            return Ok(Err(SkipReason::new(
                "never-inject-selector",
                "the pod's labels match neverInjectSelector",
            )));
        }
        if s.always_inject.iter().any(|sel| sel.matches(labels)) {
            decided = Some(Rule::AlwaysInjectSelector);
        }
    }
    if let Some(ns_labels) = ns.labels {
        let rev = if s.revision.is_empty() {
            "default"
        } else {
            &s.revision
        };
        match (
            ns_labels.get("istio-injection").map(String::as_str),
            ns_labels.get("istio.io/rev"),
        ) {
            (Some("disabled"), _) => {
                return Ok(Err(SkipReason::new(
                    "namespace-disabled",
                    format!(
                        "namespace {} has the label istio-injection=disabled",
                        ns.name
                    ),
                )));
            }
            (Some("enabled"), _) => {}
            (None, Some(r)) if r != rev => {
                return Ok(Err(SkipReason::new(
                    "other-revision",
                    format!(
                        "namespace {} selects revision {r:?} with istio.io/rev, not {rev:?}",
                        ns.name
                    ),
                )));
            }
            (None, Some(_)) => {}
            // A pod that names another revision is that revision's (in
            // Istio, only its webhooks select the pod).
            _ if labels.get("istio.io/rev").is_some_and(|r| r != rev) => {
                return Ok(Err(SkipReason::new(
                    "other-revision",
                    format!(
                        "the pod's label istio.io/rev selects revision {:?}, not {rev:?}",
                        labels["istio.io/rev"]
                    ),
                )));
            }
            _ if s.enable_namespaces_by_default => {}
            _ if labels.get("istio.io/rev").is_some_and(|r| r == rev) => {
                // Istio's object-level revision selection.
                decided.get_or_insert(Rule::PodRevision);
            }
            _ => {
                if decided != Some(Rule::PodLabel) {
                    return Ok(Err(SkipReason::new(
                        "namespace-not-enabled",
                        format!(
                            "namespace {} has neither istio-injection=enabled nor istio.io/rev, and the pod has no sidecar.istio.io/inject=true label",
                            ns.name
                        ),
                    )));
                }
            }
        }
    }
    match decided {
        Some(rule) => Ok(Ok(rule)),
        None if s.policy == Policy::Enabled => Ok(Ok(Rule::Policy)),
        None => Ok(Err(SkipReason::new(
            "policy-disabled",
            "the injection policy is disabled and the pod did not opt in",
        ))),
    }
}

fn parse_inject(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The warning for a pod whose `sidecar.istio.io/inject` (the label, else
/// the annotation: the one that decides) is neither `true` nor `false`.
/// Istio logs "Only 'true' and 'false' are accepted. Falling back to
/// default injection policy" and injects as the namespace says; so does
/// outrigger, and the webhook returns this as an AdmissionReview warning
/// (kubectl prints it), the CLI on stderr.
pub fn inject_value_warning(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Option<String> {
    let (what, value) = match (labels.get(INJECT), annotations.get(INJECT)) {
        (Some(v), _) => ("label", v),
        (None, Some(v)) => ("annotation", v),
        (None, None) => return None,
    };
    parse_inject(value).is_none().then(|| {
        format!(
            "the pod's {what} {INJECT} is {value:?}: only \"true\" and \"false\" are accepted; falling back to the namespace's injection policy, as Istio does"
        )
    })
}

//! THE ENGINE: decides whether an object gets the sidecar, renders what is
//! added (following Istio's injection template), merges it into the pod,
//! post-processes it, and computes the JSON patch by diffing. Pure: no IO,
//! no async. The CLI preview and the tests call [`inject`]; the webhook calls
//! [`inject_patch`], which is [`inject`] with the patch written as JSON text:
//! one path from decision to patch, so that what the preview shows is what
//! the webhook does. An object an earlier injection marked (its status
//! record) is uninjected first ([`uninject`]) and injected again: the same
//! result is `already-injected`, another is a re-injection.
//!
//! See Istio's `pkg/kube/inject` for the behaviour this reproduces.
//!
//! Dependencies: `config`, and the pure argument parser of [`crate::iptables`]
//! (with `config.trafficCapture: outrigger`, the capture flags are checked by
//! the very parser `outrigger iptables` uses, so that no pod is given an init
//! container that would refuse its own arguments). Nothing here does IO.

mod annotations;
pub mod bounded_yaml;
mod capture;
mod cni;
mod decision;
mod fragments;
mod gateway;
mod gojson;
mod grpc;
mod inputs;
mod kubeform;
mod merge;
mod node;
mod order;
mod patch;
mod pipeline;
mod probes;
mod prometheus;
mod proxy;
pub mod quantity;
mod refusals;
mod sidecar;
mod status;
mod templates;
mod uninject;
mod workload;

use std::collections::BTreeMap;

use serde_json::Value;
use tracing::debug;

use crate::config::Config;
pub use decision::{IGNORED_NAMESPACES, Rule};
pub(crate) use inputs::canonical_resources;
pub use kubeform::kube_inject_form;
pub use workload::pod_location;

/// What the caller knows about where the object is being admitted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    /// The namespace the object is admitted into (the admission request's, or
    /// `--namespace`). `None` means "the object's own, else `default`".
    pub namespace: Option<String>,
    /// The namespace's labels, when the caller knows them.
    pub namespace_labels: Option<BTreeMap<String, String>>,
}

/// What injection adds, by name (for `--output explain` and logs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Added {
    /// Init containers added (including a native-sidecar proxy).
    pub init_containers: Vec<String>,
    /// Containers added.
    pub containers: Vec<String>,
    /// Volumes added.
    pub volumes: Vec<String>,
    /// Image pull secrets added.
    pub image_pull_secrets: Vec<String>,
}

/// Why injection happened, and what it added.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The rule, in a sentence.
    pub rule: String,
    /// The rule's stable kebab-case name: `pod-label`, `pod-annotation`,
    /// `always-inject-selector`, `pod-revision-label`, `policy`, or `list`
    /// for a `kind: List`.
    pub rule_name: &'static str,
    /// What was added (empty for a `kind: List`: see `items`).
    pub added: Added,
    /// For a `kind: List`: each item's outcome, in order.
    pub items: Vec<ItemOutcome>,
    /// For an object an earlier injection made under another
    /// configuration: what re-injecting it changes, briefly (e.g.
    /// `proxy image docker.io/istio/proxyv2:1.26.0 -> 1.28.0`).
    pub reinjected: Option<String>,
    /// What the API server will refuse in the injected pod, in sentences
    /// that say why and what to change (see [`refusals`]). Injection still
    /// gives what Istio gives; the webhook returns these as warnings.
    pub warnings: Vec<String>,
    /// The pod opted out (`rule_name` says how) of an injection an earlier
    /// configuration made: the patch removes what that injection added.
    pub removed: bool,
}

impl Decision {
    /// Its warnings and, for a `kind: List`, its items', each item's
    /// prefixed with its index.
    pub fn all_warnings(&self) -> Vec<String> {
        let items = self
            .items
            .iter()
            .enumerate()
            .flat_map(|(i, item)| match item {
                ItemOutcome::Injected(d) => d
                    .all_warnings()
                    .into_iter()
                    .map(|w| format!("List item {i}: {w}"))
                    .collect(),
                ItemOutcome::Skipped(_) => Vec::new(),
            });
        self.warnings.iter().cloned().chain(items).collect()
    }
}

/// The outcome of one item of a `kind: List`.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    /// The item was injected.
    Injected(Decision),
    /// The item was left alone.
    Skipped(SkipReason),
}

/// Every skip reason's stable name, in the order the engine checks them
/// (so that metrics can be registered up front).
pub const SKIP_REASONS: &[&str] = &[
    "unsupported-kind",
    "empty-list",
    "nothing-injected",
    "host-network",
    "ignored-namespace",
    "pod-label-opt-out",
    "pod-annotation-opt-out",
    "never-inject-selector",
    "namespace-disabled",
    "other-revision",
    "namespace-not-enabled",
    "policy-disabled",
    "already-injected",
    "controlled-by-owner",
];

/// Why an object was left alone. Skips are values, not errors.
#[derive(Debug, Clone, PartialEq)]
pub struct SkipReason {
    name: &'static str,
    sentence: String,
}

impl SkipReason {
    /// A skip with its stable name and sentence.
    pub fn new(name: &'static str, sentence: impl Into<String>) -> SkipReason {
        debug_assert!(SKIP_REASONS.contains(&name), "unlisted skip reason {name}");
        SkipReason {
            name,
            sentence: sentence.into(),
        }
    }
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
// One per admission, returned once and matched at once: boxing the
// injected side would add an allocation and change nothing a user feels.
#[allow(clippy::large_enum_variant)]
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
/// The message names the thing, the value and the accepted form.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InjectError(pub String);

impl InjectError {
    /// An invalid annotation value.
    pub fn annotation(name: &str, value: &str, form: &str) -> InjectError {
        InjectError(format!(
            "invalid value {value:?} for annotation {name}: expected {form}"
        ))
    }
}

/// A string-to-string map from a JSON object (non-string values are
/// written as JSON).
pub(crate) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), sidecar::scalar_string(v)))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `object` without what an earlier injection added, as its status record
/// (`sidecar.istio.io/status`) names it (each item of a `kind: List`
/// likewise), or `None` when nothing in it carries a status record. What
/// `outrigger uninject` prints; re-injection starts from the same.
pub fn uninject(object: &Value, cfg: &Config) -> Option<Value> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind == "List" {
        let mut out = object.clone();
        let mut any = false;
        if let Some(Value::Array(items)) = out.get_mut("items") {
            for item in items.iter_mut() {
                if let Some(plain) = uninject(item, cfg) {
                    *item = plain;
                    any = true;
                }
            }
        }
        return any.then_some(out);
    }
    let (meta_ptr, spec_ptr) = pod_location(kind)?;
    let mut pod = serde_json::json!({
        "metadata": at(object, meta_ptr).cloned().unwrap_or(Value::Null),
        "spec": at(object, spec_ptr)?.clone(),
    });
    let namespace = at(object, "/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let workload = workload::Workload::of(object, namespace);
    uninject::uninject_pod(&mut pod, &workload, cfg.settings())?;
    let mut out = clone_without(object, &[meta_ptr, spec_ptr]);
    let metadata = pod["metadata"].take();
    if metadata.as_object().is_some_and(|m| !m.is_empty()) || meta_ptr == "/metadata" {
        set_pointer(&mut out, meta_ptr, metadata);
    } else if let Some((parent, key)) = meta_ptr.rsplit_once('/')
        && let Some(Value::Object(m)) = at_mut(&mut out, parent)
    {
        // Injection made the template's metadata; without it, it goes.
        m.remove(key);
    }
    set_pointer(&mut out, spec_ptr, pod["spec"].take());
    Some(out)
}

/// Warnings about `object` that do not stop injection (for each item of
/// a `kind: List`, prefixed with its index): a `sidecar.istio.io/inject`
/// value other than true/false, which falls back to the namespace's
/// policy as in Istio. The webhook returns them as AdmissionReview
/// `warnings`; the CLI prints them on stderr.
pub fn warnings(object: &Value) -> Vec<String> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind == "List" {
        return object
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .flat_map(|(i, item)| {
                warnings(item)
                    .into_iter()
                    .map(move |w| format!("List item {i}: {w}"))
            })
            .collect();
    }
    let Some(meta) = pod_location(kind).and_then(|(meta_ptr, _)| at(object, meta_ptr)) else {
        return Vec::new();
    };
    decision::inject_value_warning(
        &string_map(meta.get("labels")),
        &string_map(meta.get("annotations")),
    )
    .into_iter()
    .collect()
}

/// Injects the sidecar into `object` (any supported kind, or a `kind: List`
/// of them), or says why not.
pub fn inject(object: &Value, ctx: &Context, cfg: &Config) -> Result<Outcome, InjectError> {
    if object.get("kind").and_then(Value::as_str) == Some("List") {
        return inject_list(object, ctx, cfg);
    }
    Ok(match inject_one(object, ctx, cfg)? {
        Prepared::Skipped(reason) => Outcome::Skipped { reason },
        Prepared::Injected { pod, decision } => {
            let mutated = pod.into_object(object);
            Outcome::Injected {
                patch: patch::diff(object, &mutated),
                mutated,
                decision,
            }
        }
    })
}

/// The engine's answer when only the patch is wanted.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOutcome {
    /// The object gets the sidecar.
    Injected {
        /// The JSON text of the RFC 6902 operations that inject the object:
        /// `serde_json::to_vec` of [`inject`]'s patch.
        patch: Vec<u8>,
        /// Why.
        decision: Decision,
    },
    /// The object is left as it is.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
}

/// [`inject`] for callers that need only the patch's text (the webhook):
/// the same decision and the same patch, by the same code.
pub fn inject_patch(
    object: &Value,
    ctx: &Context,
    cfg: &Config,
) -> Result<PatchOutcome, InjectError> {
    Ok(match inject(object, ctx, cfg)? {
        Outcome::Injected {
            patch, decision, ..
        } => PatchOutcome::Injected {
            // Serializing a patch of strings, numbers and objects cannot fail.
            patch: serde_json::to_vec(&patch).unwrap_or_default(),
            decision,
        },
        Outcome::Skipped { reason } => PatchOutcome::Skipped { reason },
    })
}

/// One object (not a List), injected but not yet diffed.
enum Prepared {
    Injected {
        pod: Box<InjectedPod>,
        decision: Decision,
    },
    Skipped(SkipReason),
}

/// The injected pod template of an object, and where it goes.
struct InjectedPod {
    metadata: Value,
    spec: Value,
    meta_ptr: &'static str,
    spec_ptr: &'static str,
}

impl InjectedPod {
    /// The whole injected object: `object` with this pod template.
    fn into_object(self, object: &Value) -> Value {
        let mut mutated = clone_without(object, &[self.meta_ptr, self.spec_ptr]);
        set_pointer(&mut mutated, self.meta_ptr, self.metadata);
        set_pointer(&mut mutated, self.spec_ptr, self.spec);
        mutated
    }
}

/// A copy of `v` without the subtrees at `skip` (engine constants, see
/// [`at`]), which are left `null` (or absent, if they were).
fn clone_without(v: &Value, skip: &[&str]) -> Value {
    let rests: Vec<&str> = skip.iter().map(|p| p.trim_start_matches('/')).collect();
    clone_skipping(v, &rests)
}

fn clone_skipping(v: &Value, skip: &[&str]) -> Value {
    if skip.is_empty() {
        return v.clone();
    }
    if skip.iter().any(|p| p.is_empty()) {
        return Value::Null;
    }
    let Value::Object(map) = v else {
        return v.clone();
    };
    let copy = map
        .iter()
        .map(|(k, child)| {
            let below: Vec<&str> = skip
                .iter()
                .filter_map(|p| match p.split_once('/') {
                    Some((head, rest)) if head == k => Some(rest),
                    None if p == k => Some(""),
                    _ => None,
                })
                .collect();
            (k.clone(), clone_skipping(child, &below))
        })
        .collect();
    Value::Object(copy)
}

/// An object that gets the sidecar, before anything is rendered: where its
/// pod is, what its metadata says, and the rule that selected it.
pub(crate) struct Candidate<'o> {
    /// The pod metadata's pointer in the object.
    meta_ptr: &'static str,
    /// The pod spec's pointer in the object.
    spec_ptr: &'static str,
    /// The pod spec.
    spec: &'o Value,
    /// The pod's labels.
    labels: BTreeMap<String, String>,
    /// The pod's annotations.
    annotations: BTreeMap<String, String>,
    /// The owning workload.
    workload: workload::Workload,
    /// Why it is injected.
    rule: Rule,
}

impl Candidate<'_> {
    /// The decision, once injected.
    fn decision(&self, status: status::Status) -> Decision {
        Decision {
            rule: self.rule.sentence().to_string(),
            rule_name: match self.rule {
                Rule::PodLabel => "pod-label",
                Rule::PodAnnotation => "pod-annotation",
                Rule::AlwaysInjectSelector => "always-inject-selector",
                Rule::PodRevision => "pod-revision-label",
                Rule::Policy => "policy",
            },
            added: Added {
                init_containers: status.init_containers,
                containers: status.containers,
                volumes: status.volumes,
                image_pull_secrets: status.image_pull_secrets,
            },
            items: Vec::new(),
            reinjected: None,
            warnings: Vec::new(),
            removed: false,
        }
    }
}

/// Decides whether one object (not a List) gets the sidecar.
fn candidate<'o>(
    object: &'o Value,
    ctx: &Context,
    cfg: &Config,
) -> Result<Result<Candidate<'o>, SkipReason>, InjectError> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(why) = workload::unsupported(object, api_version, kind) {
        return Ok(Err(SkipReason::new("unsupported-kind", why)));
    }
    let Some((meta_ptr, spec_ptr)) = pod_location(kind) else {
        return Ok(Err(SkipReason::new(
            "unsupported-kind",
            format!("kind {kind} has no pod template"),
        )));
    };
    if let Some(why) = workload::controlled(object, kind) {
        return Ok(Err(SkipReason::new("controlled-by-owner", why)));
    }
    let Some(spec) = at(object, spec_ptr).filter(|p| p.is_object()) else {
        return Err(InjectError(format!(
            "{kind} has no pod spec at {spec_ptr}: expected an object there"
        )));
    };
    let empty_meta = Value::Object(Default::default());
    let meta = match at(object, meta_ptr) {
        None | Some(Value::Null) => &empty_meta,
        Some(m @ Value::Object(_)) => m,
        Some(other) => {
            return Err(InjectError(format!(
                "{kind}: {meta_ptr} is {other}: expected an object"
            )));
        }
    };
    check_shape(meta, spec, kind)?;
    let s = cfg.settings();
    let namespace = namespace_of(object, ctx);
    let labels = string_map(meta.get("labels"));
    let annotations = string_map(meta.get("annotations"));
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let view = decision::NamespaceView {
        name: &namespace,
        labels: ctx.namespace_labels.as_ref(),
    };
    let rule = match decision::decide(&view, host_network, &labels, &annotations, s)? {
        Ok(rule) => rule,
        Err(reason) => {
            debug!(namespace = %namespace, kind, reason = reason.name(), "skipped");
            return Ok(Err(reason));
        }
    };
    debug!(namespace = %namespace, kind, rule = ?rule, "selected for injection");
    Ok(Ok(Candidate {
        meta_ptr,
        spec_ptr,
        spec,
        labels,
        annotations,
        workload: workload::Workload::of(object, &namespace),
        rule,
    }))
}

/// The object's namespace: the request's, else its own, else `default`.
fn namespace_of(object: &Value, ctx: &Context) -> String {
    ctx.namespace
        .clone()
        .or_else(|| {
            at(object, "/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "default".into())
}

fn inject_one(object: &Value, ctx: &Context, cfg: &Config) -> Result<Prepared, InjectError> {
    match candidate(object, ctx, cfg)? {
        Ok(candidate) => inject_candidate(object, candidate, cfg),
        Err(reason)
            if matches!(
                reason.name(),
                "pod-label-opt-out" | "pod-annotation-opt-out"
            ) =>
        {
            remove_opted_out(object, ctx, cfg, reason)
        }
        Err(reason) => Ok(Prepared::Skipped(reason)),
    }
}

/// A pod template that opts out (`sidecar.istio.io/inject: "false"`) but
/// still carries an earlier injection loses it: in Istio, where only pods
/// are injected, the opt-out gives the next pods no sidecar, and so it does
/// here. Seen on a real API server before this: a Deployment's template
/// annotated to opt out kept its sidecar in every new pod. Anything else
/// is the skip it was.
fn remove_opted_out(
    object: &Value,
    ctx: &Context,
    cfg: &Config,
    reason: SkipReason,
) -> Result<Prepared, InjectError> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let Some((meta_ptr, spec_ptr)) = pod_location(kind) else {
        return Ok(Prepared::Skipped(reason));
    };
    let (Some(metadata), Some(spec)) = (at(object, meta_ptr), at(object, spec_ptr)) else {
        return Ok(Prepared::Skipped(reason));
    };
    if uninject::status_of(metadata).is_none() {
        return Ok(Prepared::Skipped(reason));
    }
    let mut pod = serde_json::json!({"metadata": metadata, "spec": spec});
    let workload = workload::Workload::of(object, &namespace_of(object, ctx));
    uninject::uninject_pod(&mut pod, &workload, cfg.settings());
    Ok(Prepared::Injected {
        decision: Decision {
            rule: reason.sentence().to_string(),
            rule_name: reason.name(),
            added: Added::default(),
            items: Vec::new(),
            reinjected: None,
            warnings: Vec::new(),
            removed: true,
        },
        pod: Box::new(InjectedPod {
            metadata: pod["metadata"].take(),
            spec: pod["spec"].take(),
            meta_ptr,
            spec_ptr,
        }),
    })
}

/// Injects a candidate. An object an earlier injection marked (its status
/// record) is first uninjected, then injected as if for the first time;
/// when that gives what it already has, it is `already-injected`, else it
/// is re-injected, and the decision says what changes.
fn inject_candidate(object: &Value, c: Candidate, cfg: &Config) -> Result<Prepared, InjectError> {
    // A copy of the pod template only, injected in place; the rest of the
    // object is never changed.
    let mut pod_map = serde_json::Map::new();
    pod_map.insert(
        "metadata".into(),
        match at(object, c.meta_ptr) {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(m) => m.clone(),
        },
    );
    pod_map.insert("spec".into(), c.spec.clone());
    let mut pod = Value::Object(pod_map);
    let current = uninject::status_of(&pod["metadata"]).map(|_| pod.clone());
    let previous = uninject::uninject_pod(&mut pod, &c.workload, cfg.settings());
    // What the template sees: the pod without the earlier injection.
    let base = previous.as_ref().map(|_| {
        (
            string_map(at(&pod, "/metadata/annotations")),
            string_map(at(&pod, "/metadata/labels")),
            pod["spec"].clone(),
        )
    });
    let (annotations, labels, spec) = match &base {
        Some((annotations, labels, spec)) => (annotations, labels, spec),
        None => (&c.annotations, &c.labels, c.spec),
    };
    let status = pipeline::inject_pod(
        annotations,
        labels,
        spec,
        &mut pod,
        &c.workload,
        cfg.settings(),
    )?;
    let mut decision = c.decision(status.clone());
    decision.warnings = refusals::of(&pod["spec"], annotations);
    if let (Some(previous), Some(current)) = (previous, current) {
        if uninject::covers(&current, &pod) {
            return Ok(Prepared::Skipped(SkipReason::new(
                "already-injected",
                "the pod's sidecar.istio.io/status annotation records an injection that gives what injecting now would",
            )));
        }
        decision.reinjected = Some(uninject::changes(&current, &previous, &pod, &status));
    }
    Ok(Prepared::Injected {
        decision,
        pod: Box::new(InjectedPod {
            metadata: pod["metadata"].take(),
            spec: pod["spec"].take(),
            meta_ptr: c.meta_ptr,
            spec_ptr: c.spec_ptr,
        }),
    })
}

/// `Value::pointer` for the engine's own constant pointers (object keys
/// only, no `~` escapes): serde_json's allocates two strings per step.
pub(crate) fn at<'a>(v: &'a Value, ptr: &str) -> Option<&'a Value> {
    ptr.split('/')
        .skip(1)
        .try_fold(v, |node, key| node.get(key))
}

/// `Value::pointer_mut` for the engine's own constant pointers (see [`at`]).
pub(crate) fn at_mut<'a>(v: &'a mut Value, ptr: &str) -> Option<&'a mut Value> {
    ptr.split('/')
        .skip(1)
        .try_fold(v, |node, key| node.get_mut(key))
}

/// Sets the value at `ptr`, creating the last key when absent (its parent
/// exists: the pod spec was found under it).
fn set_pointer(doc: &mut Value, ptr: &str, value: Value) {
    if let Some(slot) = at_mut(doc, ptr) {
        *slot = value;
        return;
    }
    if let Some((parent, key)) = ptr.rsplit_once('/')
        && let Some(Value::Object(m)) = at_mut(doc, parent)
    {
        m.insert(key.to_string(), value);
    }
}

/// Rejects pod templates whose lists are not lists, before anything is
/// rendered.
fn check_shape(meta: &Value, spec: &Value, kind: &str) -> Result<(), InjectError> {
    for field in ["containers", "initContainers", "volumes"] {
        match spec.get(field) {
            None | Some(Value::Null) | Some(Value::Array(_)) => {}
            Some(other) => {
                return Err(InjectError(format!(
                    "{kind}: spec.{field} is {other}: expected a list"
                )));
            }
        }
    }
    for field in ["labels", "annotations"] {
        match meta.get(field) {
            None | Some(Value::Null) | Some(Value::Object(_)) => {}
            Some(other) => {
                return Err(InjectError(format!(
                    "{kind}: metadata.{field} is {other}: expected a mapping of strings"
                )));
            }
        }
    }
    Ok(())
}

fn inject_list(object: &Value, ctx: &Context, cfg: &Config) -> Result<Outcome, InjectError> {
    let Some(items) = object.get("items").and_then(Value::as_array) else {
        return Ok(Outcome::Skipped {
            reason: SkipReason::new("empty-list", "the List has no items"),
        });
    };
    let mut mutated = object.clone();
    let mut outcomes = Vec::with_capacity(items.len());
    let mut any = false;
    for (i, item) in items.iter().enumerate() {
        let outcome =
            inject(item, ctx, cfg).map_err(|e| InjectError(format!("List item {i}: {e}")))?;
        match outcome {
            Outcome::Injected {
                mutated: m,
                decision,
                ..
            } => {
                mutated["items"][i] = m;
                any = true;
                outcomes.push(ItemOutcome::Injected(decision));
            }
            Outcome::Skipped { reason } => outcomes.push(ItemOutcome::Skipped(reason)),
        }
    }
    if !any {
        return Ok(Outcome::Skipped {
            reason: SkipReason::new("nothing-injected", "no item of the List gets the sidecar"),
        });
    }
    let patch = patch::diff(object, &mutated);
    let count = |removed: bool| {
        outcomes
            .iter()
            .filter(|o| matches!(o, ItemOutcome::Injected(d) if d.removed == removed))
            .count()
    };
    let mut rule = format!(
        "{} of {} List items get the sidecar",
        count(false),
        items.len()
    );
    if count(true) > 0 {
        rule.push_str(&format!(
            ", {} lose an earlier one (they opt out)",
            count(true)
        ));
    }
    Ok(Outcome::Injected {
        patch,
        mutated,
        decision: Decision {
            rule,
            rule_name: "list",
            added: Added::default(),
            items: outcomes,
            reinjected: None,
            warnings: Vec::new(),
            removed: false,
        },
    })
}

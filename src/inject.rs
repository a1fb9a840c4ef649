//! THE ENGINE: decides whether an object gets the sidecar, renders what is
//! added (following Istio's injection template), merges it into the pod,
//! post-processes it, and computes the JSON patch by diffing. Pure: no IO,
//! no async. The CLI preview and the tests call [`inject`]; the webhook calls
//! [`inject_patch`], which gives the patch's JSON text: a first injection is
//! written straight into it by the direct path (`direct`), anything else
//! by the same engine without keeping the injected object. The invariants
//! and mutation tests check that both give `inject`'s patch, byte for byte.
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
mod compiled;
mod decision;
mod direct;
mod fragments;
mod gojson;
mod inputs;
mod kubeform;
mod merge;
mod node;
mod order;
mod patch;
mod patch_json;
mod pipeline;
mod probes;
mod prometheus;
mod proxy;
pub mod quantity;
mod sidecar;
mod status;
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
    /// `always-inject-selector`, `policy`, or `list` for a `kind: List`.
    pub rule_name: &'static str,
    /// What was added (empty for a `kind: List`: see `items`).
    pub added: Added,
    /// For a `kind: List`: each item's outcome, in order.
    pub items: Vec<ItemOutcome>,
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
        /// byte for byte what `serde_json::to_vec` gives for [`inject`]'s
        /// patch.
        patch: Vec<u8>,
        /// Why.
        decision: Decision,
        /// Which path wrote the patch: for tests and benchmarks, which
        /// check that each is taken.
        path: PatchPath,
    },
    /// The object is left as it is.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
}

/// Which path of [`inject_patch`] wrote a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchPath {
    /// The Value engine (a re-injection, the user's own injected
    /// containers, a `kind: List`, unusual lists).
    Engine,
    /// The direct path, with the template rendered for the pod (a pod
    /// with tuning annotations).
    Rendered,
    /// The direct path, with the configuration's compiled template.
    Compiled,
}

/// Does ahead of time what [`inject_patch`] would otherwise do on its first
/// call with `cfg`: compile the configuration's template. For the webhook,
/// when a configuration is loaded, so that no admission pays for it.
pub fn prepare(cfg: &Config) {
    compiled::of_config(cfg);
}

/// [`inject`] for callers that need only the patch's text (the webhook):
/// the same decision and the same patch, without keeping the injected
/// object. A first injection is written straight into the patch's text
/// ([`direct`]); anything else goes through the Value engine, whose
/// injected parts are moved into the patch rather than copied.
pub fn inject_patch(
    object: &Value,
    ctx: &Context,
    cfg: &Config,
) -> Result<PatchOutcome, InjectError> {
    if object.get("kind").and_then(Value::as_str) == Some("List") {
        return Ok(match inject_list(object, ctx, cfg)? {
            Outcome::Injected {
                patch, decision, ..
            } => PatchOutcome::Injected {
                patch: patch_json::patch_to_vec(&patch),
                decision,
                path: PatchPath::Engine,
            },
            Outcome::Skipped { reason } => PatchOutcome::Skipped { reason },
        });
    }
    let candidate = match candidate(object, ctx, cfg)? {
        Ok(candidate) => candidate,
        Err(reason) => return Ok(PatchOutcome::Skipped { reason }),
    };
    if let Some(direct) = direct::patch(object, &candidate, cfg)? {
        return Ok(PatchOutcome::Injected {
            patch: direct.patch,
            decision: candidate.decision(direct.status),
            path: if direct.compiled {
                PatchPath::Compiled
            } else {
                PatchPath::Rendered
            },
        });
    }
    Ok(match inject_candidate(object, candidate, cfg)? {
        Prepared::Skipped(reason) => PatchOutcome::Skipped { reason },
        Prepared::Injected { pod, decision } => PatchOutcome::Injected {
            patch: patch_json::patch_to_vec(&pod.into_patch(object)),
            decision,
            path: PatchPath::Engine,
        },
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

    /// The patch that injects `object`, in the order a diff of the whole
    /// object gives: the template's metadata before its spec, unless the
    /// metadata is new (added keys come after the existing ones).
    fn into_patch(self, object: &Value) -> json_patch::Patch {
        let mut ops = Vec::new();
        let original_meta = at(object, self.meta_ptr);
        let meta = (self.meta_ptr, original_meta, self.metadata);
        let spec = (self.spec_ptr, at(object, self.spec_ptr), self.spec);
        let (first, second) = if original_meta.is_some() {
            (meta, spec)
        } else {
            (spec, meta)
        };
        for (pointer, original, injected) in [first, second] {
            patch::diff_into_at(pointer, original, injected, &mut ops);
        }
        json_patch::Patch(ops)
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
                Rule::Policy => "policy",
            },
            added: Added {
                init_containers: status.init_containers,
                containers: status.containers,
                volumes: status.volumes,
                image_pull_secrets: status.image_pull_secrets,
            },
            items: Vec::new(),
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
    let Some((meta_ptr, spec_ptr)) = pod_location(kind) else {
        return Ok(Err(SkipReason::new(
            "unsupported-kind",
            if kind.is_empty() {
                "the object has no kind, so it has no pod template".to_string()
            } else {
                format!("kind {kind} has no pod template")
            },
        )));
    };
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
    let namespace = ctx
        .namespace
        .clone()
        .or_else(|| {
            at(object, "/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "default".into());
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

fn inject_one(object: &Value, ctx: &Context, cfg: &Config) -> Result<Prepared, InjectError> {
    match candidate(object, ctx, cfg)? {
        Ok(candidate) => inject_candidate(object, candidate, cfg),
        Err(reason) => Ok(Prepared::Skipped(reason)),
    }
}

/// Injects a candidate through the Value engine.
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
    let outcome = pipeline::inject_pod(
        &c.annotations,
        &c.labels,
        c.spec,
        &mut pod,
        &c.workload,
        cfg.settings(),
    )?;
    let status = match outcome {
        pipeline::PodOutcome::Injected(status) => status,
        pipeline::PodOutcome::AlreadyInjected => {
            return Ok(Prepared::Skipped(SkipReason::new(
                "already-injected",
                "the pod's sidecar.istio.io/status annotation already records this injection",
            )));
        }
    };
    Ok(Prepared::Injected {
        decision: c.decision(status),
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
    let count = outcomes
        .iter()
        .filter(|o| matches!(o, ItemOutcome::Injected(_)))
        .count();
    Ok(Outcome::Injected {
        patch,
        mutated,
        decision: Decision {
            rule: format!("{count} of {} List items get the sidecar", items.len()),
            rule_name: "list",
            added: Added::default(),
            items: outcomes,
        },
    })
}

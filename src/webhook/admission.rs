//! One admission review, from request bytes to response bytes, around the
//! engine. No HTTP and no IO here: the handler in [`crate::webhook`] reads the
//! body, calls [`admit`], logs and counts the [`Summary`], and writes the bytes.
//!
//! Implements the mutating side of Kubernetes' [dynamic admission control]:
//! `admission.k8s.io/v1` and `v1beta1` reviews are answered in the request's
//! own version, echoing its `uid`. Pods and Jobs (whose templates are
//! immutable) are injected on `CREATE`; other pod-owning workloads on
//! `CREATE` and `UPDATE` (so that editing a Deployment's template keeps its
//! sidecar), an `UPDATE` that leaves the pod template alone excepted;
//! everything else is allowed unchanged. `dryRun` requests
//! are answered identically: nothing here has side effects.
//!
//! The object is handed to the engine exactly as the API server sent it (a raw
//! JSON value, not a typed round trip), so that fields this build does not
//! know survive and the patch's paths match the API server's object.
//!
//! [dynamic admission control]: https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::StatusSummary;
use serde_json::Value;

use crate::config::Config;
use crate::inject::{self, Context, PatchOutcome};

/// The `apiVersion`s of `AdmissionReview` this webhook answers.
pub const SUPPORTED_VERSIONS: [&str; 2] = ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"];

/// Kinds that are injected, with their API groups and the operations that
/// inject them. The kind names double as the bounded `kind` metric label.
const INJECTED_KINDS: [(&str, &[&str], &[Operation]); 8] = [
    ("Pod", &[""], &[Operation::Create]),
    ("Deployment", APPS, CREATE_UPDATE),
    ("StatefulSet", APPS, CREATE_UPDATE),
    ("DaemonSet", APPS, CREATE_UPDATE),
    ("ReplicaSet", APPS, CREATE_UPDATE),
    // A Job's pod template is immutable: re-injecting an UPDATE after an
    // upgrade (a label, Kueue's `suspend`, a finalizer removed) would have
    // the API server refuse the update (seen on a real one).
    ("Job", &["batch"], &[Operation::Create]),
    ("CronJob", &["batch"], CREATE_UPDATE),
    ("ReplicationController", &[""], CREATE_UPDATE),
];
const APPS: &[&str] = &["apps", "extensions"];
const CREATE_UPDATE: &[Operation] = &[Operation::Create, Operation::Update];

/// The webhook's own skip reasons (besides the engine's
/// [`crate::inject::SKIP_REASONS`]): a kind it never injects, an operation
/// it does not inject on, a subresource, a review without an object, an
/// update that leaves the pod template as it was.
pub const WEBHOOK_SKIP_REASONS: [&str; 5] = [
    "ignored-kind",
    "ignored-operation",
    "subresource",
    "no-object",
    "template-unchanged",
];

/// A request body that is not an admission review this webhook can answer:
/// HTTP 400, with this message.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON at all.
    #[error("the request body is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not an object.
    #[error("the request body is not a JSON object: expected an AdmissionReview")]
    NotAnObject,
    /// Some other kind of object.
    #[error("the request body has kind {0}: expected kind \"AdmissionReview\"")]
    WrongKind(String),
    /// An `AdmissionReview` of a version this webhook does not speak.
    #[error(
        "the AdmissionReview has apiVersion {0}: expected \"admission.k8s.io/v1\" or \"admission.k8s.io/v1beta1\""
    )]
    WrongVersion(String),
    /// A review without a `request`.
    #[error("the AdmissionReview has no request")]
    MissingRequest,
    /// A `request` whose fields do not have the expected form.
    #[error("the AdmissionReview's request is malformed: {0}")]
    MalformedRequest(#[source] serde_json::Error),
    /// `request.object` is present but not a JSON object.
    #[error("the AdmissionReview's request.object is not a JSON object")]
    ObjectNotAnObject,
}

/// What happened to one review, for the log line and the metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Allowed with a patch adding the sidecar.
    Injected,
    /// Allowed with a patch replacing an earlier injection made under
    /// another configuration; what changes, briefly.
    Reinjected(String),
    /// Allowed with a patch removing an earlier injection from a pod (or
    /// template) that now opts out, for this reason (`pod-label-opt-out`,
    /// `pod-annotation-opt-out`).
    Removed(&'static str),
    /// Allowed unchanged, for this stable reason (the engine's skip names,
    /// plus `ignored-kind`, `ignored-operation`, `subresource`, `no-object`).
    Skipped(&'static str),
    /// Denied with this message (HTTP 200, `allowed: false`, code 400).
    Denied(String),
}

impl Verdict {
    /// One word for logs: `injected`, `reinjected`, `removed`, `skipped` or
    /// `denied`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Injected => "injected",
            Verdict::Reinjected(_) => "reinjected",
            Verdict::Removed(_) => "removed",
            Verdict::Skipped(_) => "skipped",
            Verdict::Denied(_) => "denied",
        }
    }
}

/// Who and what a review was about, and its verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The request's `uid`.
    pub uid: String,
    /// The request's kind (`request.kind.kind`).
    pub kind: String,
    /// The request's namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// The object's name, else its `generateName`, else empty.
    pub name: String,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: &'static str,
    /// Whether the API server will persist nothing.
    pub dry_run: bool,
    /// The answer.
    pub verdict: Verdict,
}

/// An answered review: the response body and what it said.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The serialized `AdmissionReview` response, in the request's version.
    pub body: Vec<u8>,
    /// For logging and metrics.
    pub summary: Summary,
}

/// Answers one `AdmissionReview` (request body bytes) with `config`.
pub fn admit(body: &[u8], config: &Config) -> Result<Admitted, ReviewError> {
    let mut doc: Value = serde_json::from_slice(body).map_err(ReviewError::NotJson)?;
    let top = doc.as_object_mut().ok_or(ReviewError::NotAnObject)?;
    match top.get("kind") {
        Some(Value::String(kind)) if kind == "AdmissionReview" => {}
        other => return Err(ReviewError::WrongKind(describe(other))),
    }
    match top.get("apiVersion") {
        Some(Value::String(v)) if SUPPORTED_VERSIONS.contains(&v.as_str()) => {}
        other => return Err(ReviewError::WrongVersion(describe(other))),
    }
    // Keep the object raw (lossless) and leave only the small envelope to the
    // typed parse; of the old object, only its pod template is compared.
    let request = match top.get_mut("request") {
        Some(Value::Object(request)) => request,
        None | Some(Value::Null) => return Err(ReviewError::MissingRequest),
        Some(_) => {
            return Err(ReviewError::MalformedRequest(serde::de::Error::custom(
                "request is not a JSON object",
            )));
        }
    };
    let object = request.remove("object").filter(|o| !o.is_null());
    let old_object = request.remove("oldObject").filter(|o| !o.is_null());
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_value(doc).map_err(ReviewError::MalformedRequest)?;
    let request: AdmissionRequest<DynamicObject> =
        review.try_into().map_err(|_| ReviewError::MissingRequest)?;
    if object.as_ref().is_some_and(|o| !o.is_object()) {
        return Err(ReviewError::ObjectNotAnObject);
    }

    let mut summary = Summary {
        uid: request.uid.clone(),
        kind: request.kind.kind.clone(),
        namespace: request.namespace.clone().unwrap_or_default(),
        name: object_name(&request, object.as_ref()),
        operation: operation_name(&request.operation),
        dry_run: request.dry_run,
        verdict: Verdict::Skipped("no-object"),
    };
    let mut response = AdmissionResponse::from(&request);
    let mut patch = None;
    summary.verdict = match (injects(&request), object) {
        (Err(reason), _) => Verdict::Skipped(reason),
        (Ok(()), None) => Verdict::Skipped("no-object"),
        (Ok(()), Some(object)) if template_unchanged(&object, old_object.as_ref()) => {
            Verdict::Skipped("template-unchanged")
        }
        (Ok(()), Some(object)) => {
            let ctx = Context {
                namespace: request.namespace.clone().filter(|ns| !ns.is_empty()),
                namespace_labels: None,
            };
            // Istio's value semantics: a bad sidecar.istio.io/inject value
            // is not a denial, but the user should hear of it (kubectl
            // prints AdmissionReview warnings).
            let mut warnings = inject::warnings(&object);
            let verdict = match inject::inject_patch(&object, &ctx, config) {
                Ok(PatchOutcome::Injected { patch: p, decision }) => {
                    // What the API server will refuse in the injected pod,
                    // said in a sentence that names the fix.
                    warnings.extend(decision.all_warnings());
                    patch = Some(p);
                    match (decision.removed, decision.reinjected) {
                        (true, _) => Verdict::Removed(decision.rule_name),
                        (false, Some(changes)) => Verdict::Reinjected(changes),
                        (false, None) => Verdict::Injected,
                    }
                }
                Ok(PatchOutcome::Skipped { reason }) => Verdict::Skipped(reason.name()),
                Err(err) => {
                    let message = err.to_string();
                    response = response.deny(&message);
                    response.result.code = 400;
                    response.result.status = Some(StatusSummary::Failure);
                    response.result.reason = "BadRequest".into();
                    Verdict::Denied(message)
                }
            };
            if !warnings.is_empty() {
                response.warnings = Some(warnings);
            }
            verdict
        }
    };
    let body = encode::encode_response(&response, patch.as_deref());
    Ok(Admitted { body, summary })
}

/// Why this request is not one to inject, if it is not.
fn injects(request: &AdmissionRequest<DynamicObject>) -> Result<(), &'static str> {
    let gvk = &request.kind;
    let Some((_, _, operations)) = INJECTED_KINDS
        .iter()
        .find(|(kind, groups, _)| *kind == gvk.kind && groups.contains(&gvk.group.as_str()))
    else {
        return Err("ignored-kind");
    };
    if request
        .sub_resource
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err("subresource");
    }
    if !operations.contains(&request.operation) {
        return Err("ignored-operation");
    }
    Ok(())
}

/// Whether an update leaves the workload's pod template as it was (a label,
/// the replica count, an annotation of the workload's own). Such an update
/// is not injected: re-injecting it after an upgrade would change the
/// template and so restart every pod for an edit that was not about them,
/// and a workload created before its namespace was selected would be
/// injected, and restarted, by its next unrelated update. The proxies
/// follow a new configuration when the template changes (`kubectl rollout
/// restart`, a new image), as in Istio, where pods change only when they
/// are created.
fn template_unchanged(object: &Value, old_object: Option<&Value>) -> bool {
    let Some(old) = old_object else {
        return false;
    };
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    inject::pod_location(kind).is_some_and(|(meta, spec)| {
        object.pointer(meta) == old.pointer(meta) && object.pointer(spec) == old.pointer(spec)
    })
}

/// The request kind as a bounded metric label: an injected kind's name, or
/// `other`.
pub fn kind_label(kind: &str) -> &'static str {
    INJECTED_KINDS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map_or("other", |(k, _, _)| k)
}

fn object_name(request: &AdmissionRequest<DynamicObject>, object: Option<&Value>) -> String {
    if !request.name.is_empty() {
        return request.name.clone();
    }
    let meta = object.and_then(|o| o.get("metadata"));
    ["name", "generateName"]
        .iter()
        .find_map(|key| meta.and_then(|m| m.get(*key)).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}

fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

fn describe(value: Option<&Value>) -> String {
    match value {
        None => "none".into(),
        Some(other) => other.to_string(),
    }
}

mod encode;

#[cfg(test)]
mod tests;

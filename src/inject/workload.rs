//! Where the pod lives in each supported kind, and which workload owns it
//! (Istio's "deployment meta": `ISTIO_META_WORKLOAD_NAME`, `ISTIO_META_OWNER`,
//! the canonical-name fallback).

use serde_json::Value;

use super::at;

/// Where the pod's metadata and spec live inside an object of `kind`
/// (JSON pointers), or `None` when the kind has no pod template.
///
/// For a CronJob the metadata is its pod template's
/// (`spec.jobTemplate.spec.template.metadata`), which the CronJob
/// controller copies into each Job's pod template and the Job controller
/// into each pod: the status record is seen at every level, so the Job and
/// its pods are recognised as injected. `istioctl kube-inject` puts it on
/// `spec.jobTemplate.metadata`, which only the Job's own metadata gets, and
/// the Job's pods are then injected a second time.
pub fn pod_location(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "Pod" => Some(("/metadata", "/spec")),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job"
        | "DeploymentConfig" => Some(("/spec/template/metadata", "/spec/template/spec")),
        "CronJob" => Some((
            "/spec/jobTemplate/spec/template/metadata",
            "/spec/jobTemplate/spec/template/spec",
        )),
        _ => None,
    }
}

/// The apiVersions of OpenShift's DeploymentConfig `istioctl kube-inject`
/// knows: the `apps.openshift.io` group, and the legacy core group's `v1`
/// that older OpenShift manifests use.
pub const DEPLOYMENT_CONFIG_VERSIONS: [&str; 2] = ["apps.openshift.io/v1", "v1"];

/// The kinds injection supports, for the sentence of a skip.
const SUPPORTED: &str = "Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, \
     ReplicationController, Job, CronJob and OpenShift's DeploymentConfig";

/// Why an object of `kind` (and `api_version`) is not injected, in a
/// sentence, or `None` when injection knows where its pod template is. A
/// kind Istio does not know is passed through unchanged by `istioctl
/// kube-inject` even when it has a pod template (an Argo Rollout's
/// `spec.template`); its pods are injected when they are created.
pub fn unsupported(object: &Value, api_version: &str, kind: &str) -> Option<String> {
    if kind.is_empty() {
        return Some("the object has no kind, so it has no pod template".to_string());
    }
    if kind == "DeploymentConfig" && !DEPLOYMENT_CONFIG_VERSIONS.contains(&api_version) {
        return Some(format!(
            "DeploymentConfig of apiVersion {api_version:?} is not OpenShift's \
             (apps.openshift.io/v1), so where its pod template is is not known"
        ));
    }
    if pod_location(kind).is_some() {
        return None;
    }
    let with_version = if api_version.is_empty() {
        format!("kind {kind}")
    } else {
        format!("kind {kind} ({api_version})")
    };
    Some(
        match [
            "/spec/template/spec",
            "/spec/jobTemplate/spec/template/spec",
        ]
        .into_iter()
        .find(|p| at(object, p).is_some_and(Value::is_object))
        {
            Some(spec) => {
                let template = &spec[1..spec.len() - 5].replace('/', ".");
                format!(
                    "{with_version} has a pod template at {template}, but it is not a kind \
                     whose pod template Istio injects ({SUPPORTED}): it is left as it is, \
                     and its pods are injected when they are created"
                )
            }
            None => format!("{with_version} has no pod template"),
        },
    )
}

/// The workload that owns the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Its name (`ISTIO_META_WORKLOAD_NAME`).
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its kind, e.g. `Deployment`.
    pub kind: String,
    /// Its apiVersion, e.g. `apps/v1`.
    pub api_version: String,
}

impl Workload {
    /// Istio's owner URI, `kubernetes://apis/<apiVersion>/namespaces/<ns>/<kind>s/<name>`.
    pub fn owner(&self) -> String {
        [
            "kubernetes://apis/",
            &self.api_version,
            "/namespaces/",
            &self.namespace,
            "/",
            &self.kind.to_lowercase(),
            "s/",
            &self.name,
        ]
        .concat()
    }

    /// Finds the owning workload of `object`: a Pod's controller, as the
    /// webhook sees it (a ReplicaSet's pod is its Deployment's, a Job's
    /// pod its CronJob's); a ReplicaSet's or a Job's controller likewise (a
    /// Deployment's ReplicaSet, a CronJob's Job), so that every level of a
    /// workload renders the same sidecar; else the object itself.
    pub fn of(object: &Value, namespace: &str) -> Workload {
        let str_at = |p: &str| at(object, p).and_then(Value::as_str).unwrap_or("");
        let kind = str_at("/kind");
        let api_version = str_at("/apiVersion");
        let mut name = str_at("/metadata/name").to_string();
        let mut w = Workload {
            name: String::new(),
            namespace: namespace.to_string(),
            kind: kind.to_string(),
            api_version: api_version.to_string(),
        };
        if kind != "Pod" {
            if let Some(owner) = controller(object).filter(|o| {
                matches!(
                    (kind, o.kind.as_str()),
                    ("ReplicaSet", "Deployment" | "Rollout")
                        | ("Job", "CronJob")
                        | ("ReplicationController", "DeploymentConfig")
                )
            }) {
                name = owner.name;
                // As the pod's owner is read (below), so that the
                // ReplicaSet or ReplicationController renders what its pods
                // would.
                w.api_version = match owner.kind.as_str() {
                    "Rollout" => ROLLOUT_API_VERSION.into(),
                    "DeploymentConfig" => DEPLOYMENT_CONFIG_VERSIONS[0].into(),
                    _ => owner.api_version,
                };
                w.kind = owner.kind;
            }
        } else {
            if name.is_empty() {
                name = str_at("/metadata/generateName")
                    .trim_end_matches('-')
                    .to_string();
            }
            if let Some(owner) = controller(object) {
                let label = |key: &str| {
                    object
                        .get("metadata")
                        .and_then(|m| m.get("labels"))
                        .and_then(|l| l.get(key))
                        .and_then(Value::as_str)
                        .filter(|v| !v.is_empty())
                };
                let hash = label("pod-template-hash");
                let rollout_hash = label("rollouts-pod-template-hash");
                match (owner.kind.as_str(), hash) {
                    ("ReplicaSet", Some(hash)) if owner.name.ends_with(&format!("-{hash}")) => {
                        name = owner.name[..owner.name.len() - hash.len() - 1].to_string();
                        w.kind = "Deployment".into();
                        w.api_version = "apps/v1".into();
                    }
                    // Istio's heuristic for an Argo Rollout's pods.
                    ("ReplicaSet", _)
                        if rollout_hash.is_some_and(|h| owner.name.ends_with(&format!("-{h}"))) =>
                    {
                        let h = rollout_hash.unwrap_or_default();
                        name = owner.name[..owner.name.len() - h.len() - 1].to_string();
                        w.kind = "Rollout".into();
                        w.api_version = ROLLOUT_API_VERSION.into();
                    }
                    // OpenShift's DeploymentConfig runs its pods through a
                    // ReplicationController and labels them with its name.
                    // Istio keeps the ReplicationController's apiVersion
                    // (`v1`); outrigger writes the DeploymentConfig's, so
                    // that the pods render what `outrigger inject` renders
                    // for the DeploymentConfig itself (no re-injection).
                    ("ReplicationController", _) if label("deploymentconfig").is_some() => {
                        name = label("deploymentconfig").unwrap_or_default().to_string();
                        w.kind = "DeploymentConfig".into();
                        w.api_version = DEPLOYMENT_CONFIG_VERSIONS[0].into();
                    }
                    ("Job", _) => match cron_parent(&owner.name) {
                        Some(cron) => {
                            name = cron.to_string();
                            w.kind = "CronJob".into();
                            w.api_version = "batch/v1".into();
                        }
                        None => {
                            name = owner.name;
                            w.kind = "Job".into();
                            w.api_version = owner.api_version;
                        }
                    },
                    _ => {
                        name = owner.name;
                        w.kind = owner.kind;
                        w.api_version = owner.api_version;
                    }
                }
            }
        }
        w.name = name;
        w
    }
}

/// Why a workload (not a Pod) whose pod template another controller keeps
/// is left alone, in a sentence, or `None` when nothing controls it.
///
/// A Deployment's controller finds its ReplicaSet by comparing templates,
/// and an Argo Rollout's does the same; a template changed at the
/// ReplicaSet (first injected, or re-injected after an upgrade when the
/// Deployment controller scales it) matches no ReplicaSet, so the
/// controller creates another, which is injected in turn: an endless churn
/// of ReplicaSets, seen on a real API server. An operator that owns a
/// Deployment would fight a webhook the same way. Istio's webhook injects
/// only pods; here the owner's template is injected where it is selected,
/// and the pods in any case when they are created.
pub fn controlled(object: &Value, kind: &str) -> Option<String> {
    if kind == "Pod" {
        return None;
    }
    let owner = controller(object)?;
    let name = at(object, "/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map_or_else(String::new, |n| format!(" {n}"));
    Some(format!(
        "{kind}{name} is controlled by {} {}, which keeps its pod template in step with \
         its own and would answer a template changed here with another {kind}; the \
         owner's template is injected where the owner is selected, and the pods when \
         they are created",
        owner.kind, owner.name
    ))
}

/// The apiVersion Istio gives an Argo Rollout's pods' owner (sic: without
/// the `argoproj.io/` group).
const ROLLOUT_API_VERSION: &str = "v1alpha1";

struct Owner {
    kind: String,
    name: String,
    api_version: String,
}

fn controller(object: &Value) -> Option<Owner> {
    let refs = at(object, "/metadata/ownerReferences")?.as_array()?;
    let owner = refs
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?;
    let s = |k: &str| {
        owner
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Some(Owner {
        kind: s("kind"),
        name: s("name"),
        api_version: s("apiVersion"),
    })
}

/// A Job created by a CronJob is named `<cronjob>-<scheduled minutes>`.
fn cron_parent(job: &str) -> Option<&str> {
    let (parent, suffix) = job.rsplit_once('-')?;
    (suffix.len() >= 8 && suffix.bytes().all(|b| b.is_ascii_digit()) && !parent.is_empty())
        .then_some(parent)
}

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
        | "Job" => Some(("/spec/template/metadata", "/spec/template/spec")),
        "CronJob" => Some((
            "/spec/jobTemplate/spec/template/metadata",
            "/spec/jobTemplate/spec/template/spec",
        )),
        _ => None,
    }
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
                    ("ReplicaSet", "Deployment") | ("Job", "CronJob")
                )
            }) {
                name = owner.name;
                w.kind = owner.kind;
                w.api_version = owner.api_version;
            }
        } else {
            if name.is_empty() {
                name = str_at("/metadata/generateName")
                    .trim_end_matches('-')
                    .to_string();
            }
            if let Some(owner) = controller(object) {
                let hash = object
                    .get("metadata")
                    .and_then(|m| m.get("labels"))
                    .and_then(|l| l.get("pod-template-hash"))
                    .and_then(Value::as_str);
                match (owner.kind.as_str(), hash) {
                    ("ReplicaSet", Some(hash)) if owner.name.ends_with(&format!("-{hash}")) => {
                        name = owner.name[..owner.name.len() - hash.len() - 1].to_string();
                        w.kind = "Deployment".into();
                        w.api_version = "apps/v1".into();
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

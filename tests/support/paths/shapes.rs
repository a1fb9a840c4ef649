//! The pod shapes `inject_paths` injects: Pods (named, generated, owned in
//! every way the engine looks at) and workloads of every supported kind,
//! now and then a List of both, each with the admission context it comes
//! in. The pod spec and the pod metadata have their own generators
//! (pod_spec.rs, pod_meta.rs beside this file). Included by path by
//! tests/inject_paths.rs only.

#[path = "pod_meta.rs"]
mod pod_meta;
#[path = "pod_spec.rs"]
mod pod_spec;

use std::collections::BTreeMap;

use outrigger::inject::Context;
use serde_json::{Map, Value, json};

use crate::damage::Rng;
use pod_meta::{namespace, owner, template_meta};
use pod_spec::spec;

/// True once in `one_in` times.
pub fn chance(rng: &mut Rng, one_in: usize) -> bool {
    rng.below(one_in) == 0
}

/// A Pod: named, generated, owned by a ReplicaSet of a Deployment, a Job of
/// a CronJob, a StatefulSet, an owner without an apiVersion, or nameless.
fn pod(rng: &mut Rng) -> Value {
    let mut meta = template_meta(rng);
    namespace(rng, &mut meta);
    match rng.below(8) {
        0 | 1 => {
            meta.insert("name".into(), json!("reviews-v1"));
        }
        2 => {
            let name = if chance(rng, 4) {
                "wëb\"7-"
            } else {
                "web-7d9f-"
            };
            meta.insert("generateName".into(), json!(name));
        }
        3 => {
            meta.insert("generateName".into(), json!("reviews-v1-5d8f9c-"));
            meta.insert(
                "ownerReferences".into(),
                json!([owner(
                    "ReplicaSet",
                    "reviews-v1-5d8f9c",
                    Some("apps/v1"),
                    true
                )]),
            );
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Value::Object(l) = labels {
                l.insert("pod-template-hash".into(), json!("5d8f9c"));
            }
        }
        4 => {
            meta.insert("name".into(), json!("nightly-28000000-abcde"));
            meta.insert(
                "ownerReferences".into(),
                json!([owner("Job", "nightly-28000000", Some("batch/v1"), true)]),
            );
        }
        5 => {
            meta.insert("name".into(), json!("db-0"));
            meta.insert(
                "ownerReferences".into(),
                json!([
                    owner("Node", "n1", Some("v1"), false),
                    owner("StatefulSet", "db", Some("apps/v1"), true)
                ]),
            );
        }
        6 => {
            meta.insert("name".into(), json!("orphan"));
            meta.insert(
                "ownerReferences".into(),
                json!([owner("Widget", "w", None, true)]),
            );
        }
        _ => {}
    }
    let mut p = Map::new();
    p.insert("apiVersion".into(), json!("v1"));
    p.insert("kind".into(), json!("Pod"));
    if !meta.is_empty() || chance(rng, 2) {
        p.insert("metadata".into(), Value::Object(meta));
    }
    p.insert("spec".into(), spec(rng));
    Value::Object(p)
}

/// A workload with a pod template.
fn workload(rng: &mut Rng) -> Value {
    let (kind, api) = *rng.pick(&[
        ("Deployment", "apps/v1"),
        ("Deployment", "apps/v1"),
        ("StatefulSet", "apps/v1"),
        ("DaemonSet", "apps/v1"),
        ("ReplicaSet", "apps/v1"),
        ("ReplicationController", "v1"),
        ("Job", "batch/v1"),
        ("CronJob", "batch/v1"),
    ]);
    let mut meta = Map::new();
    if !chance(rng, 15) {
        let name = if chance(rng, 20) {
            "wörk\"load"
        } else {
            "shop"
        };
        meta.insert("name".into(), json!(name));
    }
    namespace(rng, &mut meta);
    if chance(rng, 4) {
        meta.insert("labels".into(), json!({"owner": "team-a"}));
    }
    let template_meta = template_meta(rng);
    let template_meta = match rng.below(12) {
        0 => None,
        1 => Some(Value::Null),
        _ => Some(Value::Object(template_meta)),
    };
    let spec = spec(rng);
    let mut template = Map::new();
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!(api));
    object.insert("kind".into(), json!(kind));
    object.insert("metadata".into(), Value::Object(meta));
    if kind == "CronJob" {
        // The pod's metadata is the job template's.
        template.insert("spec".into(), spec);
        if chance(rng, 3) {
            template.insert("metadata".into(), json!({"labels": {"inner": "x"}}));
        }
        let mut job_template = Map::new();
        if let Some(m) = template_meta {
            job_template.insert("metadata".into(), m);
        }
        job_template.insert("spec".into(), json!({"template": template}));
        object.insert(
            "spec".into(),
            json!({"schedule": "0 0 * * *", "jobTemplate": job_template}),
        );
    } else {
        if let Some(m) = template_meta {
            template.insert("metadata".into(), m);
        }
        template.insert("spec".into(), spec);
        let mut s = Map::new();
        if chance(rng, 2) {
            s.insert("replicas".into(), json!(2));
        }
        s.insert("template".into(), Value::Object(template));
        object.insert("spec".into(), Value::Object(s));
    }
    Value::Object(object)
}

/// A pod shape and the context it is admitted in.
pub struct Shape {
    /// The object under admission.
    pub object: Value,
    /// Its admission context.
    pub ctx: Context,
}

/// The admission context: mostly none, sometimes a namespace, with or
/// without its labels.
fn context(rng: &mut Rng) -> Context {
    match rng.below(10) {
        0 => Context {
            namespace: Some("prod".into()),
            namespace_labels: None,
        },
        1 => Context {
            namespace: Some("team".into()),
            namespace_labels: Some(BTreeMap::from([(
                "istio-injection".to_string(),
                "enabled".to_string(),
            )])),
        },
        _ => Context::default(),
    }
}

/// `n` pod shapes: Pods, workloads, now and then a List of both.
pub fn shapes(rng: &mut Rng, n: usize) -> Vec<Shape> {
    (0..n)
        .map(|_| {
            let object = match rng.below(40) {
                0 => json!({"apiVersion": "v1", "kind": "List",
                            "items": [pod(rng), workload(rng)]}),
                1..=17 => pod(rng),
                _ => workload(rng),
            };
            Shape {
                object,
                ctx: context(rng),
            }
        })
        .collect()
}

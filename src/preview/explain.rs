//! The `explain` rendering: for people, per document, the decision, the rule
//! or skip reason behind it, and what injection would add.
//!
//! What is added is read off the injected object itself (containers, init
//! containers and volumes by name; labels and annotations by key), comparing
//! each pod template before and after, so the explanation cannot drift from
//! what the engine really does.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::{DocumentLabel, Previewed};
use crate::inject::Outcome;

/// Renders the explanation of every document, separated by blank lines.
pub(super) fn explain(results: &[Previewed]) -> String {
    let mut out = String::new();
    for (i, result) in results.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", result.label);
        match &result.outcome {
            Outcome::Skipped { reason } => {
                let _ = writeln!(out, "  decision: skipped ({})", reason.name());
                let _ = writeln!(out, "  reason: {}", reason.sentence());
            }
            Outcome::Injected {
                mutated, decision, ..
            } => {
                let _ = writeln!(out, "  decision: injected");
                let _ = writeln!(out, "  rule: {}", decision.rule);
                write_changes(&mut out, &result.original, mutated);
            }
        }
    }
    out
}

/// Lists what changed in the object's pod template; for a `kind: List`,
/// item by item, saying which items were left unchanged.
fn write_changes(out: &mut String, original: &Value, mutated: &Value) {
    if mutated.get("kind").and_then(Value::as_str) != Some("List") {
        if let Some(template) = pod_template(mutated, "") {
            Changes::between(original, mutated, &template).write(out, "  ");
        }
        return;
    }
    let items = mutated.get("items").and_then(Value::as_array);
    for (i, item) in items
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let changes = pod_template(item, &format!("/items/{i}"))
            .map(|template| Changes::between(original, mutated, &template))
            .filter(|changes| !changes.is_empty());
        match changes {
            Some(changes) => {
                let _ = writeln!(out, "  {}:", item_label(i, item));
                changes.write(out, "    ");
            }
            None => {
                let _ = writeln!(out, "  {}: unchanged", item_label(i, item));
            }
        }
    }
}

/// Where one pod template lives inside an object.
struct PodTemplate {
    /// JSON pointer to the template's `metadata`.
    metadata: String,
    /// JSON pointer to the template's pod `spec`.
    spec: String,
}

/// The pod template of `object` (at JSON pointer `at`), by kind, where the
/// engine's kinds place it; none for other kinds.
fn pod_template(object: &Value, at: &str) -> Option<PodTemplate> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let base = match kind {
        "Pod" => "",
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => "/spec/template",
        "CronJob" => "/spec/jobTemplate/spec/template",
        _ => return None,
    };
    Some(PodTemplate {
        metadata: format!("{at}{base}/metadata"),
        spec: format!("{at}{base}/spec"),
    })
}

fn item_label(i: usize, item: &Value) -> String {
    let object = DocumentLabel::of(i + 1, item).object_ref();
    if object.is_empty() {
        format!("item {}", i + 1)
    } else {
        format!("item {} ({object})", i + 1)
    }
}

/// What injection changed in one pod template.
#[derive(Default)]
struct Changes {
    init_containers: Vec<String>,
    containers: Vec<String>,
    volumes: Vec<String>,
    labels: Vec<String>,
    annotations: Vec<String>,
    changed_containers: Vec<String>,
}

impl Changes {
    fn between(original: &Value, mutated: &Value, at: &PodTemplate) -> Changes {
        let spec = |v: &'_ Value, field: &str| -> Vec<(String, Value)> {
            named_items(v.pointer(&format!("{}/{field}", at.spec)))
        };
        let meta = |v: &'_ Value, field: &str| -> BTreeMap<String, Value> {
            v.pointer(&format!("{}/{field}", at.metadata))
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        let before_containers: BTreeMap<String, Value> = spec(original, "containers")
            .into_iter()
            .chain(spec(original, "initContainers"))
            .collect();
        Changes {
            init_containers: added_names(
                &spec(original, "initContainers"),
                &spec(mutated, "initContainers"),
            ),
            containers: added_names(&spec(original, "containers"), &spec(mutated, "containers")),
            volumes: added_names(&spec(original, "volumes"), &spec(mutated, "volumes")),
            labels: changed_keys(&meta(original, "labels"), &meta(mutated, "labels")),
            annotations: changed_keys(
                &meta(original, "annotations"),
                &meta(mutated, "annotations"),
            ),
            changed_containers: spec(mutated, "containers")
                .into_iter()
                .chain(spec(mutated, "initContainers"))
                .filter(|(name, after)| {
                    before_containers
                        .get(name)
                        .is_some_and(|before| before != after)
                })
                .map(|(name, _)| name)
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.init_containers.is_empty()
            && self.containers.is_empty()
            && self.volumes.is_empty()
            && self.labels.is_empty()
            && self.annotations.is_empty()
            && self.changed_containers.is_empty()
    }

    fn write(&self, out: &mut String, indent: &str) {
        let lines = [
            ("adds init containers", &self.init_containers),
            ("adds containers", &self.containers),
            ("adds volumes", &self.volumes),
            ("sets labels", &self.labels),
            ("sets annotations", &self.annotations),
            ("changes containers", &self.changed_containers),
        ];
        for (what, names) in lines {
            if !names.is_empty() {
                let _ = writeln!(out, "{indent}{what}: {}", names.join(", "));
            }
        }
    }
}

/// The `name`d entries of a list (containers, volumes), in order; entries
/// without a name are left out.
fn named_items(list: Option<&Value>) -> Vec<(String, Value)> {
    list.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| {
            let name = item.get("name")?.as_str()?;
            Some((name.to_owned(), item.clone()))
        })
        .collect()
}

/// Names in `after` that are not in `before`, in `after`'s order.
fn added_names(before: &[(String, Value)], after: &[(String, Value)]) -> Vec<String> {
    after
        .iter()
        .filter(|(name, _)| !before.iter().any(|(b, _)| b == name))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Keys that are new in `after` or whose value changed.
fn changed_keys(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>) -> Vec<String> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

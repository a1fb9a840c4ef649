//! The `explain` rendering: for people, per document, the decision, the rule
//! or skip reason behind it (by stable name and sentence), and what
//! injection would add.
//!
//! The containers, init containers, volumes and image pull secrets come from
//! the engine's [`Decision`]; the labels and annotations set and the app
//! containers changed (rewritten probes) are read off the injected object,
//! comparing the pod template before and after, so the explanation cannot
//! drift from what the engine really does. A `kind: List` is explained item
//! by item.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::{DocumentLabel, Previewed};
use crate::inject::{Added, Decision, ItemOutcome, Outcome, SkipReason, pod_location};

/// Renders the explanation of every document, separated by blank lines.
pub(super) fn explain(results: &[Previewed]) -> String {
    let mut out = String::new();
    for (i, result) in results.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", result.label);
        match &result.outcome {
            Outcome::Skipped { reason } => write_skip(&mut out, "  decision: ", reason, "  "),
            Outcome::Injected {
                mutated, decision, ..
            } => {
                write_injected(&mut out, "  decision: ", decision, "  ");
                if decision.items.is_empty() {
                    if let Some(template) = pod_template(mutated, "") {
                        Changes::between(&result.original, mutated, &template)
                            .write(&mut out, "  ");
                    }
                } else {
                    write_items(&mut out, &result.original, mutated, &decision.items);
                }
            }
        }
    }
    out
}

fn write_skip(out: &mut String, head: &str, reason: &SkipReason, indent: &str) {
    let _ = writeln!(out, "{head}skipped ({})", reason.name());
    let _ = writeln!(out, "{indent}reason: {}", reason.sentence());
}

fn write_injected(out: &mut String, head: &str, decision: &Decision, indent: &str) {
    if decision.removed {
        // An earlier injection, removed: the pod opts out now.
        let _ = writeln!(out, "{head}removed ({})", decision.rule_name);
        let _ = writeln!(out, "{indent}reason: {}", decision.rule);
        return;
    }
    match &decision.reinjected {
        // An earlier injection differs from what injection gives now.
        Some(changes) => {
            let _ = writeln!(out, "{head}re-injected ({})", decision.rule_name);
            let _ = writeln!(out, "{indent}changes: {changes}");
        }
        None => {
            let _ = writeln!(out, "{head}injected ({})", decision.rule_name);
        }
    }
    let _ = writeln!(out, "{indent}rule: {}", decision.rule);
    write_added(out, &decision.added, indent);
}

fn write_added(out: &mut String, added: &Added, indent: &str) {
    let lines = [
        ("adds init containers", &added.init_containers),
        ("adds containers", &added.containers),
        ("adds volumes", &added.volumes),
        ("adds image pull secrets", &added.image_pull_secrets),
    ];
    write_lists(out, &lines, indent);
}

fn write_lists(out: &mut String, lines: &[(&str, &Vec<String>)], indent: &str) {
    for (what, names) in lines {
        if !names.is_empty() {
            let _ = writeln!(out, "{indent}{what}: {}", names.join(", "));
        }
    }
}

/// A `kind: List`: each item's own decision and changes, in order.
fn write_items(out: &mut String, original: &Value, mutated: &Value, items: &[ItemOutcome]) {
    let listed = mutated.get("items").and_then(Value::as_array);
    let listed = listed.map(Vec::as_slice).unwrap_or_default();
    for (i, outcome) in items.iter().enumerate() {
        let label = match listed.get(i) {
            Some(item) => item_label(i, item),
            None => format!("item {}", i + 1),
        };
        let head = format!("  {label}: ");
        match outcome {
            ItemOutcome::Skipped(reason) => write_skip(out, &head, reason, "    "),
            ItemOutcome::Injected(decision) => {
                write_injected(out, &head, decision, "    ");
                let template = listed
                    .get(i)
                    .and_then(|item| pod_template(item, &format!("/items/{i}")));
                if let Some(template) = template {
                    Changes::between(original, mutated, &template).write(out, "    ");
                }
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

/// The pod template of `object` (at JSON pointer `at`), where the engine
/// places it for the object's kind ([`pod_location`]); none for other kinds.
fn pod_template(object: &Value, at: &str) -> Option<PodTemplate> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let (metadata, spec) = pod_location(kind)?;
    Some(PodTemplate {
        metadata: format!("{at}{metadata}"),
        spec: format!("{at}{spec}"),
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

/// What injection changed in one pod template besides what it added.
struct Changes {
    labels: Vec<String>,
    annotations: Vec<String>,
    changed_containers: Vec<String>,
}

impl Changes {
    fn between(original: &Value, mutated: &Value, at: &PodTemplate) -> Changes {
        let containers = |v: &Value| -> Vec<(String, Value)> {
            ["containers", "initContainers"]
                .iter()
                .flat_map(|field| named_items(v.pointer(&format!("{}/{field}", at.spec))))
                .collect()
        };
        let meta = |v: &Value, field: &str| -> BTreeMap<String, Value> {
            v.pointer(&format!("{}/{field}", at.metadata))
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        let before: BTreeMap<String, Value> = containers(original).into_iter().collect();
        Changes {
            labels: changed_keys(&meta(original, "labels"), &meta(mutated, "labels")),
            annotations: changed_keys(
                &meta(original, "annotations"),
                &meta(mutated, "annotations"),
            ),
            changed_containers: containers(mutated)
                .into_iter()
                .filter(|(name, after)| before.get(name).is_some_and(|b| b != after))
                .map(|(name, _)| name)
                .collect(),
        }
    }

    fn write(&self, out: &mut String, indent: &str) {
        let lines = [
            ("sets labels", &self.labels),
            ("sets annotations", &self.annotations),
            ("changes containers", &self.changed_containers),
        ];
        write_lists(out, &lines, indent);
    }
}

/// The `name`d entries of a list (containers), in order; entries without a
/// name are left out.
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

/// Keys that are new in `after` or whose value changed.
fn changed_keys(before: &BTreeMap<String, Value>, after: &BTreeMap<String, Value>) -> Vec<String> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

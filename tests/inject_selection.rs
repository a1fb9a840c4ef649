//! Istio's selection, end to end: for a table of namespace labels, pod
//! labels and annotations, whether the API server would call the webhook
//! (the shipped MutatingWebhookConfiguration's selectors, evaluated here as
//! the API server evaluates label selectors) and what the engine then
//! decides, against what Istio's documentation says happens
//! (https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/:
//! "Controlling the injection policy", and the revision labels of
//! https://istio.io/latest/docs/setup/upgrade/canary/).
//!
//! The engine is checked twice: as the webhook calls it (the namespace's
//! labels unknown: the selectors already judged them) and as the preview
//! calls it with `--namespace-label` (the engine judges them itself). Both
//! must agree with Istio.

use std::collections::BTreeMap;
use std::path::Path;

use outrigger::config::Config;
use outrigger::inject::{Context, Outcome, inject, warnings};
use serde_json::{Value, json};

fn manifest(path: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The shipped webhook configuration, with the component at `component`
/// (its JSON patches) applied, as kustomize would.
fn webhooks(component: Option<&str>) -> Value {
    let mut config = manifest("manifests/mutatingwebhookconfiguration.yaml");
    if let Some(dir) = component {
        let kustomization = manifest(&format!("{dir}/kustomization.yaml"));
        for patch in kustomization["patches"].as_array().expect("patches") {
            let ops: json_patch::Patch =
                serde_yaml::from_str(patch["patch"].as_str().expect("an inline patch"))
                    .expect("a JSON patch");
            json_patch::patch(&mut config, &ops).expect("the component's patch applies");
        }
    }
    config
}

/// A Kubernetes label selector (`matchLabels`, `matchExpressions`) against
/// `labels`, with the API server's semantics (`NotIn` and `DoesNotExist`
/// match an absent key).
fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = selector["matchLabels"].as_object().into_iter().flatten();
    let exprs = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten();
    match_labels
        .into_iter()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        && exprs.into_iter().all(|e| {
            let key = e["key"].as_str().expect("key");
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let value = labels.get(key).map(String::as_str);
            match e["operator"].as_str().expect("operator") {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("unknown operator {other}"),
            }
        })
}

/// How many of the configuration's webhooks the API server calls for a
/// pod CREATE in namespace `ns` (its labels include the automatic
/// `kubernetes.io/metadata.name`).
fn calls(
    config: &Value,
    ns: &str,
    ns_labels: &BTreeMap<String, String>,
    pod: &BTreeMap<String, String>,
) -> usize {
    let mut ns_labels = ns_labels.clone();
    ns_labels.insert("kubernetes.io/metadata.name".into(), ns.into());
    config["webhooks"]
        .as_array()
        .expect("webhooks")
        .iter()
        .filter(|hook| {
            let pods = hook["rules"].as_array().into_iter().flatten().any(|r| {
                r["resources"]
                    .as_array()
                    .is_some_and(|rs| rs.contains(&json!("pods")))
                    && r["operations"]
                        .as_array()
                        .is_some_and(|os| os.contains(&json!("CREATE")))
            });
            pods && selects(&hook["namespaceSelector"], &ns_labels)
                && selects(&hook["objectSelector"], pod)
        })
        .count()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Row {
    what: &'static str,
    ns: &'static str,
    ns_labels: &'static [(&'static str, &'static str)],
    pod_labels: &'static [(&'static str, &'static str)],
    pod_annotations: &'static [(&'static str, &'static str)],
    /// Istio injects.
    injected: bool,
}

const ENABLED: &[(&str, &str)] = &[("istio-injection", "enabled")];
const DISABLED: &[(&str, &str)] = &[("istio-injection", "disabled")];
const REV: &[(&str, &str)] = &[("istio.io/rev", "default")];
const OTHER_REV: &[(&str, &str)] = &[("istio.io/rev", "canary")];
const NONE: &[(&str, &str)] = &[];
const INJECT_TRUE: &[(&str, &str)] = &[("sidecar.istio.io/inject", "true")];
const INJECT_FALSE: &[(&str, &str)] = &[("sidecar.istio.io/inject", "false")];
const INJECT_YES: &[(&str, &str)] = &[("sidecar.istio.io/inject", "yes")];

fn row(
    what: &'static str,
    ns: &'static str,
    ns_labels: &'static [(&'static str, &'static str)],
    pod_labels: &'static [(&'static str, &'static str)],
    pod_annotations: &'static [(&'static str, &'static str)],
    injected: bool,
) -> Row {
    Row {
        what,
        ns,
        ns_labels,
        pod_labels,
        pod_annotations,
        injected,
    }
}

/// Istio's documented behaviour with the default settings.
fn istio_table() -> Vec<Row> {
    vec![
        row("enabled namespace", "shop", ENABLED, NONE, NONE, true),
        row(
            "enabled namespace, pod label true",
            "shop",
            ENABLED,
            INJECT_TRUE,
            NONE,
            true,
        ),
        row(
            "enabled namespace, pod label false",
            "shop",
            ENABLED,
            INJECT_FALSE,
            NONE,
            false,
        ),
        row(
            "enabled namespace, pod annotation false",
            "shop",
            ENABLED,
            NONE,
            INJECT_FALSE,
            false,
        ),
        row(
            "enabled namespace, pod label yes (falls back)",
            "shop",
            ENABLED,
            INJECT_YES,
            NONE,
            true,
        ),
        row(
            "enabled namespace, pod annotation yes (falls back)",
            "shop",
            ENABLED,
            NONE,
            INJECT_YES,
            true,
        ),
        row("disabled namespace", "shop", DISABLED, NONE, NONE, false),
        row(
            "disabled namespace, pod label true",
            "shop",
            DISABLED,
            INJECT_TRUE,
            NONE,
            false,
        ),
        row("revision namespace", "shop", REV, NONE, NONE, true),
        row(
            "revision namespace, pod label false",
            "shop",
            REV,
            INJECT_FALSE,
            NONE,
            false,
        ),
        row(
            "other revision's namespace",
            "shop",
            OTHER_REV,
            NONE,
            NONE,
            false,
        ),
        row(
            "other revision's namespace, pod label true",
            "shop",
            OTHER_REV,
            INJECT_TRUE,
            NONE,
            false,
        ),
        row("unlabelled namespace", "shop", NONE, NONE, NONE, false),
        row(
            "unlabelled namespace, pod label true",
            "shop",
            NONE,
            INJECT_TRUE,
            NONE,
            true,
        ),
        row(
            "unlabelled namespace, pod annotation true",
            "shop",
            NONE,
            NONE,
            INJECT_TRUE,
            false,
        ),
        row(
            "unlabelled namespace, pod label yes",
            "shop",
            NONE,
            INJECT_YES,
            NONE,
            false,
        ),
        row(
            "unlabelled namespace, pod revision label",
            "shop",
            NONE,
            REV,
            NONE,
            true,
        ),
        row(
            "unlabelled namespace, other revision's pod label",
            "shop",
            NONE,
            OTHER_REV,
            NONE,
            false,
        ),
        row(
            "unlabelled namespace, pod label true and another revision",
            "shop",
            NONE,
            &[
                ("sidecar.istio.io/inject", "true"),
                ("istio.io/rev", "canary"),
            ],
            NONE,
            false,
        ),
        row(
            "kube-system, even enabled",
            "kube-system",
            ENABLED,
            INJECT_TRUE,
            NONE,
            false,
        ),
        row(
            "outrigger's own namespace, even enabled",
            "outrigger-system",
            ENABLED,
            NONE,
            NONE,
            false,
        ),
    ]
}

/// Istio's documented behaviour with `enableNamespacesByDefault: true`.
fn by_default_table() -> Vec<Row> {
    vec![
        row("unlabelled namespace", "shop", NONE, NONE, NONE, true),
        row(
            "unlabelled namespace, pod label false",
            "shop",
            NONE,
            INJECT_FALSE,
            NONE,
            false,
        ),
        row(
            "unlabelled namespace, pod annotation false",
            "shop",
            NONE,
            NONE,
            INJECT_FALSE,
            false,
        ),
        row("disabled namespace", "shop", DISABLED, NONE, NONE, false),
        row("enabled namespace", "shop", ENABLED, NONE, NONE, true),
        row(
            "other revision's namespace",
            "shop",
            OTHER_REV,
            NONE,
            NONE,
            false,
        ),
        row("kube-system", "kube-system", NONE, NONE, NONE, false),
        row(
            "outrigger's own namespace",
            "outrigger-system",
            NONE,
            NONE,
            NONE,
            false,
        ),
    ]
}

fn pod(row: &Row) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "namespace": row.ns,
            "labels": map(row.pod_labels),
            "annotations": map(row.pod_annotations),
        },
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
    })
}

fn injects(object: &Value, ctx: &Context, cfg: &Config) -> Result<bool, String> {
    match inject(object, ctx, cfg) {
        Ok(Outcome::Injected { .. }) => Ok(true),
        Ok(Outcome::Skipped { .. }) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

fn check_table(rows: &[Row], config: &Value, cfg: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    for row in rows {
        let object = pod(row);
        let ns_labels = map(row.ns_labels);
        let n = calls(config, row.ns, &ns_labels, &map(row.pod_labels));
        if n > 1 {
            problems.push(format!("{}: {n} webhooks would be called", row.what));
        }
        // As the webhook calls the engine: the selectors judged the
        // namespace.
        let webhook_ctx = Context {
            namespace: Some(row.ns.into()),
            namespace_labels: None,
        };
        let cluster = match (n, injects(&object, &webhook_ctx, cfg)) {
            (0, _) => Ok(false),
            (_, result) => result,
        };
        if cluster != Ok(row.injected) {
            problems.push(format!(
                "{}: in a cluster (called: {}), injected {cluster:?}; Istio: {}",
                row.what,
                n > 0,
                row.injected
            ));
        }
        // As the preview calls it, with the namespace's labels. The engine
        // does not know outrigger's own namespace (the selectors exclude
        // it by name), so that row is the selectors' alone.
        if row.ns != "outrigger-system" {
            let preview_ctx = Context {
                namespace: Some(row.ns.into()),
                namespace_labels: Some(ns_labels.clone()),
            };
            let preview = injects(&object, &preview_ctx, cfg);
            if preview != Ok(row.injected) {
                problems.push(format!(
                    "{}: the preview says injected {preview:?}; Istio: {}",
                    row.what, row.injected
                ));
            }
        }
    }
    problems
}

#[test]
fn the_shipped_selection_and_the_engine_inject_what_istio_injects() {
    let problems = check_table(&istio_table(), &webhooks(None), &Config::default());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn namespaces_by_default_selects_and_injects_unlabelled_namespaces_as_istio_does() {
    let mut cfg = Config::builder();
    cfg.set("values.sidecarInjectorWebhook.enableNamespacesByDefault=true")
        .expect("a known key");
    let cfg = cfg.build().expect("config");
    let config = webhooks(Some("manifests/components/namespaces-by-default"));
    let problems = check_table(&by_default_table(), &config, &cfg);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Without the component the cluster would not call the webhook for an
    // unlabelled namespace: the component is what changes the selection.
    let plain = calls(&webhooks(None), "shop", &BTreeMap::new(), &BTreeMap::new());
    assert_eq!(plain, 0);
}

#[test]
fn a_second_revision_selects_only_its_own_namespaces_and_pods() {
    let canary = manifest("manifests/overlays/revision-canary/mutatingwebhookconfiguration.yaml");
    let base = webhooks(None);
    let mut cfg = Config::builder();
    cfg.set("values.revision=canary").expect("a known key");
    let cfg = cfg.build().expect("config");
    let ctx = Context {
        namespace: Some("shop".into()),
        namespace_labels: None,
    };
    for (ns_labels, pod_labels, by_base, by_canary) in [
        (OTHER_REV, NONE, 0, 1),
        (REV, NONE, 1, 0),
        (NONE, OTHER_REV, 0, 1),
        (ENABLED, NONE, 1, 0),
        (NONE, INJECT_TRUE, 1, 0),
    ] {
        let (ns, pod) = (map(ns_labels), map(pod_labels));
        assert_eq!(
            (
                calls(&base, "shop", &ns, &pod),
                calls(&canary, "shop", &ns, &pod)
            ),
            (by_base, by_canary),
            "namespace {ns:?}, pod {pod:?}"
        );
    }
    // What the canary injects records its revision.
    let object = pod(&row("canary", "shop", OTHER_REV, NONE, NONE, true));
    let Ok(Outcome::Injected { mutated, .. }) = inject(&object, &ctx, &cfg) else {
        panic!("the canary injects a pod of its namespace");
    };
    assert_eq!(mutated["metadata"]["annotations"]["istio.io/rev"], "canary");
}

#[test]
fn an_invalid_inject_value_is_a_warning_that_names_it_not_a_denial() {
    let object = pod(&row("yes", "shop", ENABLED, INJECT_YES, NONE, true));
    let found = warnings(&object);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("label sidecar.istio.io/inject") && found[0].contains("\"yes\""),
        "{}",
        found[0]
    );
    let fine = pod(&row("true", "shop", ENABLED, INJECT_TRUE, NONE, true));
    assert!(warnings(&fine).is_empty());
}

//! Removing what an injection added, as its status record
//! (`sidecar.istio.io/status`) names it: the containers, init containers,
//! volumes and image pull secrets it lists; the user's own versions of
//! injected containers (`proxy.istio.io/overrides`) put back; the app
//! probes and hooks the rewrite redirected restored from the proxy's
//! `ISTIO_KUBE_APP_PROBERS`; the Prometheus annotations restored from its
//! `ISTIO_PROMETHEUS_ANNOTATIONS`; the bookkeeping annotations and the
//! labels injection adds taken off.
//!
//! Re-injection starts from what this leaves (the object as it was before
//! any injection), so that an injection made under an older configuration
//! is replaced rather than merged into; `outrigger uninject` prints it.
//! Istio's own `kube-uninject` removes the named items and the status only.
//!
//! What injection adds without recording it (its labels, the
//! `kubectl.kubernetes.io/default-container` annotations) is taken off
//! when its value is the one injection would have set; a value the user
//! wrote that happens to be the same is taken off too, and injection puts
//! it back. A probe on a named port comes back with the port's number (the
//! record keeps only the number).

use serde_json::{Map, Value};

use super::annotations::{OVERRIDES, PROXY_CONFIG, STATUS, parse_proxy_config};
use super::cni;
use super::probes::APP_PROBERS_ENV;
use super::prometheus::{
    PROMETHEUS_ENV, PROMETHEUS_PATH, PROMETHEUS_PORT, PROMETHEUS_SCRAPE, SCRAPE_TARGETS,
};
use super::sidecar::{
    CANONICAL_NAME, CANONICAL_REVISION, PROXY_NAME, Status, TLS_MODE, canonical_name,
    canonical_revision,
};
use super::workload::Workload;
use super::{pipeline, string_map, templates};
use crate::config::Settings;

/// The annotations that name the app's first container for `kubectl`.
const DEFAULT_CONTAINER: [&str; 2] = [
    "kubectl.kubernetes.io/default-container",
    "kubectl.kubernetes.io/default-logs-container",
];

fn name_of(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or("")
}

/// The status record of a pod's metadata, if it has one that parses.
pub fn status_of(metadata: &Value) -> Option<Status> {
    metadata
        .get("annotations")
        .and_then(|a| a.get(STATUS))
        .and_then(Value::as_str)
        .and_then(Status::parse)
}

/// Removes from `pod` (`{metadata, spec}`) what the injection its status
/// record describes added; `workload` is the owning workload (its name is
/// the canonical-name fallback). Gives the record, or `None` (and leaves
/// the pod alone) when the pod has none.
pub fn uninject_pod(pod: &mut Value, workload: &Workload, s: &Settings) -> Option<Status> {
    let workload_name = workload.name.as_str();
    let status = status_of(pod.get("metadata")?)?;
    let spec = pod.get_mut("spec")?.as_object_mut()?;
    let proxy_env = |key: &str| -> Option<Value> {
        ["containers", "initContainers"]
            .iter()
            .filter_map(|f| spec.get(*f).and_then(Value::as_array))
            .flatten()
            .find(|c| name_of(c) == PROXY_NAME)?
            .get("env")?
            .as_array()?
            .iter()
            .find(|e| name_of(e) == key)?
            .get("value")?
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok())
    };
    let probers = proxy_env(APP_PROBERS_ENV);
    let prometheus = proxy_env(PROMETHEUS_ENV);

    for (field, names) in [
        ("containers", &status.containers),
        ("initContainers", &status.init_containers),
        ("volumes", &status.volumes),
        ("imagePullSecrets", &status.image_pull_secrets),
    ] {
        if let Some(Value::Array(list)) = spec.get_mut(field) {
            list.retain(|item| !names.iter().any(|n| n == name_of(item)));
        }
    }
    let annotations = pod["metadata"]
        .get("annotations")
        .cloned()
        .unwrap_or(Value::Null);
    let spec = pod["spec"].as_object_mut()?;
    restore_overrides(spec, annotations.get(OVERRIDES));
    if let Some(Value::Object(probers)) = &probers {
        for field in ["containers", "initContainers"] {
            if let Some(Value::Array(list)) = spec.get_mut(field) {
                for c in list {
                    restore_probes(c, probers);
                }
            }
        }
    }
    for field in ["initContainers", "volumes", "imagePullSecrets"] {
        if spec
            .get(field)
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            spec.remove(field);
        }
    }
    remove_template_additions(pod, workload, s);
    let spec = pod["spec"].as_object_mut()?;
    let first_container = spec
        .get("containers")
        .and_then(Value::as_array)
        .and_then(|l| l.first())
        .map(|c| name_of(c).to_string());

    let metadata = pod["metadata"].as_object_mut()?;
    if let Some(Value::Object(annos)) = metadata.get_mut("annotations") {
        for key in [STATUS, OVERRIDES, "istio.io/rev"] {
            annos.remove(key);
        }
        for key in DEFAULT_CONTAINER {
            if annos.get(key).and_then(Value::as_str) == first_container.as_deref() {
                annos.remove(key);
            }
        }
        for (k, v) in &s.injected_annotations {
            if annos.get(k).and_then(Value::as_str) == Some(v.as_str()) {
                annos.remove(k);
            }
        }
        let mode = annos
            .get(PROXY_CONFIG)
            .and_then(Value::as_str)
            .and_then(|t| parse_proxy_config(t).ok())
            .and_then(|pc| pc.get("interceptionMode").cloned())
            .or_else(|| s.proxy_config.get("interceptionMode").cloned());
        let mode = mode.as_ref().and_then(Value::as_str).unwrap_or("REDIRECT");
        cni::uninject(annos, s, mode);
        restore_prometheus(annos, prometheus.as_ref());
        if annos.is_empty() {
            metadata.remove("annotations");
        }
    }
    if let Some(Value::Object(labels)) = metadata.get_mut("labels") {
        if labels.get(TLS_MODE).and_then(Value::as_str) == Some("istio") {
            labels.remove(TLS_MODE);
        }
        if !s.network.is_empty()
            && labels.get(cni::NETWORK_LABEL).and_then(Value::as_str) == Some(s.network.as_str())
        {
            labels.remove(cni::NETWORK_LABEL);
        }
        let mut without = string_map(Some(&Value::Object(labels.clone())));
        without.remove(CANONICAL_NAME);
        without.remove(CANONICAL_REVISION);
        for (key, injected) in [
            (CANONICAL_NAME, canonical_name(&without, workload_name)),
            (CANONICAL_REVISION, canonical_revision(&without)),
        ] {
            if labels.get(key).and_then(Value::as_str) == Some(injected.as_str()) {
                labels.remove(key);
            }
        }
        if labels.is_empty() {
            metadata.remove("labels");
        }
    }
    Some(status)
}

/// Takes off what templates other than `sidecar` (whose additions the
/// rest of this module knows) set beside the recorded items: annotations,
/// labels and pod-level spec fields (the gateway's `securityContext`) whose
/// value is the one the pod's templates give it now, rendered from the pod
/// as the status record leaves it. A value the user wrote that happens to
/// be the same is taken off too, and injection puts it back.
fn remove_template_additions(pod: &mut Value, workload: &Workload, s: &Settings) {
    let annotations = string_map(pod.get("metadata").and_then(|m| m.get("annotations")));
    let names = templates::select(&annotations, &s.default_templates);
    if names.iter().all(|n| n == "sidecar") && !s.user_templates.templates.contains_key("sidecar") {
        return;
    }
    let labels = string_map(pod.get("metadata").and_then(|m| m.get("labels")));
    let Some(template) =
        pipeline::render_templates(&annotations, &labels, &pod["spec"], workload, s, &names)
    else {
        return;
    };
    for field in ["annotations", "labels"] {
        let (Some(Value::Object(added)), Some(Value::Object(current))) = (
            template.get("metadata").and_then(|m| m.get(field)),
            pod.get_mut("metadata").and_then(|m| m.get_mut(field)),
        ) else {
            continue;
        };
        for (k, v) in added {
            if current.get(k).map(super::sidecar::scalar_string)
                == Some(super::sidecar::scalar_string(v))
            {
                current.remove(k);
            }
        }
    }
    if let (Some(Value::Object(added)), Some(Value::Object(spec))) =
        (template.get("spec"), pod.get_mut("spec"))
    {
        for (k, v) in added {
            let listed = matches!(
                k.as_str(),
                "containers" | "initContainers" | "volumes" | "imagePullSecrets"
            );
            if !listed && spec.get(k) == Some(v) {
                spec.remove(k);
            }
        }
    }
}

/// Puts back the user's own versions of injected containers, as the
/// injection recorded them, at the end of their lists.
fn restore_overrides(spec: &mut Map<String, Value>, recorded: Option<&Value>) {
    let Some(Value::Object(recorded)) = recorded
        .and_then(Value::as_str)
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    else {
        return;
    };
    for (recorded_field, items) in &recorded {
        for item in items.as_array().into_iter().flatten() {
            let Value::Object(mut c) = item.clone() else {
                continue;
            };
            // Injection records an absent `resources` as `{}`, and takes
            // out `image: auto` (a pod template's container always has an
            // image, so none recorded means `auto`).
            if c.get("resources") == Some(&Value::Object(Map::new())) {
                c.remove("resources");
            }
            c.entry("image")
                .or_insert_with(|| Value::String("auto".into()));
            // The record files a container under the list the template
            // puts it in, which is the user's too (an app container a
            // template adds to, the user's `istio-init`), except for the
            // user's proxy: one of the pod's containers (a native sidecar
            // is the template's doing).
            let field = if c.get("name").and_then(Value::as_str) == Some(PROXY_NAME)
                || recorded_field == "containers"
            {
                "containers"
            } else {
                "initContainers"
            };
            if let Value::Array(list) = spec
                .entry(field)
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                list.push(Value::Object(c));
            }
        }
    }
}

/// Restores a container's probes and lifecycle hooks that the rewrite
/// redirected to the proxy (an `httpGet` on a path `probers` records).
fn restore_probes(container: &mut Value, probers: &Map<String, Value>) {
    let Value::Object(c) = container else {
        return;
    };
    for member in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(Value::Object(handler)) = c.get_mut(member) {
            restore_handler(handler, probers);
        }
    }
    if let Some(Value::Object(lifecycle)) = c.get_mut("lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(Value::Object(handler)) = lifecycle.get_mut(hook) {
                restore_handler(handler, probers);
            }
        }
    }
}

fn restore_handler(handler: &mut Map<String, Value>, probers: &Map<String, Value>) {
    let Some(Value::Object(original)) = handler
        .get("httpGet")
        .and_then(|g| g.get("path"))
        .and_then(Value::as_str)
        .and_then(|path| probers.get(path))
    else {
        return;
    };
    handler.remove("httpGet");
    for (kind, action) in original {
        if kind != "timeoutSeconds" {
            handler.insert(kind.clone(), action.clone());
        }
    }
}

/// Puts back the app's own Prometheus annotations that the merge replaced
/// (recorded in `ISTIO_PROMETHEUS_ANNOTATIONS`), or takes off those the
/// merge added when the app had none.
fn restore_prometheus(annos: &mut Map<String, Value>, recorded: Option<&Value>) {
    let merged = annos.get(PROMETHEUS_PATH).and_then(Value::as_str) == Some("/stats/prometheus")
        && annos.get(PROMETHEUS_SCRAPE).and_then(Value::as_str) == Some("true");
    if !merged {
        return;
    }
    for key in [PROMETHEUS_SCRAPE, PROMETHEUS_PATH, PROMETHEUS_PORT] {
        annos.remove(key);
    }
    let Some(Value::Object(app)) = recorded else {
        return;
    };
    let targets: Vec<String> = app
        .get("targets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            let get = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("");
            match get("path") {
                "" => get("port").to_string(),
                path => format!("{}:{path}", get("port")),
            }
        })
        .collect();
    // With scrape targets, the merge fills an unset path and port from the
    // first target (and scrape with "true"): values equal to the fill are
    // left out, the others come back.
    let first = app
        .get("targets")
        .and_then(|t| t.get(0))
        .map(|t| (t.get("path").cloned(), t.get("port").cloned()));
    if !targets.is_empty() {
        annos.insert(SCRAPE_TARGETS.into(), Value::String(targets.join(",")));
    }
    for (key, annotation) in [
        ("scrape", PROMETHEUS_SCRAPE),
        ("path", PROMETHEUS_PATH),
        ("port", PROMETHEUS_PORT),
    ] {
        let Some(v) = app
            .get(key)
            .filter(|v| v.as_str().is_some_and(|v| !v.is_empty()))
        else {
            continue;
        };
        let filled = match (&first, key) {
            (Some((path, _)), "path") => path.as_ref() == Some(v),
            (Some((_, port)), "port") => port.as_ref() == Some(v),
            _ => false,
        };
        if !filled {
            annos.insert(annotation.into(), v.clone());
        }
    }
}

/// What re-injecting changes, briefly: `current` and `fresh` are the pod
/// (`{metadata, spec}`) as it is and as injection would make it now.
pub fn changes(current: &Value, previous: &Status, fresh: &Value, now: &Status) -> String {
    let mut out = Vec::new();
    if previous.revision != now.revision {
        out.push(format!(
            "revision {} -> {}",
            previous.revision, now.revision
        ));
    }
    let proxy = |pod: &Value| -> Option<Value> {
        ["containers", "initContainers"]
            .iter()
            .filter_map(|f| pod["spec"].get(*f).and_then(Value::as_array))
            .flatten()
            .find(|c| name_of(c) == PROXY_NAME)
            .cloned()
    };
    let (old, new) = (proxy(current), proxy(fresh));
    let field = |c: &Option<Value>, k: &str| c.as_ref().and_then(|c| c.get(k)).cloned();
    let image = |c: &Option<Value>| {
        field(c, "image")
            .and_then(|i| i.as_str().map(str::to_string))
            .unwrap_or_else(|| "none".into())
    };
    if image(&old) != image(&new) {
        out.push(format!("proxy image {} -> {}", image(&old), image(&new)));
    }
    if field(&old, "resources") != field(&new, "resources") {
        out.push("proxy resources".into());
    }
    let names = |pod: &Value, f: &str| -> Vec<String> {
        pod["spec"]
            .get(f)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| name_of(c).to_string())
            .collect()
    };
    if names(current, "containers") != names(fresh, "containers")
        || names(current, "initContainers") != names(fresh, "initContainers")
    {
        out.push("container order or set".into());
    }
    if previous.volumes != now.volumes || previous.image_pull_secrets != now.image_pull_secrets {
        out.push("volumes or image pull secrets".into());
    }
    let apps = |pod: &Value| -> Vec<Value> {
        pod["spec"]
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| name_of(c) != PROXY_NAME)
            .cloned()
            .collect()
    };
    if !covers_all(&apps(current), &apps(fresh)) {
        out.push("app probes rewritten again".into());
    }
    if out.is_empty() {
        let spec = |pod: &Value, k: &str| pod["spec"].get(k).cloned().unwrap_or(Value::Null);
        out.push(
            if !covers(&old.unwrap_or(Value::Null), &new.unwrap_or(Value::Null)) {
                "proxy container"
            } else if !covers_at(
                &spec(current, "volumes"),
                &spec(fresh, "volumes"),
                "volumes",
            ) {
                "volumes"
            } else if !covers(&current["metadata"], &fresh["metadata"]) {
                "pod metadata"
            } else {
                "pod spec"
            }
            .into(),
        );
    }
    out.join(", ")
}

fn covers_all(current: &[Value], fresh: &[Value]) -> bool {
    current.len() == fresh.len() && current.iter().zip(fresh).all(|(c, f)| covers(c, f))
}

/// Whether `current` already has everything `fresh` sets: the same values,
/// with fields of its own allowed where the API server fills them in
/// (defaults such as a container's `terminationMessagePath`, a probe's
/// `successThreshold`, the ServiceAccount plugin's token mount). Env var,
/// argument and container lists must match exactly by name and order, so
/// that a setting that went away is seen.
pub fn covers(current: &Value, fresh: &Value) -> bool {
    covers_at(current, fresh, "")
}

/// The fields the API server and its plugins fill in on a container; any
/// other field of a container that injection no longer sets (a
/// `lifecycle` hook that went with holdApplicationUntilProxyStarts) means
/// the injection changed.
const DEFAULTED_CONTAINER_FIELDS: [&str; 5] = [
    "imagePullPolicy",
    "resources",
    "terminationMessagePath",
    "terminationMessagePolicy",
    // The ServiceAccount plugin's token mount, in every container.
    "volumeMounts",
];

/// `key` is the member the values are under; `container` for the items of
/// a container list.
fn covers_at(current: &Value, fresh: &Value, key: &str) -> bool {
    match (current, fresh) {
        (Value::Object(c), Value::Object(f)) => {
            f.iter()
                .all(|(k, fv)| c.get(k).map_or(fv.is_null(), |cv| covers_at(cv, fv, k)))
                && (key != "container"
                    || c.keys().all(|k| {
                        f.contains_key(k) || DEFAULTED_CONTAINER_FIELDS.contains(&k.as_str())
                    }))
        }
        (Value::Array(c), Value::Array(f)) => {
            let named = |l: &[Value]| l.iter().all(|i| i.get("name").is_some());
            let exact = matches!(
                key,
                "env" | "args" | "command" | "containers" | "initContainers" | "volumes"
            );
            if !exact && named(c) && named(f) {
                // Extra named items (a token mount) are the API server's.
                let mut rest = c.iter();
                f.iter()
                    .all(|fi| rest.any(|ci| name_of(ci) == name_of(fi) && covers_at(ci, fi, "")))
            } else if key == "volumes" {
                // The ServiceAccount plugin adds its token volume to pods.
                let mut rest = c.iter();
                f.iter()
                    .all(|fi| rest.any(|ci| name_of(ci) == name_of(fi) && covers_at(ci, fi, "")))
                    && c.len() <= f.len() + 1
            } else {
                let item = if matches!(key, "containers" | "initContainers") {
                    "container"
                } else {
                    ""
                };
                c.len() == f.len() && c.iter().zip(f).all(|(ci, fi)| covers_at(ci, fi, item))
            }
        }
        // A null is no value: the API server drops it, or defaults it (a
        // volume's `emptyDir:` with no value, as Istio's grpc-agent
        // template writes it, comes back `emptyDir: {}`).
        (c, Value::Null) => c.is_null() || c.as_object().is_some_and(|m| m.is_empty()),
        _ => current == fresh,
    }
}

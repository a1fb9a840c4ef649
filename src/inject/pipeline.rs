//! Injection of one pod: render the template, merge it into the pod,
//! re-apply the user's own settings of injected containers, then
//! post-process (Prometheus merge, probe rewriting, metadata, container
//! order) as Istio's injector does.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::annotations::{self as anno, OVERRIDES, STATUS};
use super::gojson::{self, Ty};
use super::inputs;
use super::merge::merge_into;
use super::node::Node;
use super::order::reorder;
use super::probes;
use super::prometheus::prometheus_merge;
use super::sidecar::{self, Inputs, PROXY_NAME, Status, canonical_value};
use super::templates;
use super::workload::Workload;
use super::{InjectError, at, at_mut, string_map};
use crate::config::Settings;

fn name_of(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or("")
}

/// ProxyConfig: the mesh default with the pod's `proxy.istio.io/config`
/// on top (`proxyMetadata` merged key by key).
fn proxy_config<'a>(
    s: &'a Settings,
    annotations: &BTreeMap<String, String>,
) -> Result<Cow<'a, Map<String, Value>>, InjectError> {
    let Some(text) = annotations.get(anno::PROXY_CONFIG) else {
        return Ok(Cow::Borrowed(&s.proxy_config));
    };
    let mut pc = s.proxy_config.clone();
    let over = anno::parse_proxy_config(text)
        .map_err(|form| InjectError::annotation(anno::PROXY_CONFIG, text, form))?;
    for (k, v) in over {
        match (pc.get_mut(&k), &v) {
            (Some(Value::Object(base)), Value::Object(add)) if k == "proxyMetadata" => {
                for (mk, mv) in add {
                    base.insert(mk.clone(), mv.clone());
                }
            }
            _ => {
                pc.insert(k, v);
            }
        }
    }
    Ok(Cow::Owned(pc))
}

/// What a pod's annotations and the settings decide before anything is
/// rendered.
#[derive(Debug, Clone)]
pub struct PodSettings<'a> {
    /// ProxyConfig, with the pod's own on top.
    pub proxy_config: Cow<'a, Map<String, Value>>,
    /// The proxy runs as a native sidecar.
    pub native: bool,
    /// The application waits for the proxy.
    pub hold: bool,
    /// ProxyConfig's status port, as text: where Prometheus is pointed.
    pub target_port: String,
}

/// Validates the pod's annotations and reads what they decide.
pub fn pod_settings<'a>(
    s: &'a Settings,
    annotations: &BTreeMap<String, String>,
) -> Result<PodSettings<'a>, InjectError> {
    anno::validate(annotations)?;
    let proxy_config = proxy_config(s, annotations)?;
    let native = match annotations.get(anno::NATIVE_SIDECAR) {
        Some(v) => v == "true",
        None => s.native_sidecars,
    };
    let hold = proxy_config
        .get("holdApplicationUntilProxyStarts")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || s.hold_application;
    let target_port = proxy_config
        .get("statusPort")
        .and_then(Value::as_i64)
        .unwrap_or(15020)
        .to_string();
    Ok(PodSettings {
        proxy_config,
        native,
        hold,
        target_port,
    })
}

/// The injected pod's annotations, from the merged ones (the templates'
/// included, `istio.io/rev` among them): Istio's Prometheus merge, the
/// configured extra annotations and the status record (in its annotation's
/// JSON form, `status_json`). Env vars the proxy needs as a result are
/// added to `proxy_env`.
pub fn finish_annotations(
    annos: &mut BTreeMap<String, String>,
    s: &Settings,
    target_port: &str,
    status_json: String,
    proxy_env: &mut Vec<Node<'static>>,
) {
    prometheus_merge(s, annos, target_port, proxy_env);
    for (k, v) in &s.injected_annotations {
        annos.insert(k.clone(), v.clone());
    }
    annos.insert(STATUS.into(), status_json);
}

/// Sets `metadata.annotations` to `annos`.
pub fn set_annotations(metadata: &mut Value, annos: BTreeMap<String, String>) {
    metadata["annotations"] = Value::Object(
        annos
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    );
}

/// The status port the app's probes are redirected to, or `None` when the
/// pod's settings do not rewrite them.
pub fn probe_rewrite_port(s: &Settings, annotations: &BTreeMap<String, String>) -> Option<i64> {
    let rewrite = match annotations.get(anno::REWRITE_PROBERS) {
        Some(v) => v == "true",
        None => s.rewrite_probes,
    };
    let status_port: i64 = sidecar_status_port(s, annotations);
    (rewrite && status_port != 0).then_some(status_port)
}

/// The proxy's `ISTIO_KUBE_APP_PROBERS`: the probers the rewrite `found`,
/// with those an earlier injection recorded (`existing`) kept; none when
/// there are neither.
pub fn probers_env(
    found: &BTreeMap<String, String>,
    existing: Option<Value>,
) -> Option<Node<'static>> {
    if found.is_empty() && existing.is_none() {
        return None;
    }
    let text = match existing {
        Some(Value::Object(old)) => {
            let mut all = found.clone();
            for (k, v) in old {
                all.entry(k).or_insert_with(|| probes::prober_text(&v));
            }
            probes::probers_json(&all)
        }
        _ => probes::probers_json(found),
    };
    Some(sidecar::env(probes::APP_PROBERS_ENV, text))
}

/// Rewrites the app containers' probes in `spec` when the pod's settings
/// ask for it, and gives the proxy's `ISTIO_KUBE_APP_PROBERS` (with the
/// probers an earlier injection recorded, `existing`, kept).
pub fn rewrite_probes(
    spec: &mut Value,
    s: &Settings,
    annotations: &BTreeMap<String, String>,
    existing: Option<Value>,
) -> Option<Node<'static>> {
    let status_port = probe_rewrite_port(s, annotations)?;
    probers_env(&probes::rewrite_app_probes(spec, status_port), existing)
}

/// The template pod `names` render for a pod, or `None` when its
/// annotations are invalid or a template fails (what uninjection uses to
/// recognise what templates set; injection itself reports the error).
pub fn render_templates(
    annotations: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    spec: &Value,
    workload: &Workload,
    s: &Settings,
    names: &[String],
) -> Option<Value> {
    let ps = pod_settings(s, annotations).ok()?;
    let inputs = Inputs {
        s,
        annotations,
        labels,
        spec,
        workload,
        proxy_config: &ps.proxy_config,
        native: ps.native,
        hold: ps.hold,
        resources: inputs::resources(s, annotations),
    };
    templates::render(&inputs, names).ok()
}

/// Injects one pod that carries no earlier injection (re-injection
/// uninjects first): `annotations`, `labels` and `spec` are the pod's, read
/// only; `pod` (`{metadata, spec}`, a copy of them) is injected in place.
pub fn inject_pod(
    annotations: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    spec: &Value,
    pod: &mut Value,
    workload: &Workload,
    s: &Settings,
) -> Result<Status, InjectError> {
    let PodSettings {
        proxy_config: pc,
        native,
        hold,
        target_port,
    } = pod_settings(s, annotations)?;
    let inputs = Inputs {
        s,
        annotations,
        labels,
        spec,
        workload,
        proxy_config: &pc,
        native,
        hold,
        resources: inputs::resources(s, annotations),
    };
    let template = templates::render(
        &inputs,
        &templates::select(annotations, &s.default_templates),
    )?;
    let status = templates::status(&template, s);
    let listed = |field: &str| -> Vec<&str> {
        at(&template, "/spec")
            .and_then(|sp| sp.get(field))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(name_of)
            .collect()
    };
    // The proxy is moved to the init containers only when no template also
    // puts an `istio-proxy` among the containers (as SPIRE's does, to add
    // mounts to it), as Istio moves it.
    let move_proxy = native
        && listed("initContainers").contains(&PROXY_NAME)
        && !listed("containers").contains(&PROXY_NAME);

    // The user's own versions of injected containers ("overrides").
    let recorded: Value = annotations
        .get(OVERRIDES)
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null);
    let mut overrides: Vec<(&'static str, Value)> = Vec::new();
    for field in ["containers", "initContainers"] {
        for name in listed(field) {
            let found = recorded
                .get(field)
                .and_then(Value::as_array)
                .and_then(|l| l.iter().find(|c| name_of(c) == name))
                .or_else(|| {
                    ["containers", "initContainers"]
                        .iter()
                        .filter_map(|f| spec.get(*f).and_then(Value::as_array))
                        .flatten()
                        .find(|c| name_of(c) == name)
                });
            if let Some(o) = found {
                let mut o = o.clone();
                if o.get("image").and_then(Value::as_str) == Some("auto")
                    && let Value::Object(m) = &mut o
                {
                    m.remove("image");
                }
                canonicalize_resources(&mut o);
                overrides.push((field, o));
            }
        }
    }

    // Merge: the pod (without override containers) with the template on top.
    let override_names: Vec<&str> = overrides.iter().map(|(_, o)| name_of(o)).collect();
    for field in ["containers", "initContainers"] {
        if let Some(Value::Array(list)) = at_mut(pod, "/spec").and_then(|sp| sp.get_mut(field)) {
            list.retain(|c| !override_names.contains(&name_of(c)));
        }
    }
    merge_into(pod, template);
    let merged = pod;
    for (field, o) in &overrides {
        if let Some(Value::Array(list)) = at_mut(merged, "/spec").and_then(|sp| sp.get_mut(field))
            && let Some(c) = list.iter_mut().find(|c| name_of(c) == name_of(o))
        {
            let mut first = o.clone();
            merge_into(&mut first, c.take());
            merge_into(&mut first, o.clone());
            *c = first;
        }
    }
    if move_proxy && let Some(Value::Array(list)) = at_mut(merged, "/spec/containers") {
        list.retain(|c| name_of(c) != PROXY_NAME);
    }
    // Under TPROXY the proxy needs root (NET_ADMIN on its own sockets):
    // a runAsUser from the user's own istio-proxy does not apply to it
    // (Istio's adjustInitContainerUser); its group still does.
    let tproxy = annotations
        .get(anno::INTERCEPTION_MODE)
        .map(String::as_str)
        .or_else(|| pc.get("interceptionMode").and_then(Value::as_str))
        == Some("TPROXY");
    let user_sets_uid = overrides.iter().any(|(_, o)| {
        name_of(o) == PROXY_NAME
            && o.get("securityContext")
                .and_then(|sc| sc.get("runAsUser"))
                .is_some_and(|u| !u.is_null())
    });
    if tproxy
        && user_sets_uid
        && let Some(Value::Object(sc)) =
            find_proxy(merged).and_then(|p| p.get_mut("securityContext"))
    {
        sc.insert("runAsUser".into(), json!(0));
    }

    let mut annos = string_map(at(merged, "/metadata/annotations"));
    if !overrides.is_empty() {
        let mut text = String::from("{");
        for field in ["containers", "initContainers"] {
            let items: Vec<String> = overrides
                .iter()
                .filter(|(f, _)| *f == field)
                .map(|(_, o)| {
                    let mut o = o.clone();
                    if o.get("resources").is_none() {
                        o["resources"] = json!({});
                    }
                    gojson::to_string(&o, Ty::Container)
                })
                .collect();
            if !items.is_empty() {
                if text.len() > 1 {
                    text.push(',');
                }
                text.push_str(&format!("\"{field}\":[{}]", items.join(",")));
            }
        }
        text.push('}');
        annos.insert(OVERRIDES.into(), text);
    }

    // Post-processing, in Istio's order.
    let mut proxy_env: Vec<Node> = Vec::new();
    let status_json = status.to_json();
    finish_annotations(&mut annos, s, &target_port, status_json, &mut proxy_env);
    // The templates' annotations count (a template may turn the rewrite off).
    if let Some(spec) = merged.get_mut("spec") {
        proxy_env.extend(rewrite_probes(spec, s, &annos, None));
    }
    if let Some(proxy) = find_proxy(merged)
        && let Some(Value::Array(env)) = proxy.get_mut("env")
    {
        for e in proxy_env {
            let e = e.into_value();
            match env.iter_mut().find(|x| name_of(x) == name_of(&e)) {
                Some(slot) => *slot = e,
                None => env.push(e),
            }
        }
    }
    set_annotations(&mut merged["metadata"], annos);
    reorder(merged, hold);
    Ok(status)
}

fn sidecar_status_port(s: &Settings, annotations: &BTreeMap<String, String>) -> i64 {
    annotations
        .get(anno::STATUS_PORT)
        .and_then(|p| p.parse().ok())
        .unwrap_or(s.status_port)
}

fn canonicalize_resources(c: &mut Value) {
    if let Some(Value::Object(res)) = c.get_mut("resources") {
        for section in res.values_mut() {
            if let Value::Object(q) = section {
                for v in q.values_mut() {
                    *v = canonical_value(v);
                }
            }
        }
    }
}

fn find_proxy(pod: &mut Value) -> Option<&mut Value> {
    let spec = pod.get_mut("spec")?.as_object_mut()?;
    let in_init = spec
        .get("initContainers")
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|c| name_of(c) == PROXY_NAME));
    let field = if in_init {
        "initContainers"
    } else {
        "containers"
    };
    spec.get_mut(field)?
        .as_array_mut()?
        .iter_mut()
        .find(|c| name_of(c) == PROXY_NAME)
}

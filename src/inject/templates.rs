//! Istio's named injection templates: which ones a pod gets
//! (`inject.istio.io/templates`, else
//! `values.sidecarInjectorWebhook.defaultTemplates`, else `sidecar`), each
//! rendered into a partial pod, and all merged in order into the template
//! pod, as Istio merges them (strategic merge, containers by name).
//!
//! The built-in `sidecar`, `gateway`, `grpc-agent` and `grpc-simple` are
//! rendered by Rust code ([`super::sidecar`], [`super::gateway`],
//! [`super::grpc`]); the user's own (`values.sidecarInjectorWebhook.
//! templates`, which replace a built-in of the same name, as in Istio) are
//! run by [`crate::template`] over Istio's `SidecarTemplateData`, and their
//! YAML is parsed within [`super::bounded_yaml`]'s limits.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::bounded_yaml::{YamlLimits, check_yaml};
use super::merge::merge_into;
use super::sidecar::{self, Inputs, Status};
use super::{InjectError, gateway, grpc};
use crate::config::BUILT_IN_TEMPLATES;
use crate::template::Limits;

/// The annotation that names a pod's templates, comma-separated.
pub const TEMPLATES_ANNOTATION: &str = "inject.istio.io/templates";

/// What a user template's YAML may hold once rendered.
const RENDERED_LIMITS: YamlLimits = YamlLimits {
    max_bytes: 1 << 20,
    max_flow_depth: 64,
    max_nodes: 100_000,
};

/// The names of the templates a pod gets, in order.
pub fn select(annotations: &BTreeMap<String, String>, defaults: &[String]) -> Vec<String> {
    match annotations.get(TEMPLATES_ANNOTATION) {
        Some(list) => list.split(',').map(|n| n.trim().to_string()).collect(),
        None if defaults.is_empty() => vec!["sidecar".into()],
        None => defaults.to_vec(),
    }
}

/// The template pod: every template of `names` rendered and merged in order.
pub fn render(i: &Inputs, names: &[String]) -> Result<Value, InjectError> {
    let mut pod = Value::Object(Map::new());
    let mut data: Option<Value> = None;
    for name in names {
        let part = if let Some(t) = i.s.user_templates.templates.get(name) {
            let data = data.get_or_insert_with(|| template_data(i));
            let text = t
                .execute(data, Limits::default())
                .map_err(|e| InjectError(format!("injection {e}")))?;
            parse_rendered(name, &text)?
        } else {
            match name.as_str() {
                "sidecar" => sidecar::render(i)?.into_pod(),
                "gateway" => gateway::render(i),
                "grpc-agent" => grpc::agent(i),
                "grpc-simple" => grpc::simple(i),
                _ => return Err(unknown(name, i)),
            }
        };
        merge_into(&mut pod, part);
    }
    Ok(pod)
}

fn unknown(name: &str, i: &Inputs) -> InjectError {
    let mut known: Vec<&str> = BUILT_IN_TEMPLATES.to_vec();
    for user in i.s.user_templates.templates.keys() {
        if !known.contains(&user.as_str()) {
            known.push(user);
        }
    }
    InjectError(format!(
        "invalid value {:?} for annotation {TEMPLATES_ANNOTATION}: template {name:?} not found; expected a comma-separated list of: {}",
        i.annotations
            .get(TEMPLATES_ANNOTATION)
            .map(String::as_str)
            .unwrap_or(name),
        known.join(", ")
    ))
}

/// A user template's output as a partial pod.
fn parse_rendered(name: &str, text: &str) -> Result<Value, InjectError> {
    let refuse = |why: String| {
        InjectError(format!(
            "injection template {name:?} rendered {why}: expected YAML of a partial pod (metadata, spec)"
        ))
    };
    check_yaml(text, &RENDERED_LIMITS).map_err(|e| refuse(format!("too much: {e}")))?;
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_yaml::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(Value::Object(m)),
        Ok(Value::Null) => Ok(Value::Object(Map::new())),
        Ok(other) => Err(refuse(format!("a {}", kind(&other)))),
        Err(e) => Err(refuse(format!("invalid YAML ({e})"))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "list",
        Value::String(_) => "string",
        _ => "scalar",
    }
}

/// Istio's `SidecarTemplateData`, as JSON: Go's field names reach the
/// JSON keys (`.Spec.Containers` is `spec.containers`).
fn template_data(i: &Inputs) -> Value {
    let s = i.s;
    let mut proxy_config = i.proxy_config.clone();
    proxy_config
        .entry("interceptionMode")
        .or_insert_with(|| Value::String(i.interception_mode().to_string()));
    json!({
        "TypeMeta": {"kind": i.workload.kind, "apiVersion": i.workload.api_version},
        "DeploymentMeta": {"name": i.workload.name, "namespace": i.workload.namespace},
        "ObjectMeta": {
            "name": "",
            "namespace": i.workload.namespace,
            "labels": i.labels,
            "annotations": i.annotations,
        },
        "Spec": i.spec,
        "ProxyConfig": proxy_config,
        "MeshConfig": s.user_templates.mesh_config,
        "Values": s.user_templates.values,
        "Revision": s.revision,
        // Istio's `.NativeSidecars` is the mesh-wide setting, not the pod's
        // `sidecar.istio.io/nativeSidecar`: its sidecar template combines
        // the two itself, and a user template written for Istio must see
        // what it sees there.
        "NativeSidecars": s.native_sidecars,
        "NativeSidecar": s.native_sidecars,
        "ProxyImage": i.image(&s.proxy_image),
        "ProxyInitImage": i.image(&s.init_image),
        "ProxyUID": 1337,
        "ProxyGID": 1337,
        "InboundTrafficPolicyMode": if s.inbound_localhost { "localhost" } else { "" },
        "CompliancePolicy": "",
    })
}

/// The status record of a template pod: the names of what it adds.
pub fn status(template: &Value, s: &crate::config::Settings) -> Status {
    let names = |field: &str| -> Vec<String> {
        template
            .get("spec")
            .and_then(|sp| sp.get(field))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .map(str::to_string)
            .collect()
    };
    Status {
        init_containers: names("initContainers"),
        containers: names("containers"),
        volumes: names("volumes"),
        image_pull_secrets: names("imagePullSecrets"),
        revision: sidecar::revision(s),
    }
}

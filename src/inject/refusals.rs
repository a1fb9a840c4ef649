//! What the API server will refuse in an injected pod, said before it does.
//!
//! Injection gives what Istio's injector gives, even where that is a pod
//! the API server refuses. The case seen on a real API server: with native
//! sidecars (the default), the proxy is an init container, and a user
//! template written for the classic form (`spec.containers: - name:
//! istio-proxy`, as Istio's SPIRE recipe has it) adds a second, image-less
//! `istio-proxy` to `containers`. Istio's own golden for
//! `inject.istio.io/templates: sidecar,spire` is that pod, and the API
//! server answers `Duplicate value: "istio-proxy"` and `image: Required
//! value`, naming neither the template nor the fix. These sentences do, as
//! AdmissionReview warnings (kubectl prints them) and on the preview's
//! standard error.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::sidecar::PROXY_NAME;
use super::templates::TEMPLATES_ANNOTATION;

/// One sentence per problem in the injected pod `spec`; `annotations` are
/// the pod's, for the templates it asked for.
pub fn of(spec: &Value, annotations: &BTreeMap<String, String>) -> Vec<String> {
    let named = |field: &str| -> Vec<&Value> {
        spec.get(field)
            .and_then(Value::as_array)
            .map(|cs| cs.iter().collect())
            .unwrap_or_default()
    };
    let name = |c: &Value| {
        c.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let init: BTreeSet<String> = named("initContainers").into_iter().map(name).collect();
    let templates = annotations
        .get(TEMPLATES_ANNOTATION)
        .map(|t| format!(" (templates {t})"))
        .unwrap_or_default();
    let mut problems = Vec::new();
    for c in named("containers") {
        let n = name(c);
        if init.contains(&n) {
            let mut sentence = format!(
                "the injected pod has two containers named {n:?}, one in initContainers and \
                 one in containers, which the API server refuses (names are unique across both)"
            );
            if n == PROXY_NAME {
                sentence.push_str(&format!(
                    ": the proxy is a native sidecar (an init container), and a template{templates} \
                     adds {n:?} to containers; Istio's injector gives the same pod. Write the \
                     template's changes to the proxy under initContainers, or set the annotation \
                     sidecar.istio.io/nativeSidecar: \"false\""
                ));
            }
            problems.push(sentence);
        } else if c
            .get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            problems.push(format!(
                "container {n:?} of the injected pod has no image, which the API server refuses"
            ));
        }
    }
    problems
}

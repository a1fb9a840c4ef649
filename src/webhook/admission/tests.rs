//! Unit tests of [`super::admit`]: every patch is checked by applying it and
//! comparing with what the engine itself returns, never against template
//! details.

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;
use crate::inject::Outcome;

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                     "x-future-field": {"kept": true}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
    })
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "api", "image": "api:1"}]}
            }
        }
    })
}

fn review(version: &str, group: &str, kind: &str, operation: &str, object: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": version,
        "kind": "AdmissionReview",
        "request": {
            "uid": "3f0c3d9e-1b7e-4c55-9d7e-6c2a1f0e5b11",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": "things"},
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": object,
            "oldObject": null,
            "dryRun": false
        }
    }))
    .unwrap()
}

fn response_of(admitted: &Admitted) -> Value {
    let out: Value = serde_json::from_slice(&admitted.body).unwrap();
    out
}

fn engine(object: &Value) -> Result<Outcome, inject::InjectError> {
    let ctx = Context {
        namespace: Some("shop".into()),
        namespace_labels: None,
    };
    inject::inject(object, &ctx, &Config::default())
}

/// Decodes the response's patch and applies it to `object`.
fn apply(response: &Value, object: &Value) -> Value {
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let b64 = response["patch"]
        .as_str()
        .expect("patch is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    patched
}

fn assert_injected_like_engine(version: &str, group: &str, operation: &str, object: Value) {
    let kind = object["kind"].as_str().unwrap().to_string();
    let admitted = admit(
        &review(version, group, &kind, operation, &object),
        &Config::default(),
    )
    .unwrap();
    let out = response_of(&admitted);
    assert_eq!(out["apiVersion"], version);
    assert_eq!(out["kind"], "AdmissionReview");
    let response = &out["response"];
    assert_eq!(response["uid"], "3f0c3d9e-1b7e-4c55-9d7e-6c2a1f0e5b11");
    assert_eq!(response["allowed"], true);
    let Ok(Outcome::Injected { mutated, .. }) = engine(&object) else {
        panic!("the engine does not inject the fixture {kind}");
    };
    assert_eq!(apply(response, &object), mutated);
    assert_eq!(admitted.summary.verdict, Verdict::Injected);
    assert_eq!(admitted.summary.kind, kind);
    assert_eq!(admitted.summary.namespace, "shop");
    assert_eq!(admitted.summary.operation, operation);
}

#[test]
fn v1_pod_create_gets_the_engines_patch() {
    assert_injected_like_engine("admission.k8s.io/v1", "", "CREATE", pod());
}

#[test]
fn v1beta1_is_answered_in_v1beta1() {
    assert_injected_like_engine("admission.k8s.io/v1beta1", "", "CREATE", pod());
}

#[test]
fn workloads_are_injected_on_create_and_update() {
    assert_injected_like_engine("admission.k8s.io/v1", "apps", "CREATE", deployment());
    assert_injected_like_engine("admission.k8s.io/v1", "apps", "UPDATE", deployment());
}

#[test]
fn summary_names_the_object() {
    let admitted = admit(
        &review("admission.k8s.io/v1", "", "Pod", "CREATE", &pod()),
        &Config::default(),
    )
    .unwrap();
    assert_eq!(admitted.summary.name, "web");
    assert!(!admitted.summary.dry_run);
}

fn assert_skipped(body: &[u8], reason: &'static str) {
    let admitted = admit(body, &Config::default()).unwrap();
    let response = &response_of(&admitted)["response"];
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("patch").is_none(), "{response}");
    assert!(response.get("patchType").is_none(), "{response}");
    assert_eq!(admitted.summary.verdict, Verdict::Skipped(reason));
}

fn update(old: &Value, new: &Value) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&review(
        "admission.k8s.io/v1",
        "apps",
        "Deployment",
        "UPDATE",
        new,
    ))
    .unwrap();
    body["request"]["oldObject"] = old.clone();
    serde_json::to_vec(&body).unwrap()
}

/// After an upgrade, a label added to an injected Deployment left its pods
/// alone; a template edit (`kubectl rollout restart`) brings the new proxy.
#[test]
fn an_update_that_leaves_the_pod_template_alone_is_not_injected() {
    let old_config = Config::from_yaml("values:\n  global:\n    tag: 1.25.0\n").unwrap();
    let Outcome::Injected {
        mutated: stored, ..
    } = inject::inject(&deployment(), &Context::default(), &old_config).unwrap()
    else {
        panic!("not injected");
    };
    let mut labelled = stored.clone();
    labelled["metadata"]["labels"] = json!({"team": "a"});
    labelled["spec"]["replicas"] = json!(5);
    let admitted = admit(&update(&stored, &labelled), &Config::default()).unwrap();
    assert_eq!(
        admitted.summary.verdict,
        Verdict::Skipped("template-unchanged")
    );
    assert!(response_of(&admitted)["response"].get("patch").is_none());

    let mut restarted = stored.clone();
    restarted["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] =
        json!("2026-12-04T04:40:00Z");
    let admitted = admit(&update(&stored, &restarted), &Config::default()).unwrap();
    assert!(
        matches!(&admitted.summary.verdict, Verdict::Reinjected(change) if change.contains("proxy image")),
        "{:?}",
        admitted.summary.verdict
    );

    // A Deployment created before its namespace was selected: a label
    // leaves it as it is; its next template change injects it.
    let mut plain = deployment();
    plain["metadata"]["labels"] = json!({"team": "a"});
    let admitted = admit(&update(&deployment(), &plain), &Config::default()).unwrap();
    assert_eq!(
        admitted.summary.verdict,
        Verdict::Skipped("template-unchanged")
    );
}

#[test]
fn an_injected_template_that_opts_out_loses_its_sidecar() {
    let Outcome::Injected {
        mutated: stored, ..
    } = engine(&deployment()).unwrap()
    else {
        panic!("not injected");
    };
    let mut opted_out = stored.clone();
    opted_out["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] =
        json!("false");
    let admitted = admit(&update(&stored, &opted_out), &Config::default()).unwrap();
    assert_eq!(
        admitted.summary.verdict,
        Verdict::Removed("pod-annotation-opt-out")
    );
    let patched = apply(&response_of(&admitted)["response"], &opted_out);
    let containers = &patched["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().unwrap().len(), 1, "{containers}");
    assert!(
        patched["spec"]["template"]["spec"]
            .get("initContainers")
            .is_none()
    );
}

#[test]
fn jobs_are_not_injected_on_update_their_template_is_immutable() {
    let mut job = deployment();
    job["apiVersion"] = json!("batch/v1");
    job["kind"] = json!("Job");
    assert_injected_like_engine("admission.k8s.io/v1", "batch", "CREATE", job.clone());
    assert_skipped(
        &review("admission.k8s.io/v1", "batch", "Job", "UPDATE", &job),
        "ignored-operation",
    );
}

/// The shipped webhook configurations send exactly what [`INJECTED_KINDS`]
/// injects: every kind and operation it injects, and nothing it would only
/// skip (a Job UPDATE sent for nothing would still wait on the webhook).
#[test]
fn the_shipped_webhook_rules_match_the_injected_kinds() {
    let mut want: Vec<(String, String, String)> = Vec::new();
    for (kind, groups, operations) in INJECTED_KINDS {
        let resource = format!("{}s", kind.to_ascii_lowercase());
        for operation in operations {
            want.push((
                groups[0].to_string(),
                resource.clone(),
                operation_name(operation).into(),
            ));
        }
    }
    want.sort();
    for file in [
        "manifests/mutatingwebhookconfiguration.yaml",
        "manifests/overlays/revision-canary/mutatingwebhookconfiguration.yaml",
    ] {
        let text =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
                .unwrap();
        let config: Value = serde_yaml::from_str(&text).unwrap();
        for webhook in config["webhooks"].as_array().unwrap() {
            let mut got = Vec::new();
            for rule in webhook["rules"].as_array().unwrap() {
                for group in rule["apiGroups"].as_array().unwrap() {
                    for resource in rule["resources"].as_array().unwrap() {
                        for operation in rule["operations"].as_array().unwrap() {
                            got.push((
                                group.as_str().unwrap().to_string(),
                                resource.as_str().unwrap().to_string(),
                                operation.as_str().unwrap().to_string(),
                            ));
                        }
                    }
                }
            }
            got.sort();
            assert_eq!(got, want, "{file}: {}", webhook["name"]);
        }
    }
}

#[test]
fn pods_are_not_injected_on_update() {
    assert_skipped(
        &review("admission.k8s.io/v1", "", "Pod", "UPDATE", &pod()),
        "ignored-operation",
    );
}

#[test]
fn a_deployments_replicaset_is_left_to_the_deployment() {
    let mut replicaset = deployment();
    replicaset["kind"] = json!("ReplicaSet");
    replicaset["metadata"]["name"] = json!("api-7d9c8b6f5");
    replicaset["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "controller": true}]);
    for operation in ["CREATE", "UPDATE"] {
        assert_skipped(
            &review(
                "admission.k8s.io/v1",
                "apps",
                "ReplicaSet",
                operation,
                &replicaset,
            ),
            "controlled-by-owner",
        );
    }
}

#[test]
fn deletes_are_allowed_unchanged() {
    assert_skipped(
        &review(
            "admission.k8s.io/v1",
            "apps",
            "Deployment",
            "DELETE",
            &Value::Null,
        ),
        "ignored-operation",
    );
}

#[test]
fn other_kinds_are_allowed_unchanged() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_skipped(
        &review("admission.k8s.io/v1", "", "ConfigMap", "CREATE", &cm),
        "ignored-kind",
    );
    // Right name, wrong group: not a Kubernetes Deployment.
    assert_skipped(
        &review(
            "admission.k8s.io/v1",
            "example.com",
            "Deployment",
            "CREATE",
            &deployment(),
        ),
        "ignored-kind",
    );
}

#[test]
fn subresources_are_allowed_unchanged() {
    let mut doc: Value = serde_json::from_slice(&review(
        "admission.k8s.io/v1",
        "apps",
        "Deployment",
        "UPDATE",
        &deployment(),
    ))
    .unwrap();
    doc["request"]["subResource"] = json!("scale");
    assert_skipped(&serde_json::to_vec(&doc).unwrap(), "subresource");
}

#[test]
fn a_create_without_object_is_allowed_unchanged() {
    assert_skipped(
        &review("admission.k8s.io/v1", "", "Pod", "CREATE", &Value::Null),
        "no-object",
    );
}

#[test]
fn dry_run_is_answered_identically() {
    let wet = admit(
        &review("admission.k8s.io/v1", "", "Pod", "CREATE", &pod()),
        &Config::default(),
    )
    .unwrap();
    let mut doc: Value =
        serde_json::from_slice(&review("admission.k8s.io/v1", "", "Pod", "CREATE", &pod()))
            .unwrap();
    doc["request"]["dryRun"] = json!(true);
    let dry = admit(&serde_json::to_vec(&doc).unwrap(), &Config::default()).unwrap();
    assert_eq!(dry.body, wet.body);
    assert!(dry.summary.dry_run);
}

/// Objects with bad annotations, which the engine rejects.
fn rejected_objects() -> Vec<Value> {
    let mut bad_ports = pod();
    bad_ports["metadata"]["annotations"] =
        json!({"traffic.sidecar.istio.io/includeInboundPorts": "abc"});
    let mut bad_interception = pod();
    bad_interception["metadata"]["annotations"] =
        json!({"sidecar.istio.io/interceptionMode": "SIDEWAYS"});
    vec![bad_ports, bad_interception]
}

#[test]
fn an_inject_value_istio_does_not_accept_is_a_warning_and_the_namespaces_policy() {
    let mut maybe = pod();
    maybe["metadata"]["annotations"] = json!({"sidecar.istio.io/inject": "maybe"});
    let admitted = admit(
        &review("admission.k8s.io/v1", "", "Pod", "CREATE", &maybe),
        &Config::default(),
    )
    .unwrap();
    let response = &response_of(&admitted)["response"];
    assert_eq!(response["allowed"], true, "{response}");
    assert!(
        response["patch"].is_string(),
        "the policy injects: {response}"
    );
    let warnings = response["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{response}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.contains("annotation sidecar.istio.io/inject") && warning.contains("\"maybe\""),
        "{warning}"
    );
    // A valid value says nothing.
    let plain = admit(
        &review("admission.k8s.io/v1", "", "Pod", "CREATE", &pod()),
        &Config::default(),
    )
    .unwrap();
    assert!(response_of(&plain)["response"].get("warnings").is_none());
}

#[test]
fn a_pod_the_api_server_will_refuse_is_injected_as_istio_does_with_a_warning() {
    let cfg = Config::from_yaml(
        "values:\n  sidecarInjectorWebhook:\n    templates:\n      extra: |\n        spec:\n          containers:\n          - name: istio-proxy\n            env: [{name: X, value: \"1\"}]\n",
    )
    .unwrap();
    let mut spire = pod();
    spire["metadata"]["annotations"] = json!({"inject.istio.io/templates": "sidecar,extra"});
    let admitted = admit(
        &review("admission.k8s.io/v1", "", "Pod", "CREATE", &spire),
        &cfg,
    )
    .unwrap();
    let response = &response_of(&admitted)["response"];
    assert!(response["patch"].is_string(), "{response}");
    let warnings = response["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{response}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("two containers named \"istio-proxy\""),
        "{response}"
    );
}

#[test]
fn engine_errors_are_denied_with_the_engines_message() {
    for object in rejected_objects() {
        let err = engine(&object).expect_err("the engine accepted a bad annotation");
        let admitted = admit(
            &review("admission.k8s.io/v1", "", "Pod", "CREATE", &object),
            &Config::default(),
        )
        .unwrap();
        let response = &response_of(&admitted)["response"];
        assert_eq!(response["allowed"], false, "{response}");
        assert_eq!(response["status"]["code"], 400, "{response}");
        assert_eq!(response["status"]["message"], err.to_string(), "{response}");
        assert!(response.get("patch").is_none(), "{response}");
        assert_eq!(admitted.summary.verdict, Verdict::Denied(err.to_string()));
    }
}

fn assert_invalid(body: &[u8], needle: &str) {
    let err = admit(body, &Config::default()).unwrap_err();
    assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
}

#[test]
fn malformed_bodies_are_rejected_with_what_is_wrong() {
    assert_invalid(b"{not json", "not valid JSON");
    assert_invalid(b"[1, 2]", "not a JSON object");
    assert_invalid(
        br#"{"apiVersion": "v1", "kind": "Pod"}"#,
        r#"kind "Pod": expected kind "AdmissionReview""#,
    );
    assert_invalid(
        br#"{"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview"}"#,
        r#"apiVersion "admission.k8s.io/v2""#,
    );
    assert_invalid(
        br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#,
        "has no request",
    );
    assert_invalid(
        br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}}"#,
        "request is malformed",
    );
    let mut doc: Value =
        serde_json::from_slice(&review("admission.k8s.io/v1", "", "Pod", "CREATE", &pod()))
            .unwrap();
    doc["request"]["object"] = json!("a string");
    assert_invalid(
        &serde_json::to_vec(&doc).unwrap(),
        "request.object is not a JSON object",
    );
}

#[test]
fn kind_labels_are_bounded() {
    assert_eq!(kind_label("Deployment"), "Deployment");
    assert_eq!(kind_label("CronJob"), "CronJob");
    assert_eq!(kind_label("SomethingNew"), "other");
}

#[test]
fn the_slow_encoding_gives_the_same_answer_as_the_fast_one() {
    let admitted = admit(
        &review("admission.k8s.io/v1", "", "Pod", "CREATE", &pod()),
        &Config::default(),
    )
    .unwrap();
    let fast = response_of(&admitted);
    let patch = base64::engine::general_purpose::STANDARD
        .decode(fast["response"]["patch"].as_str().unwrap())
        .unwrap();
    let mut stripped = fast.clone();
    let response = stripped["response"].as_object_mut().unwrap();
    response.remove("patch");
    response.remove("patchType");
    let slow = encode::encode_response_slowly(&serde_json::to_vec(&stripped).unwrap(), &patch);
    assert_eq!(serde_json::from_slice::<Value>(&slow).unwrap(), fast);
}

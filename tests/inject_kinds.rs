//! The kinds injection knows beyond Kubernetes' own: OpenShift's
//! DeploymentConfig (as `istioctl kube-inject` handles it), its pods, and
//! the kinds Istio does not know even when they have a pod template (an
//! Argo Rollout), which are skipped with a sentence that says so.

use outrigger::config::Config;
use outrigger::inject::{Context, Outcome, inject};
use serde_json::{Value, json};

fn template() -> Value {
    json!({
        "metadata": {"labels": {"app": "hello"}},
        "spec": {"containers": [{"name": "hello", "image": "hello:1"}]}
    })
}

fn proxy_env(mutated: &Value, pod_ptr: &str, name: &str) -> Option<String> {
    let spec = mutated.pointer(pod_ptr).expect("pod spec");
    ["initContainers", "containers"]
        .iter()
        .filter_map(|f| spec[*f].as_array())
        .flatten()
        .find(|c| c["name"] == "istio-proxy")?["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
        .map(str::to_string)
}

fn injected(object: &Value) -> Value {
    match inject(object, &Context::default(), &Config::default()).expect("injects") {
        Outcome::Injected { mutated, .. } => mutated,
        Outcome::Skipped { reason } => panic!("skipped: {reason}"),
    }
}

fn skip_sentence(object: &Value) -> (String, String) {
    match inject(object, &Context::default(), &Config::default()).expect("no error") {
        Outcome::Skipped { reason } => (reason.name().to_string(), reason.sentence().to_string()),
        Outcome::Injected { .. } => panic!("injected"),
    }
}

#[test]
fn a_deployment_config_gets_the_sidecar_in_its_pod_template_and_owns_it() {
    for api_version in ["apps.openshift.io/v1", "v1"] {
        let dc = json!({
            "apiVersion": api_version,
            "kind": "DeploymentConfig",
            "metadata": {"name": "hello", "namespace": "shop"},
            "spec": {"replicas": 2, "template": template()}
        });
        let mutated = injected(&dc);
        let status =
            &mutated["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/status"];
        assert!(
            status.as_str().is_some_and(|s| s.contains("istio-proxy")),
            "{mutated}"
        );
        assert_eq!(
            proxy_env(&mutated, "/spec/template/spec", "ISTIO_META_OWNER").as_deref(),
            Some(
                format!("kubernetes://apis/{api_version}/namespaces/shop/deploymentconfigs/hello")
                    .as_str()
            )
        );
    }
}

#[test]
fn the_workload_name_label_names_the_workload_but_not_the_owner() {
    let mut tmpl = template();
    tmpl["metadata"]["labels"]["service.istio.io/workload-name"] = json!("checkout");
    let dc = json!({
        "apiVersion": "apps.openshift.io/v1",
        "kind": "DeploymentConfig",
        "metadata": {"name": "hello"},
        "spec": {"template": tmpl}
    });
    let mutated = injected(&dc);
    let env = |n| proxy_env(&mutated, "/spec/template/spec", n);
    assert_eq!(env("ISTIO_META_WORKLOAD_NAME").as_deref(), Some("checkout"));
    assert_eq!(
        env("ISTIO_META_OWNER").as_deref(),
        Some("kubernetes://apis/apps.openshift.io/v1/namespaces/default/deploymentconfigs/hello")
    );
}

#[test]
fn a_deployment_configs_pod_renders_what_the_deployment_config_renders() {
    // OpenShift runs a DeploymentConfig's pods through a
    // ReplicationController `<name>-<version>` and labels them with the
    // DeploymentConfig's name.
    let mut pod = template();
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"]["generateName"] = json!("hello-3-");
    pod["metadata"]["namespace"] = json!("shop");
    pod["metadata"]["labels"]["deploymentconfig"] = json!("hello");
    pod["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "ReplicationController", "name": "hello-3", "controller": true
    }]);
    let rc = json!({
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "hello-3", "namespace": "shop", "ownerReferences": [{
            "apiVersion": "apps.openshift.io/v1", "kind": "DeploymentConfig",
            "name": "hello", "controller": true
        }]},
        "spec": {"template": template()}
    });
    let want = "kubernetes://apis/apps.openshift.io/v1/namespaces/shop/deploymentconfigs/hello";
    let pod = injected(&pod);
    assert_eq!(
        proxy_env(&pod, "/spec", "ISTIO_META_WORKLOAD_NAME").as_deref(),
        Some("hello")
    );
    assert_eq!(
        proxy_env(&pod, "/spec", "ISTIO_META_OWNER").as_deref(),
        Some(want)
    );
    // The ReplicationController itself is the DeploymentConfig's to keep:
    // its pods are injected when they are created, as above.
    let (name, sentence) = skip_sentence(&rc);
    assert_eq!(name, "controlled-by-owner");
    assert!(
        sentence.contains("controlled by DeploymentConfig hello"),
        "{sentence}"
    );
}

#[test]
fn an_argo_rollout_is_left_alone_with_a_sentence_that_says_why() {
    let rollout = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "hello"},
        "spec": {"template": template()}
    });
    let (name, sentence) = skip_sentence(&rollout);
    assert_eq!(name, "unsupported-kind");
    for part in [
        "kind Rollout (argoproj.io/v1alpha1)",
        "has a pod template at spec.template",
        "not a kind whose pod template Istio injects",
        "DeploymentConfig",
        "its pods are injected when they are created",
    ] {
        assert!(sentence.contains(part), "{part:?} not in {sentence:?}");
    }
}

#[test]
fn a_rollouts_pod_is_owned_by_the_rollout_as_istio_names_it() {
    let mut pod = template();
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"]["generateName"] = json!("hello-6d4f8c9b7-");
    pod["metadata"]["labels"]["rollouts-pod-template-hash"] = json!("6d4f8c9b7");
    pod["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "hello-6d4f8c9b7", "controller": true
    }]);
    let pod = injected(&pod);
    assert_eq!(
        proxy_env(&pod, "/spec", "ISTIO_META_WORKLOAD_NAME").as_deref(),
        Some("hello")
    );
    assert_eq!(
        proxy_env(&pod, "/spec", "ISTIO_META_OWNER").as_deref(),
        Some("kubernetes://apis/v1alpha1/namespaces/default/rollouts/hello")
    );
}

#[test]
fn a_kind_without_a_pod_template_says_so() {
    let service =
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello"}, "spec": {}});
    assert_eq!(
        skip_sentence(&service).1,
        "kind Service (v1) has no pod template"
    );
}

#[test]
fn a_deployment_config_of_another_group_is_not_guessed_at() {
    let dc = json!({
        "apiVersion": "example.com/v1",
        "kind": "DeploymentConfig",
        "metadata": {"name": "hello"},
        "spec": {"template": template()}
    });
    let (name, sentence) = skip_sentence(&dc);
    assert_eq!(name, "unsupported-kind");
    assert!(sentence.contains("\"example.com/v1\""), "{sentence}");
    assert!(sentence.contains("apps.openshift.io/v1"), "{sentence}");
}

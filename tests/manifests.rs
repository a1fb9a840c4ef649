//! The install manifests (`manifests/`, a kustomize base) are checked the way
//! an API server would read them, and against each other and the server:
//!
//! - every document parses into its k8s-openapi type, and a field that type
//!   does not know (a typo, a field at the wrong depth) fails the test with
//!   its path;
//! - the cross-references hold: Service ports ↔ container ports ↔ the
//!   server's default listen ports, the webhook's path ↔ the server's route,
//!   the ServiceAccount ↔ the bindings and the Deployment, probe ports ↔ the
//!   monitoring port, the ConfigMap ↔ the config loader and the `--config`
//!   flag, RBAC's resourceNames ↔ the webhook configuration's name;
//! - `kubectl kustomize manifests/` builds, and its output is the set of
//!   objects checked here (required in CI, where `.ci/run` installs kubectl).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

/// Every object of the kustomize base, in the order of its `resources`.
fn source_objects() -> Vec<Value> {
    let dir = manifests_dir();
    let kustomization: Value = read_yaml(&dir.join("kustomization.yaml")).remove(0);
    let resources = kustomization["resources"]
        .as_array()
        .expect("kustomization.yaml lists its resources");
    let mut objects = Vec::new();
    for file in resources {
        let file = file.as_str().expect("a resource is a file name");
        objects.extend(read_yaml(&dir.join(file)));
    }
    objects
}

fn read_yaml(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_documents(&text, &path.display().to_string())
}

fn parse_documents(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            let value: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{origin}: invalid YAML: {e}"));
            value
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Drops nulls, empty objects and empty lists: what a typed round trip may
/// legitimately leave out.
fn pruned(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), pruned(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(pruned).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The paths present in `original` but lost (or changed) by the typed round
/// trip: fields the type does not know.
fn lost_fields(original: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let here = format!("{path}.{k}");
                match b.get(k) {
                    Some(w) => lost_fields(v, w, &here, out),
                    None => out.push(here),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                lost_fields(v, w, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        // Kubernetes reads "8080" and 8080 alike in a few places (IntOrString).
        (Value::String(a), Value::Number(b)) | (Value::Number(b), Value::String(a))
            if a == &b.to_string() => {}
        _ => out.push(format!("{path} (value changed: {original} -> {typed})")),
    }
}

/// Parses `object` as `T` and fails on any field `T` does not know.
fn typed<T: DeserializeOwned + serde::Serialize>(object: &Value) -> T {
    let what = describe(object);
    let parsed: T = serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("{what}: does not parse as its Kubernetes type: {e}"));
    let back = serde_json::to_value(&parsed).expect("k8s-openapi types serialize");
    let mut lost = Vec::new();
    lost_fields(&pruned(object), &pruned(&back), "", &mut lost);
    assert!(
        lost.is_empty(),
        "{what}: fields its Kubernetes type does not know: {}",
        lost.join(", ")
    );
    parsed
}

fn describe(object: &Value) -> String {
    format!(
        "{} {}",
        object["kind"].as_str().unwrap_or("<no kind>"),
        object["metadata"]["name"].as_str().unwrap_or("<no name>")
    )
}

/// The install, each object parsed into its type.
struct Install {
    namespace: Namespace,
    service_account: ServiceAccount,
    cluster_role: ClusterRole,
    cluster_role_binding: ClusterRoleBinding,
    role: Role,
    role_binding: RoleBinding,
    config_map: ConfigMap,
    deployment: Deployment,
    service: Service,
    pdb: PodDisruptionBudget,
    webhook: MutatingWebhookConfiguration,
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind} in the install");
    found[0]
}

fn install(objects: &[Value]) -> Install {
    let known: BTreeSet<&str> = [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "MutatingWebhookConfiguration",
    ]
    .into();
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or("");
        assert!(
            known.contains(kind),
            "{}: not a kind this test checks",
            describe(o)
        );
    }
    Install {
        namespace: typed(one(objects, "Namespace")),
        service_account: typed(one(objects, "ServiceAccount")),
        cluster_role: typed(one(objects, "ClusterRole")),
        cluster_role_binding: typed(one(objects, "ClusterRoleBinding")),
        role: typed(one(objects, "Role")),
        role_binding: typed(one(objects, "RoleBinding")),
        config_map: typed(one(objects, "ConfigMap")),
        deployment: typed(one(objects, "Deployment")),
        service: typed(one(objects, "Service")),
        pdb: typed(one(objects, "PodDisruptionBudget")),
        webhook: typed(one(objects, "MutatingWebhookConfiguration")),
    }
}

/// The default of `flag` in `outrigger serve --help`: what a user gets.
fn serve_default(flag: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args(["serve", "--help"])
        .output()
        .expect("outrigger serve --help runs");
    let help = String::from_utf8_lossy(&out.stdout);
    let mut lines = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(flag));
    lines
        .find_map(|l| {
            l.split_once("[default: ")
                .map(|(_, rest)| rest.trim_end_matches(']').to_string())
        })
        .unwrap_or_else(|| panic!("outrigger serve --help shows no default for {flag}"))
}

fn port_of(listen: &str) -> i32 {
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{listen:?} is not HOST:PORT"))
}

/// The value of `--flag=value` among a container's args.
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    args.iter()
        .find_map(|a| a.strip_prefix(prefix.as_str()))
        .map(String::from)
}

fn check(objects: &[Value]) {
    let i = install(objects);
    let ns = i.namespace.metadata.name.clone().expect("namespace name");
    let sa = i.service_account.metadata.name.clone().expect("sa name");
    assert_eq!(i.service_account.metadata.namespace.as_deref(), Some(&*ns));

    // The ServiceAccount is what the bindings grant to and what the pods run as.
    for (what, subjects) in [
        ("ClusterRoleBinding", &i.cluster_role_binding.subjects),
        ("RoleBinding", &i.role_binding.subjects),
    ] {
        let subjects = subjects.as_ref().expect("bindings have subjects");
        assert!(
            subjects.iter().any(|s| s.kind == "ServiceAccount"
                && s.name == sa
                && s.namespace.as_deref() == Some(&*ns)),
            "{what} does not bind ServiceAccount {ns}/{sa}"
        );
    }
    assert_eq!(
        i.cluster_role_binding.role_ref.name,
        i.cluster_role.metadata.name.clone().unwrap()
    );
    assert_eq!(
        i.role_binding.role_ref.name,
        i.role.metadata.name.clone().unwrap()
    );
    assert_eq!(i.role.metadata.namespace.as_deref(), Some(&*ns));

    let pod = i.deployment.spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(&*sa));
    let container = &pod.containers[0];
    let port_named = |name: &str| {
        container
            .ports
            .as_ref()
            .and_then(|ps| ps.iter().find(|p| p.name.as_deref() == Some(name)))
            .map(|p| p.container_port)
            .unwrap_or_else(|| panic!("the outrigger container has no port named {name}"))
    };

    // Container ports are the server's defaults and what the args say.
    let args = container.args.clone().unwrap_or_default();
    let arg = |flag: &str| flag_value(&args, flag);
    for (port_name, flag) in [
        ("webhook", "--listen"),
        ("monitoring", "--monitoring-listen"),
    ] {
        let default = serve_default(flag);
        assert_eq!(
            port_named(port_name),
            port_of(&default),
            "container port {port_name} is not the server's default {flag} {default}"
        );
        if let Some(given) = arg(flag) {
            assert_eq!(port_of(&given), port_named(port_name), "{flag}={given}");
        }
    }
    assert_eq!(port_named("ca"), 15012, "the CA port is Istio's 15012");

    // Every Service port targets a named container port.
    let svc = i.service.spec.as_ref().unwrap();
    for p in svc.ports.as_ref().unwrap() {
        match &p.target_port {
            Some(IntOrString::String(name)) => {
                port_named(name);
            }
            other => panic!(
                "Service port {:?} targets {other:?}, not a named port",
                p.name
            ),
        }
    }
    let pod_labels = i
        .deployment
        .spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    let selects = |selector: &std::collections::BTreeMap<String, String>| {
        selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
    };
    assert!(
        selects(svc.selector.as_ref().unwrap()),
        "the Service does not select the pods"
    );
    let pdb = i.pdb.spec.as_ref().unwrap();
    assert!(
        selects(
            pdb.selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()
        ),
        "the PodDisruptionBudget does not select the pods"
    );
    assert_eq!(pdb.min_available, Some(IntOrString::Int(1)));
    assert!(
        pod_labels
            .get("sidecar.istio.io/inject")
            .map(String::as_str)
            == Some("false"),
        "the injector's own pods must opt out of injection"
    );

    // Probes hit the monitoring port's endpoints.
    for (what, probe, path) in [
        ("liveness", &container.liveness_probe, "/healthz"),
        ("readiness", &container.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("no {what} probe"));
        assert_eq!(
            get.port,
            IntOrString::String("monitoring".into()),
            "{what} probe port"
        );
        assert_eq!(get.path.as_deref(), Some(path), "{what} probe path");
    }

    // Restricted Pod Security Standard.
    let sc = container
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(
        sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );

    // The ConfigMap is mounted where --config points, and the config loads.
    let config_arg = arg("--config").expect("the Deployment passes --config");
    let (mount_dir, key) = config_arg.rsplit_once('/').expect("--config is a path");
    let cm_name = i.config_map.metadata.name.clone().unwrap();
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.config_map.as_ref().map(|c| c.name.as_str()) == Some(cm_name.as_str()))
        .expect("the ConfigMap is a volume");
    let mount = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == volume.name)
        .expect("the config volume is mounted");
    assert_eq!(
        mount.mount_path, mount_dir,
        "--config is not under the ConfigMap's mount"
    );
    let config_text = i
        .config_map
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("ConfigMap {cm_name} has no key {key}"));
    if let Err(e) = outrigger::config::Config::from_yaml(config_text) {
        panic!("the shipped config does not load: {e}");
    }

    // The webhook calls this Service on the server's route, and RBAC lets
    // outrigger patch exactly this configuration's caBundle.
    let webhook_name = i.webhook.metadata.name.clone().unwrap();
    let svc_name = i.service.metadata.name.clone().unwrap();
    let https_port = svc
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .find(|p| p.target_port == Some(IntOrString::String("webhook".into())))
        .expect("a Service port targets the webhook")
        .port;
    let hooks = i.webhook.webhooks.as_ref().expect("webhooks");
    assert_eq!(
        hooks.len(),
        4,
        "Istio's four selections: namespace, rev.namespace, object, rev.object"
    );
    // The policy the shipped config names (Istio's default, Never): one
    // webhook call per object.
    let shipped = outrigger::config::Config::from_yaml(config_text).expect("shipped config");
    let reinvocation = shipped.settings().reinvocation_policy.clone();
    for hook in hooks {
        let svc_ref = hook
            .client_config
            .service
            .as_ref()
            .expect("service reference");
        assert_eq!(
            (svc_ref.name.as_str(), svc_ref.namespace.as_str()),
            (&*svc_name, &*ns)
        );
        assert_eq!(svc_ref.port, Some(https_port));
        assert_eq!(
            svc_ref.path.as_deref(),
            Some(outrigger::webhook::INJECT_PATH)
        );
        assert_eq!(hook.side_effects, "None");
        assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(hook.timeout_seconds, Some(10));
        assert_eq!(hook.reinvocation_policy.as_deref(), Some(&*reinvocation));
        assert_eq!(hook.admission_review_versions, vec!["v1", "v1beta1"]);
        let excluded = hook
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_expressions.as_ref())
            .and_then(|es| {
                es.iter()
                    .find(|e| e.key == "kubernetes.io/metadata.name" && e.operator == "NotIn")
            })
            .and_then(|e| e.values.clone())
            .unwrap_or_default();
        assert!(
            excluded.contains(&ns) && excluded.contains(&"kube-system".to_string()),
            "{}: must always exclude {ns} and kube-system, excludes {excluded:?}",
            hook.name
        );
    }
    let patchable = i
        .cluster_role
        .rules
        .as_ref()
        .unwrap()
        .iter()
        .find(|r| {
            r.resources
                .as_deref()
                .unwrap_or_default()
                .contains(&"mutatingwebhookconfigurations".to_string())
                && r.verbs.contains(&"patch".to_string())
        })
        .expect("RBAC lets outrigger patch its webhook configuration");
    assert_eq!(patchable.resource_names.clone(), Some(vec![webhook_name]));
}

#[test]
fn manifests_parse_strictly_and_reference_each_other() {
    check(&source_objects());
}

#[test]
fn a_misspelled_field_is_caught() {
    let mut objects = source_objects();
    let deployment = objects
        .iter_mut()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always".into();
    let caught = std::panic::catch_unwind(|| check(&objects));
    let message = caught
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .expect("a misspelled field must fail the check");
    assert!(message.contains("imagePullPolicyy"), "{message}");
}

#[test]
fn kustomize_builds_exactly_the_checked_objects() {
    let Ok(out) = Command::new("kubectl")
        .args(["kustomize"])
        .arg(manifests_dir())
        .output()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: the kustomize build of manifests/ (needs kubectl)");
        return;
    };
    assert!(
        out.status.success(),
        "kubectl kustomize manifests/ failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = parse_documents(&String::from_utf8_lossy(&out.stdout), "kustomize output");
    let key = |o: &Value| {
        format!(
            "{}/{}/{}",
            o["kind"].as_str().unwrap_or(""),
            o["metadata"]["namespace"].as_str().unwrap_or(""),
            o["metadata"]["name"].as_str().unwrap_or("")
        )
    };
    let sources: BTreeSet<String> = source_objects().iter().map(key).collect();
    let outputs: BTreeSet<String> = built.iter().map(key).collect();
    assert_eq!(
        sources, outputs,
        "kustomize builds other objects than the sources"
    );
    check(&built);
}

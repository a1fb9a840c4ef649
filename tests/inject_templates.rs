//! Templates of the project's own (tests/testdata/templates): a user
//! template that calls every function a template can call, several
//! templates merged in order, the `grpc-simple` family, broken templates
//! refused with their name and line when the configuration loads, and
//! templates that fail for a pod refused with theirs. `UPDATE_GOLDENS=1`
//! rewrites the expected files; a file in the folder that no test reads
//! fails the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use outrigger::config::Config;
use outrigger::inject::{Context, Outcome, inject};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/templates")
}

fn read(name: &str) -> String {
    let path = dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn update() -> bool {
    std::env::var_os("UPDATE_GOLDENS").is_some()
}

fn check_file(name: &str, got: &str) {
    let path = dir().join(name);
    if update() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "missing golden {} ({e}); run with UPDATE_GOLDENS=1",
            path.display()
        )
    });
    if want != got {
        let first = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        panic!(
            "{} differs from the golden at line {}:\n  want: {}\n  got:  {}",
            path.display(),
            first + 1,
            want.lines().nth(first).unwrap_or("<end>"),
            got.lines().nth(first).unwrap_or("<end>"),
        );
    }
}

/// `shop.yaml` asking for `templates`.
fn shop(templates: &str) -> Value {
    let mut object: Value = serde_yaml::from_str(&read("shop.yaml")).unwrap();
    object["spec"]["template"]["metadata"]["annotations"]["inject.istio.io/templates"] =
        Value::String(templates.into());
    object
}

/// Injects `object`, checks the goldens `<name>.injected.yaml` and
/// `<name>.patch.json`, that injecting the result again changes nothing,
/// and that uninjecting it gives the object back.
fn golden_injection(name: &str, object: &Value, cfg: &Config) -> Value {
    let ctx = Context::default();
    let Outcome::Injected { patch, mutated, .. } = inject(object, &ctx, cfg).unwrap() else {
        panic!("{name}: not injected");
    };
    check_file(
        &format!("{name}.injected.yaml"),
        &serde_yaml::to_string(&mutated).unwrap(),
    );
    check_file(
        &format!("{name}.patch.json"),
        &(serde_json::to_string_pretty(&patch).unwrap() + "\n"),
    );
    match inject(&mutated, &ctx, cfg).unwrap() {
        Outcome::Skipped { reason } => assert_eq!(reason.name(), "already-injected", "{name}"),
        Outcome::Injected { patch, .. } => panic!("{name}: injected again: {patch:?}"),
    }
    assert_eq!(
        outrigger::inject::uninject(&mutated, cfg).as_ref(),
        Some(object),
        "{name}: uninjecting does not give the object back"
    );
    mutated
}

#[test]
fn a_user_template_calls_every_registered_function() {
    let text = read("every-function.config.yaml");
    let words: BTreeSet<&str> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .collect();
    let missing: Vec<&&str> = outrigger::template::FUNCTIONS
        .iter()
        .filter(|f| !words.contains(**f))
        .collect();
    assert!(
        missing.is_empty(),
        "every-function.config.yaml does not call {missing:?}"
    );
    let cfg = Config::from_yaml(&text).unwrap();
    let mutated = golden_injection("every-function", &shop("every"), &cfg);
    let annotations = &mutated["spec"]["template"]["metadata"]["annotations"];
    // A few results spelled out, beside the golden.
    assert_eq!(annotations["fn/formatDuration"], "1h30m0s");
    assert_eq!(annotations["fn/includeInboundPorts"], "8080,6379");
    assert_eq!(annotations["fn/excludeInboundPort"], "80,8080,15020");
    assert_eq!(annotations["fn/env"], "the default");
    assert_eq!(
        annotations["fn/otelResourceAttributes"],
        "service.namespace=payments,service.version=1.4@sha256:0123abcd,service.instance.id=payments.$(POD_NAME).shop"
    );
}

#[test]
fn several_templates_merge_in_order() {
    let cfg = Config::from_yaml(&read("several.config.yaml")).unwrap();
    let mutated = golden_injection("several", &shop("sidecar,spire,app-env"), &cfg);
    let spec = &mutated["spec"]["template"]["spec"];
    // SPIRE's volume source replaces the sidecar's, rather than joining it.
    let socket = &spec["volumes"][0];
    assert_eq!(socket["name"], "workload-socket");
    assert!(socket.get("emptyDir").is_none(), "{socket}");
    // The user's template reached the app containers, not the proxy.
    let names: Vec<&str> = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["env"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["name"] == "MESH_REVISION"))
        })
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop", "cache"]);
}

#[test]
fn the_grpc_simple_family() {
    golden_injection("grpc-simple", &shop("grpc-simple"), &Config::default());
}

fn config_with(templates: &[(&str, &str)]) -> String {
    let mut tree = serde_json::json!({"values": {"sidecarInjectorWebhook": {"templates": {}}}});
    for (name, text) in templates {
        tree["values"]["sidecarInjectorWebhook"]["templates"][*name] =
            Value::String(text.to_string());
    }
    serde_yaml::to_string(&tree).unwrap()
}

#[test]
fn broken_templates_are_refused_with_name_and_line() {
    let broken: serde_yaml::Mapping = serde_yaml::from_str(&read("broken.yaml")).unwrap();
    let mut messages = String::new();
    for (name, text) in &broken {
        let (name, text) = (name.as_str().unwrap(), text.as_str().unwrap());
        let error = Config::from_yaml(&config_with(&[(name, text)]))
            .expect_err(name)
            .to_string();
        assert!(
            error.contains(&format!("template {name:?}, line ")),
            "{error}"
        );
        messages.push_str(&error);
        messages.push('\n');
    }
    check_file("broken.errors.txt", &messages);
}

#[test]
fn templates_that_fail_for_a_pod_are_refused_naming_them() {
    let failing: serde_yaml::Mapping = serde_yaml::from_str(&read("errors.yaml")).unwrap();
    let all: Vec<(&str, &str)> = failing
        .iter()
        .map(|(n, t)| (n.as_str().unwrap(), t.as_str().unwrap()))
        .collect();
    let cfg = Config::from_yaml(&config_with(&all)).unwrap();
    let mut messages = String::new();
    for request in all.iter().map(|(n, _)| *n).chain(["sidecar,nosuch"]) {
        let error = inject(&shop(request), &Context::default(), &cfg)
            .expect_err(request)
            .to_string();
        let named = request.rsplit(',').next().unwrap();
        assert!(error.contains(&format!("{named:?}")), "{error}");
        messages.push_str(&error);
        messages.push('\n');
    }
    check_file("errors.txt", &messages);
}

/// Istio's SPIRE recipe, as its `spire-template` test values write it:
/// the proxy's changes under `containers`.
const SPIRE_CLASSIC: &str = "spec:
  containers:
  - name: istio-proxy
    volumeMounts:
    - name: workload-socket
      mountPath: /var/run/secrets/workload-spiffe-uds
      readOnly: true
  volumes:
  - name: workload-socket
    csi:
      driver: csi.spiffe.io
      readOnly: true
";

fn warnings_of(object: &Value, cfg: &Config) -> Vec<String> {
    match inject(object, &Context::default(), cfg).unwrap() {
        Outcome::Injected { decision, .. } => decision.all_warnings(),
        Outcome::Skipped { reason } => panic!("skipped: {reason}"),
    }
}

/// Seen on a real API server: `sidecar,spire` with native sidecars gives,
/// as in Istio, a second `istio-proxy` (without an image) in
/// `containers`, and the API server refuses the pod without naming the
/// template. The injection says why and what to change.
#[test]
fn a_template_that_adds_a_second_proxy_is_warned_of_with_the_fix() {
    let classic = Config::from_yaml(&config_with(&[("spire", SPIRE_CLASSIC)])).unwrap();
    let warnings = warnings_of(&shop("sidecar,spire"), &classic);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    for part in [
        "two containers named \"istio-proxy\"",
        "templates sidecar,spire",
        "under initContainers",
        "sidecar.istio.io/nativeSidecar: \"false\"",
    ] {
        assert!(
            warnings[0].contains(part),
            "{part:?} not in {:?}",
            warnings[0]
        );
    }

    // Either fix gives a pod with one proxy, and no warning.
    let native = SPIRE_CLASSIC.replace("  containers:", "  initContainers:");
    let native = Config::from_yaml(&config_with(&[("spire", &native)])).unwrap();
    assert_eq!(
        warnings_of(&shop("sidecar,spire"), &native),
        Vec::<String>::new()
    );
    let mut classic_pod = shop("sidecar,spire");
    classic_pod["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] =
        Value::String("false".into());
    assert_eq!(warnings_of(&classic_pod, &classic), Vec::<String>::new());

    // Written as Istio's sidecar template decides (`.NativeSidecars` is the
    // mesh-wide setting; the pod's annotation overrides it), one template
    // serves both forms. This is the README's SPIRE example.
    let either = SPIRE_CLASSIC.replace(
        "spec:\n  containers:",
        "{{- $native := ne (index .ObjectMeta.Annotations \"sidecar.istio.io/nativeSidecar\" | default (printf \"%t\" .NativeSidecars)) \"false\" }}\n\
         spec:\n  {{ if $native }}initContainers{{ else }}containers{{ end }}:",
    );
    let either = Config::from_yaml(&config_with(&[("spire", &either)])).unwrap();
    for (pod, field) in [
        (shop("sidecar,spire"), "initContainers"),
        (classic_pod.clone(), "containers"),
    ] {
        let Outcome::Injected {
            mutated, decision, ..
        } = inject(&pod, &Context::default(), &either).unwrap()
        else {
            panic!("not injected");
        };
        assert_eq!(decision.warnings, Vec::<String>::new());
        let proxy = mutated["spec"]["template"]["spec"][field]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "istio-proxy")
            .expect("the proxy");
        assert!(
            proxy["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["mountPath"] == "/var/run/secrets/workload-spiffe-uds"),
            "{proxy}"
        );
    }

    // `.NativeSidecars` itself is the mesh-wide setting, as in Istio, even
    // where the pod's annotation says otherwise.
    let probe = "metadata:\n  annotations:\n    example.com/native: \"{{ .NativeSidecars }}\"\n";
    let probe = Config::from_yaml(&config_with(&[("probe", probe)])).unwrap();
    let mut annotated = classic_pod.clone();
    annotated["spec"]["template"]["metadata"]["annotations"]["inject.istio.io/templates"] =
        Value::String("sidecar,probe".into());
    let Outcome::Injected { mutated, .. } =
        inject(&annotated, &Context::default(), &probe).unwrap()
    else {
        panic!("not injected");
    };
    assert_eq!(
        mutated["spec"]["template"]["metadata"]["annotations"]["example.com/native"],
        "true"
    );

    // The built-in templates never warn.
    for templates in ["sidecar", "gateway", "grpc-agent", "grpc-simple"] {
        assert_eq!(
            warnings_of(&shop(templates), &Config::default()),
            Vec::<String>::new(),
            "{templates}"
        );
    }
}

#[test]
fn every_file_is_read() {
    let read_by_tests = [
        "shop.yaml",
        "every-function.config.yaml",
        "every-function.injected.yaml",
        "every-function.patch.json",
        "several.config.yaml",
        "several.injected.yaml",
        "several.patch.json",
        "grpc-simple.injected.yaml",
        "grpc-simple.patch.json",
        "broken.yaml",
        "broken.errors.txt",
        "errors.yaml",
        "errors.txt",
    ];
    let unread: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| !read_by_tests.contains(&f.as_str()))
        .collect();
    assert!(unread.is_empty(), "files no test reads: {unread:?}");
}

#[test]
fn default_templates_apply_without_the_annotation_and_must_exist() {
    let cfg = Config::from_yaml(&read("several.config.yaml").replace(
        "    templates:\n",
        "    defaultTemplates: [sidecar, app-env]\n    templates:\n",
    ))
    .unwrap();
    let mut object = shop("");
    object["spec"]["template"]["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("inject.istio.io/templates");
    let Outcome::Injected { mutated, .. } = inject(&object, &Context::default(), &cfg).unwrap()
    else {
        panic!("not injected");
    };
    let spec = &mutated["spec"]["template"]["spec"];
    assert_eq!(spec["initContainers"][1]["name"], "istio-proxy");
    assert_eq!(spec["containers"][0]["env"][0]["name"], "MESH_REVISION");

    let error = Config::from_yaml(
        "values:\n  sidecarInjectorWebhook:\n    defaultTemplates: [sidecar, spire]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("values.sidecarInjectorWebhook.defaultTemplates")
            && error.contains("\"spire\" is neither"),
        "{error}"
    );
}

//! `outrigger inject` end to end: the real binary on files and stdin, every
//! output format, multi-document and JSON input, errors and exit codes.
//!
//! Where injected content is checked, the expectation is what the engine
//! (`outrigger::inject::inject`) returns for the same input, context and
//! configuration: these tests pin the CLI's behaviour, not the template's.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use outrigger::config::{Config, ConfigBuilder};
use outrigger::inject::{Context, Outcome, inject, kube_inject_form};
use serde::Deserialize;
use serde_json::Value;
use support::conformance::Suite;

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn outrigger(args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outrigger"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the outrigger binary runs");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("the binary finishes");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Runs and insists on success.
fn ok(args: &[&str]) -> String {
    let run = outrigger(args, None);
    assert_eq!(
        run.code,
        Some(0),
        "outrigger {args:?} failed: {}",
        run.stderr
    );
    run.stdout
}

/// Runs and insists on exit 1 with an empty stdout (nothing half-written);
/// returns stderr.
fn fails(args: &[&str], stdin: Option<&str>) -> String {
    let run = outrigger(args, stdin);
    assert_eq!(
        run.code,
        Some(1),
        "outrigger {args:?} must exit 1; stdout: {}; stderr: {}",
        run.stdout,
        run.stderr
    );
    assert_eq!(run.stdout, "", "nothing may be written on failure");
    assert!(
        run.stderr.lines().any(|l| l.starts_with("error: ")),
        "an error message: {}",
        run.stderr
    );
    run.stderr
}

fn path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(path(name)).expect("fixture is readable")
}

/// The documents of a YAML (or JSON) text, read independently of the code
/// under test; empty documents are dropped.
fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|de| Value::deserialize(de).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("valid JSON")
}

/// What the engine makes of `object`: the admitted object and the patch.
fn expected(object: &Value, ctx: &Context, cfg: &Config) -> (Value, Value) {
    match inject(object, ctx, cfg).expect("the engine accepts the fixture") {
        Outcome::Injected { patch, mutated, .. } => {
            (mutated, serde_json::to_value(patch).expect("patch"))
        }
        Outcome::Skipped { .. } => (object.clone(), Value::Array(Vec::new())),
    }
}

fn expected_default(object: &Value) -> Value {
    expected(object, &Context::default(), &Config::default()).0
}

fn apply(original: &Value, patch_line: &str) -> Value {
    let patch: json_patch::Patch = serde_json::from_str(patch_line).expect("an RFC 6902 array");
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &patch).expect("the patch applies to its document");
    doc
}

const EXAMPLE: &str = "examples/deployment.yaml";

#[test]
fn quick_start_example_in_every_format() {
    let original = yaml_docs(&read(EXAMPLE)).remove(0);
    let (mutated, patch) = expected(&original, &Context::default(), &Config::default());

    // Default output is YAML: the injected object.
    let yaml = ok(&["inject", "-f", EXAMPLE]);
    assert_eq!(yaml, ok(&["inject", "-f", EXAMPLE, "--output", "yaml"]));
    assert_eq!(yaml_docs(&yaml), vec![mutated.clone()]);

    let json_out = ok(&["inject", "-f", EXAMPLE, "-o", "json"]);
    assert_eq!(json(&json_out), mutated);

    let patch_out = ok(&["inject", "-f", EXAMPLE, "-o", "patch"]);
    assert_eq!(patch_out.lines().count(), 1);
    assert_eq!(json(patch_out.trim_end()), patch);
    assert_eq!(apply(&original, patch_out.trim_end()), mutated);

    let explain = ok(&["inject", "-f", EXAMPLE, "-o", "explain"]);
    assert!(
        explain.starts_with("document 1 (Deployment bookinfo/reviews)\n"),
        "{explain}"
    );
    match inject(&original, &Context::default(), &Config::default()) {
        Ok(Outcome::Injected { decision, .. }) => {
            assert!(
                explain.contains(&format!("decision: injected ({})", decision.rule_name)),
                "{explain}"
            );
            let added = &decision.added;
            for name in added.containers.iter().chain(&added.init_containers) {
                assert!(explain.contains(name.as_str()), "{explain}");
            }
            assert!(
                explain.contains(&format!("rule: {}", decision.rule)),
                "{explain}"
            );
            assert!(explain.contains("adds "), "{explain}");
        }
        Ok(Outcome::Skipped { reason }) => {
            assert!(
                explain.contains(&format!("decision: skipped ({})", reason.name())),
                "{explain}"
            );
        }
        Err(err) => panic!("the quick start's example must be valid: {err}"),
    }
}

#[test]
fn stdin_dash_reads_standard_input() {
    let text = read(EXAMPLE);
    for format in ["yaml", "json", "patch", "explain"] {
        let run = outrigger(&["inject", "-f", "-", "-o", format], Some(&text));
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.stdout, ok(&["inject", "-f", EXAMPLE, "-o", format]));
    }
}

#[test]
fn multi_document_yaml_keeps_order_and_leaves_others_unchanged() {
    let file = "tests/testdata/cli/multi.yaml";
    let inputs = yaml_docs(&read(file));
    let text = ok(&["inject", "-f", file]);
    let separators = text.lines().filter(|l| *l == "---").count();
    assert_eq!(
        separators, 3,
        "documents are separated by --- lines:\n{text}"
    );
    let out = yaml_docs(&text);
    let kinds: Vec<&Value> = out.iter().map(|d| &d["kind"]).collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment", "Service", "Pod"]);
    assert_eq!(out[0], inputs[0], "a ConfigMap passes unchanged");
    assert_eq!(out[2], inputs[2], "a Service passes unchanged");
    let expected: Vec<Value> = inputs.iter().map(expected_default).collect();
    assert_eq!(out, expected);
}

#[test]
fn json_output_of_several_documents_is_a_list_in_order() {
    let file = "tests/testdata/cli/multi.yaml";
    let inputs = yaml_docs(&read(file));
    let list = json(&ok(&["inject", "-f", file, "-o", "json"]));
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["kind"], "List");
    let expected: Vec<Value> = inputs.iter().map(expected_default).collect();
    assert_eq!(list["items"], Value::Array(expected));
}

#[test]
fn json_object_and_json_stream_inputs() {
    let pod = "tests/testdata/cli/pod.json";
    let input = json(&read(pod));
    assert_eq!(
        json(&ok(&["inject", "-f", pod, "-o", "json"])),
        expected_default(&input)
    );
    assert_eq!(
        yaml_docs(&ok(&["inject", "-f", pod])),
        vec![expected_default(&input)]
    );

    let stream = "tests/testdata/cli/stream.json";
    let inputs: Vec<Value> = read(stream).lines().map(json).collect();
    let list = json(&ok(&["inject", "-f", stream, "-o", "json"]));
    let expected: Vec<Value> = inputs.iter().map(expected_default).collect();
    assert_eq!(list["items"], Value::Array(expected));
}

#[test]
fn kind_list_is_one_document_handled_by_the_engine() {
    let file = "tests/testdata/cli/list.yaml";
    let input = yaml_docs(&read(file)).remove(0);
    let out = json(&ok(&["inject", "-f", file, "-o", "json"]));
    assert_eq!(out, expected_default(&input));
    assert_eq!(
        ok(&["inject", "-f", file, "-o", "patch"]).lines().count(),
        1
    );
}

#[test]
fn each_patch_line_applied_to_its_document_gives_the_json_output() {
    for file in [
        EXAMPLE,
        "tests/testdata/cli/multi.yaml",
        "tests/testdata/cli/pod.json",
        "tests/testdata/cli/list.yaml",
        "tests/testdata/cli/opted-out-pod.yaml",
    ] {
        let inputs = yaml_docs(&read(file));
        let patches = ok(&["inject", "-f", file, "-o", "patch"]);
        let json_out = json(&ok(&["inject", "-f", file, "-o", "json"]));
        let outputs = match inputs.len() {
            1 => vec![json_out],
            _ => json_out["items"].as_array().expect("a List").clone(),
        };
        let lines: Vec<&str> = patches.lines().collect();
        assert_eq!(
            lines.len(),
            inputs.len(),
            "{file}: one patch line per document"
        );
        for ((input, line), output) in inputs.iter().zip(&lines).zip(&outputs) {
            assert_eq!(&apply(input, line), output, "{file}: patch {line}");
        }
    }
}

#[test]
fn a_skip_is_explained_with_its_reason_name_and_sentence() {
    let file = "tests/testdata/cli/opted-out-pod.yaml";
    let input = yaml_docs(&read(file)).remove(0);
    let Ok(Outcome::Skipped { reason }) = inject(&input, &Context::default(), &Config::default())
    else {
        panic!("a pod annotated sidecar.istio.io/inject: \"false\" must be skipped");
    };
    let explain = ok(&["inject", "-f", file, "-o", "explain"]);
    assert_eq!(
        explain,
        format!(
            "document 1 (Pod shop/legacy)\n  decision: skipped ({})\n  reason: {}\n",
            reason.name(),
            reason.sentence()
        )
    );
    assert_eq!(ok(&["inject", "-f", file, "-o", "patch"]), "[]\n");
    assert_eq!(yaml_docs(&ok(&["inject", "-f", file])), vec![input]);
}

#[test]
fn injecting_the_output_again_is_an_already_injected_skip() {
    for format in ["yaml", "json"] {
        let injected = ok(&["inject", "-f", EXAMPLE, "-o", format]);
        let run = outrigger(&["inject", "-f", "-", "-o", "explain"], Some(&injected));
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(
            run.stdout.contains("decision: skipped (already-injected)"),
            "{format}: {}",
            run.stdout
        );
        let run = outrigger(&["inject", "-f", "-", "-o", "patch"], Some(&injected));
        assert_eq!(run.stdout, "[]\n", "{format}: re-injection changes nothing");
    }
}

#[test]
fn explain_covers_every_document_in_order() {
    let file = "tests/testdata/cli/multi.yaml";
    let explain = ok(&["inject", "-f", file, "-o", "explain"]);
    let headers: Vec<&str> = explain
        .lines()
        .filter(|l| l.starts_with("document "))
        .collect();
    assert_eq!(
        headers,
        [
            "document 1 (ConfigMap shop/settings)",
            "document 2 (Deployment shop/web)",
            "document 3 (Service shop/web)",
            "document 4 (Pod shop/worker)",
        ]
    );
    for (input, block) in yaml_docs(&read(file)).iter().zip(explain.split("\n\n")) {
        match inject(input, &Context::default(), &Config::default()) {
            Ok(Outcome::Skipped { reason }) => {
                assert!(
                    block.contains(&format!("skipped ({})", reason.name())),
                    "{block}"
                );
            }
            Ok(Outcome::Injected { .. }) => assert!(block.contains("injected"), "{block}"),
            Err(err) => panic!("fixture must be valid: {err}"),
        }
    }
}

/// The explain line `  <what>: a, b, c` as its list of names.
fn explain_list<'a>(explain: &'a str, what: &str) -> Vec<&'a str> {
    let prefix = format!("  {what}: ");
    explain
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|rest| rest.split(", ").collect())
        .unwrap_or_default()
}

#[test]
fn explain_lists_what_injection_adds_and_sets() {
    for file in [
        EXAMPLE,
        "tests/testdata/cli/cronjob.yaml",
        "tests/testdata/cli/pod.json",
    ] {
        let input = yaml_docs(&read(file)).remove(0);
        let Ok(Outcome::Injected {
            mutated, decision, ..
        }) = inject(&input, &Context::default(), &Config::default())
        else {
            panic!("{file} must be injected by default");
        };
        let explain = ok(&["inject", "-f", file, "-o", "explain"]);
        let added = &decision.added;
        for (what, names) in [
            ("adds init containers", &added.init_containers),
            ("adds containers", &added.containers),
            ("adds volumes", &added.volumes),
            ("adds image pull secrets", &added.image_pull_secrets),
        ] {
            assert_eq!(explain_list(&explain, what), *names, "{file}: {what}");
        }
        // Labels and annotations set: every key of the injected pod
        // metadata that is new or changed, wherever the kind keeps it.
        let kind = input["kind"].as_str().unwrap_or_default();
        let (meta, _) = outrigger::inject::pod_location(kind).expect("an injectable kind");
        for field in ["labels", "annotations"] {
            let pointer = format!("{meta}/{field}");
            let before = input.pointer(&pointer).cloned().unwrap_or_default();
            let after = mutated.pointer(&pointer).cloned().unwrap_or_default();
            let set: Vec<&str> = after
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, v)| before.get(k.as_str()) != Some(*v))
                        .map(|(k, _)| k.as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert!(!set.is_empty() || field == "labels", "{file}: nothing set");
            assert_eq!(
                explain_list(&explain, &format!("sets {field}")),
                set,
                "{file}"
            );
        }
    }
}

#[test]
fn bad_yaml_names_the_document_and_writes_nothing() {
    let err = fails(&["inject", "-f", "tests/testdata/cli/bad-third.yaml"], None);
    assert!(err.contains("document 3"), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
    assert!(err.contains("line 19"), "the line in the whole file: {err}");
    // The same through stdin, in every format.
    let text = read("tests/testdata/cli/bad-third.yaml");
    for format in ["yaml", "json", "patch", "explain"] {
        let err = fails(&["inject", "-f", "-", "-o", format], Some(&text));
        assert!(err.contains("document 3"), "{err}");
    }
}

#[test]
fn bad_json_names_the_document() {
    let err = fails(
        &["inject", "-f", "-"],
        Some("{\"kind\": \"Pod\", \"metadata\": {\"name\": \"a\"}}\n{\"kind\": \"Pod\",}\n"),
    );
    assert!(err.contains("document 2"), "{err}");
}

#[test]
fn documents_that_are_not_objects_are_refused() {
    let err = fails(&["inject", "-f", "-"], Some("just a string\n"));
    assert!(
        err.contains("document 1") && err.contains("not a Kubernetes object"),
        "{err}"
    );
    let err = fails(&["inject", "-f", "-"], Some("  # only a comment\n"));
    assert!(err.contains("no document"), "{err}");
}

#[test]
fn an_engine_error_names_the_document_and_writes_nothing() {
    let file = "tests/testdata/cli/bad-annotation.yaml";
    let inputs = yaml_docs(&read(file));
    match inject(&inputs[1], &Context::default(), &Config::default()) {
        Err(engine_err) => {
            let err = fails(&["inject", "-f", file], None);
            assert!(err.contains("document 2 (Pod undecided)"), "{err}");
            assert!(err.contains(&engine_err.to_string()), "{err}");
        }
        // Until the engine validates this annotation, the CLI must agree
        // with it.
        Ok(_) => {
            let out = yaml_docs(&ok(&["inject", "-f", file]));
            let expected: Vec<Value> = inputs.iter().map(expected_default).collect();
            assert_eq!(out, expected);
        }
    }
}

#[test]
fn malformed_namespace_labels_are_refused() {
    for bad in ["istio-injection", "=enabled", "bad key=v", "k=not valid"] {
        let err = fails(&["inject", "-f", EXAMPLE, "--namespace-label", bad], None);
        assert!(err.contains("--namespace-label"), "{err}");
        assert!(err.contains(&format!("{bad:?}")), "names the label: {err}");
        assert!(err.contains("key=value"), "says the form: {err}");
    }
}

#[test]
fn malformed_set_is_refused() {
    let err = fails(&["inject", "-f", EXAMPLE, "--set", "no-equals-sign"], None);
    assert!(err.contains("--set"), "{err}");
    assert!(err.contains("no-equals-sign"), "{err}");
}

#[test]
fn unreadable_files_are_named() {
    let err = fails(&["inject", "-f", "tests/testdata/cli/absent.yaml"], None);
    assert!(err.contains("absent.yaml"), "{err}");
    let err = fails(
        &[
            "inject",
            "-f",
            EXAMPLE,
            "--config",
            "tests/testdata/cli/absent-config.yaml",
        ],
        None,
    );
    assert!(
        err.contains("--config") && err.contains("absent-config.yaml"),
        "{err}"
    );
    let err = fails(
        &[
            "inject",
            "-f",
            EXAMPLE,
            "--values",
            "tests/testdata/cli/absent-values.yaml",
        ],
        None,
    );
    assert!(
        err.contains("--values") && err.contains("absent-values.yaml"),
        "{err}"
    );
}

#[test]
fn namespace_and_its_labels_reach_the_engine() {
    let input = yaml_docs(&read(EXAMPLE)).remove(0);
    for labels in [
        vec![],
        vec!["istio-injection=enabled"],
        vec!["istio-injection=disabled"],
        vec!["istio.io/rev=canary", "team=payments"],
    ] {
        let mut args = vec![
            "inject",
            "-f",
            EXAMPLE,
            "-o",
            "json",
            "--namespace",
            "payments",
        ];
        for label in &labels {
            args.extend(["--namespace-label", label]);
        }
        let ctx = Context {
            namespace: Some("payments".into()),
            namespace_labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<BTreeMap<_, _>>()
            }),
        };
        let (mutated, _) = expected(&input, &ctx, &Config::default());
        assert_eq!(json(&ok(&args)), mutated, "labels {labels:?}");
    }
    // An ignored namespace: whatever the engine decides, the CLI agrees.
    let ctx = Context {
        namespace: Some("kube-system".into()),
        namespace_labels: None,
    };
    let out = ok(&["inject", "-f", EXAMPLE, "-o", "json", "-n", "kube-system"]);
    assert_eq!(json(&out), expected(&input, &ctx, &Config::default()).0);
}

#[test]
fn configuration_is_layered_defaults_config_values_set() {
    let input = yaml_docs(&read(EXAMPLE)).remove(0);
    let config_file = "tests/testdata/cli/config.yaml";
    let values_file = "tests/testdata/cli/values-hub.yaml";
    let set = "values.global.hub=override.example.com/mesh";
    let injected = |cfg: &Config| expected(&input, &Context::default(), cfg).0;

    let mut cfg = ConfigBuilder::load(&path(config_file)).expect("valid config");
    let config_only = injected(&cfg.build().expect("complete"));
    assert_ne!(
        config_only,
        injected(&Config::default()),
        "the file matters"
    );
    let out = ok(&[
        "inject",
        "-f",
        EXAMPLE,
        "-o",
        "json",
        "--config",
        config_file,
    ]);
    assert_eq!(json(&out), config_only);

    cfg.merge_values_yaml(&read(values_file))
        .expect("valid values");
    cfg.set(set).expect("valid --set");
    let layered = injected(&cfg.build().expect("complete"));
    // Flags in any order on the command line: the layers keep theirs.
    for args in [
        [
            "--set",
            set,
            "--values",
            values_file,
            "--config",
            config_file,
        ],
        [
            "--config",
            config_file,
            "--values",
            values_file,
            "--set",
            set,
        ],
    ] {
        let mut all = vec!["inject", "-f", EXAMPLE, "-o", "json"];
        all.extend(args);
        assert_eq!(json(&ok(&all)), layered, "{args:?}");
    }
    // Later --set wins over earlier --set.
    let mut last = Config::builder();
    last.set("values.global.tag=1").expect("valid --set");
    last.set("values.global.tag=2").expect("valid --set");
    let out = ok(&[
        "inject",
        "-f",
        EXAMPLE,
        "-o",
        "json",
        "--set",
        "values.global.tag=1",
        "--set",
        "values.global.tag=2",
    ]);
    let last = last.build().expect("complete");
    assert_eq!(json(&out), injected(&last));
    assert_ne!(injected(&last), injected(&Config::default()));
}

#[test]
fn an_invalid_config_key_is_named() {
    let err = fails(
        &[
            "inject",
            "-f",
            EXAMPLE,
            "--set",
            "values.global.noSuchKey=1",
        ],
        None,
    );
    assert!(err.contains("values.global.noSuchKey"), "{err}");
    let err = fails(
        &[
            "inject",
            "-f",
            EXAMPLE,
            "--values",
            "tests/testdata/cli/multi.yaml",
        ],
        None,
    );
    assert!(
        err.contains("--values tests/testdata/cli/multi.yaml"),
        "{err}"
    );
}

/// The `istio-init` container of the first injected document of a JSON
/// output.
fn init_container(out: &str) -> Value {
    let doc = json(out);
    doc["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .expect("init containers")
        .iter()
        .find(|c| c["name"] == "istio-init")
        .expect("an istio-init container")
        .clone()
}

#[test]
fn outrigger_capture_without_outriggers_init_image_is_refused() {
    for layers in [
        vec!["--set", "config.trafficCapture=outrigger"],
        vec!["--config", "tests/testdata/cli/capture-outrigger.yaml"],
        // A later layer puts Istio's image back.
        vec![
            "--values",
            "tests/testdata/cli/operator-outrigger-init.yaml",
            "--set",
            "config.trafficCapture=outrigger",
            "--set",
            "values.global.proxy_init.image=docker.io/istio/proxyv2:1.26.0",
        ],
    ] {
        let mut args = vec!["inject", "-f", EXAMPLE, "-o", "json"];
        args.extend(&layers);
        let err = fails(&args, None);
        for part in [
            "config.trafficCapture is outrigger",
            "values.global.proxy_init.image is",
            "set values.global.proxy_init.image to outrigger's image",
        ] {
            assert!(err.contains(part), "{layers:?}: {part:?} missing: {err}");
        }
    }
}

#[test]
fn outrigger_capture_with_outriggers_init_image_from_any_layer() {
    for layers in [
        // The config file chooses outrigger capture; --set names the image.
        vec![
            "--config",
            "tests/testdata/cli/capture-outrigger.yaml",
            "--set",
            "values.global.proxy_init.image=registry.example.com/outrigger:0.1.0",
        ],
        // An IstioOperator names the image; --set chooses outrigger capture.
        vec![
            "--set",
            "config.trafficCapture=outrigger",
            "--values",
            "tests/testdata/cli/operator-outrigger-init.yaml",
        ],
    ] {
        let mut args = vec!["inject", "-f", EXAMPLE, "-o", "json"];
        args.extend(&layers);
        let init = init_container(&ok(&args));
        assert_eq!(
            init["image"], "registry.example.com/outrigger:0.1.0",
            "{layers:?}"
        );
        assert_eq!(init["args"][0], "iptables", "{layers:?}");
    }
    // Istio's own capture keeps Istio's image, as before.
    let init = init_container(&ok(&["inject", "-f", EXAMPLE, "-o", "json"]));
    assert_eq!(init["image"], "docker.io/istio/proxyv2:1.26.0");
    assert_eq!(init["args"][0], "istio-iptables");
}

#[test]
fn exit_codes() {
    assert_eq!(outrigger(&["inject", "-f", EXAMPLE], None).code, Some(0));
    assert_eq!(
        outrigger(&["inject", "-f", "tests/testdata/cli/bad-third.yaml"], None).code,
        Some(1)
    );
    // Usage errors are the argument parser's: exit 2.
    let run = outrigger(&["inject", "-f", EXAMPLE, "-o", "xml"], None);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("xml"), "{}", run.stderr);
    assert_eq!(outrigger(&["inject"], None).code, Some(2));
}

/// Istio's own injection golden cases (both suites, but for the cases
/// still pending), through the binary: `-f` the input, the baseline and
/// the case's overrides as `--set`/`--values`, YAML out, compared as
/// cases.yaml prescribes (after the Go-struct zero `status` fields
/// `istioctl kube-inject` prints, which the preview does not).
fn conformance_cases_through_the_cli(suite: Suite) {
    let Some((dir, cases)) = support::conformance::load_suite(suite) else {
        return;
    };
    assert!(!cases.is_empty(), "cases.yaml lists no cases");
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|c| support::conformance::pending(suite, &c.name).is_none())
        .collect();
    let mut failures = Vec::new();
    for case in &cases {
        let input = dir.join(&case.input).display().to_string();
        let mut args = vec!["inject".to_owned(), "-f".to_owned(), input];
        let values = case
            .values
            .iter()
            .map(|v| dir.join(v).display().to_string());
        for file in values {
            args.extend(["--values".to_owned(), file]);
        }
        let sets = support::conformance::BASELINE.iter().map(|s| s.to_string());
        for set in sets.chain(case.set.iter().cloned()) {
            args.extend(["--set".to_owned(), set]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = outrigger(&args, None);
        if let Some(want) = &case.error {
            let named = run.stderr.to_lowercase().contains(want.as_str());
            if run.code != Some(1) || !run.stdout.is_empty() || !named {
                failures.push(format!(
                    "{}: want exit 1 with {want:?}, got {:?}: {}",
                    case.name, run.code, run.stderr
                ));
            }
            continue;
        }
        if run.code != Some(0) {
            failures.push(format!(
                "{}: exit {:?}: {}",
                case.name, run.code, run.stderr
            ));
            continue;
        }
        let golden = case
            .golden
            .as_ref()
            .expect("a case without error has a golden");
        let want = yaml_docs(&std::fs::read_to_string(dir.join(golden)).expect("golden"));
        let got: Vec<Value> = yaml_docs(&run.stdout)
            .iter()
            .map(kube_inject_form)
            .collect();
        if got.len() != want.len() {
            failures.push(format!(
                "{}: {} documents, golden has {}",
                case.name,
                got.len(),
                want.len()
            ));
            continue;
        }
        if support::conformance::by_design(&case.name).is_some() {
            // Not Istio's golden (see BY_DESIGN): the engine's own answer,
            // which tests/conformance_inject.rs checks.
            let cfg = support::conformance::case_config(&dir, case);
            let input = yaml_docs(&std::fs::read_to_string(dir.join(&case.input)).expect("input"));
            for (i, (g, doc)) in got.iter().zip(&input).enumerate() {
                let engine = match outrigger::inject::inject(doc, &Default::default(), &cfg) {
                    Ok(outrigger::inject::Outcome::Injected { mutated, .. }) => mutated,
                    _ => doc.clone(),
                };
                if *g != kube_inject_form(&engine) {
                    failures.push(format!(
                        "{} document {}: the CLI differs from the engine",
                        case.name,
                        i + 1
                    ));
                }
            }
            continue;
        }
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if let Err(diff) = support::conformance::compare(g, w) {
                failures.push(format!("{} document {}:\n{diff}", case.name, i + 1));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {} cases fail through the CLI:\n{}",
        failures.len(),
        cases.len(),
        suite.folder(),
        failures.join("\n")
    );
}

#[test]
fn istio_conformance_cases_through_the_cli() {
    conformance_cases_through_the_cli(Suite::Inject);
}

#[test]
fn istio_template_family_conformance_cases_through_the_cli() {
    conformance_cases_through_the_cli(Suite::Templates);
}

#[test]
fn a_bad_inject_value_is_a_warning_on_stderr_and_the_namespaces_policy() {
    let run = outrigger(
        &["inject", "-f", "tests/testdata/cli/bad-annotation.yaml"],
        None,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("warning: Pod undecided")
            && run
                .stderr
                .contains("annotation sidecar.istio.io/inject is \"maybe\""),
        "{}",
        run.stderr
    );
    // The default policy (enabled) injects it.
    assert!(
        run.stdout.contains("sidecar.istio.io/status"),
        "{}",
        run.stdout
    );
}

#[test]
fn explain_says_which_injected_objects_would_be_re_injected_and_why() {
    let old = ok(&["inject", "-f", EXAMPLE, "--set", "values.global.tag=1.26.0"]);
    let run = outrigger(
        &[
            "inject",
            "-f",
            "-",
            "--set",
            "values.global.tag=1.28.0",
            "-o",
            "explain",
        ],
        Some(&old),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("decision: re-injected ("),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "changes: proxy image docker.io/istio/proxyv2:1.26.0 -> docker.io/istio/proxyv2:1.28.0"
        ),
        "{}",
        run.stdout
    );
    let same = outrigger(
        &[
            "inject",
            "-f",
            "-",
            "--set",
            "values.global.tag=1.26.0",
            "-o",
            "explain",
        ],
        Some(&old),
    );
    assert!(
        same.stdout.contains("decision: skipped (already-injected)"),
        "{}",
        same.stdout
    );
}

#[test]
fn uninject_removes_what_the_status_record_names() {
    let injected = ok(&["inject", "-f", EXAMPLE]);
    let run = outrigger(&["uninject", "-f", "-"], Some(&injected));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let back = yaml_docs(&run.stdout);
    let original = yaml_docs(&read(EXAMPLE));
    assert_eq!(back.len(), original.len());
    for (b, o) in back.iter().zip(&original) {
        // The named probe port comes back as its number (the record keeps
        // the number); everything else as it was.
        let text = serde_json::to_string(o)
            .unwrap()
            .replace("\"port\":\"http\"", "\"port\":9080");
        assert_eq!(*b, serde_json::from_str::<Value>(&text).unwrap());
    }
    // An object without a record is printed as it is.
    let plain = outrigger(&["uninject", "-f", EXAMPLE], None);
    assert_eq!(yaml_docs(&plain.stdout), original);
}

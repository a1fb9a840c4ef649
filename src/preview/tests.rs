//! Unit tests of the preview: input splitting, labels, renderings. Checks of
//! injected content compare with what the engine itself returns.

use serde_json::{Value, json};

use super::*;
use crate::inject::{Added, Decision, ItemOutcome, SkipReason};

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  containers:\n  - name: app\n    image: nginx\n";
const SERVICE: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n";

fn engine(object: &Value) -> Outcome {
    match inject::inject(object, &Context::default(), &Config::default()) {
        Ok(outcome) => outcome,
        Err(err) => panic!("engine rejected a valid fixture: {err}"),
    }
}

fn parsed(text: &str) -> Vec<Document> {
    match parse_documents(text) {
        Ok(docs) => docs,
        Err(err) => panic!("fixture does not parse: {err}"),
    }
}

fn err_of(text: &str) -> PreviewError {
    match parse_documents(text) {
        Ok(docs) => panic!("expected an error, got {} documents", docs.len()),
        Err(err) => err,
    }
}

#[test]
fn yaml_documents_keep_their_order_and_numbers() {
    let text = format!("# leading comment\n---\n{POD}---\n---\n{SERVICE}---\n");
    let docs = parsed(&text);
    let kinds: Vec<_> = docs.iter().map(|d| d.object["kind"].clone()).collect();
    assert_eq!(kinds, vec![json!("Pod"), json!("Service")]);
    // The empty document between the two still counts.
    assert_eq!(docs[1].index, docs[0].index + 2);
}

#[test]
fn json_object_and_json_stream() {
    let one = parsed(r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}"#);
    assert_eq!(one.len(), 1);
    let stream = parsed(
        "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"}}\n{\"kind\":\"Service\",\"metadata\":{\"name\":\"b\"}}",
    );
    let names: Vec<_> = stream.iter().map(|d| d.label().object_ref()).collect();
    assert_eq!(names, vec!["Pod a", "Service b"]);
    assert_eq!(stream[1].index, 2);
}

#[test]
fn json_looking_yaml_documents_fall_back_to_yaml() {
    let docs = parsed("{\"kind\": \"Pod\"}\n---\n{\"kind\": \"Service\"}\n");
    assert_eq!(docs.len(), 2);
}

#[test]
fn yaml_merge_keys_are_applied() {
    let docs = parsed(
        "kind: Pod\nmetadata:\n  name: a\n  labels: &l {app: a}\n  annotations:\n    <<: *l\n",
    );
    assert_eq!(
        docs[0].object["metadata"]["annotations"],
        json!({"app": "a"})
    );
}

#[test]
fn bad_yaml_names_the_document_and_the_line() {
    let text = format!("{POD}---\n{SERVICE}---\nkind: Pod\nmetadata: [unclosed\n");
    let err = err_of(&text);
    assert_eq!(err.document().map(|d| d.index), Some(3));
    let msg = err.to_string();
    assert!(msg.starts_with("document 3: invalid YAML"), "{msg}");
    assert!(msg.contains("line"), "{msg}");
}

#[test]
fn bad_json_in_a_stream_names_the_document() {
    let err = err_of("{\"kind\":\"Pod\"}\n{\"kind\": }");
    let msg = err.to_string();
    assert!(msg.starts_with("document 2: invalid"), "{msg}");
}

#[test]
fn non_objects_are_refused_with_what_was_found() {
    let msg = err_of("- a\n- b\n").to_string();
    assert!(
        msg.contains("document 1") && msg.contains("found a list"),
        "{msg}"
    );
    let msg = err_of(&format!("{POD}---\nmetadata:\n  name: x\n")).to_string();
    assert!(
        msg.contains("document 2 (x)") && msg.contains("without kind"),
        "{msg}"
    );
    let msg = err_of("kind: !Custom Pod\n").to_string();
    assert!(msg.contains("tag !Custom"), "{msg}");
    assert!(matches!(err_of("  \n# nothing\n"), PreviewError::Empty));
    assert!(matches!(err_of(""), PreviewError::Empty));
}

#[test]
fn labels_name_kind_namespace_and_name() {
    let docs = parsed(POD);
    assert_eq!(docs[0].label().to_string(), "document 1 (Pod shop/web)");
    let label = DocumentLabel::of(
        4,
        &json!({"kind": "Job", "metadata": {"generateName": "j-"}}),
    );
    assert_eq!(label.to_string(), "document 4 (Job j-)");
}

#[test]
fn namespace_labels_are_validated() {
    let ok = parse_namespace_labels(&["istio-injection=enabled", "istio.io/rev=", "a_b=c.d"]);
    assert_eq!(
        ok.map(|m| m.len()),
        Ok(3),
        "valid Kubernetes labels must parse"
    );
    for bad in [
        "noequals",
        "=value",
        "-key=v",
        "key=bad value",
        "Upper.Case/key=v",
        "a/b/c=v",
        "key=-v",
    ] {
        let err = parse_namespace_label(bad);
        assert!(err.is_err(), "{bad:?} must be refused");
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains(&format!("{bad:?}")) && msg.contains("key=value"),
            "{msg}"
        );
    }
    let long = format!("k={}", "v".repeat(64));
    assert!(parse_namespace_label(&long).is_err());
    let dup = parse_namespace_labels(&["a=1", "a=2"]);
    assert!(dup.is_err_and(|e| e.problem.contains("more than once")));
}

#[test]
fn formats_parse_by_name() {
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>(), Ok(f));
    }
    assert!("xml".parse::<Format>().is_err());
}

fn previewed(text: &str) -> Vec<Previewed> {
    match inject_all(
        parsed(text),
        &Context::default(),
        &Config::default(),
        &mut |_| {},
    ) {
        Ok(results) => results,
        Err(err) => panic!("preview failed: {err}"),
    }
}

fn rendered(results: &[Previewed], format: Format) -> String {
    match render(results, format) {
        Ok(text) => text,
        Err(err) => panic!("render failed: {err}"),
    }
}

#[test]
fn yaml_output_is_every_document_in_order() {
    let text = format!("{SERVICE}---\n{POD}");
    let results = previewed(&text);
    let out = rendered(&results, Format::Yaml);
    let back = parsed(&out);
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].object, parsed(SERVICE)[0].object, "unchanged");
    let pod = &parsed(POD)[0].object;
    let expected = match engine(pod) {
        Outcome::Injected { mutated, .. } => mutated,
        Outcome::Skipped { .. } => pod.clone(),
    };
    assert_eq!(back[1].object, expected);
}

#[test]
fn json_output_is_the_object_or_a_list() {
    let one = rendered(&previewed(POD), Format::Json);
    let value: Value = serde_json::from_str(&one).unwrap_or_default();
    assert_eq!(&value, previewed(POD)[0].output());

    let text = format!("{SERVICE}---\n{POD}");
    let results = previewed(&text);
    let list: Value = serde_json::from_str(&rendered(&results, Format::Json)).unwrap_or_default();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["items"][0], *results[0].output());
    assert_eq!(list["items"][1], *results[1].output());
}

#[test]
fn patch_output_has_one_line_per_document() {
    let text = format!("{SERVICE}---\n{POD}");
    let results = previewed(&text);
    let out = rendered(&results, Format::Patch);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], "[]", "a skipped document has an empty patch");
    let patch: json_patch::Patch = match serde_json::from_str(lines[1]) {
        Ok(p) => p,
        Err(err) => panic!("patch line is not RFC 6902: {err}"),
    };
    let mut doc = results[1].original.clone();
    assert!(json_patch::patch(&mut doc, &patch).is_ok());
    assert_eq!(&doc, results[1].output());
}

#[test]
fn explain_names_the_skip_reason_and_the_additions() {
    let text = format!("{SERVICE}---\n{POD}");
    let results = previewed(&text);
    let out = rendered(&results, Format::Explain);
    let Outcome::Skipped { reason } = &results[0].outcome else {
        panic!("a Service is never injected");
    };
    assert!(out.contains("document 1 (Service web)"), "{out}");
    assert!(
        out.contains(&format!("decision: skipped ({})", reason.name())),
        "{out}"
    );
    assert!(out.contains(reason.sentence()), "{out}");
    assert!(out.contains("document 2 (Pod shop/web)"), "{out}");
    let Outcome::Injected { decision, .. } = &results[1].outcome else {
        panic!("a plain Pod is injected by default");
    };
    assert!(
        out.contains(&format!("decision: injected ({})", decision.rule_name)),
        "{out}"
    );
    assert!(out.contains(&format!("rule: {}", decision.rule)), "{out}");
    for name in &decision.added.containers {
        assert!(out.contains(name.as_str()), "{out}");
    }
}

#[test]
fn explain_lists_what_the_decision_adds_and_what_changed() {
    let original = json!({"kind": "Deployment", "spec": {"template": {
        "metadata": {"labels": {"app": "a"}},
        "spec": {"containers": [{"name": "app"}], "volumes": [{"name": "data"}]}}}});
    let mut mutated = original.clone();
    mutated["spec"]["template"]["metadata"]["labels"]["security.istio.io/tlsMode"] = json!("istio");
    mutated["spec"]["template"]["metadata"]["annotations"] =
        json!({"sidecar.istio.io/status": "{}"});
    mutated["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "app", "readinessProbe": {}}, {"name": "istio-proxy"}]);
    let results = [Previewed {
        label: DocumentLabel::of(1, &original),
        original: original.clone(),
        outcome: Outcome::Injected {
            patch: json_patch::diff(&original, &mutated),
            mutated,
            decision: decision("policy", &["istio-proxy"], &[]),
        },
    }];
    let out = rendered(&results, Format::Explain);
    let expected = "document 1 (Deployment)\n  decision: injected (policy)\n  \
                    rule: the test said so\n  adds containers: istio-proxy\n  \
                    adds volumes: istio-envoy\n  sets labels: security.istio.io/tlsMode\n  \
                    sets annotations: sidecar.istio.io/status\n  changes containers: app\n";
    assert_eq!(out, expected);
}

fn decision(rule_name: &'static str, containers: &[&str], items: &[ItemOutcome]) -> Decision {
    Decision {
        rule: "the test said so".into(),
        rule_name,
        added: Added {
            containers: containers.iter().map(|c| c.to_string()).collect(),
            volumes: if containers.is_empty() {
                Vec::new()
            } else {
                vec!["istio-envoy".into()]
            },
            ..Added::default()
        },
        items: items.to_vec(),
        reinjected: None,
        warnings: Vec::new(),
        removed: false,
    }
}

#[test]
fn explain_of_a_list_goes_item_by_item() {
    let original = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"kind": "Service", "metadata": {"name": "web"}},
        {"kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": [{"name": "app"}]}}]});
    let mut mutated = original.clone();
    mutated["items"][1]["spec"]["containers"] = json!([{"name": "app"}, {"name": "istio-proxy"}]);
    let items = [
        ItemOutcome::Skipped(SkipReason::new("unsupported-kind", "not a workload")),
        ItemOutcome::Injected(decision("policy", &["istio-proxy"], &[])),
    ];
    let results = [Previewed {
        label: DocumentLabel::of(1, &original),
        original: original.clone(),
        outcome: Outcome::Injected {
            patch: json_patch::diff(&original, &mutated),
            mutated,
            decision: decision("list", &[], &items),
        },
    }];
    let out = rendered(&results, Format::Explain);
    let expected = "document 1 (List)\n  decision: injected (list)\n  rule: the test said so\n  \
                    item 1 (Service web): skipped (unsupported-kind)\n    reason: not a workload\n  \
                    item 2 (Pod web): injected (policy)\n    rule: the test said so\n    \
                    adds containers: istio-proxy\n    adds volumes: istio-envoy\n";
    assert_eq!(out, expected);
}

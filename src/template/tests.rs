//! The evaluator against what Go's `text/template` gives for the same text.

use serde_json::{Value, json};

use super::{Limits, Template, TemplateError};

fn run(text: &str, data: Value) -> String {
    Template::parse("t", text)
        .unwrap_or_else(|e| panic!("{e}"))
        .execute(&data, Limits::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn parse_error(text: &str) -> (usize, String) {
    match Template::parse("t", text) {
        Err(TemplateError::Parse { line, message, .. }) => (line, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn range_over_go_field_names_reaches_json_keys() {
    let data = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let text = "{{- range $i, $c := .Spec.Containers }}\n- {{ $i }}:{{ $c.Name }}\n{{- end }}";
    assert_eq!(run(text, data), "\n- 0:a\n- 1:b");
}

#[test]
fn trim_markers_eat_white_space_on_their_side_only() {
    assert_eq!(run("a  {{- \"b\" -}}  c", json!({})), "abc");
    assert_eq!(run("a  {{ \"b\" }}  c", json!({})), "a  b  c");
    assert_eq!(run("x {{/* note */}} y", json!({})), "x  y");
    assert_eq!(run("x {{- /* note */ -}} y", json!({})), "xy");
}

#[test]
fn if_else_if_with_and_variables() {
    let text = "{{ if eq .A 1 }}one{{ else if eq .A 2 }}two{{ else }}many{{ end }}";
    assert_eq!(run(text, json!({"a": 2})), "two");
    assert_eq!(run(text, json!({"a": 7})), "many");
    let text = "{{ with .M }}{{ .K }}{{ else }}none{{ end }}";
    assert_eq!(run(text, json!({"m": {"k": "v"}})), "v");
    assert_eq!(run(text, json!({"m": {}})), "none");
    let text = "{{ $l := list }}{{ range .X }}{{ $l = append $l . }}{{ end }}{{ $l | join \",\" }}";
    assert_eq!(run(text, json!({"x": ["a", "b"]})), "a,b");
}

#[test]
fn break_continue_define_and_template() {
    let text = "{{ range . }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}";
    assert_eq!(run(text, json!([1, 2, 3, 4, 5])), "13");
    let text = "{{ define \"x\" }}[{{ .N }}{{ $.N }}]{{ end }}{{ template \"x\" .In }}";
    assert_eq!(run(text, json!({"in": {"n": 1}})), "[11]");
}

#[test]
fn istio_functions_behave_as_istios() {
    let meta = json!({"annotations": {"a": "x"}, "labels": {}});
    let data = json!({"objectMeta": meta});
    assert_eq!(
        run("{{ annotation .ObjectMeta `a` `d` }}", data.clone()),
        "x"
    );
    assert_eq!(run("{{ annotation .ObjectMeta `b` 5 }}", data.clone()), "5");
    assert_eq!(
        run("{{ isset .ObjectMeta.Annotations `a` }}", data.clone()),
        "true"
    );
    assert_eq!(
        run(
            "{{ index .ObjectMeta.Labels `app` | default `none` }}",
            data
        ),
        "none"
    );
    assert_eq!(
        run("{{ excludeInboundPort 15020 \"1,2\" }}", json!({})),
        "1,2,15020"
    );
    assert_eq!(run("{{ excludeInboundPort 2 \"1,2\" }}", json!({})), "1,2");
    assert_eq!(run("{{ valueOrDefault \"\" `d` }}", json!({})), "d");
    assert_eq!(run("{{ contains \"/\" \"a/b\" }}", json!({})), "true");
    assert_eq!(run("{{ directory \"/a/b/c.json\" }}", json!({})), "/a/b/");
    assert_eq!(
        run("{{ appendMultusNetwork \"a\" \"istio-cni\" }}", json!({})),
        "a, istio-cni"
    );
    assert_eq!(
        run(
            "{{ appendMultusNetwork `[{\"name\": \"a\"}]` \"istio-cni\" }}",
            json!({})
        ),
        "[{\"name\": \"a\"}, {\"name\": \"istio-cni\"}]"
    );
    assert_eq!(run("{{ formatDuration \"90s\" }}", json!({})), "1m30s");
    assert_eq!(
        run(
            "{{ toJsonMap (strdict \"a\" \"1\") (strdict \"a\" \"2\" \"b\") }}",
            json!({})
        ),
        "{\"a\":\"2\",\"b\":\"\"}"
    );
    assert_eq!(run("{{ indent 2 \"a\\nb\" }}", json!({})), "a\n  b");
    assert_eq!(run("{{ \"a\\nb\" | nindent 2 }}", json!({})), "\n  a\n  b");
    assert_eq!(
        run("{{ printf \"--x=%s:%d\" \"a\" 3 | quote }}", json!({})),
        "\"--x=a:3\""
    );
}

#[test]
fn a_broken_template_is_refused_with_its_line() {
    assert_eq!(parse_error("a\nb\n{{ nosuch . }}").0, 3);
    assert!(
        parse_error("a\nb\n{{ nosuch . }}")
            .1
            .contains("\"nosuch\" not defined")
    );
    let (line, message) = parse_error("{{ if . }}\nx\n");
    assert_eq!(line, 1);
    assert!(message.contains("no matching {{end}}"), "{message}");
    assert_eq!(parse_error("x\n{{ .A ").0, 2);
    assert!(parse_error("{{ end }}").1.contains("unexpected"));
    let deep = "{{ if . }}".repeat(100);
    assert!(parse_error(&deep).1.contains("nested deeper"));
}

#[test]
fn execution_is_bounded() {
    let t = Template::parse(
        "t",
        "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
    )
    .unwrap();
    let e = t.execute(&json!({}), Limits::default()).unwrap_err();
    assert!(e.to_string().contains("nested deeper than 32"), "{e}");
    let t = Template::parse(
        "t",
        "{{ range .A }}{{ range $.A }}xxxxxxxx{{ end }}{{ end }}",
    )
    .unwrap();
    let data = json!({"a": vec![0; 1000]});
    let e = t.execute(&data, Limits::default()).unwrap_err();
    assert!(
        e.to_string().contains("steps") || e.to_string().contains("bytes"),
        "{e}"
    );
    let small = Limits {
        max_output: 10,
        ..Limits::default()
    };
    let e = Template::parse("t", "{{ range .A }}xx{{ end }}")
        .unwrap()
        .execute(&data, small)
        .unwrap_err();
    assert!(e.to_string().contains("larger than 10 bytes"), "{e}");
}

//! outrigger's own injection goldens (tests/testdata/inject/cases.yaml):
//! each kind, List, webhook-style Pods, unknown fields and every skip
//! reason. `UPDATE_GOLDENS=1` rewrites the expected files; a file in the
//! folder that no case reads fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use outrigger::config::{Config, ConfigBuilder};
use outrigger::inject::{Context, Outcome, inject};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/inject")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

struct Run {
    name: String,
    result: Result<(), String>,
}

fn config_of(case: &Value) -> Config {
    let mut cfg = match case.get("config").and_then(Value::as_str) {
        Some(text) => ConfigBuilder::from_yaml(text).expect("case config"),
        None => ConfigBuilder::new(),
    };
    for s in case
        .get("set")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        cfg.set(s.as_str().expect("set entry")).expect("case set");
    }
    cfg.build().expect("case configuration is complete")
}

fn context_of(case: &Value) -> Context {
    Context {
        namespace: case
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
        namespace_labels: case.get("namespaceLabels").map(|m| {
            serde_json::from_value::<BTreeMap<String, String>>(m.clone()).expect("labels")
        }),
    }
}

fn check_file(path: &Path, got: &str, update: bool) -> Result<(), String> {
    if update {
        std::fs::write(path, got).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let want = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "missing golden {} ({e}); run with UPDATE_GOLDENS=1",
            path.display()
        )
    })?;
    if want == got {
        Ok(())
    } else {
        let first = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        Err(format!(
            "{} differs from the golden at line {}:\n  want: {}\n  got:  {}",
            path.display(),
            first + 1,
            want.lines().nth(first).unwrap_or("<end>"),
            got.lines().nth(first).unwrap_or("<end>"),
        ))
    }
}

fn run_case(case: &Value, read_files: &mut BTreeSet<String>, update: bool) -> Result<(), String> {
    let name = case["name"].as_str().ok_or("case without name")?;
    let input = case["input"].as_str().ok_or("case without input")?;
    read_files.insert(input.to_string());
    let mut object: Value =
        serde_yaml::from_str(&read(&dir().join(input))).map_err(|e| e.to_string())?;
    add_metadata(&mut object, case);
    let result = inject(&object, &context_of(case), &config_of(case));
    if let Some(form) = case.get("error").and_then(Value::as_str) {
        return check_error(case, result.err().map(|e| e.to_string()), form);
    }
    let outcome = result.map_err(|e| e.to_string())?;
    match (outcome, case.get("skip").and_then(Value::as_str)) {
        (Outcome::Skipped { reason }, Some(want)) => {
            if reason.name() != want {
                return Err(format!("skipped as {}, expected {want}", reason.name()));
            }
            if reason.sentence().is_empty() {
                return Err("skip reason has no sentence".into());
            }
            Ok(())
        }
        (Outcome::Skipped { reason }, None) => Err(format!("unexpected skip: {reason}")),
        (Outcome::Injected { .. }, Some(want)) => Err(format!("injected, expected skip {want}")),
        (Outcome::Injected { patch, mutated, .. }, None) => {
            let injected = format!("{name}.injected.yaml");
            let patch_file = format!("{name}.patch.json");
            read_files.insert(injected.clone());
            read_files.insert(patch_file.clone());
            let yaml = serde_yaml::to_string(&mutated).map_err(|e| e.to_string())?;
            let json = serde_json::to_string_pretty(&patch).map_err(|e| e.to_string())? + "\n";
            check_file(&dir().join(injected), &yaml, update)?;
            check_file(&dir().join(patch_file), &json, update)
        }
    }
}

/// Adds the case's `annotations` and `labels` to the pod's metadata.
fn add_metadata(object: &mut Value, case: &Value) {
    let kind = object["kind"].as_str().unwrap_or("").to_string();
    let Some((meta, _)) = outrigger::inject::pod_location(&kind) else {
        return;
    };
    for field in ["annotations", "labels"] {
        if let Some(Value::Object(extra)) = case.get(field) {
            let Some(Value::Object(m)) = object.pointer_mut(meta) else {
                continue;
            };
            let target = m
                .entry(field)
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(t) = target {
                for (k, v) in extra {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

/// The error must name the annotation (or label), its value, and the form.
fn check_error(case: &Value, got: Option<String>, form: &str) -> Result<(), String> {
    let msg = got.ok_or_else(|| format!("expected an error mentioning {form:?}, got none"))?;
    let mut want = vec![form.to_string()];
    for field in ["annotations", "labels"] {
        if let Some(Value::Object(m)) = case.get(field) {
            for (k, v) in m {
                want.push(k.clone());
                want.push(format!("{:?}", v.as_str().unwrap_or("")));
            }
        }
    }
    match want.iter().find(|w| !msg.contains(w.as_str())) {
        None => Ok(()),
        Some(missing) => Err(format!("error {msg:?} does not contain {missing:?}")),
    }
}

#[test]
fn own_goldens() {
    let update = std::env::var_os("UPDATE_GOLDENS").is_some();
    let cases: Value = serde_yaml::from_str(&read(&dir().join("cases.yaml"))).expect("cases.yaml");
    let mut read_files = BTreeSet::from(["cases.yaml".to_string()]);
    let runs: Vec<Run> = cases["cases"]
        .as_array()
        .expect("cases list")
        .iter()
        .map(|c| Run {
            name: c["name"].as_str().unwrap_or("?").to_string(),
            result: run_case(c, &mut read_files, update),
        })
        .collect();
    let failures: Vec<String> = runs
        .iter()
        .filter_map(|r| r.result.as_ref().err().map(|e| format!("{}: {e}", r.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} golden cases fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let unread: Vec<String> = std::fs::read_dir(dir())
        .expect("testdata dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| !read_files.contains(f))
        .collect();
    assert!(unread.is_empty(), "golden files no case reads: {unread:?}");
}

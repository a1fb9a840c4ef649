//! `outrigger inject` writes YAML that a YAML 1.1 reader (Kubernetes' is
//! go-yaml v2's; here PyYAML's, an independent implementation of the same
//! rules) reads back as exactly the objects `--output json` prints: no
//! string turns into a boolean, a number, a null or a date. Over a table of
//! strings YAML 1.1 would retype, and over every fixture in the repository.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::requires;

/// Strings a YAML 1.1 reader takes for another type, unless quoted.
const RETYPED: &[&str] = &[
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "NO",
    "on",
    "On",
    "ON",
    "off",
    "Off",
    "OFF",
    "y",
    "Y",
    "n",
    "N",
    "true",
    "True",
    "FALSE",
    "~",
    "null",
    "Null",
    "NULL",
    "",
    "1_000",
    "0x1F",
    "0o17",
    "012",
    "0b101",
    "1:20",
    "190:20:30",
    "1:20.5",
    ".inf",
    "-.Inf",
    ".NAN",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "2002-12-14 21:59:43.10 -5",
    "1e3",
    "1.5",
    "-1",
    "+12",
    ".5",
    "<<",
    "=",
    "123",
    "*",
    "&a",
    "!!str",
    "- x",
    "a: b",
    "a #b",
    " x",
    "x ",
    "'",
    "\"",
    "line\nbreak",
];

fn outrigger(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or("").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "outrigger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The documents of each text as PyYAML's `safe_load_all` reads them
/// (YAML 1.1), as JSON (one Python run for all); `None` when Python or
/// PyYAML is absent (outside CI).
fn pyyaml(texts: &[String]) -> Option<Vec<Vec<Value>>> {
    const READ: &str = "import sys, json, yaml\nprint(json.dumps([list(yaml.safe_load_all(t)) for t in json.load(sys.stdin)], default=str))";
    let present = Command::new("python3")
        .args(["-c", "import yaml"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !requires::available(
        present,
        "reading the YAML output back with a YAML 1.1 reader",
        "python3 with PyYAML (pip install pyyaml)",
    ) {
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", READ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(texts).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "PyYAML could not read the output");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// The documents `--output json` prints for the same input (the truth):
/// several documents come as one `kind: List` holding them.
fn json_docs(args: &[&str], stdin: Option<&str>, documents: usize) -> Vec<Value> {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let value: Value = serde_json::from_str(&outrigger(&args, stdin)).unwrap();
    if documents == 1 {
        return vec![value];
    }
    match value.get("items") {
        Some(Value::Array(items)) => items.clone(),
        _ => panic!("{documents} documents but no List: {value}"),
    }
}

/// Runs each input through `inject` as YAML, reads every output back with
/// PyYAML and compares with `--output json`; `false` when skipped.
fn check(runs: &[(Vec<&str>, Option<&str>)]) -> bool {
    let outputs: Vec<String> = runs
        .iter()
        .map(|(args, stdin)| outrigger(args, *stdin))
        .collect();
    let Some(read_back) = pyyaml(&outputs) else {
        return false;
    };
    for (((args, stdin), yaml), docs) in runs.iter().zip(&outputs).zip(&read_back) {
        let expected = json_docs(args, *stdin, docs.len());
        assert_eq!(docs.len(), expected.len(), "{args:?}");
        for (got, want) in docs.iter().zip(&expected) {
            assert_eq!(
                got, want,
                "{args:?}: YAML 1.1 read back differently:\n{yaml}"
            );
        }
    }
    true
}

#[test]
fn strings_yaml_1_1_would_retype_come_back_as_strings() {
    let data: serde_json::Map<String, Value> = RETYPED
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("k{i}"), Value::String((*s).to_string())))
        .collect();
    // As values, and as keys (`on:` is a boolean key in YAML 1.1).
    let keys: serde_json::Map<String, Value> = RETYPED
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| ((*s).to_string(), Value::String("v".into())))
        .collect();
    let config_map = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "f", "annotations": keys},
        "data": data,
    });
    let input = serde_json::to_string(&config_map).unwrap();
    if check(&[(vec!["inject", "-f", "-"], Some(&input))]) {
        // What the user saw: `X: yes` for the string "yes".
        let yaml = outrigger(
            &["inject", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: f}\ndata: {X: \"yes\"}\n"),
        );
        assert!(yaml.contains("X: 'yes'"), "{yaml}");
    }
}

fn fixtures(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            fixtures(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_fixture_reads_back_as_its_json_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    fixtures(&root.join("examples"), &mut files);
    fixtures(&root.join("tests/testdata/cli"), &mut files);
    fixtures(&root.join("tests/testdata/inject"), &mut files);
    files.sort();
    // A fixture the engine refuses (a bad annotation) has no output.
    let runs: Vec<(Vec<&str>, Option<&str>)> = files
        .iter()
        .map(|f| f.to_str().unwrap())
        .filter(|file| {
            Command::new(env!("CARGO_BIN_EXE_outrigger"))
                .args(["inject", "-f", file, "--output", "json"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success()
        })
        .map(|file| (vec!["inject", "-f", file], None))
        .collect();
    assert!(
        runs.len() >= 30,
        "only {} of {} fixtures inject",
        runs.len(),
        files.len()
    );
    check(&runs);
}

//! Istio's injection conformance cases (../shared/conformance/istio-inject
//! and istio-inject-templates): loading the cases, building each case's
//! configuration, and the semantic comparison cases.yaml prescribes. Shared
//! by the engine test and the CLI test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use outrigger::config::Config;
use serde_json::Value;

/// The baseline every case starts from (cases.yaml).
pub const BASELINE: &[&str] = &[
    "values.global.hub=registry.istio.io/testing",
    "values.global.tag=latest",
];

/// Cases whose golden outrigger departs from on purpose, and why. Their
/// tests check outrigger's own behaviour instead (see the callers).
pub const BY_DESIGN: &[(&str, &str)] = &[(
    "merge-probers",
    "the input was injected by an older Istio; Istio merges its template \
     onto the old proxy (the old proxy's args, env and probe settings win), \
     outrigger replaces what the status record names with what injection \
     adds now (issue 16: re-injection), so the result is a first injection \
     of the input without the old sidecar",
)];

/// Why `case` departs from its golden, if it does on purpose.
pub fn by_design(case: &str) -> Option<&'static str> {
    BY_DESIGN
        .iter()
        .find(|(c, _)| *c == case)
        .map(|(_, why)| *why)
}

/// One case of cases.yaml.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name.
    pub name: String,
    /// The input file (relative to the case folder).
    pub input: String,
    /// The expected output file, when the case injects or skips.
    pub golden: Option<String>,
    /// `--set` overrides.
    pub set: Vec<String>,
    /// An IstioOperator values file.
    pub values: Option<String>,
    /// The expected error text (lower-case substring).
    pub error: Option<String>,
}

/// One folder of Istio's cases under `../shared/conformance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// `istio-inject`: the sidecar template, its annotations and values.
    Inject,
    /// `istio-inject-templates`: the template families, user templates,
    /// CNI and multus, DeploymentConfig.
    Templates,
}

impl Suite {
    /// The folder's name under `../shared/conformance`.
    pub fn folder(self) -> &'static str {
        match self {
            Suite::Inject => "istio-inject",
            Suite::Templates => "istio-inject-templates",
        }
    }

    /// What the suite's tests are about, for the skip message.
    pub fn what(self) -> &'static str {
        match self {
            Suite::Inject => "Istio's injection golden cases",
            Suite::Templates => "Istio's template-family injection golden cases",
        }
    }

    /// Cases of this suite outrigger does not pass yet, and why. A test
    /// fails when one of them passes, so the list only shrinks.
    pub fn pending(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Suite::Inject => &[],
            Suite::Templates => PENDING_TEMPLATES,
        }
    }
}

/// The template-family cases not passed yet (issue 21), and why.
pub const PENDING_TEMPLATES: &[(&str, &str)] = &[];

/// Why `case` of `suite` is still expected to fail, if it is.
pub fn pending(suite: Suite, case: &str) -> Option<&'static str> {
    suite
        .pending()
        .iter()
        .find(|(c, _)| *c == case)
        .map(|(_, why)| *why)
}

/// Where a suite's folder is expected: `../shared/conformance/<folder>`
/// beside the repository.
pub fn case_dir(suite: Suite) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join("conformance")
        .join(suite.folder())
}

/// Loads a suite's cases.yaml; `None` (after saying `SKIPPED: ... (needs
/// ...)`) when ../shared/conformance is absent on a fresh clone, a failure
/// naming the path it looked at when it is absent in CI.
pub fn load_suite(suite: Suite) -> Option<(PathBuf, Vec<Case>)> {
    let dir = case_dir(suite);
    let needs = format!("Istio's conformance cases in {}", dir.display());
    let present = super::requires::shared_exists(&dir.join("cases.yaml"));
    if !super::requires::available(present, suite.what(), &needs) {
        return None;
    }
    Some(load_cases_from(dir))
}

/// [`load_suite`] for Istio's own injection golden cases.
pub fn load_cases() -> Option<(PathBuf, Vec<Case>)> {
    load_suite(Suite::Inject)
}

fn load_cases_from(dir: PathBuf) -> (PathBuf, Vec<Case>) {
    let file = dir.join("cases.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "Istio conformance cases: could not read {} ({e})",
            file.display()
        )
    });
    let doc: Value = serde_yaml::from_str(&text).expect("cases.yaml is YAML");
    let cases = doc["cases"]
        .as_array()
        .expect("cases.yaml has a cases list")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().expect("case name").to_string(),
            input: c["input"].as_str().expect("case input").to_string(),
            golden: c["golden"].as_str().map(str::to_string),
            set: c["set"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            values: c["values"].as_str().map(str::to_string),
            error: c["error"].as_str().map(str::to_string),
        })
        .collect();
    (dir, cases)
}

/// The configuration of a case: defaults, baseline, values file, then sets.
pub fn case_config(dir: &Path, case: &Case) -> Config {
    let mut cfg = Config::builder();
    for s in BASELINE {
        cfg.set(s).expect("baseline set");
    }
    if let Some(v) = &case.values {
        let text = std::fs::read_to_string(dir.join(v)).expect("values file");
        cfg.merge_values_yaml(&text).expect("values file applies");
    }
    for s in &case.set {
        cfg.set(s)
            .unwrap_or_else(|e| panic!("case {}: --set {s}: {e}", case.name));
    }
    cfg.build()
        .unwrap_or_else(|e| panic!("case {}: {e}", case.name))
}

/// Parses every non-empty YAML document of `text`.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

/// Drops keys whose value is null or `{}`, at any depth.
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let n = normalize(v);
                let empty = n.is_null() || n.as_object().is_some_and(|o| o.is_empty());
                if !empty {
                    out.insert(k.clone(), n);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// `object` with a CronJob's injected metadata where `istioctl kube-inject`
/// puts it. The one deliberate difference from Istio's output: outrigger
/// writes the labels and annotations (the status record among them) on
/// the pod template (`spec.jobTemplate.spec.template.metadata`), which
/// every Job and pod of the CronJob copies, so that they are recognised as
/// injected; Istio writes them on `spec.jobTemplate.metadata`, which only
/// the Job's own metadata gets (README, "Where outrigger differs").
pub fn istio_placement(object: &Value) -> Value {
    let mut out = object.clone();
    if object["kind"] != "CronJob" {
        return out;
    }
    let Some(Value::Object(pod_meta)) = out
        .pointer_mut("/spec/jobTemplate/spec/template/metadata")
        .map(Value::take)
    else {
        return out;
    };
    let job_meta = &mut out["spec"]["jobTemplate"]["metadata"];
    if job_meta.is_null() {
        *job_meta = Value::Object(Default::default());
    }
    for (k, v) in pod_meta {
        job_meta[k.as_str()] = v;
    }
    out["spec"]["jobTemplate"]["spec"]["template"]["metadata"] = Value::Object(Default::default());
    out
}

/// Compares semantically; on a difference, returns a readable list of the
/// differing paths.
pub fn compare(got: &Value, want: &Value) -> Result<(), String> {
    let (g, w) = (normalize(&istio_placement(got)), normalize(want));
    if g == w {
        return Ok(());
    }
    let mut diffs = Vec::new();
    diff_paths(&g, &w, String::new(), &mut diffs);
    Err(diffs.join("\n"))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        format!("{}...", &s[..300])
    } else {
        s
    }
}

fn diff_paths(got: &Value, want: &Value, path: String, out: &mut Vec<String>) {
    if got == want || out.len() > 40 {
        return;
    }
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => diff_paths(gv, wv, format!("{path}/{k}"), out),
                    None => out.push(format!("  missing {path}/{k}: want {}", short(wv))),
                }
            }
            for (k, gv) in g {
                if !w.contains_key(k) {
                    out.push(format!("  extra   {path}/{k}: got {}", short(gv)));
                }
            }
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => {
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                diff_paths(gv, wv, format!("{path}/{i}"), out);
            }
        }
        _ => out.push(format!(
            "  differ  {path}:\n      got  {}\n      want {}",
            short(got),
            short(want)
        )),
    }
}

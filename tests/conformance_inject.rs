//! Runs Istio's own injection golden cases (../shared/conformance, both
//! suites) through the engine and compares as cases.yaml prescribes.

mod support;

use outrigger::inject::{Context, Outcome, inject, kube_inject_form, uninject};
use support::conformance::{
    Case, Suite, by_design, case_config, compare, load_suite, pending, yaml_docs,
};

/// A case outrigger departs from on purpose (`BY_DESIGN`): each document
/// is re-injected, and the result is a first injection of the document
/// without its old sidecar.
fn run_by_design(
    docs: &[serde_json::Value],
    cfg: &outrigger::config::Config,
) -> Result<(), String> {
    let ctx = Context::default();
    for (i, doc) in docs.iter().enumerate() {
        let plain = uninject(doc, cfg).ok_or(format!("document {i}: no status record"))?;
        let again = inject(doc, &ctx, cfg).map_err(|e| e.to_string())?;
        let fresh = inject(&plain, &ctx, cfg).map_err(|e| e.to_string())?;
        match (again, fresh) {
            (
                Outcome::Injected {
                    mutated: a,
                    decision,
                    ..
                },
                Outcome::Injected { mutated: f, .. },
            ) if a == f && decision.reinjected.is_some() => {}
            (a, f) => return Err(format!("document {i}: re-injected {a:?}\nfresh {f:?}")),
        }
    }
    Ok(())
}

/// Runs one case; `Err` says why it fails.
fn run_case(dir: &std::path::Path, case: &Case) -> Result<(), String> {
    let cfg = case_config(dir, case);
    let text = std::fs::read_to_string(dir.join(&case.input))
        .map_err(|e| format!("cannot read input {}: {e}", case.input))?;
    let docs = yaml_docs(&text);
    if by_design(&case.name).is_some() {
        return run_by_design(&docs, &cfg);
    }
    let ctx = Context::default();
    let mut outputs = Vec::new();
    for doc in &docs {
        match inject(doc, &ctx, &cfg) {
            Ok(Outcome::Injected { mutated, .. }) => outputs.push(kube_inject_form(&mutated)),
            Ok(Outcome::Skipped { .. }) => outputs.push(kube_inject_form(doc)),
            Err(e) => {
                if let Some(want) = &case.error {
                    let msg = e.to_string();
                    return if msg.to_lowercase().contains(want) {
                        Ok(())
                    } else {
                        Err(format!("error {msg:?} does not contain {want:?}"))
                    };
                }
                return Err(format!("unexpected error: {e}"));
            }
        }
    }
    if let Some(want) = &case.error {
        return Err(format!("expected an error containing {want:?}, got none"));
    }
    let golden = case
        .golden
        .as_ref()
        .ok_or("case has neither golden nor error")?;
    let golden_text = std::fs::read_to_string(dir.join(golden))
        .map_err(|e| format!("cannot read golden {golden}: {e}"))?;
    let want = yaml_docs(&golden_text);
    if want.len() != outputs.len() {
        return Err(format!(
            "{} output documents, golden has {}",
            outputs.len(),
            want.len()
        ));
    }
    let mut problems = Vec::new();
    for (i, (g, w)) in outputs.iter().zip(&want).enumerate() {
        if let Err(d) = compare(g, w) {
            problems.push(format!(" document {i}:\n{d}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Runs every case of `suite` (only `CASE` when set): each passes, or is
/// listed as pending with its reason and still fails.
fn run_suite(suite: Suite) {
    let Some((dir, cases)) = load_suite(suite) else {
        return;
    };
    assert!(!cases.is_empty(), "cases.yaml lists no cases");
    let only = std::env::var("CASE").ok();
    let mut failures = Vec::new();
    let mut still_pending = 0;
    let mut ran = 0;
    for case in &cases {
        if only.as_deref().is_some_and(|o| o != case.name) {
            continue;
        }
        ran += 1;
        // A pending case's configuration may not even load yet.
        let outcome = std::panic::catch_unwind(|| run_case(&dir, case))
            .unwrap_or_else(|_| Err("the case panicked".to_string()));
        match (outcome, pending(suite, &case.name)) {
            (Ok(()), None) => {}
            (Err(why), None) => failures.push(format!("FAIL {}:\n{why}", case.name)),
            (Err(why), Some(reason)) => {
                still_pending += 1;
                eprintln!("PENDING {} ({reason}):\n{why}", case.name);
            }
            (Ok(()), Some(_)) => failures.push(format!(
                "FAIL {}:\npasses now: take it off the pending list",
                case.name
            )),
        }
    }
    assert!(ran > 0, "no case is named {only:?}");
    if !failures.is_empty() {
        let names: Vec<&str> = failures
            .iter()
            .map(|f| {
                f.lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("FAIL ")
                    .trim_end_matches(':')
            })
            .collect();
        panic!(
            "{}\n\n{} of {ran} {} cases fail: {}",
            failures.join("\n\n"),
            failures.len(),
            suite.folder(),
            names.join(", ")
        );
    }
    eprintln!(
        "{} of {ran} {} cases pass, {still_pending} pending",
        ran - still_pending,
        suite.folder()
    );
}

#[test]
fn istio_conformance_cases() {
    run_suite(Suite::Inject);
}

#[test]
fn istio_template_family_conformance_cases() {
    run_suite(Suite::Templates);
}

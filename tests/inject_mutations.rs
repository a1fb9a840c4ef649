//! Malformed and unusual inputs, generated: every fixture the engine
//! injects is mutated many times (a node replaced by a value of another
//! type, a key or item removed, an item duplicated, a container renamed to
//! an injected name, an Istio annotation set to a bad value), and for each
//! mutant:
//! - nothing panics: `inject`, `inject_patch` and the webhook's `admit`;
//! - `inject` and `inject_patch` agree (the same patch, byte for byte; the
//!   same decision, skip, or error);
//! - an injection's patch, applied to the mutant, gives `mutated`, and the
//!   webhook's base64 patch is that same patch.
//!
//! And whole reviews damaged byte by byte are answered or refused by the
//! webhook, never with a panic.
//!
//! The generator is seeded, so a failure names a reproducible case.
//! `MUTATION_SEED` and `MUTATION_ROUNDS` (mutants per fixture, default 48)
//! run other or longer series.

#[path = "support/damage.rs"]
mod damage;
mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};

use base64::Engine as _;
use damage::{Rng, damage};
use outrigger::config::Config;
use outrigger::inject::{Context, Outcome, PatchOutcome, inject, inject_patch};
use outrigger::webhook::admission::admit;
use serde_json::{Value, json};
use support::fixtures::{fixtures, with_istio};

/// Annotations the engine reads (Istio's names).
const ANNOTATIONS: &[&str] = &[
    "sidecar.istio.io/inject",
    "sidecar.istio.io/status",
    "sidecar.istio.io/proxyCPU",
    "sidecar.istio.io/proxyMemory",
    "sidecar.istio.io/proxyCPULimit",
    "sidecar.istio.io/proxyMemoryLimit",
    "sidecar.istio.io/interceptionMode",
    "sidecar.istio.io/logLevel",
    "sidecar.istio.io/componentLogLevel",
    "sidecar.istio.io/agentLogLevel",
    "sidecar.istio.io/enableCoreDump",
    "sidecar.istio.io/proxyImage",
    "sidecar.istio.io/rewriteAppHTTPProbers",
    "sidecar.istio.io/userVolume",
    "sidecar.istio.io/userVolumeMount",
    "sidecar.istio.io/bootstrapOverride",
    "sidecar.istio.io/nativeSidecar",
    "traffic.sidecar.istio.io/includeOutboundIPRanges",
    "traffic.sidecar.istio.io/excludeOutboundIPRanges",
    "traffic.sidecar.istio.io/includeInboundPorts",
    "traffic.sidecar.istio.io/excludeInboundPorts",
    "traffic.sidecar.istio.io/includeOutboundPorts",
    "traffic.sidecar.istio.io/excludeOutboundPorts",
    "traffic.sidecar.istio.io/excludeInterfaces",
    "traffic.sidecar.istio.io/kubevirtInterfaces",
    "status.sidecar.istio.io/port",
    "readiness.status.sidecar.istio.io/periodSeconds",
    "readiness.status.sidecar.istio.io/initialDelaySeconds",
    "readiness.status.sidecar.istio.io/failureThreshold",
    "proxy.istio.io/config",
    "proxy.istio.io/overrides",
    "prometheus.istio.io/merge-metrics",
    "prometheus.io/port",
    "prometheus.io/path",
    "istio.io/rev",
    "inject.istio.io/templates",
];

/// Annotation values: empty, numbers out of range, bad lists, bad CIDRs,
/// broken JSON/YAML, control characters, non-ASCII, a long string.
fn annotation_values() -> Vec<String> {
    [
        "",
        "true",
        "false",
        "TRUE",
        "abc",
        "-1",
        "0",
        "15020",
        "65536",
        "99999999999999999999",
        "1,2,x",
        "*",
        ",,",
        "10.0.0.0/33",
        "::1/129",
        "10.0.0.0/8,bogus",
        "{",
        "{}",
        "[]",
        "null",
        "{\"a\":",
        "a: [",
        "holdApplicationUntilProxyStarts: yes",
        "concurrency: -3",
        "\u{0}\u{1f}",
        "🦀",
        "REDIRECT",
        "TPROXY",
        "NONE",
        "debug",
        "100m",
        "1Gi",
        "-5Mi",
        "1e400",
        "{\"containers\":[{\"name\":7}]}",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once("x".repeat(5000)))
    .collect()
}

/// Values of every JSON type, to put where another type is expected.
fn odd_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5e300),
        json!(u64::MAX),
        json!(""),
        json!("istio-proxy"),
        json!("\u{0}\"\\/"),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"name": 3}),
        json!([{"name": "istio-proxy"}, {"name": "istio-proxy"}]),
    ]
}

/// Every node's path (keys and indexes) in `v`.
fn node_paths(v: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(Step::Key(k.clone()));
                node_paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(l) => {
            for (i, child) in l.iter().enumerate() {
                prefix.push(Step::Index(i));
                node_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn node_mut<'a>(v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |node, step| match step {
        Step::Key(k) => node.get_mut(k.as_str()),
        Step::Index(i) => node.get_mut(*i),
    })
}

/// The pod template's annotations, created if need be (only when the
/// template's metadata is an object or absent).
fn template_annotations(object: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let meta_path: &[&str] = match object.get("kind").and_then(Value::as_str) {
        Some("Pod") => &["metadata"],
        Some("CronJob") => &["spec", "jobTemplate", "spec", "template", "metadata"],
        Some(_) => &["spec", "template", "metadata"],
        None => return None,
    };
    let mut node = object;
    for key in meta_path {
        let map = node.as_object_mut()?;
        node = map.entry(key.to_string()).or_insert_with(|| json!({}));
    }
    let annotations = node
        .as_object_mut()?
        .entry("annotations")
        .or_insert_with(|| json!({}));
    annotations.as_object_mut()
}

/// One mutation of `object`, described.
fn mutate(object: &mut Value, rng: &mut Rng) -> String {
    let mut paths = Vec::new();
    node_paths(object, &mut Vec::new(), &mut paths);
    match rng.below(5) {
        0 => {
            let key = *rng.pick(ANNOTATIONS);
            let value = rng.pick(&annotation_values()).clone();
            match template_annotations(object) {
                Some(annotations) => {
                    let shown: String = value.chars().take(40).collect();
                    annotations.insert(key.to_string(), Value::String(value));
                    format!("annotation {key}={shown:?}")
                }
                None => "no annotations to set".into(),
            }
        }
        1 => {
            let path = rng.pick(&paths).clone();
            let value = rng.pick(&odd_values()).clone();
            let shown = value.to_string();
            match node_mut(object, &path) {
                Some(node) => {
                    *node = value;
                    format!("{path:?} := {shown}")
                }
                None => "nothing replaced".into(),
            }
        }
        2 => {
            let path = rng.pick(&paths).clone();
            let Some((last, parent)) = path.split_last() else {
                return "root kept".into();
            };
            match (node_mut(object, parent), last) {
                (Some(Value::Object(m)), Step::Key(k)) => {
                    m.remove(k);
                    format!("removed {path:?}")
                }
                (Some(Value::Array(l)), Step::Index(i)) if *i < l.len() => {
                    l.remove(*i);
                    format!("removed {path:?}")
                }
                _ => "nothing removed".into(),
            }
        }
        3 => {
            let path = rng.pick(&paths).clone();
            match node_mut(object, &path) {
                Some(Value::Array(l)) if !l.is_empty() => {
                    let i = rng.below(l.len());
                    let copy = l[i].clone();
                    l.insert(i, copy);
                    format!("duplicated item {i} of {path:?}")
                }
                _ => "nothing duplicated".into(),
            }
        }
        _ => {
            let names = ["istio-proxy", "istio-init", "istio-validation", ""];
            let name = *rng.pick(&names);
            let renamed: Vec<_> = paths
                .iter()
                .filter(|p| matches!(p.last(), Some(Step::Key(k)) if k == "name"))
                .cloned()
                .collect();
            if renamed.is_empty() {
                return "nothing renamed".into();
            }
            let path = rng.pick(&renamed).clone();
            if let Some(node) = node_mut(object, &path) {
                *node = json!(name);
            }
            format!("{path:?} := {name:?}")
        }
    }
}

/// How the engine answered the mutants, to show the series reaches every
/// kind of answer.
#[derive(Debug, Default)]
struct Tally {
    injected: usize,
    skipped: usize,
    refused: usize,
}

/// What went wrong with one mutant, if anything.
fn check(mutant: &Value, cfg: &Config, tally: &mut Tally) -> Result<(), String> {
    let ctx = Context::default();
    let full = catch_unwind(AssertUnwindSafe(|| inject(mutant, &ctx, cfg)))
        .map_err(|_| "inject panicked".to_string())?;
    let patch_only = catch_unwind(AssertUnwindSafe(|| inject_patch(mutant, &ctx, cfg)))
        .map_err(|_| "inject_patch panicked".to_string())?;
    match &full {
        Ok(Outcome::Injected { .. }) => tally.injected += 1,
        Ok(Outcome::Skipped { .. }) => tally.skipped += 1,
        Err(_) => tally.refused += 1,
    }
    match (&full, &patch_only) {
        (
            Ok(Outcome::Injected {
                patch,
                mutated,
                decision,
            }),
            Ok(PatchOutcome::Injected {
                patch: p,
                decision: d,
            }),
        ) => {
            let text = serde_json::to_vec(patch).map_err(|e| e.to_string())?;
            if *p != text || d != decision {
                return Err(format!(
                    "inject_patch differs from inject:\n{}\n{}",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(&text)
                ));
            }
            let mut applied = mutant.clone();
            json_patch::patch(&mut applied, patch).map_err(|e| format!("patch fails: {e}"))?;
            if applied != *mutated {
                return Err("patch applied is not `mutated`".into());
            }
        }
        (Ok(Outcome::Skipped { reason }), Ok(PatchOutcome::Skipped { reason: r })) => {
            if r != reason {
                return Err(format!("skips differ: {reason} / {r}"));
            }
        }
        (Err(a), Err(b)) => {
            if a != b {
                return Err(format!("errors differ: {a} / {b}"));
            }
            if a.to_string().trim().is_empty() {
                return Err("an error without a message".into());
            }
        }
        _ => return Err(format!("outcomes differ: {full:?} / {patch_only:?}")),
    }
    check_admission(mutant, cfg, &full)
}

/// The same mutant through the webhook: an answer, never a panic; an
/// injection's base64 patch is the engine's.
fn check_admission(
    mutant: &Value,
    cfg: &Config,
    engine: &Result<Outcome, outrigger::inject::InjectError>,
) -> Result<(), String> {
    if mutant.get("kind").and_then(Value::as_str) != Some("Deployment") {
        // The review below claims a Deployment; other kinds are covered by
        // the engine checks above.
        return Ok(());
    }
    // The API server names the object's own namespace in the review.
    let namespace = mutant
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .unwrap_or("default");
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000001",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": mutant,
        }
    });
    let body = serde_json::to_vec(&review).map_err(|e| e.to_string())?;
    let answer = catch_unwind(AssertUnwindSafe(|| admit(&body, cfg)))
        .map_err(|_| "admit panicked".to_string())?;
    let Ok(answer) = answer else {
        // A review the webhook refuses (400) is an answer too.
        return Ok(());
    };
    let response: Value = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
    let sent = response["response"]["patch"].as_str();
    match (sent, engine) {
        (Some(b64), Ok(Outcome::Injected { patch, .. })) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("patch is not base64: {e}"))?;
            let sent: json_patch::Patch =
                serde_json::from_slice(&bytes).map_err(|e| format!("patch is not JSON: {e}"))?;
            if sent != *patch {
                return Err("the webhook's patch is not the engine's".into());
            }
        }
        (None, Ok(Outcome::Injected { .. })) => {
            return Err("the engine injects, the webhook sent no patch".into());
        }
        (Some(_), _) => return Err("the webhook sent a patch the engine did not make".into()),
        (None, _) => {}
    }
    Ok(())
}

#[test]
fn mutated_inputs_never_panic_and_both_paths_agree() {
    let seed: u64 = std::env::var("MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x05ee_d0f0_u64);
    let rounds: usize = std::env::var("MUTATION_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    let mut rng = Rng::new(seed);
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut tally = Tally::default();
    for fixture in fixtures() {
        for round in 0..rounds {
            let mut mutant = fixture.object.clone();
            // One to three mutations at once.
            let mut what = Vec::new();
            for _ in 0..=rng.below(3) {
                what.push(mutate(&mut mutant, &mut rng));
            }
            checked += 1;
            if let Err(problem) = check(&mutant, &fixture.cfg, &mut tally) {
                problems.push(format!(
                    "{} round {round} ({}): {problem}",
                    fixture.name,
                    what.join("; ")
                ));
            }
        }
    }
    eprintln!("{checked} mutants: {tally:?}");
    // With Istio's inputs among the fixtures (not on a fresh clone without
    // ../shared), there are enough mutants, and each kind of answer is
    // common enough to be exercised.
    if with_istio() {
        assert!(checked > 1000, "only {checked} mutants: fixtures missing?");
        for (what, n) in [
            ("injected", tally.injected),
            ("skipped", tally.skipped),
            ("refused", tally.refused),
        ] {
            assert!(
                n * 20 > checked,
                "only {n} of {checked} mutants {what}: {tally:?}"
            );
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {checked} mutants (seed {seed}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Byte-level damage to a whole review (flipped, dropped, duplicated and
/// inserted bytes, truncation): the webhook answers or refuses, never
/// panics, and a refusal says what is wrong.
#[test]
fn damaged_review_bytes_never_panic_the_webhook() {
    let cfg = Config::default();
    let object = fixtures()
        .into_iter()
        .find(|f| f.object.get("kind").and_then(Value::as_str) == Some("Deployment"))
        .expect("a Deployment fixture")
        .object;
    let review = serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000002",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": object,
        }
    }))
    .expect("serializable");
    let mut rng = Rng::new(0x0dd_b17e5);
    let interesting = b"{}[]\",:\\0-e.tfn \x00\xff\xc3";
    let mut problems = Vec::new();
    let (mut answered, mut refused) = (0, 0);
    for round in 0..20_000 {
        let body = damage(&review, interesting, &mut rng);
        match catch_unwind(AssertUnwindSafe(|| admit(&body, &cfg))) {
            Err(_) => problems.push(format!("round {round}: admit panicked")),
            Ok(Ok(_)) => answered += 1,
            Ok(Err(e)) if e.to_string().trim().is_empty() => {
                problems.push(format!("round {round}: a refusal without a message"))
            }
            Ok(Err(_)) => refused += 1,
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        answered > 100 && refused > 100,
        "answered {answered}, refused {refused}"
    );
}

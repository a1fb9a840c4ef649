//! The webhook's patch paths under many configurations: every pod of a
//! seeded, varied set (every supported kind, zero to several app
//! containers, named and numbered ports, all kinds of probes and hooks,
//! native app sidecars, present, absent and empty lists, odd metadata,
//! Prometheus annotations, tuning annotations, a few odd shapes) is
//! injected under every configuration of a seeded set (each setting that
//! changes what the template renders, alone and in combinations), and
//! `inject_patch` must agree with `inject`: the same patch text, byte for
//! byte (`serde_json::to_vec` of `inject`'s patch), the same decision, the
//! same skip, the same error. Some injected pods are injected again, under
//! the same or another configuration (the Value engine's re-injection).
//!
//! The tally of the paths `inject_patch` took must show each of them
//! (`Engine`, `Rendered`, `Compiled`) taken often, so that the test cannot
//! quietly stop exercising one. A disagreement is shrunk (configuration
//! layers dropped, pod nodes removed while it persists) and reported with
//! the first differing byte of the two patches.
//!
//! `PATHS_SEED` picks another series; `PATHS_ROUNDS` (default 1) multiplies
//! the number of combined configurations and generated pods.
//!
//! This file holds the check, the run and the tally; the generators and the
//! shrinking live in tests/support/paths/ (`configurations.rs`: the
//! features and the configurations; `shapes.rs` with `pod_spec.rs` and
//! `pod_meta.rs`: the pods and workloads; `shrinking.rs`: making a
//! disagreement small).

#[path = "support/paths/configurations.rs"]
mod configurations;
#[path = "support/damage.rs"]
mod damage;
#[path = "support/paths/shapes.rs"]
mod shapes;
#[path = "support/paths/shrinking.rs"]
mod shrinking;

use std::panic::{AssertUnwindSafe, catch_unwind};

use configurations::{Feature, TestConfig, build, configs, describe, features, names};
use damage::Rng;
use outrigger::config::Config;
use outrigger::inject::{Context, Outcome, PatchOutcome, PatchPath, inject, inject_patch};
use serde_json::Value;
use shapes::{Shape, chance, shapes};
use shrinking::shrink;

/// How `inject_patch` answered.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    pairs: usize,
    skipped: usize,
    refused: usize,
    engine: usize,
    rendered: usize,
    compiled: usize,
    reinjected: usize,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.pairs += o.pairs;
        self.skipped += o.skipped;
        self.refused += o.refused;
        self.engine += o.engine;
        self.rendered += o.rendered;
        self.compiled += o.compiled;
        self.reinjected += o.reinjected;
    }
}

/// Where `a` and `b` first differ, with some context of each.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let around = |t: &[u8]| {
        let start = at.saturating_sub(100);
        let end = (at + 200).min(t.len());
        format!(
            "...{}>>>{}...",
            String::from_utf8_lossy(&t[start..at.min(t.len())]),
            String::from_utf8_lossy(&t[at.min(t.len())..end])
        )
    };
    format!(
        "first difference at byte {at} (lengths {} / {}):\n  inject_patch: {}\n  inject:       {}",
        a.len(),
        b.len(),
        around(a),
        around(b)
    )
}

/// The injected object when both agree on an injection, or the
/// disagreement.
fn check_pair(
    object: &Value,
    ctx: &Context,
    cfg: &Config,
    tally: &mut Tally,
) -> Result<Option<Value>, String> {
    tally.pairs += 1;
    let full = catch_unwind(AssertUnwindSafe(|| inject(object, ctx, cfg)))
        .map_err(|_| "inject panicked".to_string())?;
    let direct = catch_unwind(AssertUnwindSafe(|| inject_patch(object, ctx, cfg)))
        .map_err(|_| "inject_patch panicked".to_string())?;
    match (full, direct) {
        (
            Ok(Outcome::Injected {
                patch,
                mutated,
                decision,
            }),
            Ok(PatchOutcome::Injected {
                patch: text,
                decision: d,
                path,
            }),
        ) => {
            match path {
                PatchPath::Engine => tally.engine += 1,
                PatchPath::Rendered => tally.rendered += 1,
                PatchPath::Compiled => tally.compiled += 1,
            }
            let want = serde_json::to_vec(&patch).map_err(|e| e.to_string())?;
            if text != want {
                return Err(format!(
                    "patches differ ({path:?} path); {}",
                    first_difference(&text, &want)
                ));
            }
            if d != decision {
                return Err(format!(
                    "decisions differ ({path:?} path):\n  inject_patch: {d:?}\n  inject:       {decision:?}"
                ));
            }
            Ok(Some(mutated))
        }
        (Ok(Outcome::Skipped { reason }), Ok(PatchOutcome::Skipped { reason: r })) => {
            tally.skipped += 1;
            if r != reason {
                return Err(format!("skips differ: {r} / {reason}"));
            }
            Ok(None)
        }
        (Err(a), Err(b)) => {
            tally.refused += 1;
            if a != b {
                return Err(format!("errors differ: {b} / {a}"));
            }
            Ok(None)
        }
        (full, direct) => Err(format!(
            "outcomes differ:\n  inject_patch: {}\n  inject:       {}",
            short(&format!("{direct:?}")),
            short(&format!("{full:?}"))
        )),
    }
}

/// `s`, cut to a readable length.
fn short(s: &str) -> String {
    if s.len() > 600 {
        let mut cut = 600;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s.to_string()
    }
}

/// A disagreement, as found.
struct Failure {
    config: usize,
    object: Value,
    ctx: Context,
    problem: String,
}

/// Runs the shared pods and `own` pods of its own under each of the
/// configurations `configs[range]`; re-injects some injected pods under the
/// same or another configuration.
fn run_configs(
    all: &[Feature],
    configs: &[TestConfig],
    range: std::ops::Range<usize>,
    (shared, own): (&[Shape], usize),
    seed: u64,
) -> (Tally, Vec<Failure>) {
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for ci in range {
        let mut rng = Rng::new(seed ^ (ci as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let cfg = &configs[ci].cfg;
        let own = shapes(&mut rng, own);
        for shape in shared.iter().chain(&own) {
            let mutated = match check_pair(&shape.object, &shape.ctx, cfg, &mut tally) {
                Ok(m) => m,
                Err(problem) => {
                    failures.push(Failure {
                        config: ci,
                        object: shape.object.clone(),
                        ctx: shape.ctx.clone(),
                        problem,
                    });
                    continue;
                }
            };
            let Some(mutated) = mutated else { continue };
            if !chance(&mut rng, 8) {
                continue;
            }
            let again = if chance(&mut rng, 2) {
                ci
            } else {
                rng.below(configs.len())
            };
            tally.reinjected += 1;
            if let Err(problem) = check_pair(&mutated, &shape.ctx, &configs[again].cfg, &mut tally)
            {
                failures.push(Failure {
                    config: again,
                    object: mutated,
                    ctx: shape.ctx.clone(),
                    problem: format!(
                        "re-injection of the pod injected under [{}]: {problem}",
                        names(all, &configs[ci].features)
                    ),
                });
            }
        }
    }
    (tally, failures)
}

/// Features that change nothing: the defaults' value.
const DEFAULT_VALUED: &[&str] = &["native-on"];

/// Each feature builds alone and changes what some shared pod gets, alone
/// or with native sidecars off (holding the application changes nothing
/// for a native sidecar): a renamed key would otherwise leave a feature
/// testing the defaults.
fn check_every_feature_counts(all: &[Feature], shared: &[Shape]) {
    let native_off = all
        .iter()
        .position(|f| f.name == "native-off")
        .expect("a native-off feature");
    let mut idle = Vec::new();
    for (f, feature) in all.iter().enumerate() {
        let differs = |base: &[usize]| {
            let with: Vec<usize> = base.iter().copied().chain([f]).collect();
            let (Some(without), Some(with)) = (build(all, base), build(all, &with)) else {
                panic!("feature {} is refused", feature.name);
            };
            shared.iter().any(|shape| {
                inject(&shape.object, &shape.ctx, &with)
                    != inject(&shape.object, &shape.ctx, &without)
            })
        };
        let default_valued = DEFAULT_VALUED.contains(&feature.name.as_str());
        let counts = differs(&[]) || (!default_valued && f != native_off && differs(&[native_off]));
        if counts == default_valued {
            idle.push(feature.name.as_str());
        }
    }
    assert!(
        idle.is_empty(),
        "features that change nothing (or, for {DEFAULT_VALUED:?}, something): {idle:?}"
    );
}

/// A number from the environment, else `default`.
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The contract, on every (configuration, pod) pair; see the module docs.
#[test]
fn direct_and_compiled_paths_agree_with_the_engine_across_configurations() {
    let seed = env_number("PATHS_SEED", 0x0a75_5eed_u64);
    let rounds = env_number("PATHS_ROUNDS", 1).max(1) as usize;
    // Spread the seed's bits: `Rng` only makes it odd.
    let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (seed >> 7));
    let all = features();
    let (configs, refused) = configs(&all, &mut rng, 24 * rounds);
    // Pods every configuration sees, and as many of each configuration's own.
    let per_config = 50 * rounds;
    let shared = shapes(&mut rng, per_config);
    assert!(
        refused * 10 < configs.len(),
        "{refused} configurations refused, {} built",
        configs.len()
    );
    check_every_feature_counts(&all, &shared);

    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    let per = configs.len().div_ceil(threads);
    let (tally, failures) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * per).min(configs.len())..((t + 1) * per).min(configs.len());
                let (all, configs, shared) = (&all, &configs, &shared);
                scope.spawn(move || run_configs(all, configs, range, (shared, per_config), seed))
            })
            .collect();
        let mut tally = Tally::default();
        let mut failures = Vec::new();
        for h in handles {
            let (t, f) = h.join().expect("a worker panicked");
            tally.add(&t);
            failures.extend(f);
        }
        (tally, failures)
    });
    eprintln!(
        "{} configurations ({refused} refused), {per_config} shared and {per_config} own pods each: {tally:?}",
        configs.len()
    );

    let injected = tally.engine + tally.rendered + tally.compiled;
    for (what, n) in [
        ("the Value engine", tally.engine),
        ("the direct path, rendered", tally.rendered),
        ("the direct path, compiled", tally.compiled),
    ] {
        assert!(
            n * 20 > injected,
            "only {n} of {injected} injections by {what}: {tally:?}"
        );
    }
    assert!(
        tally.skipped * 50 > tally.pairs && tally.refused * 100 > tally.pairs,
        "too few skips or refusals to compare: {tally:?}"
    );

    if failures.is_empty() {
        return;
    }
    // Shrink a few: the first of each kind of problem.
    let mut reports = Vec::new();
    let mut seen = Vec::new();
    for f in &failures {
        let kind: String = f.problem.chars().take(40).collect();
        if seen.contains(&kind) || reports.len() >= 6 {
            continue;
        }
        seen.push(kind);
        let s = shrink(&all, f, &configs[f.config].features);
        reports.push(format!(
            "configuration: {}\ncontext: {:?}\nobject (shrunk): {}\n{}\n(as found: {})",
            describe(&all, &s.features),
            s.ctx,
            serde_json::to_string_pretty(&s.object).unwrap_or_default(),
            s.problem,
            short(&f.problem)
        ));
    }
    panic!(
        "{} of {} pairs disagree (seed {seed:#x}); shrunk:\n\n{}",
        failures.len(),
        tally.pairs,
        reports.join("\n\n")
    );
}

//! The other inputs a user or a cluster hands outrigger, damaged byte by
//! byte (seeded): configuration documents, `/preview` bodies and queries,
//! `istio-iptables` argument lists and `iptables-save` text. Each is
//! refused with a message or accepted, never with a panic; the undamaged
//! input is accepted, so each series starts from something valid.

#[path = "support/damage.rs"]
mod damage;

use std::panic::{AssertUnwindSafe, catch_unwind};

use damage::{ANY_BYTE, Rng, damage, series};
use outrigger::config::Config;
use outrigger::iptables::{cleanup, plan_for_init_args};
use outrigger::webhook::preview::{context_from_query, parse_object, preview};

const YAML_BYTES: &[u8] = b" \n\t:-{}[],'\"#&*!|>%@`?0ay\xc3\xa9\x00";

/// A configuration in Istio's key space touching each section.
const CONFIG: &str = r#"
values:
  global:
    hub: registry.example.com/mesh
    tag: 1.26.0
    proxy:
      logLevel: debug
      resources:
        requests: {cpu: 50m, memory: 64Mi}
        limits: {cpu: "2", memory: 1Gi}
      includeIPRanges: "10.0.0.0/8,172.16.0.0/12"
      excludeInboundPorts: "9000"
    imagePullSecrets: [regcred]
  sidecarInjectorWebhook:
    rewriteAppHTTPProbe: true
    neverInjectSelector:
      - matchExpressions:
          - {key: job-type, operator: In, values: [batch]}
meshConfig:
  defaultConfig:
    holdApplicationUntilProxyStarts: true
    proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true"}
config:
  policy: enabled
"#;

#[test]
fn damaged_configs_are_refused_never_panic() {
    Config::from_yaml(CONFIG).expect("the undamaged configuration loads");
    let refused = series("config", CONFIG.as_bytes(), YAML_BYTES, 4000, 11, |bytes| {
        Config::from_yaml(&String::from_utf8_lossy(bytes))
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(
        refused > 500,
        "only {refused} of 4000 damaged configs refused"
    );
}

#[test]
fn damaged_preview_bodies_and_queries_never_panic() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/deployment.yaml"
    ))
    .expect("the example Deployment");
    let cfg = Config::default();
    let ctx = context_from_query(Some(
        "namespace=shop&namespaceLabel=istio-injection=enabled",
    ))
    .expect("a valid query");
    let object = parse_object(&body).expect("the example parses");
    assert_eq!(preview(object, &ctx, &cfg).decision, "inject");

    let refused = series("preview body", &body, YAML_BYTES, 3000, 12, |bytes| {
        let object = parse_object(bytes).map_err(|e| e.to_string())?;
        // Whatever parses goes through the engine too: an answer, never a panic.
        let answer = preview(object, &ctx, &cfg);
        assert!(!answer.decision.is_empty());
        Ok(())
    });
    assert!(
        refused > 300,
        "only {refused} of 3000 damaged bodies refused"
    );

    let query = b"namespace=shop&namespaceLabel=istio-injection=enabled&namespaceLabel=a%2Fb=c";
    series("preview query", query, b"&=%2Fz\xff ", 3000, 13, |bytes| {
        context_from_query(Some(&String::from_utf8_lossy(bytes)))
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}

#[test]
fn damaged_capture_arguments_are_refused_never_panic() {
    let args = [
        "-p",
        "15001",
        "-z",
        "15006",
        "-u",
        "1337",
        "-m",
        "REDIRECT",
        "-i",
        "*",
        "-x",
        "",
        "-b",
        "*",
        "-d",
        "15090,15021,15020",
        "-o",
        "9000,9100",
        "--log_output_level=default:info",
    ];
    plan_for_init_args(args, None).expect("the undamaged arguments plan");
    let mut rng = Rng::new(14);
    let mut refused = 0;
    for round in 0..4000 {
        let mut damaged: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        for _ in 0..=rng.below(3) {
            let at = rng.below(damaged.len());
            match rng.below(3) {
                0 => {
                    let edited = damage(
                        damaged[at].as_bytes(),
                        b"-,*:/0123456789abcxyz \xff",
                        &mut rng,
                    );
                    damaged[at] = String::from_utf8_lossy(&edited).into_owned();
                }
                1 => {
                    damaged.remove(at);
                }
                _ => {
                    let copy = damaged[at].clone();
                    damaged.insert(at, copy);
                }
            }
            if damaged.is_empty() {
                break;
            }
        }
        match catch_unwind(AssertUnwindSafe(|| plan_for_init_args(&damaged, None))) {
            Err(_) => panic!("round {round}: planning {damaged:?} panicked"),
            Ok(Err(e)) => {
                assert!(
                    !e.to_string().trim().is_empty(),
                    "round {round}: no message"
                );
                refused += 1;
            }
            Ok(Ok(_)) => {}
        }
    }
    assert!(
        refused > 1000,
        "only {refused} of 4000 damaged argument lists refused"
    );
}

#[test]
fn damaged_iptables_save_text_never_panics() {
    let plan = plan_for_init_args(
        [
            "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-b", "*",
        ],
        None,
    )
    .expect("a plan");
    // The plan's restore input has iptables-save's syntax.
    let text = plan.dry_run();
    let saved = cleanup::parse_save(&text);
    assert!(!saved.is_empty(), "the undamaged text has rules");
    series(
        "iptables-save",
        text.as_bytes(),
        ANY_BYTE,
        4000,
        15,
        |bytes| {
            let _ = cleanup::parse_save(&String::from_utf8_lossy(bytes));
            Ok(())
        },
    );
}

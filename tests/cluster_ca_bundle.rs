//! The caBundle controller against a scripted API server: equal (no write),
//! different (patch of the stale webhooks only), drift reported by the watch
//! (repaired), 500/409/timeouts retried with backoff, leadership lost
//! mid-reconcile (no write).

#[path = "cluster_support/scenario.rs"]
mod scenario;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::Api;
use outrigger::cluster::authority::ClusterCa;
use outrigger::cluster::ca_bundle::{BundleOutcome, run_with_triggers, sync_named, watch_triggers};
use outrigger::cluster::current_ca;
use outrigger::cluster::leader::LeaderGate;
use outrigger::cluster::metrics::ClusterMetrics;
use scenario::{Reply, Scenario, conflict, internal_error, not_found, ok};
use serde_json::{Value, json};

const NAME: &str = "outrigger-sidecar-injector";
const PATH: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/outrigger-sidecar-injector";

fn root() -> String {
    root_ca().root_pem().to_string()
}

fn root_ca() -> Arc<ClusterCa> {
    Arc::new(ClusterCa::generate("cluster.local").unwrap().0)
}

fn b64(pem: &str) -> Value {
    serde_json::to_value(k8s_openapi::ByteString(pem.as_bytes().to_vec())).unwrap()
}

fn config(bundles: &[(&str, Option<&str>)]) -> Value {
    let webhooks: Vec<Value> = bundles
        .iter()
        .map(|(name, bundle)| {
            let mut client_config = json!({"service": {"name": "outrigger", "namespace": "outrigger-system", "path": "/inject"}});
            if let Some(pem) = bundle {
                client_config["caBundle"] = b64(pem);
            }
            json!({
                "name": name,
                "clientConfig": client_config,
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            })
        })
        .collect();
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": NAME, "resourceVersion": "7"},
        "webhooks": webhooks,
    })
}

fn patch_of(pem: &str, names: &[&str]) -> Value {
    let webhooks: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "clientConfig": {"caBundle": b64(pem)}}))
        .collect();
    json!({"metadata": {"resourceVersion": "7"}, "webhooks": webhooks})
}

#[tokio::test]
async fn equal_bundle_is_not_written() {
    let pem = root();
    let (client, verifier) = Scenario::new()
        .get(
            PATH,
            ok(config(&[
                ("a.outrigger.dev", Some(&pem)),
                ("b.outrigger.dev", Some(&pem)),
            ])),
        )
        .start();
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let metrics = ClusterMetrics::default();
    let outcome = sync_named(&api, &LeaderGate::always(), &metrics, NAME, &pem)
        .await
        .unwrap();
    drop(api);
    assert_eq!(outcome, BundleOutcome::Unchanged);
    assert_eq!(metrics.cabundle_patches(true), 0);
    verifier.finish().await;
}

#[tokio::test]
async fn different_bundle_patches_only_the_stale_webhooks() {
    let pem = root();
    let (client, verifier) = Scenario::new()
        .get(
            PATH,
            ok(config(&[
                ("a.outrigger.dev", Some(&pem)),
                ("b.outrigger.dev", Some("OLD")),
                ("c.outrigger.dev", None),
            ])),
        )
        .patch(
            PATH,
            patch_of(&pem, &["b.outrigger.dev", "c.outrigger.dev"]),
            ok(config(&[])),
        )
        .start();
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let metrics = ClusterMetrics::default();
    let outcome = sync_named(&api, &LeaderGate::always(), &metrics, NAME, &pem)
        .await
        .unwrap();
    drop(api);
    assert_eq!(
        outcome,
        BundleOutcome::Patched(vec!["b.outrigger.dev".into(), "c.outrigger.dev".into()])
    );
    assert_eq!(metrics.cabundle_patches(true), 1);
    // Exactly the stale webhooks: a third entry would re-patch a good one.
    let seen = verifier.seen();
    assert_eq!(seen[1].2["webhooks"].as_array().map(Vec::len), Some(2));
    verifier.finish().await;
}

#[tokio::test]
async fn absent_configuration_is_not_an_error() {
    let pem = root();
    let (client, verifier) = Scenario::new().get(PATH, not_found()).start();
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let outcome = sync_named(
        &api,
        &LeaderGate::always(),
        &ClusterMetrics::default(),
        NAME,
        &pem,
    )
    .await
    .unwrap();
    drop(api);
    assert_eq!(outcome, BundleOutcome::Absent);
    verifier.finish().await;
}

/// Runs the controller loop with scripted watch triggers for a bounded
/// (paused, so instant) time.
async fn run_loop(
    client: kube::Client,
    gate: LeaderGate,
    metrics: ClusterMetrics,
    ca: Arc<ClusterCa>,
    triggers: Vec<&'static str>,
) {
    let (tx, rx) = futures::channel::mpsc::unbounded::<String>();
    for t in triggers {
        tx.unbounded_send(t.to_string()).unwrap();
    }
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let run = run_with_triggers(
        api,
        gate,
        metrics,
        vec![NAME.into()],
        current_ca::fixed(ca),
        rx,
        Duration::from_secs(3600),
    );
    // The loop runs forever; the timeout bounds it on the paused clock.
    let _ = tokio::time::timeout(Duration::from_secs(120), run).await;
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn drift_seen_by_the_watch_is_repaired() {
    let ca = root_ca();
    let pem = ca.root_pem().to_string();
    // The first sync (start-up resync or the watch event, in either order)
    // finds the bundle right; the second finds someone's edit and repairs it.
    let (client, verifier) = Scenario::new()
        .get(PATH, ok(config(&[("a.outrigger.dev", Some(&pem))])))
        .get(
            PATH,
            ok(config(&[("a.outrigger.dev", Some("EDITED BY SOMEONE"))])),
        )
        .patch(PATH, patch_of(&pem, &["a.outrigger.dev"]), ok(config(&[])))
        .start();
    let metrics = ClusterMetrics::default();
    run_loop(
        client,
        LeaderGate::always(),
        metrics.clone(),
        ca,
        vec![NAME],
    )
    .await;
    assert_eq!(metrics.cabundle_patches(true), 1);
    verifier.finish().await;
}

#[tokio::test(start_paused = true)]
async fn server_errors_conflicts_and_timeouts_are_retried() {
    let ca = root_ca();
    let pem = ca.root_pem().to_string();
    let stale = || ok(config(&[("a.outrigger.dev", Some("OLD"))]));
    let (client, verifier) = Scenario::new()
        .get(PATH, internal_error())
        .get(PATH, Reply::Transport)
        .get(PATH, stale())
        .patch(PATH, patch_of(&pem, &["a.outrigger.dev"]), conflict())
        .get(PATH, stale())
        .patch(PATH, patch_of(&pem, &["a.outrigger.dev"]), ok(config(&[])))
        .start();
    let metrics = ClusterMetrics::default();
    run_loop(client, LeaderGate::always(), metrics.clone(), ca, vec![]).await;
    assert_eq!(metrics.cabundle_patches(false), 1);
    assert_eq!(metrics.cabundle_patches(true), 1);
    verifier.finish().await;
}

#[tokio::test(start_paused = true)]
async fn leadership_lost_mid_reconcile_stops_the_write() {
    let ca = root_ca();
    let (switch, gate) = LeaderGate::manual(true);
    let (client, verifier) = Scenario::new()
        .get(
            PATH,
            Reply::After(
                Box::new(move || switch.set(false)),
                Box::new(ok(config(&[("a.outrigger.dev", Some("OLD"))]))),
            ),
        )
        .start();
    let metrics = ClusterMetrics::default();
    // The loop keeps running as a follower: no PATCH, and no retries either.
    run_loop(client, gate, metrics.clone(), ca, vec![]).await;
    assert_eq!(
        metrics.cabundle_patches(true) + metrics.cabundle_patches(false),
        0
    );
    verifier.finish().await;
}

#[tokio::test]
async fn the_watch_lists_only_the_named_configuration() {
    let list = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfigurationList",
        "metadata": {"resourceVersion": "100"},
        "items": [config(&[("a.outrigger.dev", Some("DRIFTED"))])],
    });
    let (client, verifier) = Scenario::new()
        .get_query(
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            "fieldSelector=metadata.name%3Doutrigger-sidecar-injector",
            ok(list),
        )
        .start();
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let mut triggers = watch_triggers(api, &[NAME.to_string()]);
    assert_eq!(triggers.next().await, Some(NAME.to_string()));
    drop(triggers);
    verifier.finish().await;
}

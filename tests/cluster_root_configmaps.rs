//! The root ConfigMap controller. Reconciles decide from the watch caches
//! against a scripted API server that sees only the writes: missing
//! (created), edited (repaired), right (no request), excluded, terminating
//! or gone namespaces (nothing), a create that meets 409 (one re-read),
//! leadership lost (no write). The loop runs against a fake API server
//! with watches: a namespace created gets its ConfigMap; a follower opens
//! no watch, and takes over with one listing.

#[path = "cluster_support/caches.rs"]
mod caches;
#[path = "cluster_support/fake_api.rs"]
mod fake_api;
#[path = "cluster_support/scenario.rs"]
mod scenario;

use std::sync::Arc;
use std::time::Duration;

use fake_api::FakeApi;
use outrigger::cluster::authority::ClusterCa;
use outrigger::cluster::current_ca;
use outrigger::cluster::leader::LeaderGate;
use outrigger::cluster::metrics::ClusterMetrics;
use outrigger::cluster::root_configmaps::{RootCaches, RootOutcome, reconcile_namespace, run};
use scenario::{Reply, Scenario, conflict, ok};
use serde_json::{Value, json};

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const CM_PATH: &str = "/api/v1/namespaces/app/configmaps/istio-ca-root-cert";
const CM_COLLECTION: &str = "/api/v1/namespaces/app/configmaps";

fn namespace(name: &str, phase: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": phase}})
}

fn configmap(data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "istio-ca-root-cert", "namespace": "app", "resourceVersion": "5"},
        "data": data,
    })
}

fn created() -> Value {
    json!({"metadata": {"name": "istio-ca-root-cert", "namespace": "app"}, "data": {"root-cert.pem": PEM}})
}

fn cached(namespaces: Vec<Value>, configmaps: Vec<Value>) -> RootCaches {
    RootCaches {
        namespaces: caches::store(namespaces),
        configmaps: caches::store(configmaps),
    }
}

async fn reconcile(
    scenario: Scenario,
    caches: RootCaches,
    namespace: &str,
    gate: LeaderGate,
) -> (Result<RootOutcome, String>, ClusterMetrics, usize) {
    let (client, verifier) = scenario.start();
    let metrics = ClusterMetrics::default();
    let outcome = reconcile_namespace(&client, &gate, &metrics, &caches, namespace, PEM)
        .await
        .map_err(|e| e.to_string());
    drop(client);
    let requests = verifier.seen().len();
    verifier.finish().await;
    (outcome, metrics, requests)
}

#[tokio::test]
async fn missing_configmap_is_created_with_one_request() {
    let scenario = Scenario::new().post(CM_COLLECTION, created(), Reply::Echo(201));
    let caches = cached(vec![namespace("app", "Active")], vec![]);
    let (outcome, metrics, requests) =
        reconcile(scenario, caches, "app", LeaderGate::always()).await;
    assert_eq!(outcome, Ok(RootOutcome::Created));
    assert_eq!(metrics.root_configmap_writes(), 1);
    assert_eq!(requests, 1);
}

#[tokio::test]
async fn edited_configmap_is_repaired_with_one_request() {
    let scenario = Scenario::new().patch(
        CM_PATH,
        json!({"data": {"root-cert.pem": PEM}}),
        ok(configmap(json!({}))),
    );
    let caches = cached(
        vec![namespace("app", "Active")],
        vec![configmap(
            json!({"root-cert.pem": "tampered", "extra": "kept"}),
        )],
    );
    let (outcome, metrics, requests) =
        reconcile(scenario, caches, "app", LeaderGate::always()).await;
    assert_eq!(outcome, Ok(RootOutcome::Repaired));
    assert_eq!(metrics.root_configmap_writes(), 1);
    assert_eq!(requests, 1);
}

#[tokio::test]
async fn right_configmap_costs_no_request() {
    let caches = cached(
        vec![namespace("app", "Active")],
        vec![configmap(json!({"root-cert.pem": PEM}))],
    );
    let (outcome, metrics, _) =
        reconcile(Scenario::new(), caches, "app", LeaderGate::always()).await;
    assert_eq!(outcome, Ok(RootOutcome::Unchanged));
    assert_eq!(metrics.root_configmap_writes(), 0);
}

#[tokio::test]
async fn excluded_terminating_or_gone_namespaces_get_nothing() {
    let caches = cached(
        vec![
            namespace("kube-node-lease", "Active"),
            namespace("app", "Terminating"),
        ],
        vec![],
    );
    for name in ["kube-node-lease", "app", "gone"] {
        let (outcome, _, _) =
            reconcile(Scenario::new(), caches.clone(), name, LeaderGate::always()).await;
        assert_eq!(outcome, Ok(RootOutcome::Skipped), "{name}");
    }
}

#[tokio::test]
async fn a_create_that_meets_409_reads_once_and_writes_only_if_different() {
    // The cache was behind: the ConfigMap exists and is right.
    let scenario = Scenario::new()
        .post(CM_COLLECTION, created(), conflict())
        .get(CM_PATH, ok(configmap(json!({"root-cert.pem": PEM}))));
    let caches = cached(vec![namespace("app", "Active")], vec![]);
    let (outcome, _, requests) = reconcile(scenario, caches, "app", LeaderGate::always()).await;
    assert_eq!(outcome, Ok(RootOutcome::Unchanged));
    assert_eq!(requests, 2);

    // It exists with another root: one patch.
    let scenario = Scenario::new()
        .post(CM_COLLECTION, created(), conflict())
        .get(CM_PATH, ok(configmap(json!({"root-cert.pem": "old"}))))
        .patch(
            CM_PATH,
            json!({"data": {"root-cert.pem": PEM}}),
            ok(configmap(json!({}))),
        );
    let caches = cached(vec![namespace("app", "Active")], vec![]);
    let (outcome, _, requests) = reconcile(scenario, caches, "app", LeaderGate::always()).await;
    assert_eq!(outcome, Ok(RootOutcome::Repaired));
    assert_eq!(requests, 3);
}

#[tokio::test]
async fn a_follower_never_writes() {
    let (_switch, gate) = LeaderGate::manual(false);
    let caches = cached(vec![namespace("app", "Active")], vec![]);
    let (outcome, metrics, requests) = reconcile(Scenario::new(), caches, "app", gate).await;
    assert!(outcome.unwrap_err().contains("not the leader"));
    assert_eq!(metrics.root_configmap_writes(), 0);
    assert_eq!(requests, 0);
}

fn ca() -> Arc<ClusterCa> {
    Arc::new(ClusterCa::generate("cluster.local").unwrap().0)
}

#[tokio::test(start_paused = true)]
async fn a_namespace_created_gets_the_configmap() {
    let fake = FakeApi::new();
    let ca = ca();
    let metrics = ClusterMetrics::default();
    let run = tokio::spawn(run(
        fake.client(),
        LeaderGate::always(),
        metrics.clone(),
        current_ca::fixed(Arc::clone(&ca)),
        Duration::from_secs(300),
        8,
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    fake.apply(namespace("app", "Active"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cm = fake.object(CM_PATH).expect("the ConfigMap is created");
    assert_eq!(cm["data"]["root-cert.pem"], ca.root_pem());
    assert_eq!(metrics.root_configmap_writes(), 1);
    run.abort();
    fake.assert_clean();
}

#[tokio::test(start_paused = true)]
async fn a_follower_opens_no_watch_and_takes_over_with_one_listing() {
    let fake = FakeApi::new();
    fake.apply(namespace("app", "Active"));
    let (switch, gate) = LeaderGate::manual(false);
    let metrics = ClusterMetrics::default();
    let run = tokio::spawn(run(
        fake.client(),
        gate,
        metrics.clone(),
        current_ca::fixed(ca()),
        Duration::from_secs(60),
        8,
    ));
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(fake.requests().is_empty(), "a follower sends nothing");

    switch.set(true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requests = fake.requests();
    assert_eq!(requests.iter().filter(|r| r.is_list()).count(), 2);
    assert_eq!(fake.open_watches(), 2);
    assert!(fake.object(CM_PATH).is_some(), "the new leader repairs");
    assert_eq!(metrics.root_configmap_writes(), 1);

    // Following again: the watches are closed, the caches dropped.
    switch.set(false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.open_watches(), 0);
    run.abort();
    fake.assert_clean();
}

//! The root ConfigMap controller against a scripted API server: missing
//! (created), edited (repaired), right (no write), excluded or terminating
//! namespaces (nothing), a namespace created (its event creates the
//! ConfigMap), errors retried, leadership lost (no write).

#[path = "cluster_support/scenario.rs"]
mod scenario;

use std::time::Duration;

use outrigger::cluster::leader::LeaderGate;
use outrigger::cluster::metrics::ClusterMetrics;
use outrigger::cluster::root_configmaps::{RootOutcome, reconcile_namespace, run_with_triggers};
use scenario::{Reply, Scenario, internal_error, not_found, ok};
use serde_json::{Value, json};

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const NS_PATH: &str = "/api/v1/namespaces/app";
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

async fn reconcile(
    scenario: Scenario,
    namespace: &str,
    gate: LeaderGate,
) -> (Result<RootOutcome, String>, ClusterMetrics) {
    let (client, verifier) = scenario.start();
    let metrics = ClusterMetrics::default();
    let outcome = reconcile_namespace(&client, &gate, &metrics, namespace, PEM)
        .await
        .map_err(|e| e.to_string());
    drop(client);
    verifier.finish().await;
    (outcome, metrics)
}

#[tokio::test]
async fn missing_configmap_is_created() {
    let scenario = Scenario::new()
        .get(NS_PATH, ok(namespace("app", "Active")))
        .get(CM_PATH, not_found())
        .post(CM_COLLECTION, created(), Reply::Echo(201));
    let (outcome, metrics) = reconcile(scenario, "app", LeaderGate::always()).await;
    assert_eq!(outcome, Ok(RootOutcome::Created));
    assert_eq!(metrics.root_configmap_writes(), 1);
}

#[tokio::test]
async fn edited_configmap_is_repaired() {
    let scenario = Scenario::new()
        .get(NS_PATH, ok(namespace("app", "Active")))
        .get(
            CM_PATH,
            ok(configmap(
                json!({"root-cert.pem": "tampered", "extra": "kept"}),
            )),
        )
        .patch(
            CM_PATH,
            json!({"data": {"root-cert.pem": PEM}}),
            ok(configmap(json!({}))),
        );
    let (outcome, metrics) = reconcile(scenario, "app", LeaderGate::always()).await;
    assert_eq!(outcome, Ok(RootOutcome::Repaired));
    assert_eq!(metrics.root_configmap_writes(), 1);
}

#[tokio::test]
async fn right_configmap_is_not_written() {
    let scenario = Scenario::new()
        .get(NS_PATH, ok(namespace("app", "Active")))
        .get(CM_PATH, ok(configmap(json!({"root-cert.pem": PEM}))));
    let (outcome, metrics) = reconcile(scenario, "app", LeaderGate::always()).await;
    assert_eq!(outcome, Ok(RootOutcome::Unchanged));
    assert_eq!(metrics.root_configmap_writes(), 0);
}

#[tokio::test]
async fn excluded_namespace_is_not_even_read() {
    let (outcome, _) = reconcile(Scenario::new(), "kube-node-lease", LeaderGate::always()).await;
    assert_eq!(outcome, Ok(RootOutcome::Skipped));
}

#[tokio::test]
async fn terminating_namespace_gets_nothing() {
    let scenario = Scenario::new().get(NS_PATH, ok(namespace("app", "Terminating")));
    let (outcome, _) = reconcile(scenario, "app", LeaderGate::always()).await;
    assert_eq!(outcome, Ok(RootOutcome::Skipped));
}

#[tokio::test]
async fn follower_reads_but_never_writes() {
    let (_switch, gate) = LeaderGate::manual(false);
    let scenario = Scenario::new()
        .get(NS_PATH, ok(namespace("app", "Active")))
        .get(CM_PATH, not_found());
    let (outcome, metrics) = reconcile(scenario, "app", gate).await;
    assert!(outcome.unwrap_err().contains("not the leader"));
    assert_eq!(metrics.root_configmap_writes(), 0);
}

#[tokio::test(start_paused = true)]
async fn namespace_created_gets_the_configmap_and_errors_are_retried() {
    // Start-up resync lists the namespaces (none yet), then the watch reports
    // "app"; the first attempt meets a 500, the retry creates the ConfigMap.
    let (client, verifier) = Scenario::new()
        .get(
            "/api/v1/namespaces",
            ok(json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {}, "items": []})),
        )
        .get(NS_PATH, ok(namespace("app", "Active")))
        .get(CM_PATH, internal_error())
        .get(NS_PATH, ok(namespace("app", "Active")))
        .get(CM_PATH, not_found())
        .post(CM_COLLECTION, created(), Reply::Echo(201))
        .start();
    let metrics = ClusterMetrics::default();
    let (tx, rx) = futures::channel::mpsc::unbounded::<String>();
    tx.unbounded_send("app".into()).unwrap();
    let run = run_with_triggers(
        client,
        LeaderGate::always(),
        metrics.clone(),
        PEM.into(),
        rx,
        Duration::from_secs(3600),
    );
    let _ = tokio::time::timeout(Duration::from_secs(120), run).await;
    drop(tx);
    verifier.finish().await;
    assert_eq!(metrics.root_configmap_writes(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_becomes_leader_resyncs_every_namespace() {
    let (switch, gate) = LeaderGate::manual(false);
    // Nothing is read or written while following; on taking the lease the
    // new leader lists the namespaces and repairs what is missing.
    let (client, verifier) = Scenario::new()
        .get(
            "/api/v1/namespaces",
            ok(json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {}, "items": [namespace("app", "Active"), namespace("kube-public", "Active")]})),
        )
        .get(NS_PATH, ok(namespace("app", "Active")))
        .get(CM_PATH, not_found())
        .post(CM_COLLECTION, created(), Reply::Echo(201))
        .start();
    let metrics = ClusterMetrics::default();
    let (_tx, rx) = futures::channel::mpsc::unbounded::<String>();
    let run = run_with_triggers(
        client,
        gate,
        metrics.clone(),
        PEM.into(),
        rx,
        Duration::from_secs(3600),
    );
    let takeover = async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        switch.set(true);
        std::future::pending::<()>().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(120), async {
        tokio::join!(run, takeover)
    })
    .await;
    verifier.finish().await;
    assert_eq!(metrics.root_configmap_writes(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_follower_makes_no_request_for_events() {
    let (_switch, gate) = LeaderGate::manual(false);
    let (client, verifier) = Scenario::new().start();
    let (tx, rx) = futures::channel::mpsc::unbounded::<String>();
    tx.unbounded_send("app".into()).unwrap();
    tx.unbounded_send("other".into()).unwrap();
    let run = run_with_triggers(
        client,
        gate,
        ClusterMetrics::default(),
        PEM.into(),
        rx,
        Duration::from_secs(60),
    );
    let _ = tokio::time::timeout(Duration::from_secs(300), run).await;
    drop(tx);
    verifier.finish().await;
}

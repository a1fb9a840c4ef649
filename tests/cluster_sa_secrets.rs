//! Per-ServiceAccount certificate Secrets against a scripted API server:
//! missing (created, owned, verifiable), near expiry (renewed), chain from an
//! old root (rewritten), fresh (kept), ServiceAccount deleted (nothing),
//! namespace not opted in (nothing), Istio's override label, a foreign
//! Secret (left alone), leadership lost mid-reconcile (no further writes),
//! and a 409 retried by the loop.

#[path = "cluster_support/scenario.rs"]
mod scenario;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use outrigger::cluster::authority::ClusterCa;
use outrigger::cluster::leader::LeaderGate;
use outrigger::cluster::metrics::ClusterMetrics;
use outrigger::cluster::sa_secrets::{SecretKey, SecretsConfig, SecretsContext, desired_secret};
use scenario::{Reply, Scenario, conflict, not_found, ok};
use serde_json::{Value, json};

const NS_PATH: &str = "/api/v1/namespaces/app";
const SA_PATH: &str = "/api/v1/namespaces/app/serviceaccounts/web";
const SA_LIST: &str = "/api/v1/namespaces/app/serviceaccounts";
const SECRET_PATH: &str = "/api/v1/namespaces/app/secrets/istio.web";
const SECRETS: &str = "/api/v1/namespaces/app/secrets";
const HOUR: Duration = Duration::from_secs(3600);

fn new_ca() -> Arc<ClusterCa> {
    Arc::new(ClusterCa::generate("cluster.local").unwrap().0)
}

fn namespace(labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app", "labels": labels}})
}

fn opted_in() -> Value {
    namespace(json!({"outrigger.dev/certificate-secrets": "enabled"}))
}

fn account(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "app", "uid": format!("uid-{name}")}})
}

fn secret_for(ca: &ClusterCa, sa: &str, issued_at: SystemTime, root_pem: &str) -> Value {
    let issued = ca
        .issue_workload("cluster.local", "app", sa, HOUR, issued_at)
        .unwrap();
    let account: k8s_openapi::api::core::v1::ServiceAccount =
        serde_json::from_value(account(sa)).unwrap();
    let mut value = serde_json::to_value(desired_secret(
        &account,
        &issued,
        root_pem,
        &format!("istio.{sa}"),
    ))
    .unwrap();
    value["metadata"]["resourceVersion"] = json!("31");
    value
}

fn context(
    client: kube::Client,
    ca: Arc<ClusterCa>,
    gate: LeaderGate,
    metrics: ClusterMetrics,
) -> SecretsContext {
    SecretsContext {
        client,
        ca,
        gate,
        metrics,
        config: SecretsConfig {
            trust_domain: "cluster.local".into(),
            ttl: HOUR,
            renew_ratio: 0.5,
        },
    }
}

fn written() -> Value {
    json!({
        "metadata": {
            "name": "istio.web",
            "namespace": "app",
            "annotations": {"istio.io/service-account.name": "web"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ServiceAccount", "name": "web", "uid": "uid-web"}],
        },
        "type": "istio.io/key-and-cert",
    })
}

/// Runs one account reconcile; returns the result, the metrics and the
/// requests seen.
async fn reconcile_account(
    scenario: Scenario,
    ca: Arc<ClusterCa>,
    gate: LeaderGate,
) -> (
    Result<(), String>,
    ClusterMetrics,
    Vec<(String, String, Value)>,
) {
    let (client, verifier) = scenario.start();
    let metrics = ClusterMetrics::default();
    let ctx = context(client, ca, gate, metrics.clone());
    let result = ctx
        .reconcile_account("app", "web")
        .await
        .map_err(|e| e.to_string());
    drop(ctx);
    let seen = verifier.seen();
    verifier.finish().await;
    (result, metrics, seen)
}

fn data_text(body: &Value, key: &str) -> String {
    let bytes: k8s_openapi::ByteString = serde_json::from_value(body["data"][key].clone()).unwrap();
    String::from_utf8(bytes.0).unwrap()
}

#[tokio::test]
async fn missing_secret_is_created_owned_and_verifiable() {
    let ca = new_ca();
    let scenario = Scenario::new()
        .get(NS_PATH, ok(opted_in()))
        .get(SA_PATH, ok(account("web")))
        .get(SECRET_PATH, not_found())
        .post(SECRETS, written(), Reply::Echo(201));
    let (result, metrics, seen) =
        reconcile_account(scenario, ca.clone(), LeaderGate::always()).await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 1);
    let body = &seen[3].2;
    let chain = data_text(body, "cert-chain.pem");
    ca.check_chain(&chain, SystemTime::now()).unwrap();
    assert_eq!(data_text(body, "root-cert.pem"), ca.root_pem());
    assert!(data_text(body, "key.pem").contains("PRIVATE KEY"));
}

#[tokio::test]
async fn secret_near_expiry_is_renewed_in_place() {
    let ca = new_ca();
    let old = secret_for(
        &ca,
        "web",
        SystemTime::now() - Duration::from_secs(40 * 60),
        ca.root_pem(),
    );
    let mut expected = written();
    expected["metadata"]["resourceVersion"] = json!("31");
    let scenario = Scenario::new()
        .get(NS_PATH, ok(opted_in()))
        .get(SA_PATH, ok(account("web")))
        .get(SECRET_PATH, ok(old))
        .put(SECRET_PATH, expected, Reply::Echo(200));
    let (result, metrics, seen) =
        reconcile_account(scenario, ca.clone(), LeaderGate::always()).await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 1);
    let chain = data_text(&seen[3].2, "cert-chain.pem");
    let from = ca
        .check_chain(&chain, SystemTime::now())
        .unwrap()
        .not_before;
    assert!(
        from > SystemTime::now() - Duration::from_secs(300),
        "a new certificate was issued"
    );
}

#[tokio::test]
async fn chain_from_an_old_root_is_rewritten() {
    let ca = new_ca();
    let old_ca = new_ca();
    // The root key says the current root, but the chain is the old CA's.
    let stale = secret_for(&old_ca, "web", SystemTime::now(), ca.root_pem());
    let scenario = Scenario::new()
        .get(NS_PATH, ok(opted_in()))
        .get(SA_PATH, ok(account("web")))
        .get(SECRET_PATH, ok(stale))
        .put(SECRET_PATH, written(), Reply::Echo(200));
    let (result, metrics, seen) =
        reconcile_account(scenario, ca.clone(), LeaderGate::always()).await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 1);
    ca.check_chain(&data_text(&seen[3].2, "cert-chain.pem"), SystemTime::now())
        .unwrap();
}

#[tokio::test]
async fn fresh_secret_is_kept() {
    let ca = new_ca();
    let fresh = secret_for(&ca, "web", SystemTime::now(), ca.root_pem());
    let scenario = Scenario::new()
        .get(NS_PATH, ok(opted_in()))
        .get(SA_PATH, ok(account("web")))
        .get(SECRET_PATH, ok(fresh));
    let (result, metrics, _) = reconcile_account(scenario, ca, LeaderGate::always()).await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 0);
}

#[tokio::test]
async fn deleted_service_account_gets_nothing() {
    let scenario = Scenario::new()
        .get(NS_PATH, ok(opted_in()))
        .get(SA_PATH, not_found());
    let (result, metrics, _) = reconcile_account(scenario, new_ca(), LeaderGate::always()).await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 0);
}

#[tokio::test]
async fn namespace_not_opted_in_gets_nothing() {
    let scenario = Scenario::new().get(
        NS_PATH,
        ok(namespace(json!({"istio-injection": "enabled"}))),
    );
    let (result, _, _) = reconcile_account(scenario, new_ca(), LeaderGate::always()).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn foreign_secret_of_that_name_is_left_alone() {
    let mut foreign = secret_for(&new_ca(), "web", SystemTime::now(), "x");
    foreign["type"] = json!("Opaque");
    let scenario = Scenario::new()
        .get(NS_PATH, ok(opted_in()))
        .get(SA_PATH, ok(account("web")))
        .get(SECRET_PATH, ok(foreign));
    let (result, metrics, _) = reconcile_account(scenario, new_ca(), LeaderGate::always()).await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 0);
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {}, "items": items})
}

#[tokio::test]
async fn istio_override_namespace_gets_a_secret_per_account() {
    let ca = new_ca();
    let fresh = secret_for(&ca, "web", SystemTime::now(), ca.root_pem());
    let (client, verifier) = Scenario::new()
        .get(NS_PATH, ok(namespace(json!({"ca.istio.io/override": "true"}))))
        .get(SA_LIST, ok(list("ServiceAccountList", vec![account("web"), account("db")])))
        .get_query(SECRETS, "fieldSelector=type", ok(list("SecretList", vec![fresh])))
        .post(
            SECRETS,
            json!({"metadata": {"name": "istio.db", "annotations": {"istio.io/service-account.name": "db"}}}),
            Reply::Echo(201),
        )
        .start();
    let metrics = ClusterMetrics::default();
    let ctx = context(client, ca, LeaderGate::always(), metrics.clone());
    ctx.reconcile(&SecretKey::Namespace("app".into()))
        .await
        .unwrap();
    drop(ctx);
    verifier.finish().await;
    assert_eq!(metrics.secret_certificates_issued(), 1);
}

#[tokio::test]
async fn leadership_lost_mid_reconcile_writes_nothing_more() {
    let ca = new_ca();
    let (switch, gate) = LeaderGate::manual(true);
    // Three accounts need Secrets; the lease goes after the first write.
    let (client, verifier) = Scenario::new()
        .get(NS_PATH, ok(opted_in()))
        .get(
            SA_LIST,
            ok(list(
                "ServiceAccountList",
                vec![account("a"), account("b"), account("c")],
            )),
        )
        .get(SECRETS, ok(list("SecretList", vec![])))
        .post(
            SECRETS,
            json!({"metadata": {"name": "istio.a"}}),
            Reply::After(
                Box::new(move || switch.set(false)),
                Box::new(Reply::Echo(201)),
            ),
        )
        .start();
    let metrics = ClusterMetrics::default();
    let ctx = context(client, ca, gate, metrics.clone());
    let err = ctx
        .reconcile(&SecretKey::Namespace("app".into()))
        .await
        .unwrap_err();
    drop(ctx);
    verifier.finish().await;
    assert!(err.to_string().contains("not the leader"), "{err}");
    assert_eq!(metrics.secret_certificates_issued(), 1);
}

#[tokio::test(start_paused = true)]
async fn conflict_is_retried_by_the_loop() {
    let ca = new_ca();
    let (client, verifier) = Scenario::new()
        // Start-up resync: no opted-in namespace yet.
        .get("/api/v1/namespaces", ok(list("NamespaceList", vec![])))
        // The ServiceAccount event: the create meets a 409 (a stale cache).
        .get(NS_PATH, ok(opted_in()))
        .get(SA_PATH, ok(account("web")))
        .get(SECRET_PATH, not_found())
        .post(SECRETS, written(), conflict())
        // Is it a foreign Secret? No: ours (someone else's stale copy).
        .get(
            SECRET_PATH,
            ok(secret_for(&new_ca(), "web", SystemTime::now(), "old root")),
        )
        // The retry reads what is there (someone else's stale copy) and replaces it.
        .get(NS_PATH, ok(opted_in()))
        .get(SA_PATH, ok(account("web")))
        .get(
            SECRET_PATH,
            ok(secret_for(&new_ca(), "web", SystemTime::now(), "old root")),
        )
        .put(SECRET_PATH, written(), Reply::Echo(200))
        .start();
    let metrics = ClusterMetrics::default();
    let ctx = context(client, ca, LeaderGate::always(), metrics.clone());
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tx.unbounded_send(SecretKey::Account {
        namespace: "app".into(),
        name: "web".into(),
    })
    .unwrap();
    let run = ctx.run_with_triggers(rx, HOUR);
    let _ = tokio::time::timeout(Duration::from_secs(120), run).await;
    drop(tx);
    verifier.finish().await;
    assert_eq!(metrics.secret_certificates_issued(), 1);
}

#[tokio::test]
async fn foreign_secret_hidden_from_the_typed_listing_is_left_alone() {
    let ca = new_ca();
    let mut foreign = secret_for(&ca, "web", SystemTime::now(), "x");
    foreign["type"] = json!("Opaque");
    let (client, verifier) = Scenario::new()
        .get(NS_PATH, ok(opted_in()))
        .get(
            SA_LIST,
            ok(list("ServiceAccountList", vec![account("web")])),
        )
        .get_query(
            SECRETS,
            "fieldSelector=type",
            ok(list("SecretList", vec![])),
        )
        .post(SECRETS, written(), conflict())
        .get(SECRET_PATH, ok(foreign))
        .start();
    let metrics = ClusterMetrics::default();
    let ctx = context(client, ca, LeaderGate::always(), metrics.clone());
    ctx.reconcile(&SecretKey::Namespace("app".into()))
        .await
        .unwrap();
    drop(ctx);
    verifier.finish().await;
    assert_eq!(metrics.secret_certificates_issued(), 0);
}

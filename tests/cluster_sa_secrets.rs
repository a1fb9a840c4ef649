//! Per-ServiceAccount certificate Secrets, decided from the watch caches,
//! against a scripted API server that sees only the writes: missing
//! (created, owned, verifiable), near expiry (renewed), chain from an old
//! root (rewritten), fresh (kept), ServiceAccount deleted (nothing),
//! namespace not opted in (nothing), Istio's override label, a foreign
//! Secret (left alone), leadership lost mid-reconcile (no further writes),
//! and a 409 (the cache was behind: one re-read, then one write).

#[path = "cluster_support/caches.rs"]
mod caches;
#[path = "cluster_support/scenario.rs"]
mod scenario;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use outrigger::cluster::authority::ClusterCa;
use outrigger::cluster::current_ca;
use outrigger::cluster::leader::LeaderGate;
use outrigger::cluster::metrics::ClusterMetrics;
use outrigger::cluster::sa_secrets::{
    SecretCaches, SecretKey, SecretsConfig, SecretsContext, desired_secret,
};
use scenario::{Reply, Scenario, conflict, ok};
use serde_json::{Value, json};

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

/// What the watches hold: the namespace `app`, its ServiceAccounts and
/// certificate Secrets.
struct Cached {
    namespace: Value,
    accounts: Vec<Value>,
    secrets: Vec<Value>,
}

fn cached(namespace: Value, accounts: &[&str], secrets: Vec<Value>) -> Cached {
    Cached {
        namespace,
        accounts: accounts.iter().map(|name| account(name)).collect(),
        secrets,
    }
}

fn context(
    client: kube::Client,
    cached: Cached,
    ca: Arc<ClusterCa>,
    gate: LeaderGate,
    metrics: ClusterMetrics,
) -> SecretsContext {
    SecretsContext {
        client,
        caches: SecretCaches {
            namespaces: caches::store(vec![cached.namespace]),
            accounts: caches::store(cached.accounts),
            secrets: caches::store(cached.secrets),
        },
        current: current_ca::fixed(ca),
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
    cached: Cached,
    ca: Arc<ClusterCa>,
    gate: LeaderGate,
) -> (
    Result<(), String>,
    ClusterMetrics,
    Vec<(String, String, Value)>,
) {
    let (client, verifier) = scenario.start();
    let metrics = ClusterMetrics::default();
    let ctx = context(client, cached, ca, gate, metrics.clone());
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
    let scenario = Scenario::new().post(SECRETS, written(), Reply::Echo(201));
    let (result, metrics, seen) = reconcile_account(
        scenario,
        cached(opted_in(), &["web"], vec![]),
        ca.clone(),
        LeaderGate::always(),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 1);
    assert_eq!(seen.len(), 1, "one request: the create");
    let body = &seen[0].2;
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
    let scenario = Scenario::new().put(SECRET_PATH, expected, Reply::Echo(200));
    let (result, metrics, seen) = reconcile_account(
        scenario,
        cached(opted_in(), &["web"], vec![old]),
        ca.clone(),
        LeaderGate::always(),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 1);
    let chain = data_text(&seen[0].2, "cert-chain.pem");
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
    let scenario = Scenario::new().put(SECRET_PATH, written(), Reply::Echo(200));
    let (result, metrics, seen) = reconcile_account(
        scenario,
        cached(opted_in(), &["web"], vec![stale]),
        ca.clone(),
        LeaderGate::always(),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 1);
    ca.check_chain(&data_text(&seen[0].2, "cert-chain.pem"), SystemTime::now())
        .unwrap();
}

#[tokio::test]
async fn fresh_secret_is_kept_without_a_request() {
    let ca = new_ca();
    let fresh = secret_for(&ca, "web", SystemTime::now(), ca.root_pem());
    let (result, metrics, seen) = reconcile_account(
        Scenario::new(),
        cached(opted_in(), &["web"], vec![fresh]),
        ca,
        LeaderGate::always(),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 0);
    assert!(seen.is_empty());
}

#[tokio::test]
async fn deleted_service_account_gets_nothing() {
    let (result, metrics, _) = reconcile_account(
        Scenario::new(),
        cached(opted_in(), &[], vec![]),
        new_ca(),
        LeaderGate::always(),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 0);
}

#[tokio::test]
async fn an_account_in_a_namespace_not_opted_in_costs_no_request() {
    let (result, metrics, seen) = reconcile_account(
        Scenario::new(),
        cached(
            namespace(json!({"istio-injection": "enabled"})),
            &["web"],
            vec![],
        ),
        new_ca(),
        LeaderGate::always(),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 0);
    assert!(seen.is_empty());
}

#[tokio::test]
async fn foreign_secret_of_that_name_is_left_alone() {
    let mut foreign = secret_for(&new_ca(), "web", SystemTime::now(), "x");
    foreign["type"] = json!("Opaque");
    let (result, metrics, _) = reconcile_account(
        Scenario::new(),
        cached(opted_in(), &["web"], vec![foreign]),
        new_ca(),
        LeaderGate::always(),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 0);
}

#[tokio::test]
async fn istio_override_namespace_gets_a_secret_per_account() {
    let ca = new_ca();
    let fresh = secret_for(&ca, "web", SystemTime::now(), ca.root_pem());
    let (client, verifier) = Scenario::new()
        .post(
            SECRETS,
            json!({"metadata": {"name": "istio.db", "annotations": {"istio.io/service-account.name": "db"}}}),
            Reply::Echo(201),
        )
        .start();
    let metrics = ClusterMetrics::default();
    let ctx = context(
        client,
        cached(
            namespace(json!({"ca.istio.io/override": "true"})),
            &["web", "db"],
            vec![fresh],
        ),
        ca,
        LeaderGate::always(),
        metrics.clone(),
    );
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
    let ctx = context(
        client,
        cached(opted_in(), &["a", "b", "c"], vec![]),
        ca,
        gate,
        metrics.clone(),
    );
    let err = ctx
        .reconcile(&SecretKey::Namespace("app".into()))
        .await
        .unwrap_err();
    drop(ctx);
    verifier.finish().await;
    assert!(err.to_string().contains("not the leader"), "{err}");
    assert_eq!(metrics.secret_certificates_issued(), 1);
}

#[tokio::test]
async fn a_conflict_means_the_cache_was_behind_one_re_read_then_one_write() {
    let ca = new_ca();
    // The cache has no Secret yet; the API server has someone else's
    // stale copy of ours.
    let scenario = Scenario::new()
        .post(SECRETS, written(), conflict())
        .get(
            SECRET_PATH,
            ok(secret_for(&new_ca(), "web", SystemTime::now(), "old root")),
        )
        .put(SECRET_PATH, written(), Reply::Echo(200));
    let (result, metrics, seen) = reconcile_account(
        scenario,
        cached(opted_in(), &["web"], vec![]),
        ca,
        LeaderGate::always(),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 1);
    assert_eq!(seen[2].2["metadata"]["resourceVersion"], "31");
}

#[tokio::test]
async fn foreign_secret_hidden_from_the_typed_cache_is_left_alone() {
    let ca = new_ca();
    let mut foreign = secret_for(&ca, "web", SystemTime::now(), "x");
    foreign["type"] = json!("Opaque");
    let scenario = Scenario::new()
        .post(SECRETS, written(), conflict())
        .get(SECRET_PATH, ok(foreign));
    let (result, metrics, _) = reconcile_account(
        scenario,
        cached(opted_in(), &["web"], vec![]),
        ca,
        LeaderGate::always(),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(metrics.secret_certificates_issued(), 0);
}

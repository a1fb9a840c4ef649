//! The shared CA Secret against a scripted API server: absent (created),
//! present (read), created concurrently by another replica (409 then read
//! the winner's), API errors and a malformed Secret (reported, never
//! overwritten).

#[path = "cluster_support/scenario.rs"]
mod scenario;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use outrigger::cluster::authority::ClusterCa;
use outrigger::cluster::ca_secret::{CaOrigin, CaSecretError, desired_ca_secret, load_or_create};
use scenario::{Reply, Scenario, conflict, internal_error, not_found, ok};
use serde_json::json;

const NS: &str = "outrigger-system";
const PATH: &str = "/api/v1/namespaces/outrigger-system/secrets/istio-ca-secret";
const COLLECTION: &str = "/api/v1/namespaces/outrigger-system/secrets";

fn existing_secret() -> (ClusterCa, serde_json::Value) {
    let (ca, material) = ClusterCa::generate("cluster.local").unwrap();
    let mut value = serde_json::to_value(desired_ca_secret(NS, &material)).unwrap();
    value["metadata"]["resourceVersion"] = json!("42");
    (ca, value)
}

#[tokio::test]
async fn absent_secret_is_created_with_a_new_root() {
    let (client, verifier) = Scenario::new()
        .get(PATH, not_found())
        .post(
            COLLECTION,
            json!({
                "metadata": {"name": "istio-ca-secret", "namespace": NS},
                "type": "istio.io/ca-root",
            }),
            Reply::Echo(201),
        )
        .start();
    let api: Api<Secret> = Api::namespaced(client, NS);
    let (ca, origin) = load_or_create(&api, NS, "cluster.local").await.unwrap();
    drop(api);
    assert_eq!(origin, CaOrigin::SecretCreated);
    let seen = verifier.seen();
    let data = &seen[1].2["data"];
    let stored: Vec<u8> =
        serde_json::from_value::<k8s_openapi::ByteString>(data["ca-cert.pem"].clone())
            .unwrap()
            .0;
    assert_eq!(
        String::from_utf8(stored).unwrap().trim(),
        ca.root_pem().trim()
    );
    assert!(
        data["ca-key.pem"].is_string(),
        "the key is stored too: {data}"
    );
    verifier.finish().await;
}

#[tokio::test]
async fn present_secret_is_read_and_not_written() {
    let (winner, value) = existing_secret();
    let (client, verifier) = Scenario::new().get(PATH, ok(value)).start();
    let api: Api<Secret> = Api::namespaced(client, NS);
    let (ca, origin) = load_or_create(&api, NS, "cluster.local").await.unwrap();
    drop(api);
    assert_eq!(origin, CaOrigin::SecretRead);
    assert_eq!(ca.root_pem(), winner.root_pem());
    verifier.finish().await;
}

#[tokio::test]
async fn losing_the_creation_race_reads_the_winners_root() {
    let (winner, value) = existing_secret();
    let (client, verifier) = Scenario::new()
        .get(PATH, not_found())
        .post(COLLECTION, json!({"type": "istio.io/ca-root"}), conflict())
        .get(PATH, ok(value))
        .start();
    let api: Api<Secret> = Api::namespaced(client, NS);
    let (ca, origin) = load_or_create(&api, NS, "cluster.local").await.unwrap();
    drop(api);
    assert_eq!(origin, CaOrigin::SecretReadAfterConflict);
    assert_eq!(ca.root_pem(), winner.root_pem());
    verifier.finish().await;
}

#[tokio::test]
async fn server_error_is_reported_for_a_retry() {
    let (client, verifier) = Scenario::new().get(PATH, internal_error()).start();
    let api: Api<Secret> = Api::namespaced(client, NS);
    let err = load_or_create(&api, NS, "cluster.local").await.unwrap_err();
    drop(api);
    assert!(
        matches!(err, CaSecretError::Api { action: "get", .. }),
        "{err}"
    );
    verifier.finish().await;
}

#[tokio::test]
async fn timeout_is_reported_for_a_retry() {
    let (client, verifier) = Scenario::new().get(PATH, Reply::Transport).start();
    let api: Api<Secret> = Api::namespaced(client, NS);
    let err = load_or_create(&api, NS, "cluster.local").await.unwrap_err();
    drop(api);
    assert!(matches!(err, CaSecretError::Api { .. }), "{err}");
    verifier.finish().await;
}

#[tokio::test]
async fn malformed_secret_is_reported_and_left_alone() {
    let value = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "istio-ca-secret", "namespace": NS},
        "type": "istio.io/ca-root",
        "data": {"ca-cert.pem": "bm90IGEgY2VydA=="},
    });
    let (client, verifier) = Scenario::new().get(PATH, ok(value)).start();
    let api: Api<Secret> = Api::namespaced(client, NS);
    let err = load_or_create(&api, NS, "cluster.local").await.unwrap_err();
    drop(api);
    assert!(
        err.to_string().contains("key ca-key.pem is missing"),
        "{err}"
    );
    verifier.finish().await;
}

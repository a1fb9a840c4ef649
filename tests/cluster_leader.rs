//! Leader election against a scripted API server: creating the Lease,
//! renewing it, following a live holder, taking over an expired one, losing a
//! creation race, losing the lease (writes stop at once) and failing to renew
//! past the deadline (writes stop).

#[path = "cluster_support/scenario.rs"]
mod scenario;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use outrigger::cluster::leader::{Elector, LeaderGate, LeaseConfig};
use outrigger::cluster::metrics::ClusterMetrics;
use scenario::{Reply, Scenario, conflict, internal_error, not_found, ok};
use serde_json::{Value, json};

const NS: &str = "outrigger-system";
const PATH: &str =
    "/apis/coordination.k8s.io/v1/namespaces/outrigger-system/leases/outrigger-leader";
const COLLECTION: &str = "/apis/coordination.k8s.io/v1/namespaces/outrigger-system/leases";

fn cfg() -> LeaseConfig {
    LeaseConfig {
        name: "outrigger-leader".into(),
        identity: "me".into(),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    }
}

fn lease(holder: &str, version: &str, transitions: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "outrigger-leader", "namespace": NS, "resourceVersion": version},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "leaseTransitions": transitions,
            "renewTime": "2026-01-01T00:00:00.000000Z",
        },
    })
}

fn elector(client: kube::Client) -> Elector {
    Elector::new(Api::<Lease>::namespaced(client, NS), cfg())
}

#[tokio::test]
async fn absent_lease_is_created_and_held() {
    let (client, verifier) = Scenario::new()
        .get(PATH, not_found())
        .post(
            COLLECTION,
            json!({"metadata": {"name": "outrigger-leader"}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15, "leaseTransitions": 0}}),
            Reply::Echo(201),
        )
        .start();
    let mut e = elector(client);
    assert!(e.round().await.unwrap());
    drop(e);
    verifier.finish().await;
}

#[tokio::test]
async fn losing_the_creation_race_follows() {
    let (client, verifier) = Scenario::new()
        .get(PATH, not_found())
        .post(
            COLLECTION,
            json!({"spec": {"holderIdentity": "me"}}),
            conflict(),
        )
        .start();
    let mut e = elector(client);
    assert!(!e.round().await.unwrap());
    drop(e);
    verifier.finish().await;
}

#[tokio::test]
async fn own_lease_is_renewed_with_its_version() {
    let (client, verifier) = Scenario::new()
        .get(PATH, ok(lease("me", "9", 2)))
        .put(PATH, json!({"metadata": {"resourceVersion": "9"}, "spec": {"holderIdentity": "me", "leaseTransitions": 2}}), Reply::Echo(200))
        .start();
    let mut e = elector(client);
    assert!(e.round().await.unwrap());
    drop(e);
    verifier.finish().await;
}

#[tokio::test(start_paused = true)]
async fn live_holder_is_followed_and_an_expired_one_taken_over() {
    let (client, verifier) = Scenario::new()
        .get(PATH, ok(lease("other", "5", 0)))
        .get(PATH, ok(lease("other", "6", 0)))
        .get(PATH, ok(lease("other", "6", 0)))
        .put(PATH, json!({"metadata": {"resourceVersion": "6"}, "spec": {"holderIdentity": "me", "leaseTransitions": 1}}), Reply::Echo(200))
        .start();
    let mut e = elector(client);
    assert!(!e.round().await.unwrap(), "a fresh lease is followed");
    tokio::time::advance(Duration::from_secs(14)).await;
    // The holder renewed (new version): still alive.
    assert!(!e.round().await.unwrap());
    tokio::time::advance(Duration::from_secs(15)).await;
    // Unchanged for a whole lease duration: expired, taken over.
    assert!(e.round().await.unwrap());
    drop(e);
    verifier.finish().await;
}

#[tokio::test(start_paused = true)]
async fn losing_the_lease_closes_the_gate_at_once() {
    let (switch, gate) = LeaderGate::manual(false);
    let metrics = ClusterMetrics::default();
    let (client, verifier) = Scenario::new()
        .get(PATH, ok(lease("me", "9", 0)))
        .put(
            PATH,
            json!({"spec": {"holderIdentity": "me"}}),
            Reply::Echo(200),
        )
        .get(PATH, ok(lease("usurper", "10", 1)))
        .start();
    let run = tokio::spawn(elector(client).run(switch, metrics.clone()));
    let mut watch = gate.clone();
    assert!(watch.changed().await, "leads after the first round");
    assert_eq!(metrics.leader(), 1);
    assert!(!watch.changed().await, "the next round sees another holder");
    assert!(gate.ensure().is_err());
    assert_eq!(metrics.leader(), 0);
    run.abort();
    let _ = run.await;
    verifier.finish().await;
}

#[tokio::test(start_paused = true)]
async fn renewals_failing_past_the_deadline_close_the_gate() {
    let (switch, gate) = LeaderGate::manual(false);
    let metrics = ClusterMetrics::default();
    let mut scenario = Scenario::new().get(PATH, ok(lease("me", "9", 0))).put(
        PATH,
        json!({"spec": {"holderIdentity": "me"}}),
        Reply::Echo(200),
    );
    // Rounds at 2, 4, 6, 8 s keep the lease (within the 10 s deadline); the
    // round at 10 s gives it up.
    for _ in 0..5 {
        scenario = scenario.get(PATH, internal_error());
    }
    let (client, verifier) = scenario.start();
    let run = tokio::spawn(elector(client).run(switch, metrics.clone()));
    let mut watch = gate.clone();
    assert!(watch.changed().await);
    let start = tokio::time::Instant::now();
    assert!(!watch.changed().await);
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    run.abort();
    let _ = run.await;
    verifier.finish().await;
}

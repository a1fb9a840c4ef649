//! Leader election against a scripted API server: creating the Lease,
//! renewing it, following a live holder, taking over an expired one, losing a
//! creation race, losing the lease (writes stop at once) and failing to renew
//! past the deadline (writes stop); and giving the lease up on shutdown
//! (one conditioned write by the holder, nothing from anyone else).

#[path = "cluster_support/scenario.rs"]
mod scenario;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use outrigger::cluster::leader::{Elector, LeaderGate, LeaseConfig};
use outrigger::cluster::metrics::ClusterMetrics;
use scenario::status;
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

/// The body of the release write: the whole lease, with no holder, a
/// one-second duration, renew and acquire times now, the transition count and
/// the resourceVersion of the holder's last write.
fn assert_release_body(body: &Value, version: &str, transitions: i32) {
    assert_eq!(body["metadata"]["name"], "outrigger-leader", "{body}");
    assert_eq!(body["metadata"]["resourceVersion"], version, "{body}");
    let spec = body["spec"].as_object().expect("a spec");
    let mut keys: Vec<&str> = spec.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "acquireTime",
            "holderIdentity",
            "leaseDurationSeconds",
            "leaseTransitions",
            "renewTime"
        ],
        "{body}"
    );
    assert_eq!(spec["holderIdentity"], "", "{body}");
    assert_eq!(spec["leaseDurationSeconds"], 1, "{body}");
    assert_eq!(spec["leaseTransitions"], transitions, "{body}");
    assert_eq!(spec["renewTime"], spec["acquireTime"], "{body}");
    assert_ne!(
        spec["renewTime"], "2026-01-01T00:00:00.000000Z",
        "renewed now: {body}"
    );
}

#[tokio::test]
async fn the_holder_releases_with_one_write_conditioned_on_its_version() {
    let (client, verifier) = Scenario::new()
        .get(PATH, ok(lease("me", "9", 2)))
        // The renewal's answer carries resourceVersion 1000 (Echo).
        .put(
            PATH,
            json!({"spec": {"holderIdentity": "me"}}),
            Reply::Echo(200),
        )
        .put(
            PATH,
            json!({"metadata": {"resourceVersion": "1000"}, "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 2}}),
            Reply::Echo(200),
        )
        .start();
    let mut e = elector(client);
    assert!(e.round().await.unwrap());
    assert!(e.release().await.unwrap(), "released");
    // Released once: a second release has nothing to give up.
    assert!(!e.release().await.unwrap());
    let seen = verifier.seen();
    assert_eq!(seen.len(), 3);
    let (method, path, body) = &seen[2];
    assert_eq!((method.as_str(), path.as_str()), ("PUT", PATH));
    assert_release_body(body, "1000", 2);
    drop(e);
    verifier.finish().await;
}

#[tokio::test]
async fn a_replica_that_does_not_hold_the_lease_sends_nothing() {
    // Never ran a round.
    let (client, verifier) = Scenario::new().start();
    let mut e = elector(client);
    assert!(!e.release().await.unwrap());
    drop(e);
    verifier.finish().await;

    // Follows a live holder.
    let (client, verifier) = Scenario::new()
        .get(PATH, ok(lease("other", "5", 0)))
        .start();
    let mut e = elector(client);
    assert!(!e.round().await.unwrap());
    assert!(!e.release().await.unwrap());
    drop(e);
    verifier.finish().await;

    // Lost a creation race.
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
    assert!(!e.release().await.unwrap());
    drop(e);
    verifier.finish().await;

    // Held it, then saw another holder.
    let (client, verifier) = Scenario::new()
        .get(PATH, ok(lease("me", "9", 0)))
        .put(
            PATH,
            json!({"spec": {"holderIdentity": "me"}}),
            Reply::Echo(200),
        )
        .get(PATH, ok(lease("usurper", "10", 1)))
        .start();
    let mut e = elector(client);
    assert!(e.round().await.unwrap());
    assert!(!e.round().await.unwrap());
    assert!(!e.release().await.unwrap());
    drop(e);
    verifier.finish().await;
}

#[tokio::test]
async fn a_release_that_conflicts_with_another_holder_gives_up() {
    let (client, verifier) = Scenario::new()
        .get(PATH, ok(lease("me", "9", 0)))
        .put(
            PATH,
            json!({"spec": {"holderIdentity": "me"}}),
            Reply::Echo(200),
        )
        .put(
            PATH,
            json!({"spec": {"holderIdentity": ""}}),
            status(409, "Conflict"),
        )
        .get(PATH, ok(lease("other", "1200", 1)))
        .start();
    let mut e = elector(client);
    assert!(e.round().await.unwrap());
    assert!(!e.release().await.unwrap(), "another holder: not ours");
    drop(e);
    verifier.finish().await;
}

/// Seen on a loaded API server: the last renewal was applied but its answer
/// lost (504), so the release's version is stale though the lease is still
/// this replica's. It is released at its current version, so the next
/// leader does not wait out the lease.
#[tokio::test]
async fn a_release_that_conflicts_with_its_own_lost_renewal_releases_the_current_version() {
    let (client, verifier) = Scenario::new()
        .get(PATH, ok(lease("me", "9", 2)))
        .put(
            PATH,
            json!({"spec": {"holderIdentity": "me"}}),
            Reply::Echo(200),
        )
        .put(
            PATH,
            json!({"metadata": {"resourceVersion": "1000"}, "spec": {"holderIdentity": ""}}),
            status(409, "Conflict"),
        )
        .get(PATH, ok(lease("me", "1001", 2)))
        .put(
            PATH,
            json!({"metadata": {"resourceVersion": "1001"}, "spec": {"holderIdentity": ""}}),
            Reply::Echo(200),
        )
        .start();
    let mut e = elector(client);
    assert!(e.round().await.unwrap());
    assert!(
        e.release().await.unwrap(),
        "released at the current version"
    );
    let seen = verifier.seen();
    assert_eq!(seen.len(), 5);
    assert_release_body(&seen[4].2, "1001", 2);
    drop(e);
    verifier.finish().await;
}

#[tokio::test(start_paused = true)]
async fn stepping_down_closes_the_gate_before_the_release() {
    let (switch, gate) = LeaderGate::manual(false);
    let metrics = ClusterMetrics::default();
    let at_release = gate.clone();
    let (client, verifier) = Scenario::new()
        .get(PATH, ok(lease("me", "9", 0)))
        .put(
            PATH,
            json!({"spec": {"holderIdentity": "me"}}),
            Reply::Echo(200),
        )
        .put(
            PATH,
            json!({"metadata": {"resourceVersion": "1000"}, "spec": {"holderIdentity": "", "leaseDurationSeconds": 1}}),
            Reply::After(
                Box::new(move || {
                    assert!(!at_release.is_leader(), "writes stop before the release");
                }),
                Box::new(Reply::Echo(200)),
            ),
        )
        .start();
    let mut e = elector(client);
    {
        let mut watch = gate.clone();
        let campaign = e.campaign(&switch, &metrics);
        tokio::pin!(campaign);
        tokio::select! {
            _ = &mut campaign => unreachable!("the campaign runs until dropped"),
            leading = watch.changed() => assert!(leading, "leads after the first round"),
        }
    }
    assert_eq!(metrics.leader(), 1);
    e.step_down(&switch, &metrics).await;
    assert!(!gate.is_leader());
    assert_eq!(metrics.leader(), 0);
    drop(e);
    verifier.finish().await;
}

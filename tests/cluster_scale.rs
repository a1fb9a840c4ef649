//! What the controllers cost, counted at a fake API server with watches
//! (tests/cluster_support/fake_api.rs): their work follows what changed,
//! not the size of the cluster.
//!
//! - a resync with nothing changed sends no request at all;
//! - a ServiceAccount event in a namespace that has not opted in to
//!   certificate Secrets sends no request;
//! - a new root (the CA Secret written, as `ca renew-root` and `kubectl
//!   apply` do) is seen through the Secret's watch and costs one write per
//!   object that holds it: no controller restarts, nothing is listed or
//!   watched again, nothing is read.

#[path = "cluster_support/fake_api.rs"]
mod fake_api;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, FromArgMatches};
use fake_api::{FakeApi, Seen};
use outrigger::cluster::authority::{ClusterCa, IssuedCert};
use outrigger::cluster::leader::LeaderGate;
use outrigger::cluster::metrics::ClusterMetrics;
use outrigger::cluster::sa_secrets::{SecretsConfig, desired_secret};
use outrigger::cluster::{ClusterArgs, current_ca, root_configmaps, run_with_client, sa_secrets};
use serde_json::{Value, json};
use tokio::sync::watch;

const HOUR: Duration = Duration::from_secs(3600);
const RESYNC: Duration = Duration::from_secs(60);
const NAMESPACES: usize = 40;
const OPT_IN: &str = "outrigger.dev/certificate-secrets";

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}, "status": {"phase": "Active"}})
}

fn root_configmap(namespace: &str, root_pem: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "istio-ca-root-cert", "namespace": namespace, "labels": {"istio.io/config": "true"}},
        "data": {"root-cert.pem": root_pem}})
}

fn account(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")}})
}

fn secret_for(ca: &ClusterCa, namespace: &str, sa: &str) -> Value {
    let issued = ca
        .issue_workload("cluster.local", namespace, sa, HOUR, SystemTime::now())
        .unwrap();
    let account = serde_json::from_value(account(namespace, sa)).unwrap();
    let secret = desired_secret(&account, &issued, ca.root_pem(), &format!("istio.{sa}"));
    let mut value = serde_json::to_value(secret).unwrap();
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Secret");
    value
}

fn new_ca() -> Arc<ClusterCa> {
    Arc::new(ClusterCa::generate("cluster.local").unwrap().0)
}

/// A cluster of `NAMESPACES` namespaces holding `ca`'s root, one of them
/// (`secure`) opted in with three accounts whose Secrets are fresh, and
/// one (`plain`) not opted in.
fn settled_cluster(fake: &FakeApi, ca: &ClusterCa) {
    for i in 0..NAMESPACES {
        let name = format!("ns-{i}");
        fake.apply(namespace(&name, json!({})));
        fake.apply(root_configmap(&name, ca.root_pem()));
    }
    fake.apply(namespace("plain", json!({})));
    fake.apply(root_configmap("plain", ca.root_pem()));
    fake.apply(namespace("secure", json!({OPT_IN: "enabled"})));
    fake.apply(root_configmap("secure", ca.root_pem()));
    for sa in ["a", "b", "c"] {
        fake.apply(account("secure", sa));
        fake.apply(secret_for(ca, "secure", sa));
    }
}

/// The root ConfigMap and certificate Secret controllers, leading, with
/// the CA from `current`.
fn start_controllers(
    fake: &FakeApi,
    current: current_ca::CurrentCa,
    metrics: &ClusterMetrics,
) -> tokio::task::JoinHandle<()> {
    let client = fake.client();
    let roots = root_configmaps::run(
        client.clone(),
        LeaderGate::always(),
        metrics.clone(),
        current.clone(),
        RESYNC,
        8,
    );
    let secrets = sa_secrets::run(
        client,
        LeaderGate::always(),
        metrics.clone(),
        current,
        SecretsConfig {
            trust_domain: "cluster.local".into(),
            ttl: HOUR,
            renew_ratio: 0.5,
        },
        RESYNC,
        8,
    );
    tokio::spawn(async move {
        tokio::join!(roots, secrets);
    })
}

fn count(requests: &[Seen], what: impl Fn(&Seen) -> bool) -> usize {
    requests.iter().filter(|r| what(r)).count()
}

#[tokio::test(start_paused = true)]
async fn a_resync_with_nothing_changed_sends_no_request() {
    let fake = FakeApi::new();
    let ca = new_ca();
    settled_cluster(&fake, &ca);
    let metrics = ClusterMetrics::default();
    let run = start_controllers(&fake, current_ca::fixed(Arc::clone(&ca)), &metrics);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start_up = fake.requests();
    // Start-up: one listing and one watch per cache (namespaces and root
    // ConfigMaps; namespaces, ServiceAccounts and certificate Secrets), and
    // nothing else: everything is already right.
    assert_eq!(count(&start_up, Seen::is_list), 5, "{start_up:#?}");
    assert_eq!(count(&start_up, Seen::is_watch), 5, "{start_up:#?}");
    assert_eq!(start_up.len(), 10, "{start_up:#?}");

    // Ten resyncs later, still nothing read or written (watches are
    // renewed when the API server's timeout ends them, every ~5 minutes, as
    // with any watch; that is not a read).
    tokio::time::sleep(RESYNC * 10).await;
    let after: Vec<Seen> = fake.requests()[start_up.len()..]
        .iter()
        .filter(|r| !r.is_watch())
        .cloned()
        .collect();
    assert_eq!(after, [], "no request after start-up");
    assert_eq!(metrics.root_configmap_writes(), 0);
    assert_eq!(metrics.secret_certificates_issued(), 0);

    // The control: a ConfigMap someone broke is repaired by the next event.
    fake.apply(root_configmap("ns-3", "tampered"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let repaired: Vec<Seen> = fake.requests()[start_up.len()..]
        .iter()
        .filter(|r| !r.is_watch())
        .cloned()
        .collect();
    assert_eq!(repaired.len(), 1, "{repaired:#?}");
    assert_eq!(repaired[0].method, "PATCH");
    run.abort();
    fake.assert_clean();
}

#[tokio::test(start_paused = true)]
async fn a_service_account_event_in_a_namespace_not_opted_in_sends_no_request() {
    let fake = FakeApi::new();
    let ca = new_ca();
    settled_cluster(&fake, &ca);
    let metrics = ClusterMetrics::default();
    let run = start_controllers(&fake, current_ca::fixed(Arc::clone(&ca)), &metrics);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = fake.requests().len();

    for i in 0..20 {
        fake.apply(account("plain", &format!("app-{i}")));
    }
    fake.apply(account("ns-7", "worker"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(fake.requests().len(), before, "{:#?}", fake.requests());

    // The control: the same in the opted-in namespace is one create.
    fake.apply(account("secure", "web"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = fake.requests();
    assert_eq!(after.len(), before + 1, "{after:#?}");
    assert_eq!(
        (after[before].method.as_str(), after[before].path.as_str()),
        ("POST", "/api/v1/namespaces/secure/secrets")
    );
    assert_eq!(metrics.secret_certificates_issued(), 1);

    // When `plain` opts in, each of its 20 accounts gets its Secret: one
    // create each, nothing read.
    fake.apply(namespace("plain", json!({OPT_IN: "enabled"})));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let opted: Vec<Seen> = fake.requests()[before + 1..]
        .iter()
        .filter(|r| !r.is_watch())
        .cloned()
        .collect();
    assert_eq!(opted.len(), 20, "{opted:#?}");
    assert!(
        opted
            .iter()
            .all(|r| r.method == "POST" && r.path == "/api/v1/namespaces/plain/secrets")
    );
    assert_eq!(metrics.secret_certificates_issued(), 21);
    run.abort();
    fake.assert_clean();
}

#[tokio::test(start_paused = true)]
async fn a_new_root_costs_one_write_per_object_and_no_restart() {
    let fake = FakeApi::new();
    let old = new_ca();
    settled_cluster(&fake, &old);
    let metrics = ClusterMetrics::default();
    let (send, current) = watch::channel(Arc::clone(&old));
    let run = start_controllers(&fake, current, &metrics);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = fake.requests().len();

    let new = new_ca();
    send.send_replace(Arc::clone(&new));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = fake.requests()[before..].to_vec();
    // One patch per namespace's ConfigMap, one replace per Secret; no read,
    // no listing, no new watch.
    let configmaps = NAMESPACES + 2;
    assert_eq!(
        count(&after, |r| r.method == "PATCH"
            && r.path.ends_with("/istio-ca-root-cert")),
        configmaps
    );
    assert_eq!(
        count(&after, |r| r.method == "PUT"
            && r.path.contains("/secrets/istio.")),
        3
    );
    assert_eq!(after.len(), configmaps + 3, "{after:#?}");
    for (path, cm) in fake.objects_under("/api/v1/namespaces/") {
        if path.ends_with("/configmaps/istio-ca-root-cert") {
            assert_eq!(cm["data"]["root-cert.pem"], new.root_pem(), "{path}");
        }
    }
    assert_eq!(metrics.root_configmap_writes() as usize, configmaps);
    assert_eq!(metrics.secret_certificates_issued(), 3);
    run.abort();
    fake.assert_clean();
}

const CA_SECRET: &str = "/api/v1/namespaces/outrigger-system/secrets/istio-ca-secret";
const MWC: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/outrigger-sidecar-injector";

fn webhook_configuration() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "outrigger-sidecar-injector"},
        "webhooks": [{
            "name": "sidecar-injector.outrigger.dev",
            "clientConfig": {"service": {"name": "outrigger", "namespace": "outrigger-system"}, "caBundle": "c3RhbGU="},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }],
    })
}

fn bundle(fake: &FakeApi) -> String {
    let config = fake.object(MWC).unwrap();
    let bytes: k8s_openapi::ByteString =
        serde_json::from_value(config["webhooks"][0]["clientConfig"]["caBundle"].clone()).unwrap();
    String::from_utf8(bytes.0).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_new_root_in_the_ca_secret_is_published_everywhere_through_its_watch() {
    let fake = FakeApi::new();
    fake.apply(webhook_configuration());
    for i in 0..NAMESPACES {
        fake.apply(namespace(&format!("ns-{i}"), json!({})));
    }
    let matches = ClusterArgs::augment_args(clap::Command::new("t")).get_matches_from([
        "t",
        "--pod-name",
        "replica-1",
        "--resync-period",
        "1h",
    ]);
    let args = ClusterArgs::from_arg_matches(&matches).unwrap();
    let (serving_tx, serving_rx) = watch::channel::<Option<IssuedCert>>(None);
    let (ca_tx, ca_rx) = watch::channel::<Option<Arc<ClusterCa>>>(None);
    let run = tokio::spawn(run_with_client(
        fake.client(),
        "outrigger-system".into(),
        args,
        ClusterMetrics::default(),
        Arc::new(serving_tx),
        ca_tx,
        std::future::pending(),
    ));
    tokio::time::sleep(Duration::from_secs(30)).await;
    let first = ca_rx.borrow().clone().expect("the CA is published");
    assert_eq!(bundle(&fake), first.root_pem());
    let before = fake.requests().len();

    // An operator renews the root (`outrigger ca renew-root`) and applies it.
    let mut secret = fake.object(CA_SECRET).expect("the CA Secret was created");
    let material = outrigger::cluster::ca_secret::material_from_secret(
        &serde_json::from_value(secret.clone()).unwrap(),
        "outrigger-system",
    )
    .unwrap();
    let renewed = outrigger::ca::renew::renew_root(
        &material,
        Duration::from_secs(20 * 365 * 86_400),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    secret["data"]["ca-cert.pem"] = serde_json::to_value(k8s_openapi::ByteString(
        renewed.ca_cert.clone().into_bytes(),
    ))
    .unwrap();
    fake.apply(secret);
    // Well before any resync (an hour): the watch brings it.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let now = ca_rx.borrow().clone().expect("still published");
    assert_eq!(now.root_pem().trim(), renewed.ca_cert.trim(), "taken");
    assert_eq!(bundle(&fake), now.root_pem(), "the caBundle carries it");
    let serving = serving_rx.borrow().clone().expect("a serving certificate");
    now.check_chain(&serving.chain_pem, SystemTime::now())
        .unwrap();
    for i in 0..NAMESPACES {
        let cm = fake
            .object(&format!(
                "/api/v1/namespaces/ns-{i}/configmaps/istio-ca-root-cert"
            ))
            .unwrap();
        assert_eq!(cm["data"]["root-cert.pem"], now.root_pem());
    }
    // No controller started again: nothing listed or watched anew. The
    // only reads are the caBundle's GET of its one configuration, at the
    // root change and at the watch event of its own patch.
    let after = fake.requests()[before..].to_vec();
    let renewals = count(&after, |r| {
        r.method == "PUT" && r.path.ends_with("/leases/outrigger-leader")
    });
    let lease_reads = count(&after, |r| {
        r.method == "GET" && r.path.ends_with("/leases/outrigger-leader")
    });
    assert_eq!(count(&after, Seen::is_list), 0, "{after:#?}");
    assert_eq!(count(&after, Seen::is_watch), 0, "{after:#?}");
    assert_eq!(
        count(&after, |r| r.method == "PATCH"
            && r.path.ends_with("/istio-ca-root-cert")),
        NAMESPACES
    );
    assert_eq!(count(&after, |r| r.method == "PATCH" && r.path == MWC), 1);
    assert_eq!(count(&after, |r| r.method == "GET" && r.path == MWC), 2);
    assert_eq!(
        after.len(),
        NAMESPACES + 3 + renewals + lease_reads,
        "{after:#?}"
    );
    run.abort();
    fake.assert_clean();
}

//! The whole in-cluster start-up, wired as `outrigger serve` runs it, against
//! a small stateful fake API server (requests arrive concurrently from the
//! controllers, so this one routes by path instead of following a script):
//! the CA Secret is created, the CA published, the lease taken, the serving
//! certificate installed, and the stale caBundle patched once with the new
//! root, all on a paused clock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use clap::{Args, FromArgMatches};
use http::{Request, Response};
use kube::client::Body;
use outrigger::cluster::authority::{ClusterCa, IssuedCert};
use outrigger::cluster::{ClusterArgs, ClusterMetrics, run_with_client};
use serde_json::{Value, json};
use tokio::sync::watch;

const SECRET: &str = "/api/v1/namespaces/outrigger-system/secrets/istio-ca-secret";
const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/outrigger-system/leases/outrigger-leader";
const MWCS: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";

#[derive(Default)]
struct World {
    objects: BTreeMap<String, Value>,
    writes: Vec<(String, String, Value)>,
}

fn reply(status: u16, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(value).unwrap()))
        .unwrap()
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items})
}

fn mwc(bundle: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "outrigger-sidecar-injector", "resourceVersion": "3"},
        "webhooks": [{
            "name": "sidecar-injector.outrigger.dev",
            "clientConfig": {"service": {"name": "outrigger", "namespace": "outrigger-system"}, "caBundle": bundle},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }],
    })
}

/// Serves requests until the client goes away. Watches are held open and
/// never answered; unknown objects are 404; lists are empty except for the
/// webhook configuration.
async fn fake_api(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    world: Arc<Mutex<World>>,
) {
    let mut open_watches = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if query.contains("watch=true") {
            open_watches.push(send);
            continue;
        }
        let mut world = world.lock().unwrap();
        if method != "GET" {
            world
                .writes
                .push((method.clone(), path.clone(), body.clone()));
        }
        let response = match (method.as_str(), path.as_str()) {
            ("GET", SECRET) | ("GET", LEASE) => match world.objects.get(&path) {
                Some(v) => reply(200, v),
                None => reply(404, &not_found()),
            },
            ("POST", p) if SECRET.starts_with(p) || LEASE.starts_with(p) => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                let mut stored = body.clone();
                stored["metadata"]["resourceVersion"] = json!("10");
                world.objects.insert(format!("{p}/{name}"), stored.clone());
                reply(201, &stored)
            }
            ("PUT", LEASE) => {
                world.objects.insert(path.clone(), body.clone());
                reply(200, &body)
            }
            ("GET", MWCS) => reply(200, &list(vec![world.objects[MWCS].clone()])),
            ("GET", p) if p == format!("{MWCS}/outrigger-sidecar-injector") => {
                reply(200, &world.objects[MWCS])
            }
            ("PATCH", p) if p == format!("{MWCS}/outrigger-sidecar-injector") => {
                let bundle = body["webhooks"][0]["clientConfig"]["caBundle"].clone();
                world.objects.get_mut(MWCS).unwrap()["webhooks"][0]["clientConfig"]["caBundle"] =
                    bundle;
                reply(200, &world.objects[MWCS])
            }
            ("GET", _) if !path.contains("/namespaces/") || path.ends_with("s") => {
                reply(200, &list(vec![]))
            }
            _ => reply(404, &not_found()),
        };
        send.send_response(response);
    }
    drop(open_watches);
}

#[tokio::test(start_paused = true)]
async fn start_up_creates_the_ca_takes_the_lease_and_fixes_the_bundle() {
    let world = Arc::new(Mutex::new(World::default()));
    world
        .lock()
        .unwrap()
        .objects
        .insert(MWCS.to_string(), mwc("c3RhbGU=")); // "stale"
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(fake_api(handle, Arc::clone(&world)));
    let client = kube::Client::new(service, "default");

    let matches = ClusterArgs::augment_args(clap::Command::new("t")).get_matches_from([
        "t",
        "--pod-name",
        "replica-1",
    ]);
    let args = ClusterArgs::from_arg_matches(&matches).unwrap();
    let metrics = ClusterMetrics::default();
    let (serving_tx, serving_rx) = watch::channel::<Option<IssuedCert>>(None);
    let (ca_tx, ca_rx) = watch::channel::<Option<Arc<ClusterCa>>>(None);
    let run = run_with_client(
        client,
        "outrigger-system".into(),
        args,
        metrics.clone(),
        Arc::new(serving_tx),
        ca_tx,
        std::future::pending(),
    );
    let _ = tokio::time::timeout(Duration::from_secs(30), run).await;
    server.await.unwrap();

    let ca = ca_rx.borrow().clone().expect("the CA is published");
    let serving = serving_rx
        .borrow()
        .clone()
        .expect("a serving certificate is installed");
    ca.check_chain(&serving.chain_pem, SystemTime::now())
        .unwrap();
    assert_eq!(metrics.leader(), 1);
    assert_eq!(metrics.cabundle_patches(true), 1);

    let world = world.lock().unwrap();
    let writes: Vec<(&str, &str)> = world
        .writes
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .filter(|(m, _)| *m != "PUT")
        .collect();
    assert_eq!(
        writes,
        vec![
            ("POST", "/api/v1/namespaces/outrigger-system/secrets"),
            (
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/outrigger-system/leases"
            ),
            (
                "PATCH",
                "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/outrigger-sidecar-injector"
            ),
        ]
    );
    let secret = &world.writes[0].2;
    let stored: k8s_openapi::ByteString =
        serde_json::from_value(secret["data"]["ca-cert.pem"].clone()).unwrap();
    assert_eq!(
        String::from_utf8(stored.0).unwrap().trim(),
        ca.root_pem().trim()
    );
    let bundle: k8s_openapi::ByteString = serde_json::from_value(
        world.objects[MWCS]["webhooks"][0]["clientConfig"]["caBundle"].clone(),
    )
    .unwrap();
    assert_eq!(String::from_utf8(bundle.0).unwrap(), ca.root_pem());
}

#[tokio::test(start_paused = true)]
async fn plugged_in_cacerts_are_used_without_a_secret_or_lease() {
    let (ca, material) = ClusterCa::generate("cluster.local").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca-cert.pem"), &material.ca_cert).unwrap();
    std::fs::write(dir.path().join("ca-key.pem"), material.ca_key.expose()).unwrap();
    let world = Arc::new(Mutex::new(World::default()));
    world
        .lock()
        .unwrap()
        .objects
        .insert(MWCS.to_string(), mwc("c3RhbGU="));
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(fake_api(handle, Arc::clone(&world)));
    let client = kube::Client::new(service, "default");
    let dir_arg = dir.path().display().to_string();
    let matches = ClusterArgs::augment_args(clap::Command::new("t")).get_matches_from([
        "t",
        "--cacerts-dir",
        &dir_arg,
        "--leader-elect",
        "false",
    ]);
    let args = ClusterArgs::from_arg_matches(&matches).unwrap();
    let metrics = ClusterMetrics::default();
    let (serving_tx, _serving_rx) = watch::channel::<Option<IssuedCert>>(None);
    let (ca_tx, ca_rx) = watch::channel::<Option<Arc<ClusterCa>>>(None);
    let run = run_with_client(
        client,
        "outrigger-system".into(),
        args,
        metrics.clone(),
        Arc::new(serving_tx),
        ca_tx,
        std::future::pending(),
    );
    let _ = tokio::time::timeout(Duration::from_secs(30), run).await;
    server.await.unwrap();

    let published = ca_rx.borrow().clone().expect("the CA is published");
    assert_eq!(published.root_pem(), ca.root_pem());
    assert_eq!(metrics.leader(), 1, "a single writer without election");
    let world = world.lock().unwrap();
    let writes: Vec<&str> = world
        .writes
        .iter()
        .map(|(m, p, _)| match m.as_str() {
            "PATCH" => p.as_str(),
            _ => "unexpected write",
        })
        .collect();
    assert_eq!(writes, vec![format!("{MWCS}/outrigger-sidecar-injector")]);
}

/// A replica running as `serve` runs it, against the fake API server (with
/// a stale caBundle), 30 s into its start-up on the paused clock; `stop`
/// asks it to shut down.
struct Running {
    world: Arc<Mutex<World>>,
    server: tokio::task::JoinHandle<()>,
    run: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    metrics: ClusterMetrics,
}

async fn start_stoppable(extra_args: &[&str]) -> Running {
    let world = Arc::new(Mutex::new(World::default()));
    world
        .lock()
        .unwrap()
        .objects
        .insert(MWCS.to_string(), mwc("c3RhbGU="));
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(fake_api(handle, Arc::clone(&world)));
    let client = kube::Client::new(service, "default");
    let mut argv = vec!["t", "--pod-name", "replica-1"];
    argv.extend_from_slice(extra_args);
    let matches = ClusterArgs::augment_args(clap::Command::new("t")).get_matches_from(argv);
    let args = ClusterArgs::from_arg_matches(&matches).unwrap();
    let metrics = ClusterMetrics::default();
    let (serving_tx, _serving_rx) = watch::channel::<Option<IssuedCert>>(None);
    let (ca_tx, _ca_rx) = watch::channel::<Option<Arc<ClusterCa>>>(None);
    let (stop, stopping) = watch::channel(false);
    let run = tokio::spawn(run_with_client(
        client,
        "outrigger-system".into(),
        args,
        metrics.clone(),
        Arc::new(serving_tx),
        ca_tx,
        async move {
            let mut stopping = stopping;
            let _ = stopping.wait_for(|stop| *stop).await;
        },
    ));
    tokio::time::sleep(Duration::from_secs(30)).await;
    Running {
        world,
        server,
        run,
        stop,
        metrics,
    }
}

#[tokio::test(start_paused = true)]
async fn on_shutdown_the_controllers_stop_and_the_leader_releases_the_lease() {
    let Running {
        world,
        server,
        run,
        stop,
        metrics,
        ..
    } = start_stoppable(&[]).await;
    assert_eq!(metrics.leader(), 1, "leads before the shutdown");
    let writes_before = world.lock().unwrap().writes.len();
    stop.send(true).unwrap();
    // Returns by itself once the lease is released.
    run.await.unwrap();
    server.await.unwrap();
    assert_eq!(metrics.leader(), 0);

    let world = world.lock().unwrap();
    let after: Vec<&(String, String, Value)> = world.writes[writes_before..].iter().collect();
    assert_eq!(after.len(), 1, "one write after the shutdown: {after:?}");
    let (method, path, body) = after[0];
    assert_eq!((method.as_str(), path.as_str()), ("PUT", LEASE));
    assert_eq!(body["spec"]["holderIdentity"], "", "{body}");
    assert_eq!(body["spec"]["leaseDurationSeconds"], 1, "{body}");
    assert_eq!(world.objects[LEASE]["spec"]["holderIdentity"], "");
}

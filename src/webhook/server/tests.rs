//! The in-cluster wiring without a cluster: the controllers' channels are
//! fed by hand, as `cluster::run` would feed them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Request, Response};
use kube::client::Body;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tokio::sync::watch;

use super::ca_service::{self, CaSupply};
use super::in_cluster::ClusterFeeds;
use super::*;
use crate::ca::grpc::CaServiceConfig;
use crate::ca::grpc::client::{ConnectOptions, RequestOptions, request_certificate};
use crate::ca::grpc::server::ServerLimits;
use crate::cluster::authority::{ClusterCa, IssuedCert};

/// Polls `done` until it holds (the tasks under test run concurrently).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never happened: {what}");
}

fn serving(ca: &ClusterCa) -> IssuedCert {
    ca.issue_serving(
        &["localhost".into(), "127.0.0.1".into()],
        Duration::from_secs(3600),
        SystemTime::now(),
    )
    .unwrap()
}

fn leaf_der(issued: &IssuedCert) -> CertificateDer<'static> {
    CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
}

struct Feeds {
    ca: watch::Sender<Option<Arc<ClusterCa>>>,
    serving: watch::Sender<Option<IssuedCert>>,
    client: watch::Sender<Option<kube::Client>>,
    feeds: ClusterFeeds,
}

fn feeds() -> Feeds {
    let (ca, ca_rx) = watch::channel(None);
    let (serving, serving_rx) = watch::channel(None);
    let (client, client_rx) = watch::channel(None);
    Feeds {
        ca,
        serving,
        client,
        feeds: ClusterFeeds {
            ca: ca_rx,
            serving: serving_rx,
            client: client_rx,
        },
    }
}

#[tokio::test]
async fn in_a_cluster_the_webhook_is_ready_once_the_ca_and_its_certificate_are_in() {
    let f = feeds();
    let resolver = Arc::new(CertResolver::empty());
    let readiness = Arc::new(Readiness::default());
    readiness.set_config_loaded();
    // `serve` says so once the port listens, after the certificate is in.
    readiness.set_webhook_listening();
    let metrics = WebhookMetrics::register(&MetricsRegistry::new());
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.pem");
    let task = tokio::spawn(super::in_cluster::follow(
        f.feeds.clone(),
        Some(resolver.clone()),
        metrics,
        readiness.clone(),
        Some(bundle.clone()),
    ));
    assert!(readiness.check().is_err());
    assert!(resolver.current().is_none());

    let (ca, _) = ClusterCa::generate("cluster.local").unwrap();
    let ca = Arc::new(ca);
    f.ca.send_replace(Some(ca.clone()));
    eventually("the root is written", || bundle.exists()).await;
    assert_eq!(std::fs::read_to_string(&bundle).unwrap(), ca.root_pem());
    assert_eq!(
        readiness.check(),
        Err("the serving certificate is not loaded")
    );

    let first = serving(&ca);
    f.serving.send_replace(Some(first.clone()));
    eventually("ready", || readiness.check().is_ok()).await;
    assert_eq!(resolver.current().unwrap().key.cert[0], leaf_der(&first));

    // A broken certificate is refused and the current one kept; the next
    // good one is swapped in.
    let mut broken = serving(&ca);
    broken.chain_pem = "not a certificate".into();
    f.serving.send_replace(Some(broken));
    let renewed = serving(&ca);
    f.serving.send_replace(Some(renewed.clone()));
    eventually("the renewed certificate is served", || {
        resolver.current().unwrap().key.cert[0] == leaf_der(&renewed)
    })
    .await;
    assert!(readiness.check().is_ok());
    task.abort();
}

#[tokio::test]
async fn in_a_cluster_the_ca_service_starts_with_the_cluster_ca_and_certificate() {
    let f = feeds();
    let port = BoundPort::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = port.local_addr();
    let config = CaServiceConfig {
        trust_domain: "cluster.local".into(),
        ..CaServiceConfig::default()
    };
    let auth = ca_service::authenticators(&config).unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(ca_service::run(
        port,
        CaServiceOptions {
            listen: addr,
            config,
            limits: ServerLimits::default(),
        },
        auth,
        CaSupply::Cluster(f.feeds.clone()),
        CaMetrics::new(),
        LimitMetrics::default(),
        stop,
    ));

    // The API server is never called here: renewal by client certificate
    // comes before TokenReview.
    let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    f.client
        .send_replace(Some(kube::Client::new(service, "outrigger-system")));
    let (ca, _) = ClusterCa::generate("cluster.local").unwrap();
    let ca = Arc::new(ca);
    f.ca.send_replace(Some(ca.clone()));
    // No serving certificate yet: a connection is refused, not accepted
    // and then failed in the TLS handshake.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let early = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(early.kind(), std::io::ErrorKind::ConnectionRefused);
    f.serving.send_replace(Some(serving(&ca)));

    let workload = ca
        .issue_workload(
            "cluster.local",
            "shop",
            "frontend",
            Duration::from_secs(3600),
            SystemTime::now(),
        )
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = RequestOptions {
        connect: ConnectOptions {
            addr: addr.to_string(),
            ca_bundle_pem: ca.root_pem().to_string(),
            server_name: Some("localhost".into()),
            client_identity: Some((
                workload.chain_pem.clone(),
                workload.key_pem.expose().to_string(),
            )),
        },
        token: None,
        ttl: None,
        out_dir: out.path().to_path_buf(),
    };
    let mut written = None;
    for _ in 0..2000 {
        // Refused connections until the service has started.
        if let Ok(done) = request_certificate(&options).await {
            written = Some(done);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let written = written.expect("the CA service never answered");
    let chain = std::fs::read_to_string(&written.cert_chain).unwrap();
    let leaf = ca.check_chain(&chain, SystemTime::now()).unwrap();
    assert_eq!(
        leaf.uris,
        vec!["spiffe://cluster.local/ns/shop/sa/frontend"]
    );

    stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the CA service stops when told")
        .unwrap();
}

#[tokio::test]
async fn in_a_cluster_the_ca_service_waits_for_the_ca_and_stops_when_told() {
    let f = feeds();
    let port = BoundPort::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = port.local_addr();
    let config = CaServiceConfig::default();
    let auth = ca_service::authenticators(&config).unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(ca_service::run(
        port,
        CaServiceOptions {
            listen: addr,
            config,
            limits: ServerLimits::default(),
        },
        auth,
        CaSupply::Cluster(f.feeds.clone()),
        CaMetrics::new(),
        LimitMetrics::default(),
        stop,
    ));
    stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("a CA service still waiting for its CA stops when told")
        .unwrap();
    drop(f);
}

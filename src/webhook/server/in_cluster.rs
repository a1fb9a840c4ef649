//! `outrigger serve` in a cluster: starts the controllers of
//! [`crate::cluster`] beside the webhook and hands their results to the
//! listeners: the shared CA (for the CA service and `--ca-bundle-out`), the
//! self-issued serving certificate (for the webhook's and the CA service's
//! TLS), and the API client (for TokenReview authentication).
//!
//! Everything arrives on `watch` channels, so each listener takes the
//! current value when it starts and every later renewal as it happens.

use std::sync::Arc;

use std::path::PathBuf;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::cluster::authority::{ClusterCa, IssuedCert};
use crate::cluster::{self, ClusterArgs, ClusterMetrics, ServingCertSink, args::NAMESPACE_FILE};
use crate::metrics::MetricsRegistry;
use crate::webhook::metrics::WebhookMetrics;
use crate::webhook::monitoring::Readiness;
use crate::webhook::standalone_ca;
use crate::webhook::tls::{CertResolver, ServingCert};

/// What the in-cluster controllers publish, as they become available.
#[derive(Clone)]
pub struct ClusterFeeds {
    /// The shared CA, once loaded or created.
    pub ca: watch::Receiver<Option<Arc<ClusterCa>>>,
    /// The current serving certificate (renewed at half-life).
    pub serving: watch::Receiver<Option<IssuedCert>>,
    /// The API client, once connected.
    pub client: watch::Receiver<Option<kube::Client>>,
}

impl std::fmt::Debug for ClusterFeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterFeeds")
            .field("ca_ready", &self.ca.borrow().is_some())
            .field("serving_ready", &self.serving.borrow().is_some())
            .field("connected", &self.client.borrow().is_some())
            .finish()
    }
}

/// Registers the cluster metrics and spawns the controllers; they run,
/// retrying every API failure, until `shutdown` turns true: then they stop,
/// the leader releases its lease, and the returned task ends.
pub fn start(
    args: ClusterArgs,
    registry: &MetricsRegistry,
    shutdown: watch::Receiver<bool>,
) -> (ClusterFeeds, JoinHandle<()>) {
    let metrics = ClusterMetrics::default();
    registry.register_with(|registry| metrics.register(registry));
    let (ca_tx, ca) = watch::channel(None);
    let (serving_tx, serving) = watch::channel(None);
    let (client_tx, client) = watch::channel(None);
    let task = tokio::spawn(async move {
        let namespace_file = std::fs::read_to_string(NAMESPACE_FILE).ok();
        let namespace = args.resolve_namespace(namespace_file.as_deref());
        let stopped = super::wait_true(shutdown);
        tokio::pin!(stopped);
        let client = tokio::select! {
            client = cluster::connect(&args) => client,
            () = &mut stopped => return,
        };
        info!(namespace = %namespace, "connected to the Kubernetes API server");
        client_tx.send_replace(Some(client.clone()));
        let sink: Arc<dyn ServingCertSink> = Arc::new(serving_tx);
        cluster::run_with_client(client, namespace, args, metrics, sink, ca_tx, stopped).await;
    });
    (
        ClusterFeeds {
            ca,
            serving,
            client,
        },
        task,
    )
}

/// Waits until `rx` holds a value and returns it; `None` if the sender is
/// gone first.
pub async fn first<T: Clone>(rx: &mut watch::Receiver<Option<T>>) -> Option<T> {
    match rx.wait_for(Option::is_some).await {
        Ok(value) => value.clone(),
        Err(_) => None,
    }
}

/// Applies what the cluster controllers publish: the CA's root to
/// `bundle_out`, each serving certificate to the webhook (when it serves
/// the CA's certificate); ready once the first certificate is in.
pub async fn follow(
    mut feeds: ClusterFeeds,
    resolver: Option<Arc<CertResolver>>,
    metrics: WebhookMetrics,
    readiness: Arc<Readiness>,
    bundle_out: Option<PathBuf>,
) {
    let Some(ca) = first(&mut feeds.ca).await else {
        return;
    };
    if let Some(out) = &bundle_out {
        match standalone_ca::write_atomic(out, ca.root_pem().as_bytes(), 0o644) {
            Ok(()) => info!(file = %out.display(), "cluster CA root written"),
            Err(error) => warn!(%error, "cannot write the cluster CA root"),
        }
    }
    let mut serving = feeds.serving;
    let mut installed = false;
    loop {
        let issued = serving.borrow_and_update().clone();
        if let Some(issued) = issued {
            let applied = match &resolver {
                None => Ok(()),
                Some(resolver) => ServingCert::from_pem(
                    issued.chain_pem.as_bytes(),
                    issued.key_pem.expose().as_bytes(),
                    "the cluster serving certificate",
                )
                .map(|cert| {
                    metrics.set_certificate_expiry(cert.not_after);
                    resolver.swap(cert);
                }),
            };
            match applied {
                Ok(()) => {
                    if !installed {
                        info!("cluster CA and serving certificate installed: ready");
                        readiness.set_certificate_loaded();
                        installed = true;
                    }
                }
                Err(error) => {
                    warn!(%error, "cluster serving certificate refused; keeping the previous one")
                }
            }
        }
        if serving.changed().await.is_err() {
            return;
        }
    }
}

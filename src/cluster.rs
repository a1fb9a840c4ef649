//! In-cluster operation: everything that talks to the Kubernetes API (kube
//! crate), from building the client ([`connect()`]) on. The replicas share one
//! CA through a Secret ([`ca_secret`]), issue their own serving certificate
//! ([`serving_cert`]), keep the webhook's caBundle ([`ca_bundle`]),
//! distribute the root to every namespace ([`root_configmaps`]) and write
//! per-ServiceAccount certificate Secrets ([`sa_secrets`]), and renew the
//! Secret's root before it expires, every replica taking a new root it finds
//! there ([`root_renewal`]); only the lease holder ([`leader`]) writes, and
//! hands the lease over when it stops.
//!
//! Reconcile decisions are pure functions next to each controller; the IO
//! loops are thin ([`driver`]) and never return an error that would stop the
//! webhook: API errors are logged and retried with backoff.

pub mod args;
pub mod authority;
pub mod ca_bundle;
pub mod ca_secret;
pub mod cached;
pub mod connect;
pub mod current_ca;
pub mod driver;
pub mod error;
pub mod istiod_cert;
pub mod jwks;
pub mod leader;
pub mod metrics;
pub mod retry;
pub mod root_configmaps;
pub mod root_renewal;
pub mod sa_secrets;
pub mod serving_cert;
pub mod token_binding;
pub mod token_review;
pub mod watch_health;
pub mod writes;

use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{info, warn};

pub use args::ClusterArgs;
use authority::ClusterCa;
pub use connect::{ConnectError, connect, try_connect};
use current_ca::CurrentCa;
use leader::{Elector, LeaderGate, LeaseConfig};
pub use metrics::ClusterMetrics;
use retry::until_ok;
use sa_secrets::SecretsConfig;
pub use serving_cert::ServingCertSink;

/// Runs everything in-cluster until `shutdown`: connects (retrying), loads or
/// creates the shared CA (retrying) and publishes it on `ca_ready` (for the
/// gRPC CA service), then runs the serving certificate loop (into
/// `serving`), leader election and the caBundle, root ConfigMap and
/// certificate Secret controllers; when the CA Secret's root changes (its
/// watch, see [`root_renewal`]), it is published on `ca_ready` again and
/// the controllers write it where it belongs without restarting.
///
/// Never returns an error and never panics on API failures: every failure
/// (409, 500, timeouts, a malformed Secret) is logged and retried with
/// backoff, so the webhook keeps serving. When `shutdown` completes, the
/// controllers stop and the leader gives its lease up
/// ([`Elector::step_down`]), then this returns. Spawn it next to the server;
/// call it only when [`ClusterArgs::wants_cluster`] says so, after
/// [`ClusterArgs::validate`].
pub async fn run(
    args: ClusterArgs,
    metrics: ClusterMetrics,
    serving: Arc<dyn ServingCertSink>,
    ca_ready: watch::Sender<Option<Arc<ClusterCa>>>,
    shutdown: impl Future<Output = ()>,
) {
    let namespace_file = std::fs::read_to_string(args::NAMESPACE_FILE).ok();
    let namespace = args.resolve_namespace(namespace_file.as_deref());
    tokio::pin!(shutdown);
    let client = tokio::select! {
        client = connect(&args) => client,
        () = &mut shutdown => return,
    };
    info!(namespace = %namespace, "connected to the Kubernetes API server");
    run_with_client(
        client, namespace, args, metrics, serving, ca_ready, shutdown,
    )
    .await;
}

/// [`run`] past connecting: with a given client and namespace (tests drive
/// it with a fake API server).
pub async fn run_with_client(
    client: Client,
    namespace: String,
    args: ClusterArgs,
    metrics: ClusterMetrics,
    serving: Arc<dyn ServingCertSink>,
    ca_ready: watch::Sender<Option<Arc<ClusterCa>>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let load_ca = async {
        match &args.cacerts_dir {
            Some(dir) => {
                until_ok("load cacerts directory", || async {
                    ca_secret::load_from_dir(dir)
                })
                .await
            }
            None => {
                let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
                let (ca, origin) = until_ok("load or create the CA Secret", || {
                    ca_secret::load_or_create(&secrets, &namespace, args.trust_domain())
                })
                .await;
                info!(namespace = %namespace, ?origin, "CA ready");
                ca
            }
        }
    };
    let ca = tokio::select! {
        ca = load_ca => Arc::new(ca),
        () = &mut shutdown => return,
    };
    ca_ready.send_replace(Some(Arc::clone(&ca)));

    let (gate, mut election) = if args.leader_elect {
        let (switch, gate) = LeaderGate::manual(false);
        let hostname = std::env::var("HOSTNAME").ok();
        let cfg = LeaseConfig {
            name: args.lease_name.clone(),
            identity: args.resolve_identity(hostname.as_deref()),
            lease_duration: args.lease_duration,
            renew_deadline: args.lease_renew_deadline,
            retry_period: args.lease_retry_period,
        };
        let elector = Elector::new(Api::<Lease>::namespaced(client.clone(), &namespace), cfg);
        (gate, Some((elector, switch)))
    } else {
        metrics.set_leader(true);
        (LeaderGate::always(), None)
    };
    let campaign_metrics = metrics.clone();
    let election_loop = async {
        if let Some((elector, switch)) = election.as_mut() {
            elector.campaign(switch, &campaign_metrics).await;
        }
    };

    // The controllers read the CA in use from `current`; a new root in the
    // CA Secret (seen by its watch) is sent there and published everywhere
    // without restarting them. A `cacerts` directory is read once.
    let (current_tx, current) = watch::channel(Arc::clone(&ca));
    let follows_secret = args.cacerts_dir.is_none();
    let follow_root = async {
        if !follows_secret {
            return std::future::pending().await;
        }
        let what = format!("Secret {namespace}/{}", ca_secret::CA_SECRET_NAME);
        root_renewal::follow(
            Api::namespaced(client.clone(), &namespace),
            namespace.clone(),
            ca.authority().to_pem().ca_cert.clone(),
            gate.clone(),
            args.root_renew_ratio,
            args.resync_period,
            |material| match ClusterCa::from_material(&material, &what) {
                Ok(new) => {
                    info!(namespace = %namespace, "publishing the CA Secret's new root");
                    let new = Arc::new(new);
                    ca_ready.send_replace(Some(Arc::clone(&new)));
                    current_tx.send_replace(new);
                    true
                }
                Err(e) => {
                    warn!(error = %e, "the CA Secret's new root is not usable; keeping the current one");
                    false
                }
            },
        )
        .await;
    };
    let controllers = async {
        tokio::select! {
            () = ca_controllers(&client, &namespace, &args, &metrics, &gate, &current, &serving) => {}
            () = follow_root => {}
        }
    };

    let stopped_by_shutdown = tokio::select! {
        _ = async { tokio::join!(election_loop, controllers) } => false,
        () = &mut shutdown => true,
    };
    if !stopped_by_shutdown {
        warn!("in-cluster controllers stopped: their watch streams ended");
    }
    // Every controller's loop is dropped: no write is in flight any more, so
    // the lease can be handed over.
    if let Some((elector, switch)) = election.as_mut() {
        elector.step_down(switch, &metrics).await;
    }
}

/// The controllers that publish or use the root, with the CA in use from
/// `current`: the serving certificate, the caBundle, the root ConfigMaps
/// and the per-account Secrets (the last two only watch while this replica
/// leads). Ends only if their watch streams end.
async fn ca_controllers(
    client: &Client,
    namespace: &str,
    args: &ClusterArgs,
    metrics: &ClusterMetrics,
    gate: &LeaderGate,
    current: &CurrentCa,
    serving: &Arc<dyn ServingCertSink>,
) {
    let names = serving_cert::dns_names(&args.service_name, namespace, &args.extra_dns_names);
    let serving_loop = current_ca::restart_on_change(current.clone(), |ca| {
        serving_cert::run(
            ca,
            names.clone(),
            args.serving_cert_ttl,
            Arc::clone(serving),
        )
    });

    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let bundle_loop = ca_bundle::run_with_triggers(
        configs.clone(),
        gate.clone(),
        metrics.clone(),
        args.webhook_config_names.clone(),
        current.clone(),
        ca_bundle::watch_triggers(configs, &args.webhook_config_names),
        args.resync_period,
    );
    let root_loop = root_configmaps::run(
        client.clone(),
        gate.clone(),
        metrics.clone(),
        current.clone(),
        args.resync_period,
        args.write_concurrency,
    );
    let secrets_loop = sa_secrets::run(
        client.clone(),
        gate.clone(),
        metrics.clone(),
        current.clone(),
        SecretsConfig {
            trust_domain: args.trust_domain().to_string(),
            ttl: args.secret_ttl,
            renew_ratio: args.secret_renew_ratio,
        },
        args.resync_period,
        args.write_concurrency,
    );
    let istiod_loop = async {
        if let Some(config) = args.istiod_cert() {
            current_ca::restart_on_change(current.clone(), |ca| {
                istiod_cert::run(
                    client.clone(),
                    gate.clone(),
                    ca,
                    config.clone(),
                    args.resync_period,
                )
            })
            .await;
        }
    };
    tokio::join!(
        serving_loop,
        bundle_loop,
        root_loop,
        secrets_loop,
        istiod_loop
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send + 'static>(_: T) {}

    fn args(extra: &[&str]) -> ClusterArgs {
        let mut argv = vec!["t"];
        argv.extend_from_slice(extra);
        <ClusterArgs as clap::FromArgMatches>::from_arg_matches(
            &<ClusterArgs as clap::Args>::augment_args(clap::Command::new("t"))
                .get_matches_from(argv),
        )
        .unwrap()
    }

    #[test]
    fn run_can_be_spawned() {
        let args = args(&[]);
        let (tx, _rx) = watch::channel(None);
        let (sink, _) = watch::channel(None);
        // Only built, never polled: this checks the future is Send + 'static
        // so the server can tokio::spawn it.
        assert_send(run(
            args,
            ClusterMetrics::default(),
            Arc::new(sink),
            tx,
            std::future::pending(),
        ));
    }
}

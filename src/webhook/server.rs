//! `outrigger serve`'s process: load the config, the CA and the serving
//! certificate, listen on the webhook port (HTTPS), the CA service's port
//! (gRPC over TLS, [`ca_service`]) and the monitoring port (HTTP), keep
//! files and certificates fresh ([`certificate`]), run the cluster
//! controllers when in a cluster ([`in_cluster`]), and shut down gracefully.
//!
//! One CA serves the whole process: standalone, the one in `--ca-dir`; in a
//! cluster, the shared one the controllers load. It issues the webhook's
//! serving certificate (unless files are given) and signs workload
//! certificates, so one root is both the webhook's `caBundle` and the mesh's
//! trust anchor.
//!
//! Shutdown, once the `shutdown` future given to [`serve`] completes (the CLI
//! passes SIGTERM/SIGINT): `/readyz` turns false at once and HTTP/1.x
//! responses start carrying `Connection: close` (see [`crate::webhook::drain`]);
//! new connections are still accepted for `shutdown_delay`, while the
//! Service's endpoints drain;
//! then the webhook and CA service listeners close and in-flight requests
//! get up to `shutdown_grace` to finish; then the cluster controllers stop
//! and the leader releases its Lease (also within `shutdown_grace`), so
//! another replica takes over at once; then [`serve`] returns.

pub mod ca_service;
pub mod certificate;
pub mod in_cluster;
pub mod listener;
pub mod port;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::ca::RootOptions;
use crate::ca::grpc::config::ConfigError;
use crate::ca::grpc::metrics::CaMetrics;
use crate::cluster::ClusterArgs;
use crate::config::Config;
use crate::limits::{ConnectionLimits, LimitMetrics, Listener};
use crate::metrics::MetricsRegistry;
use crate::webhook::drain::Draining;
use crate::webhook::metrics::WebhookMetrics;
use crate::webhook::monitoring::{self, Readiness};
use crate::webhook::reload::{self, FileSet};
use crate::webhook::standalone_ca::{self, CaError};
use crate::webhook::tls::{self, CertResolver, TlsError};
use crate::webhook::{AppState, Limits};
pub use ca_service::CaServiceOptions;
use ca_service::CaSupply;
use listener::Serving;
use port::BoundPort;

/// Where the webhook's serving certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files, watched and reloaded.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// Issued by the process's CA: standalone, for `dns_names` (renewed at
    /// two thirds of its life); in a cluster, by the controllers for the
    /// Service's names (`dns_names` unused).
    FromCa {
        /// DNS names and IP addresses to serve (standalone).
        dns_names: Vec<String>,
    },
}

/// Where the process's CA comes from.
#[derive(Debug, Clone)]
pub enum CaSource {
    /// Standalone: a CA in a local directory, created on first start.
    Directory {
        /// The directory (Istio's cacerts layout).
        dir: PathBuf,
        /// How a new root is made (its trust domain).
        root: RootOptions,
    },
    /// In a cluster: the controllers of [`crate::cluster`] load or create
    /// the shared CA (checked with [`ClusterArgs::validate`] beforehand).
    Cluster(Box<ClusterArgs>),
}

/// Everything `outrigger serve` is told.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The webhook's HTTPS address (port 0: any free port).
    pub listen: SocketAddr,
    /// The monitoring port's HTTP address (port 0: any free port).
    pub monitoring_listen: SocketAddr,
    /// The webhook's serving certificate's source.
    pub tls: TlsSource,
    /// The CA's source.
    pub ca: CaSource,
    /// Where to write the CA's root certificate (PEM: the webhook's
    /// `caBundle` when the CA issues its certificate, and what clients of
    /// the CA service trust).
    pub ca_bundle_out: Option<PathBuf>,
    /// The CA service (`None`: not started).
    pub ca_service: Option<CaServiceOptions>,
    /// The engine's config file (`None`: the built-in defaults).
    pub config: Option<PathBuf>,
    /// Per-request limits.
    pub limits: Limits,
    /// The webhook's connection limits (the CA service's are in
    /// [`CaServiceOptions`]; the monitoring port's are
    /// [`ConnectionLimits::MONITORING`] with these timeouts).
    pub connections: ConnectionLimits,
    /// How long new connections are still accepted after shutdown begins.
    pub shutdown_delay: Duration,
    /// How long in-flight requests get to finish after that.
    pub shutdown_grace: Duration,
    /// How often watched files are polled.
    pub reload_interval: Duration,
    /// A file to write the bound addresses to, as JSON
    /// `{"listen": "...", "monitoring": "...", "ca": "..."}` (`ca` only with
    /// the CA service), once all are bound.
    pub addresses_out: Option<PathBuf>,
    /// The process's metrics registry: the webhook registers its metrics
    /// here and `/metrics` serves everything in it, so the other parts of
    /// `outrigger serve` (CA service, controllers) register into the same.
    pub registry: MetricsRegistry,
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config file is unusable.
    #[error("config {path}: {source}")]
    Config {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: reload::ConfigFileError,
    },
    /// The config file is unreadable.
    #[error("cannot read config {path}: {source}")]
    ReadConfig {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate files are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The standalone CA is unusable.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The CA service's authenticator settings are unusable.
    #[error("CA service: {0}")]
    CaService(#[source] ConfigError),
    /// A port could not be bound.
    #[error(
        "cannot listen on {addr} (is another outrigger or another server using it? choose another address with --listen, --ca-listen or --monitoring-listen)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the server until `shutdown` completes and the drain is over.
pub async fn serve(
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let registry = options.registry.clone();
    let metrics = WebhookMetrics::register(&registry);
    let limit_metrics = LimitMetrics::register(&registry);
    let ca_metrics = CaMetrics::new();
    registry.register_with(|registry| ca_metrics.register(registry));
    let readiness = Arc::new(Readiness::default());

    let (config, config_files) = load_config(options.config.as_deref())?;
    let config = Arc::new(ArcSwap::from_pointee(config));
    readiness.set_config_loaded();

    // The CA service's authenticators first: a bad file stops start-up.
    let ca_auth = match &options.ca_service {
        Some(service) => {
            Some(ca_service::authenticators(&service.config).map_err(ServeError::CaService)?)
        }
        None => None,
    };
    let standalone = match &options.ca {
        CaSource::Directory { dir, root } => Some(certificate::load_standalone(
            dir,
            root,
            options.ca_bundle_out.as_deref(),
        )?),
        CaSource::Cluster(_) => None,
    };
    let resolver = Arc::new(CertResolver::empty());
    let renewal =
        certificate::load_certificate(&options.tls, standalone.as_ref(), &resolver, &metrics)?;
    let server_config = tls::server_config(resolver.clone())?;
    if standalone.is_some() {
        // In a cluster, ready once the controllers' certificate is in.
        readiness.set_certificate_loaded();
    }

    // Every port is taken now (a port in use stops start-up); the webhook's
    // and the CA's listen only once they have a certificate (see `port`).
    let webhook_port = bind(options.listen)?;
    let monitoring_port = bind(options.monitoring_listen)?;
    let ca_port = match &options.ca_service {
        Some(service) => Some(bind(service.listen)?),
        None => None,
    };
    let listen = webhook_port.local_addr();
    let monitoring_addr = monitoring_port.local_addr();
    let ca_addr = ca_port.as_ref().map(BoundPort::local_addr);
    let monitoring_listener = monitoring_port
        .listen()
        .map_err(|source| ServeError::Bind {
            addr: monitoring_addr,
            source,
        })?;

    let mut background = Vec::new();
    if let Some(files) = config_files {
        background.push(reload::watch_config(
            files,
            config.clone(),
            options.reload_interval,
        ));
    }
    match renewal {
        certificate::Renewal::Files(files) => background.push(reload::watch_certificate(
            files,
            resolver.clone(),
            metrics.clone(),
            options.reload_interval,
        )),
        certificate::Renewal::Standalone { ca, names } => background.push(
            certificate::renew_standalone(ca, names, resolver.clone(), metrics.clone()),
        ),
        certificate::Renewal::Cluster => {}
    }
    let mut supply = standalone
        .as_ref()
        .map(|standalone| CaSupply::Ready(standalone.authority()));
    let (stop_cluster, cluster_stopping) = watch::channel(false);
    let mut cluster_task = None;
    if let CaSource::Cluster(args) = &options.ca {
        let (feeds, controllers) = in_cluster::start((**args).clone(), &registry, cluster_stopping);
        cluster_task = Some(controllers);
        let webhook_resolver = match options.tls {
            TlsSource::FromCa { .. } => Some(resolver.clone()),
            TlsSource::Files { .. } => None,
        };
        background.push(tokio::spawn(in_cluster::follow(
            feeds.clone(),
            webhook_resolver,
            metrics.clone(),
            readiness.clone(),
            options.ca_bundle_out.clone(),
        )));
        supply = Some(CaSupply::Cluster(feeds));
    }

    let (stop_accepting, accepting) = watch::channel(false);
    let ca_task = match (ca_port, options.ca_service, ca_auth, supply) {
        (Some(ca_port), Some(service), Some(auth), Some(supply)) => {
            Some(tokio::spawn(ca_service::run(
                ca_port,
                service,
                auth,
                supply,
                ca_metrics,
                limit_metrics.clone(),
                accepting.clone(),
            )))
        }
        _ => None,
    };

    let draining = Draining::default();
    let app = crate::webhook::router(AppState::new(
        config,
        metrics,
        options.limits,
        draining.clone(),
        limit_metrics.clone(),
    ));
    let webhook_serving = Serving {
        app,
        tls: Some(TlsAcceptor::from(server_config)),
        limits: options.connections,
        listener: Listener::Webhook,
        metrics: limit_metrics.clone(),
    };
    let (listen_failed, mut webhook_failed) = oneshot::channel();
    let webhook = if resolver.current().is_some() {
        // Certificate files or the standalone CA: listen before the
        // addresses are announced below.
        let listener = webhook_port.listen().map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
        readiness.set_webhook_listening();
        tokio::spawn(listener::accept_loop(
            listener,
            webhook_serving,
            accepting,
            options.shutdown_grace,
        ))
    } else {
        // In a cluster: once the controllers have issued the certificate.
        tokio::spawn(listen_when_loaded(
            webhook_port,
            resolver.clone(),
            readiness.clone(),
            (webhook_serving, accepting, options.shutdown_grace),
            listen_failed,
        ))
    };
    let (stop_monitoring, monitoring_stopped) = watch::channel(false);
    let monitoring = tokio::spawn(listener::accept_loop(
        monitoring_listener,
        Serving {
            app: monitoring::router(readiness.clone(), registry),
            tls: None,
            limits: ConnectionLimits {
                max_connections: ConnectionLimits::MONITORING.max_connections,
                ..options.connections
            },
            listener: Listener::Monitoring,
            metrics: limit_metrics,
        },
        monitoring_stopped,
        Duration::from_secs(1),
    ));
    let ca_text = ca_addr.map_or_else(|| "off".to_string(), |a| a.to_string());
    info!(%listen, monitoring = %monitoring_addr, ca = %ca_text, "serving");
    if let Some(path) = &options.addresses_out {
        let mut json = serde_json::json!({"listen": listen.to_string(), "monitoring": monitoring_addr.to_string()});
        if let Some(ca_addr) = ca_addr {
            json["ca"] = serde_json::Value::String(ca_addr.to_string());
        }
        if let Err(error) = standalone_ca::write_atomic(path, json.to_string().as_bytes(), 0o644) {
            warn!(%error, "cannot write the bound addresses");
        }
    }

    let failure = tokio::select! {
        () = shutdown => None,
        Ok(error) = &mut webhook_failed => Some(error),
    };
    readiness.set_shutting_down();
    draining.start();
    info!(
        delay_ms = options.shutdown_delay.as_millis() as u64,
        "shutdown: not ready; still accepting connections while endpoints drain"
    );
    tokio::time::sleep(options.shutdown_delay).await;
    let _ = stop_accepting.send(true);
    if let Err(error) = webhook.await {
        warn!(%error, "webhook accept loop ended abnormally");
    }
    if let Some(ca_task) = ca_task {
        stop_task("CA service", ca_task, options.shutdown_grace).await;
    }
    // Last of the serving parts: the controllers stop and the leader hands
    // its lease over, so another replica writes at once.
    let _ = stop_cluster.send(true);
    if let Some(cluster_task) = cluster_task {
        stop_task("cluster controllers", cluster_task, options.shutdown_grace).await;
    }
    for task in background {
        task.abort();
    }
    let _ = stop_monitoring.send(true);
    let _ = monitoring.await;
    info!("shutdown complete");
    failure.map_or(Ok(()), Err)
}

/// The webhook's listener in a cluster: waits for the first serving
/// certificate, then listens and serves; a port that cannot listen by then
/// (another socket took it meanwhile) is reported on `failed`, which stops
/// the process as a port in use at start-up does.
async fn listen_when_loaded(
    port: BoundPort,
    resolver: Arc<CertResolver>,
    readiness: Arc<Readiness>,
    (serving, stop, grace): (Serving, watch::Receiver<bool>, Duration),
    failed: oneshot::Sender<ServeError>,
) {
    tokio::select! {
        () = wait_true(stop.clone()) => return,
        () = resolver.loaded() => {}
    }
    let addr = port.local_addr();
    match port.listen() {
        Ok(listener) => {
            readiness.set_webhook_listening();
            info!(listen = %addr, "the serving certificate is loaded: the webhook listens");
            listener::accept_loop(listener, serving, stop, grace).await;
        }
        Err(source) => {
            let _ = failed.send(ServeError::Bind { addr, source });
        }
    }
}

/// Waits up to `grace` for a stopping task, then aborts it.
async fn stop_task(what: &'static str, mut task: JoinHandle<()>, grace: Duration) {
    match tokio::time::timeout(grace, &mut task).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => warn!(part = what, %error, "ended abnormally"),
        Err(_) => {
            warn!(
                part = what,
                "shutdown: requests still in flight after the grace period; closing them"
            );
            task.abort();
        }
    }
}

fn bind(addr: SocketAddr) -> Result<BoundPort, ServeError> {
    BoundPort::bind(addr).map_err(|source| ServeError::Bind { addr, source })
}

fn load_config(path: Option<&Path>) -> Result<(Config, Option<FileSet>), ServeError> {
    let Some(path) = path else {
        return Ok((Config::default(), None));
    };
    let (files, contents) =
        FileSet::read(vec![path.to_path_buf()]).map_err(|source| ServeError::ReadConfig {
            path: path.display().to_string(),
            source,
        })?;
    let config = reload::parse_config(&contents[0]).map_err(|source| ServeError::Config {
        path: path.display().to_string(),
        source,
    })?;
    info!(file = %path.display(), "config loaded");
    Ok((config, Some(files)))
}

pub(crate) async fn wait_true(mut flag: watch::Receiver<bool>) {
    // An error means the sender is gone: stop too.
    let _ = flag.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests;

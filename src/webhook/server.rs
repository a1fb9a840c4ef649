//! `outrigger serve`'s process: load the config and the serving certificate,
//! listen on the webhook port (HTTPS) and the monitoring port (HTTP), keep
//! both files fresh, and shut down gracefully.
//!
//! Shutdown, once the `shutdown` future given to [`serve`] completes (the CLI
//! passes SIGTERM/SIGINT): `/readyz` turns false at once and HTTP/1.x
//! responses start carrying `Connection: close` (see [`crate::webhook::drain`]);
//! new connections are still accepted for `shutdown_delay`, while the
//! Service's endpoints drain;
//! then the listener closes and in-flight requests get up to
//! `shutdown_grace` to finish; then [`serve`] returns.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::metrics::MetricsRegistry;
use crate::webhook::drain::Draining;
use crate::webhook::metrics::WebhookMetrics;
use crate::webhook::monitoring::{self, Readiness};
use crate::webhook::reload::{self, FileSet};
use crate::webhook::standalone_ca::{CaError, StandaloneCa};
use crate::webhook::tls::{self, CertResolver, ServingCert, TlsError};
use crate::webhook::{AppState, Limits};

/// A TLS handshake taking longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Validity of a standalone serving certificate; renewed at two thirds.
const STANDALONE_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files, watched and reloaded.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// A self-signed CA in `ca_dir` issues the certificate.
    Standalone {
        /// Where the CA lives (created on first start).
        ca_dir: PathBuf,
        /// DNS names and IP addresses to serve.
        dns_names: Vec<String>,
        /// Where to write the CA's PEM (the `caBundle`).
        ca_bundle_out: Option<PathBuf>,
    },
}

/// Everything `outrigger serve` is told.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The webhook's HTTPS address (port 0: any free port).
    pub listen: SocketAddr,
    /// The monitoring port's HTTP address (port 0: any free port).
    pub monitoring_listen: SocketAddr,
    /// The serving certificate's source.
    pub tls: TlsSource,
    /// The engine's config file (`None`: the built-in defaults).
    pub config: Option<PathBuf>,
    /// Per-request limits.
    pub limits: Limits,
    /// How long new connections are still accepted after shutdown begins.
    pub shutdown_delay: Duration,
    /// How long in-flight requests get to finish after that.
    pub shutdown_grace: Duration,
    /// How often watched files are polled.
    pub reload_interval: Duration,
    /// A file to write the bound addresses to, as JSON
    /// `{"listen": "...", "monitoring": "..."}`, once both are ready.
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
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
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
    let readiness = Arc::new(Readiness::default());

    let (config, config_files) = load_config(options.config.as_deref())?;
    let config = Arc::new(ArcSwap::from_pointee(config));
    readiness.set_config_loaded();

    let (first_cert, renewal) = load_certificate(&options.tls).await?;
    metrics.set_certificate_expiry(first_cert.not_after);
    let resolver = Arc::new(CertResolver::new(first_cert));
    let server_config = tls::server_config(resolver.clone())?;
    readiness.set_certificate_loaded();

    let listener = bind(options.listen).await?;
    let monitoring_listener = bind(options.monitoring_listen).await?;
    let listen = listener.local_addr().unwrap_or(options.listen);
    let monitoring_addr = monitoring_listener
        .local_addr()
        .unwrap_or(options.monitoring_listen);

    let mut background = Vec::new();
    if let Some(files) = config_files {
        background.push(reload::watch_config(
            files,
            config.clone(),
            options.reload_interval,
        ));
    }
    match renewal {
        Renewal::Files(files) => background.push(reload::watch_certificate(
            files,
            resolver.clone(),
            metrics.clone(),
            options.reload_interval,
        )),
        Renewal::Standalone { ca, names } => background.push(renew_standalone(
            ca,
            names,
            resolver.clone(),
            metrics.clone(),
        )),
    }

    let draining = Draining::default();
    let app = crate::webhook::router(AppState {
        config,
        metrics,
        limits: options.limits,
        draining: draining.clone(),
    });
    let (stop_accepting, accepting) = watch::channel(false);
    let webhook = tokio::spawn(accept_loop(
        listener,
        TlsAcceptor::from(server_config),
        app,
        accepting,
        options.shutdown_grace,
    ));
    let (stop_monitoring, monitoring_stopped) = watch::channel(false);
    let monitoring_router = monitoring::router(readiness.clone(), registry);
    let monitoring = tokio::spawn(async move {
        let served = axum::serve(monitoring_listener, monitoring_router)
            .with_graceful_shutdown(wait_true(monitoring_stopped))
            .await;
        if let Err(error) = served {
            warn!(%error, "monitoring server failed");
        }
    });
    info!(%listen, monitoring = %monitoring_addr, "serving");
    if let Some(path) = &options.addresses_out {
        let json = serde_json::json!({"listen": listen.to_string(), "monitoring": monitoring_addr.to_string()});
        if let Err(error) =
            crate::webhook::standalone_ca::write_atomic(path, json.to_string().as_bytes(), 0o644)
        {
            warn!(%error, "cannot write the bound addresses");
        }
    }

    shutdown.await;
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
    for task in background {
        task.abort();
    }
    let _ = stop_monitoring.send(true);
    let _ = monitoring.await;
    info!("shutdown complete");
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
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

/// How the serving certificate is kept fresh.
enum Renewal {
    Files(FileSet),
    Standalone {
        ca: Box<StandaloneCa>,
        names: Vec<String>,
    },
}

async fn load_certificate(source: &TlsSource) -> Result<(ServingCert, Renewal), ServeError> {
    match source {
        TlsSource::Files { cert, key } => {
            let (files, contents) =
                FileSet::read(vec![cert.clone(), key.clone()]).map_err(|source| {
                    TlsError::Read {
                        path: format!("{} / {}", cert.display(), key.display()),
                        source,
                    }
                })?;
            let what = format!("{} / {}", cert.display(), key.display());
            let serving = ServingCert::from_pem(&contents[0], &contents[1], &what)?;
            info!(files = %what, not_after = serving.not_after, "serving certificate loaded");
            Ok((serving, Renewal::Files(files)))
        }
        TlsSource::Standalone {
            ca_dir,
            dns_names,
            ca_bundle_out,
        } => {
            let (ca, created) = StandaloneCa::load_or_create(ca_dir)?;
            let serving = ca.issue_serving(dns_names, STANDALONE_VALIDITY)?;
            if let Some(out) = ca_bundle_out {
                crate::webhook::standalone_ca::write_atomic(
                    out,
                    ca.bundle_pem().as_bytes(),
                    0o644,
                )?;
            }
            info!(
                ca_dir = %ca_dir.display(),
                created,
                dns_names = ?dns_names,
                ca_bundle_file = ca_bundle_out.as_ref().map(|p| p.display().to_string()),
                ca_bundle = %base64::engine::general_purpose::STANDARD.encode(ca.bundle_pem()),
                ca_pem = %ca.bundle_pem(),
                "standalone mode: serving certificate issued by the local CA (ca_bundle is the caBundle value)"
            );
            Ok((
                serving,
                Renewal::Standalone {
                    ca: Box::new(ca),
                    names: dns_names.clone(),
                },
            ))
        }
    }
}

/// Re-issues the standalone serving certificate once two thirds of its
/// validity have passed, so a long-running standalone server never expires.
fn renew_standalone(
    ca: Box<StandaloneCa>,
    names: Vec<String>,
    resolver: Arc<CertResolver>,
    metrics: WebhookMetrics,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let current = resolver.current();
            let lifetime = (current.not_after - current.not_before).max(0);
            let renew_at = current.not_before + lifetime * 2 / 3;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let wait = u64::try_from(renew_at - now).unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(wait.clamp(60, 24 * 3600))).await;
            if time::OffsetDateTime::now_utc().unix_timestamp() < renew_at {
                continue;
            }
            match ca.issue_serving(&names, STANDALONE_VALIDITY) {
                Ok(cert) => {
                    metrics.set_certificate_expiry(cert.not_after);
                    info!(
                        not_after = cert.not_after,
                        "standalone serving certificate renewed"
                    );
                    resolver.swap(cert);
                }
                Err(error) => warn!(%error, "cannot renew the standalone serving certificate"),
            }
        }
    })
}

async fn wait_true(mut flag: watch::Receiver<bool>) {
    // An error means the sender is gone: stop too.
    let _ = flag.wait_for(|stop| *stop).await;
}

/// Accepts TLS connections until told to stop, then drains them.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let stopped = wait_true(stop);
    tokio::pin!(stopped);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let connection = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    info!(
        grace_ms = grace.as_millis() as u64,
        "shutdown: listener closed; waiting for in-flight requests"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("shutdown: requests still in flight after the grace period; closing them");
    }
}

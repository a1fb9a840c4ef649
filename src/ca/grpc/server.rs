//! The listener: TLS (configured by [`super::tls`]) and the tonic server on
//! top, with graceful shutdown.
//!
//! Handshakes run in their own tasks, bounded in time, so one slow or broken
//! client never holds up the accept loop; a failed handshake (an expired
//! client certificate, say) is logged and the connection dropped.

use std::future::Future;
use std::io;
use std::sync::Arc;

use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

use super::auth::AuthChain;
use super::config::CaServiceConfig;
use super::metrics::CaMetrics;
use super::service::CaService;
use super::signer::AuthoritySigner;
use super::tls::{ServingCert, TlsConfigError, keep_fresh, tls_config};
use crate::ca::CertificateAuthority;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS material could not be set up.
    #[error("CA gRPC server: TLS setup failed")]
    Tls(#[source] TlsConfigError),
    /// The gRPC server failed.
    #[error("CA gRPC server failed")]
    Transport(#[source] tonic::transport::Error),
}

/// Accepts TCP connections and hands over those whose handshake succeeds.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<Result<TlsStream<TcpStream>, io::Error>>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly.
                warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send(Ok(stream)).await;
                }
                Ok(Err(err)) => info!(peer = %peer, error = %err, "TLS handshake refused"),
                Err(_) => debug!(peer = %peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Serves `IstioCertificateService` on `listener` until `shutdown` resolves,
/// then stops accepting and lets in-flight requests finish.
///
/// `tls` comes from [`super::tls::tls_config`]; `service` holds the signer, the
/// authenticators and the metrics.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    service: CaService,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let local = listener.local_addr().ok();
    let (tx, rx) = mpsc::channel(64);
    let accept = tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), tx));
    info!(addr = ?local, "CA gRPC service listening");
    let result = tonic::transport::Server::builder()
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
        .await
        .map_err(ServeError::Transport);
    accept.abort();
    info!(addr = ?local, "CA gRPC service stopped");
    result
}

/// The whole CA service in one call, for `outrigger serve`: issues the
/// serving certificate from `ca` (renewed at half-life), builds the TLS
/// configuration (client certificates checked against `ca`'s root), and
/// serves `auth`-authenticated requests on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    config: CaServiceConfig,
    ca: Arc<CertificateAuthority>,
    auth: AuthChain,
    metrics: CaMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let serving = Arc::new(
        ServingCert::issue(&ca, &config.serving_dns_names, &config.serving_ips)
            .map_err(ServeError::Tls)?,
    );
    let tls = tls_config(serving.clone(), ca.root_pem()).map_err(ServeError::Tls)?;
    let signer = Arc::new(AuthoritySigner::new(ca.clone(), &config.trust_domain));
    let service = CaService::new(signer, auth, metrics);
    let (stop_renewal, renewal_stopped) = tokio::sync::oneshot::channel::<()>();
    let renewal = tokio::spawn(keep_fresh(
        ca,
        config.serving_dns_names,
        config.serving_ips,
        serving,
        async {
            let _ = renewal_stopped.await;
        },
    ));
    let result = serve(listener, tls, service, shutdown).await;
    let _ = stop_renewal.send(());
    let _ = renewal.await;
    result
}

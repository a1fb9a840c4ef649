//! The listener: TLS (configured by [`super::tls`]) and the tonic server on
//! top, with graceful shutdown.
//!
//! Handshakes run in their own tasks, bounded in time, so one slow or broken
//! client never holds up the accept loop; a failed handshake (an expired
//! client certificate, say) is counted
//! (`outrigger_tls_handshake_failures_total`), logged at debug level only
//! (anyone can fail a handshake, as often as they like) and the connection
//! dropped.
//!
//! What a client can make the service hold is bounded ([`ServerLimits`]):
//! connections per listener, streams per connection, HTTP/2 windows and
//! header lists, the size of a message (tonic reads a whole message before
//! the authenticator runs: 64 KiB is far above a CSR and its token), the
//! requests in progress across all connections (past it, UNAVAILABLE at
//! once), a deadline per request, and connections idle for too long.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
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
use crate::limits::idle::Guarded;
use crate::limits::{ConnectionLimits, Limit, LimitMetrics, Listener};

/// What the CA service lets its clients hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections, idle timeout, handshake timeout.
    pub connections: ConnectionLimits,
    /// HTTP/2 streams one connection may have open.
    pub max_streams_per_connection: u32,
    /// The largest gRPC message read (a CSR is about 1 KiB).
    pub max_message_bytes: usize,
    /// Requests in progress across all connections; past it, UNAVAILABLE.
    pub max_concurrent_requests: usize,
    /// A request not answered within this is ended (tonic answers
    /// CANCELLED).
    pub request_timeout: Duration,
}

impl Default for ServerLimits {
    /// 256 connections, 16 streams each, 64 KiB messages, 64 requests in
    /// progress, 10 s per request. Worst case held by clients: 256 x
    /// (64 KiB window + 16 x 8 KiB headers + TLS buffers) plus 64 x 64 KiB
    /// of messages: about 60 MiB.
    fn default() -> Self {
        ServerLimits {
            connections: ConnectionLimits::SERVING,
            max_streams_per_connection: 16,
            max_message_bytes: 64 << 10,
            max_concurrent_requests: 64,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The header list one HTTP/2 request may carry (gRPC metadata: a bearer
/// token of a few KiB at most).
const MAX_HEADER_LIST_BYTES: u32 = 8 << 10;
/// HTTP/2 flow-control windows: data a client may send before the server
/// reads it, per stream and per connection.
const WINDOW_BYTES: u32 = 64 << 10;

type Stream = Guarded<TlsStream<TcpStream>>;

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

/// Accepts TCP connections (up to the connection limit) and hands over
/// those whose handshake succeeds, guarded by the idle timeout.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<Result<Stream, io::Error>>,
    limits: ConnectionLimits,
    metrics: LimitMetrics,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
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
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.trip(Listener::Ca, Limit::Connections);
            debug!(%peer, "connection refused: --max-connections reached");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let guarded = Guarded::new(stream, permit).close_when_idle(
                        limits.idle_timeout,
                        metrics,
                        Listener::Ca,
                    );
                    let _ = tx.send(Ok(guarded)).await;
                }
                Ok(Err(err)) => {
                    metrics.handshake_failed(Listener::Ca);
                    debug!(%peer, error = %err, "TLS handshake refused");
                }
                Err(_) => {
                    metrics.trip(Listener::Ca, Limit::Handshake);
                    debug!(%peer, "TLS handshake timed out");
                }
            }
        });
    }
}

/// Serves `IstioCertificateService` on `listener` until `shutdown` resolves,
/// then stops accepting and lets in-flight requests finish.
///
/// `tls` comes from [`super::tls::tls_config`]; `service` holds the signer, the
/// authenticators and the metrics. The limits are [`ServerLimits`]'
/// defaults; see [`serve_limited`].
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    service: CaService,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_limited(
        listener,
        tls,
        service,
        shutdown,
        ServerLimits::default(),
        LimitMetrics::default(),
    )
    .await
}

/// [`serve`] with `limits`, counting their trips in `metrics`.
pub async fn serve_limited(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    service: CaService,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ServerLimits,
    metrics: LimitMetrics,
) -> Result<(), ServeError> {
    let local = listener
        .local_addr()
        .map_or_else(|_| "unknown".to_string(), |a| a.to_string());
    let (tx, rx) = mpsc::channel(64);
    let accept = tokio::spawn(accept_loop(
        listener,
        TlsAcceptor::from(tls),
        tx,
        limits.connections,
        metrics.clone(),
    ));
    info!(addr = %local, "CA gRPC service listening");
    let grpc = service
        .into_server()
        .max_decoding_message_size(limits.max_message_bytes);
    let shed = ShedLayer {
        permits: Arc::new(Semaphore::new(limits.max_concurrent_requests.max(1))),
        metrics,
    };
    let result = tonic::transport::Server::builder()
        .timeout(limits.request_timeout)
        .max_concurrent_streams(limits.max_streams_per_connection)
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .initial_stream_window_size(WINDOW_BYTES)
        .initial_connection_window_size(WINDOW_BYTES)
        .http2_max_pending_accept_reset_streams(Some(20))
        .layer(shed)
        .add_service(grpc)
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
        .await
        .map_err(ServeError::Transport);
    accept.abort();
    info!(addr = %local, "CA gRPC service stopped");
    result
}

/// The limit on requests in progress across all connections: past it, a
/// request is answered UNAVAILABLE at once, before its message is read.
#[derive(Debug, Clone)]
struct ShedLayer {
    permits: Arc<Semaphore>,
    metrics: LimitMetrics,
}

impl<S> tower_layer::Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            permits: self.permits.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Shed<S> {
    inner: S,
    permits: Arc<Semaphore>,
    metrics: LimitMetrics,
}

impl<S, B> tower_service::Service<http::Request<B>> for Shed<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<
            dyn Future<Output = Result<http::Response<tonic::body::Body>, S::Error>>
                + Send
                + 'static,
        >,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.metrics.trip(Listener::Ca, Limit::Concurrency);
            let status = tonic::Status::unavailable(
                "the CA service has too many requests in progress; retry",
            );
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(permit);
            response
        })
    }
}

/// The whole CA service in one call, for `outrigger serve`: issues the
/// serving certificate from `ca` (renewed at half-life), builds the TLS
/// configuration (client certificates checked against `ca`'s root), and
/// serves `auth`-authenticated requests on `listener` until `shutdown`,
/// within [`ServerLimits`]' defaults (see [`run_limited`]).
pub async fn run(
    listener: TcpListener,
    config: CaServiceConfig,
    ca: Arc<CertificateAuthority>,
    auth: AuthChain,
    metrics: CaMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let limits = (ServerLimits::default(), LimitMetrics::default());
    run_limited(listener, config, ca, auth, metrics, shutdown, limits).await
}

/// [`run`] with `limits` (and the metrics that count their trips).
pub async fn run_limited(
    listener: TcpListener,
    config: CaServiceConfig,
    ca: Arc<CertificateAuthority>,
    auth: AuthChain,
    metrics: CaMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
    (limits, limit_metrics): (ServerLimits, LimitMetrics),
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
    let result = serve_limited(listener, tls, service, shutdown, limits, limit_metrics).await;
    let _ = stop_renewal.send(());
    let _ = renewal.await;
    result
}

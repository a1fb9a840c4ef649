//! The webhook's and the monitoring port's listeners: accept (up to the
//! connection limit), handshake TLS (bounded in time), serve HTTP/1.1 and
//! HTTP/2 with hyper within the limits below, close idle connections
//! gracefully, and on shutdown stop accepting and let connections finish.
//!
//! An idle connection is closed with hyper's graceful shutdown (HTTP/2:
//! GOAWAY), not by dropping the socket: a client that sends its next request
//! at that moment is told to use a new connection instead of seeing it fail,
//! which for the API server would mean a failed admission.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::limits::idle::Guarded;
use crate::limits::{ConnectionLimits, Limit, LimitMetrics, Listener};

/// Streams one HTTP/2 connection may have open: the API server sends a few
/// admissions at a time per connection.
const MAX_STREAMS: u32 = 64;
/// The header list one request may carry.
const MAX_HEADER_LIST_BYTES: u32 = 16 << 10;
/// HTTP/2 flow control: what a client may send before the server reads it.
/// Bodies are read at once (and counted in the body budget), so the windows
/// only bound what is in transit.
const STREAM_WINDOW_BYTES: u32 = 256 << 10;
const CONNECTION_WINDOW_BYTES: u32 = 512 << 10;
/// HTTP/1.1's buffer for a request's head.
const MAX_HTTP1_BUFFER: usize = 64 << 10;
/// After an idle close or shutdown began, how long a connection still gets
/// to finish what it has in flight.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// One listener: what it serves and within which limits.
#[derive(Clone)]
pub struct Serving {
    /// The routes.
    pub app: Router,
    /// TLS (`None`: plain HTTP, the monitoring port).
    pub tls: Option<TlsAcceptor>,
    /// Connection limits.
    pub limits: ConnectionLimits,
    /// Which listener, for metrics.
    pub listener: Listener,
    /// Counts limits that trip.
    pub metrics: LimitMetrics,
}

/// hyper's server settings for the limits.
fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout)
        .max_buf_size(MAX_HTTP1_BUFFER);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(1024));
    builder
}

/// Accepts connections until `stop` turns true, then waits up to `grace`
/// for the open ones to finish.
pub async fn accept_loop(
    listener: TcpListener,
    serving: Serving,
    stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let max = serving.limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let builder = builder(&serving.limits);
    let stopped = super::wait_true(stop.clone());
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
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            serving.metrics.trip(serving.listener, Limit::Connections);
            debug!(%peer, listener = serving.listener.as_str(), "connection refused: --max-connections reached");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let serving = serving.clone();
        let builder = builder.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let Some(tls) = serving.tls.clone() else {
                let io = Guarded::new(tcp, permit);
                return drive(io, &serving, &builder, stop).await;
            };
            let handshake = tokio::time::timeout(serving.limits.handshake_timeout, tls.accept(tcp));
            match handshake.await {
                Ok(Ok(stream)) => {
                    drive(Guarded::new(stream, permit), &serving, &builder, stop).await
                }
                Ok(Err(error)) => {
                    serving.metrics.handshake_failed(serving.listener);
                    debug!(%peer, %error, "TLS handshake failed");
                }
                Err(_) => {
                    serving.metrics.trip(serving.listener, Limit::Handshake);
                    debug!(%peer, "TLS handshake timed out");
                }
            }
        });
    }
    drop(listener);
    if serving.listener == Listener::Webhook {
        info!(
            grace_ms = grace.as_millis() as u64,
            "shutdown: listener closed; waiting for in-flight requests"
        );
    }
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        warn!(
            listener = serving.listener.as_str(),
            "shutdown: requests still in flight after the grace period; closing them"
        );
    }
}

/// Serves one connection until it ends; closes it gracefully once it has
/// been idle for the idle timeout, or when `stop` turns true.
async fn drive<I>(
    io: Guarded<I>,
    serving: &Serving,
    builder: &auto::Builder<TokioExecutor>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = io.activity();
    let idle = serving.limits.idle_timeout;
    let service = TowerToHyperService::new(serving.app.clone());
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    tokio::pin!(connection);
    let mut closing: Option<Instant> = None;
    loop {
        let idle_deadline = activity.last() + idle;
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(idle_deadline), if closing.is_none() => {
                if activity.last() + idle <= Instant::now() {
                    serving.metrics.trip(serving.listener, Limit::Idle);
                    connection.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + CLOSE_GRACE);
                }
            }
            _ = stop.wait_for(|stop| *stop), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                // The accept loop's grace period bounds the wait from here.
                closing = Some(Instant::now() + Duration::from_secs(24 * 3600));
            }
            () = tokio::time::sleep_until(closing.unwrap_or_else(Instant::now)), if closing.is_some() => {
                debug!("connection still busy after closing began; dropped");
                return;
            }
        }
    }
}

//! Limits shared by `outrigger serve`'s three listeners (webhook, CA
//! service, monitoring): how many connections each keeps, how long a
//! connection may sit idle or take over its TLS handshake, and the metric
//! that counts every limit when it trips.
//!
//! With `failurePolicy: Fail` a webhook that runs out of memory blocks pod
//! creation in every injected namespace, and a stalled CA stops certificate
//! renewal mesh-wide; so every resource a client can hold (a connection, a
//! half-sent request, a body) has a bound, and each bound shows on
//! `/metrics` when it turns someone away. The per-request limits of the
//! webhook are [`crate::webhook::Limits`]; the connection itself is guarded
//! by [`idle`].

pub mod idle;

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::MetricsRegistry;

/// One listener's connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once (TLS handshakes included); one more is
    /// accepted and closed at once.
    pub max_connections: usize,
    /// A connection that moves no byte for this long is closed (HTTP/2:
    /// with GOAWAY, so that a client's next request goes to a new
    /// connection rather than failing).
    pub idle_timeout: Duration,
    /// A TLS handshake, or an HTTP/1 request's headers, not complete
    /// within this is dropped.
    pub handshake_timeout: Duration,
}

impl ConnectionLimits {
    /// The webhook's and the CA service's defaults: 256 connections (an
    /// API server opens a handful; a CA replica's clients connect for one
    /// CSR at a time), closed after 60 s without traffic, 10 s for the
    /// handshake. At about 200 KiB of buffers each at worst (TLS, HTTP/2
    /// windows and headers), 256 connections stay near 50 MiB.
    pub const SERVING: ConnectionLimits = ConnectionLimits {
        max_connections: 256,
        idle_timeout: Duration::from_secs(60),
        handshake_timeout: Duration::from_secs(10),
    };

    /// The monitoring port's defaults: its clients are the kubelet's
    /// probes and a Prometheus scraper, so 64 connections are plenty;
    /// headers get 10 s.
    pub const MONITORING: ConnectionLimits = ConnectionLimits {
        max_connections: 64,
        idle_timeout: Duration::from_secs(60),
        handshake_timeout: Duration::from_secs(10),
    };
}

/// Which listener a limit tripped on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// The webhook (HTTPS).
    Webhook,
    /// The CA service (gRPC over TLS).
    Ca,
    /// `/healthz`, `/readyz`, `/metrics` (plain HTTP).
    Monitoring,
}

impl Listener {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Webhook => "webhook",
            Listener::Ca => "ca",
            Listener::Monitoring => "monitoring",
        }
    }
}

/// Which limit tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `--max-connections`: a connection was closed on accept.
    Connections,
    /// `--idle-timeout`: an idle connection was closed.
    Idle,
    /// `--handshake-timeout`: a TLS handshake took too long.
    Handshake,
    /// `--max-body-bytes`: a body was larger (413).
    BodySize,
    /// `--max-body-bytes-in-flight`: the bodies being read together
    /// reached the budget (503).
    BodyBudget,
    /// `--workers`/`--max-queued`: every worker busy and the queue full (503).
    Queue,
    /// `--request-timeout`: a request was not answered in time (503).
    RequestTimeout,
    /// The YAML/JSON parse bounds: a body or annotation over a limit (400).
    Parse,
    /// The CA service's concurrency limit (gRPC UNAVAILABLE).
    Concurrency,
}

impl Limit {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::Idle => "idle",
            Limit::Handshake => "handshake",
            Limit::BodySize => "body-size",
            Limit::BodyBudget => "body-budget",
            Limit::Queue => "queue",
            Limit::RequestTimeout => "request-timeout",
            Limit::Parse => "parse",
            Limit::Concurrency => "concurrency",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TripLabels {
    listener: &'static str,
    limit: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

/// `outrigger_limit_trips_total{listener, limit}` and
/// `outrigger_tls_handshake_failures_total{listener}`; cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct LimitMetrics {
    trips: Family<TripLabels, Counter>,
    handshake_failures: Family<ListenerLabels, Counter>,
}

impl LimitMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &MetricsRegistry) -> Self {
        let metrics = LimitMetrics::default();
        registry.register(
            "outrigger_limit_trips",
            "Requests or connections turned away by a limit, by listener and limit",
            metrics.trips.clone(),
        );
        registry.register(
            "outrigger_tls_handshake_failures",
            "TLS handshakes that failed (logged at debug level only, so that they cannot flood the log)",
            metrics.handshake_failures.clone(),
        );
        metrics
    }

    /// Counts one trip of `limit` on `listener`.
    pub fn trip(&self, listener: Listener, limit: Limit) {
        self.trips
            .get_or_create(&TripLabels {
                listener: listener.as_str(),
                limit: limit.as_str(),
            })
            .inc();
    }

    /// Counts one failed TLS handshake on `listener`.
    pub fn handshake_failed(&self, listener: Listener) {
        self.handshake_failures
            .get_or_create(&ListenerLabels {
                listener: listener.as_str(),
            })
            .inc();
    }
}

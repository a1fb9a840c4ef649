//! Overload protection for the webhook port: a bound on requests in progress
//! and a per-request deadline.
//!
//! With `failurePolicy: Fail` a queue that grows without limit turns a burst
//! into cluster-wide timeouts; answering 503 at once lets the API server retry
//! another replica. Past the bound a request is refused before its body is
//! read; a request (body included) still running at the deadline is answered
//! 503 and its work dropped.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::limits::{Limit, LimitMetrics, Listener};
use crate::webhook::error::ApiError;
use crate::webhook::metrics::{RequestResult, WebhookMetrics};

/// The bound and the deadline, shared by every connection.
#[derive(Debug, Clone)]
pub struct Overload {
    permits: Arc<Semaphore>,
    timeout: Duration,
    metrics: WebhookMetrics,
    limits: LimitMetrics,
}

impl Overload {
    /// At most `max_concurrent` requests in progress, each for at most
    /// `timeout`.
    pub fn new(
        max_concurrent: usize,
        timeout: Duration,
        metrics: WebhookMetrics,
        limits: LimitMetrics,
    ) -> Self {
        Overload {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            timeout,
            metrics,
            limits,
        }
    }
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn limit(State(overload): State<Overload>, request: Request, next: Next) -> Response {
    let Ok(_permit) = overload.permits.clone().try_acquire_owned() else {
        overload.metrics.request("other", RequestResult::Overloaded);
        overload.limits.trip(Listener::Webhook, Limit::Concurrency);
        return ApiError::Unavailable("too many requests in progress; retry").into_response();
    };
    match tokio::time::timeout(overload.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            overload.metrics.request("other", RequestResult::Overloaded);
            overload
                .limits
                .trip(Listener::Webhook, Limit::RequestTimeout);
            ApiError::Unavailable("the request did not complete within the request timeout")
                .into_response()
        }
    }
}

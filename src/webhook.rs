//! The mutating admission webhook: `AdmissionReview` in, `AdmissionResponse`
//! out, around the pure engine in [`crate::inject`]; plus `POST /preview`.
//!
//! This file holds the HTTP surface ([`router`] and its handlers); the parts
//! live beside it: [`admission`] (request bytes to response bytes, no HTTP),
//! [`preview`], [`body`] (415/413), [`overload`] (503), [`drain`]
//! (`Connection: close` while shutting down), [`error`] (the one
//! error type), [`tls`] and [`standalone_ca`] (the serving certificate),
//! [`reload`] (watching files), [`monitoring`] (`/healthz`, `/readyz`,
//! `/metrics`), [`metrics`], and [`server`] (listeners and graceful shutdown).

pub mod admission;
pub mod body;
pub mod drain;
pub mod error;
pub mod metrics;
pub mod monitoring;
pub mod overload;
pub mod preview;
pub mod reload;
pub mod server;
pub mod standalone_ca;
pub mod tls;
pub mod work;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::{info, warn};

use crate::config::Config;
use crate::inject::bounded_yaml::{YamlLimits, check_json};
use crate::limits::{Limit, LimitMetrics, Listener};
use crate::webhook::admission::Verdict;
use crate::webhook::body::BodyBudget;
use crate::webhook::drain::Draining;
use crate::webhook::error::ApiError;
use crate::webhook::metrics::{RequestResult, WebhookMetrics};
use crate::webhook::overload::Overload;
use crate::webhook::work::Workers;

/// Limits on what one request, and all requests together, may cost. Each
/// is a flag of `outrigger serve`; README's "Limits and hardening" says why
/// each default is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// All bodies being read or handled together hold at most this many
    /// bytes; a body that would pass it is refused with 503.
    pub max_body_bytes_in_flight: usize,
    /// Requests in progress past this are refused with 503.
    pub max_concurrent_requests: usize,
    /// A request still running after this is answered 503.
    pub request_timeout: Duration,
    /// Parsing and injection run on this many blocking threads.
    pub workers: usize,
    /// Jobs waiting for a worker past this are refused with 503 at once.
    pub max_queued: usize,
}

impl Default for Limits {
    /// 3 MiB bodies (the API server's own limit on a request body, so no
    /// object it admits is larger), 32 MiB of bodies in flight (ten of the
    /// largest at once, far more of real ones), 1,024 requests in
    /// progress, 10 s per request (the API server's default webhook
    /// timeout), 2 workers with 128 jobs queued (an injection takes about
    /// a millisecond: a queue of 128 drains in well under the timeout).
    fn default() -> Self {
        Limits {
            max_body_bytes: 3 << 20,
            max_body_bytes_in_flight: 32 << 20,
            max_concurrent_requests: 1024,
            request_timeout: Duration::from_secs(10),
            workers: 2,
            max_queued: 128,
        }
    }
}

/// What every handler shares. The config is swapped whole on reload, so a
/// request reads one consistent config without taking a lock.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine's configuration in force.
    pub config: Arc<ArcSwap<Config>>,
    /// The webhook's metric handles.
    pub metrics: WebhookMetrics,
    /// Request limits.
    pub limits: Limits,
    /// Set when a graceful shutdown begins.
    pub draining: Draining,
    /// The pool parsing and injection run on.
    pub workers: Workers,
    /// The bytes all bodies in flight may hold.
    pub body_budget: BodyBudget,
    /// Counts limits that trip.
    pub limit_metrics: LimitMetrics,
}

impl AppState {
    /// The state for `limits`, with its worker pool and body budget.
    pub fn new(
        config: Arc<ArcSwap<Config>>,
        metrics: WebhookMetrics,
        limits: Limits,
        draining: Draining,
        limit_metrics: LimitMetrics,
    ) -> AppState {
        AppState {
            config,
            metrics,
            workers: Workers::new(limits.workers, limits.max_queued, limit_metrics.clone()),
            body_budget: BodyBudget::new(limits.max_body_bytes_in_flight, limit_metrics.clone()),
            limits,
            draining,
            limit_metrics,
        }
    }
}

/// The path the API server calls (`clientConfig.service.path` in the
/// MutatingWebhookConfiguration); sub-paths are accepted too, as Istio does.
pub const INJECT_PATH: &str = "/inject";

/// The webhook port's routes: `POST /inject` (and `/inject/...`, as Istio's
/// injector accepts), `POST /preview`; everything else is 404.
pub fn router(state: AppState) -> Router {
    let overload = Overload::new(
        state.limits.max_concurrent_requests,
        state.limits.request_timeout,
        state.metrics.clone(),
        state.limit_metrics.clone(),
    );
    Router::new()
        .route(INJECT_PATH, post(inject))
        .route(&format!("{INJECT_PATH}/"), post(inject))
        .route(&format!("{INJECT_PATH}/{{*rest}}"), post(inject))
        .route("/preview", post(preview))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.draining.clone(),
            drain::close_when_draining,
        ))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            overload,
            overload::limit,
        ))
        .layer(CatchPanicLayer::custom(panicked))
}

/// `POST /inject`: one admission review. The body is read first (within
/// its limits, so that an early refusal never races an unfinished upload);
/// parsing and the engine run on the worker pool.
async fn inject(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let admitted = async {
        let (bytes, _reserved) = body::read_limited(
            &headers,
            body,
            state.limits.max_body_bytes,
            &state.body_budget,
        )
        .await?;
        body::require_content_type(&headers, body::JSON_TYPES)?;
        let config = state.config.load_full();
        let limit_metrics = state.limit_metrics.clone();
        state
            .workers
            .run(move || {
                let started = Instant::now();
                check_json(&bytes, &YamlLimits::REQUEST).map_err(|e| {
                    limit_metrics.trip(Listener::Webhook, Limit::Parse);
                    ApiError::OverLimit(format!("the request body is refused: {e}"))
                })?;
                let admitted = admission::admit(&bytes, &config)?;
                Ok::<_, ApiError>((admitted, started.elapsed()))
            })
            .await?
    }
    .await;
    let (admitted, elapsed) = match admitted {
        Ok(done) => done,
        Err(err) => {
            state.metrics.request("other", RequestResult::Invalid);
            warn!(status = err.status().as_u16(), error = %err, "admission request rejected");
            return Err(err);
        }
    };
    let summary = &admitted.summary;
    let kind = admission::kind_label(&summary.kind);
    let result = match &summary.verdict {
        Verdict::Injected => RequestResult::Injected,
        Verdict::Reinjected(_) => RequestResult::Reinjected,
        Verdict::Removed(_) => RequestResult::Removed,
        Verdict::Skipped(reason) => {
            state.metrics.skip(reason);
            RequestResult::Skipped
        }
        Verdict::Denied(_) => RequestResult::Denied,
    };
    state.metrics.request(kind, result);
    state.metrics.observe_duration(elapsed);
    let reason = match &summary.verdict {
        Verdict::Injected => "",
        Verdict::Reinjected(changes) => changes,
        Verdict::Removed(reason) => reason,
        Verdict::Skipped(reason) => reason,
        Verdict::Denied(message) => message,
    };
    info!(
        uid = %summary.uid,
        kind = %summary.kind,
        namespace = %summary.namespace,
        name = %summary.name,
        operation = summary.operation,
        dry_run = summary.dry_run,
        decision = summary.verdict.word(),
        reason,
        duration_us = elapsed.as_micros() as u64,
        "admission"
    );
    Ok(([(CONTENT_TYPE, "application/json")], admitted.body).into_response())
}

/// `POST /preview`: what the webhook would do to one object. As for
/// `/inject`, the body is read before anything can refuse the request:
/// over HTTP/2, an answer sent while the client is still uploading ends
/// the stream with a reset that some clients (curl) report as a framing
/// error instead of the 400.
async fn preview(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (bytes, _reserved) = body::read_limited(
        &headers,
        body,
        state.limits.max_body_bytes,
        &state.body_budget,
    )
    .await?;
    let ctx = preview::context_from_query(query.as_deref())?;
    body::require_content_type(&headers, body::YAML_OR_JSON_TYPES)?;
    let config = state.config.load_full();
    let limit_metrics = state.limit_metrics.clone();
    let namespace = ctx.namespace.clone().unwrap_or_default();
    let answer = state
        .workers
        .run(move || {
            let object = preview::parse_object(&bytes).inspect_err(|err| {
                if matches!(err, ApiError::OverLimit(_)) {
                    limit_metrics.trip(Listener::Webhook, Limit::Parse);
                }
            })?;
            Ok::<_, ApiError>(preview::preview(object, &ctx, &config))
        })
        .await??;
    info!(
        namespace,
        decision = answer.decision,
        reason = %answer.reason,
        "preview"
    );
    let status = if answer.decision == "deny" {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

/// The last resort: a panic in a handler answers 500 and affects no other
/// request.
fn panicked(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked; answered 500");
    let body = serde_json::json!({"error": "internal error"});
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

#[cfg(test)]
mod tests;

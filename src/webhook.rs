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
use crate::webhook::admission::Verdict;
use crate::webhook::drain::Draining;
use crate::webhook::error::ApiError;
use crate::webhook::metrics::{RequestResult, WebhookMetrics};
use crate::webhook::overload::Overload;

/// Limits on what one request may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// Requests in progress past this are refused with 503.
    pub max_concurrent_requests: usize,
    /// A request still running after this is answered 503.
    pub request_timeout: Duration,
}

impl Default for Limits {
    /// 4 MiB bodies (far above any real pod spec, well below memory trouble),
    /// 1,024 requests in progress, 10 s per request (the API server's default
    /// webhook timeout).
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 << 20,
            max_concurrent_requests: 1024,
            request_timeout: Duration::from_secs(10),
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

/// `POST /inject`: one admission review.
async fn inject(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let admitted = async {
        body::require_content_type(&headers, body::JSON_TYPES)?;
        let bytes = body::read_limited(body, state.limits.max_body_bytes).await?;
        let started = Instant::now();
        let config = state.config.load();
        let admitted = admission::admit(&bytes, &config)?;
        Ok::<_, ApiError>((admitted, started.elapsed()))
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

/// `POST /preview`: what the webhook would do to one object.
async fn preview(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let ctx = preview::context_from_query(query.as_deref())?;
    body::require_content_type(&headers, body::YAML_OR_JSON_TYPES)?;
    let bytes = body::read_limited(body, state.limits.max_body_bytes).await?;
    let object = preview::parse_object(&bytes)?;
    let config = state.config.load();
    let answer = preview::preview(object, &ctx, &config);
    info!(
        namespace = ctx.namespace.as_deref().unwrap_or_default(),
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

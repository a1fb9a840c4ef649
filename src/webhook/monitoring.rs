//! The plain-HTTP monitoring port: `/healthz` (the process is alive),
//! `/readyz` (send it admission traffic) and `/metrics` (Prometheus).
//!
//! Readiness is what Kubernetes uses to add and remove the pod from the
//! webhook Service's endpoints, so it is false until the serving certificate
//! and the config are loaded and the webhook port listens, and false again
//! from the first moment of a graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{self, MetricsRegistry};

/// What `/readyz` reports.
#[derive(Debug, Default)]
pub struct Readiness {
    certificate_loaded: AtomicBool,
    webhook_listening: AtomicBool,
    config_loaded: AtomicBool,
    shutting_down: AtomicBool,
}

impl Readiness {
    /// The serving certificate is loaded.
    pub fn set_certificate_loaded(&self) {
        self.certificate_loaded.store(true, Ordering::SeqCst);
    }

    /// The webhook port listens (after its certificate is loaded).
    pub fn set_webhook_listening(&self) {
        self.webhook_listening.store(true, Ordering::SeqCst);
    }

    /// The config is loaded.
    pub fn set_config_loaded(&self) {
        self.config_loaded.store(true, Ordering::SeqCst);
    }

    /// A graceful shutdown began: not ready from now on.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// `Ok` when ready, else why not.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.shutting_down.load(Ordering::SeqCst) {
            Err("shutting down")
        } else if !self.certificate_loaded.load(Ordering::SeqCst) {
            Err("the serving certificate is not loaded")
        } else if !self.webhook_listening.load(Ordering::SeqCst) {
            Err("the webhook port is not listening yet")
        } else if !self.config_loaded.load(Ordering::SeqCst) {
            Err("the config is not loaded")
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Clone)]
struct MonitoringState {
    readiness: Arc<Readiness>,
    registry: MetricsRegistry,
}

/// The monitoring port's routes.
pub fn router(readiness: Arc<Readiness>, registry: MetricsRegistry) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(MonitoringState {
            readiness,
            registry,
        })
}

async fn readyz(State(state): State<MonitoringState>) -> Response {
    match state.readiness.check() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics_text(State(state): State<MonitoringState>) -> Response {
    (
        [(CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.registry.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    async fn get_path(router: &Router, path: &str) -> (StatusCode, String) {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn ready_only_with_certificate_listening_and_config_and_not_shutting_down() {
        let readiness = Arc::new(Readiness::default());
        let router = router(readiness.clone(), MetricsRegistry::new());
        assert_eq!(get_path(&router, "/healthz").await.0, StatusCode::OK);
        let (status, body) = get_path(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("certificate"), "{body}");
        readiness.set_certificate_loaded();
        let (status, body) = get_path(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("not listening"), "{body}");
        readiness.set_webhook_listening();
        assert_eq!(
            get_path(&router, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        readiness.set_config_loaded();
        assert_eq!(get_path(&router, "/readyz").await.0, StatusCode::OK);
        readiness.set_shutting_down();
        let (status, body) = get_path(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("shutting down"), "{body}");
    }

    #[tokio::test]
    async fn metrics_are_served_in_openmetrics_text() {
        let router = router(Arc::new(Readiness::default()), MetricsRegistry::new());
        let (status, body) = get_path(&router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("outrigger_build_info"), "{body}");
    }
}

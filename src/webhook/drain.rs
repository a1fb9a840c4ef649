//! Draining keep-alive connections during a graceful shutdown.
//!
//! The API server keeps its connections to a webhook pod open and reuses
//! them, so removing the pod from the Service's endpoints does not move
//! traffic that already has a connection. While draining, every HTTP/1.x
//! response carries `Connection: close`: the client's next request opens a
//! new connection, which lands on a pod that is still ready. (HTTP/2 clients
//! are moved by the GOAWAY that the graceful shutdown sends.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Version};
use axum::middleware::Next;
use axum::response::Response;

/// Set once a graceful shutdown begins; shared by every connection.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// From now on, HTTP/1.x connections close after their current response.
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn close_when_draining(
    State(draining): State<Draining>,
    request: Request,
    next: Next,
) -> Response {
    let http1 = request.version() <= Version::HTTP_11;
    let mut response = next.run(request).await;
    if http1 && draining.is_draining() {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

//! The one error type of the webhook's HTTP handlers, and how each error is
//! answered: a status code and a JSON body `{"error": "..."}` saying what is
//! wrong, so that whoever sent the request can fix it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::webhook::admission::ReviewError;

/// A request the webhook will not answer with a review or a preview.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body does not have the form the endpoint expects (HTTP 400).
    #[error(transparent)]
    Review(#[from] ReviewError),
    /// A malformed preview request or query (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// A body (or a part of it, such as an annotation) over one of the
    /// parse bounds of [`crate::inject::bounded_yaml`] (HTTP 400); the
    /// message names the limit.
    #[error("{0}")]
    OverLimit(String),
    /// A `Content-Type` the endpoint does not read (HTTP 415).
    #[error("unsupported Content-Type {got}: expected {expected}")]
    UnsupportedMediaType {
        /// What the request said (or `none`).
        got: String,
        /// What the endpoint accepts.
        expected: &'static str,
    },
    /// The body is larger than `--max-body-bytes` (HTTP 413).
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body could not be read (the client went away or sent a broken
    /// stream): HTTP 400.
    #[error("the request body could not be read: {0}")]
    BodyRead(String),
    /// No such endpoint (HTTP 404).
    #[error("no such endpoint: {method} {path}; the webhook serves POST /inject and POST /preview")]
    NotFound {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
    },
    /// Turned away without being processed (HTTP 503).
    #[error("{0}")]
    Unavailable(&'static str),
    /// The work failed unexpectedly (a panic, caught): HTTP 500.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Review(_)
            | ApiError::BadRequest(_)
            | ApiError::OverLimit(_)
            | ApiError::BodyRead(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}

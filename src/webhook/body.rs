//! Reading request bodies safely: the `Content-Type` check (415), the size
//! limit per body (413) and the budget of bytes all bodies being read may
//! hold together (503), before any parsing.
//!
//! The budget is what keeps many slow or unfinished bodies (HTTP/2 streams
//! each announcing megabytes and never finishing) from adding up to more
//! memory than the process has: every chunk is counted as it arrives, and a
//! body that would pass the budget is refused at once rather than waited
//! for. A body keeps its share until its request is answered.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use bytes::BytesMut;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::{Limit, LimitMetrics, Listener};
use crate::webhook::error::ApiError;

/// The bytes all request bodies being read or handled may hold together;
/// cloning shares it.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    metrics: LimitMetrics,
}

impl BodyBudget {
    /// A budget of `bytes` (at least one body's worth is up to the caller).
    pub fn new(bytes: usize, metrics: LimitMetrics) -> Self {
        BodyBudget {
            bytes: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
            metrics,
        }
    }

    /// Takes `n` more bytes into `held`, or fails with 503.
    fn take(&self, n: usize, held: &mut Option<OwnedSemaphorePermit>) -> Result<(), ApiError> {
        if n == 0 {
            return Ok(());
        }
        let permit = u32::try_from(n)
            .ok()
            .and_then(|n| self.bytes.clone().try_acquire_many_owned(n).ok());
        let Some(permit) = permit else {
            self.metrics.trip(Listener::Webhook, Limit::BodyBudget);
            return Err(ApiError::Unavailable(
                "the request bodies being read have reached --max-body-bytes-in-flight; retry",
            ));
        };
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// A body's share of the [`BodyBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reserved(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

/// Media types `POST /inject` reads.
pub const JSON_TYPES: &[&str] = &["application/json"];

/// Media types `POST /preview` reads: JSON and the usual YAML spellings.
pub const YAML_OR_JSON_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
];

/// Fails with 415 unless the request's `Content-Type` (parameters such as
/// `charset` aside) is one of `accepted`.
pub fn require_content_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
    let raw = headers.get(CONTENT_TYPE);
    let essence = raw
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence {
        Some(essence) if accepted.contains(&essence.as_str()) => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType {
            got: raw.map_or_else(
                || "none".to_string(),
                |v| format!("{:?}", String::from_utf8_lossy(v.as_bytes())),
            ),
            expected: if accepted.len() == 1 {
                "application/json"
            } else {
                "application/json or application/yaml"
            },
        }),
    }
}

/// Reads the whole body into one buffer, failing with 413 as soon as it
/// passes `limit` bytes (at once when `Content-Length` says so) and with
/// 503 when the bytes would pass `budget`. Keep the returned [`Reserved`]
/// as long as the body (or what is parsed from it) lives.
pub async fn read_limited(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
    budget: &BodyBudget,
) -> Result<(Bytes, Reserved), ApiError> {
    let too_large = || {
        budget.metrics.trip(Listener::Webhook, Limit::BodySize);
        ApiError::PayloadTooLarge { limit }
    };
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut held = None;
    if let Some(announced) = announced {
        if announced > limit {
            return Err(too_large());
        }
        budget.take(announced, &mut held)?;
    }
    let mut buffer = BytesMut::with_capacity(announced.unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| ApiError::BodyRead(err.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buffer.len() + data.len() > limit {
            return Err(too_large());
        }
        let beyond_announced = (buffer.len() + data.len()).saturating_sub(announced.unwrap_or(0));
        let already = buffer.len().saturating_sub(announced.unwrap_or(0));
        budget.take(beyond_announced - already, &mut held)?;
        buffer.extend_from_slice(&data);
    }
    Ok((buffer.freeze(), Reserved(held)))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(content_type: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        headers
    }

    #[test]
    fn content_type_parameters_and_case_are_ignored() {
        let ok = headers(Some("Application/JSON; charset=utf-8"));
        assert!(require_content_type(&ok, JSON_TYPES).is_ok());
        let yaml = headers(Some("application/yaml"));
        assert!(require_content_type(&yaml, YAML_OR_JSON_TYPES).is_ok());
    }

    #[test]
    fn other_or_missing_content_types_are_415() {
        for ct in [Some("text/plain"), Some("application/yaml"), None] {
            let err = require_content_type(&headers(ct), JSON_TYPES).unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
            assert!(err.to_string().contains("application/json"), "{err}");
        }
    }

    fn budget(bytes: usize) -> BodyBudget {
        BodyBudget::new(bytes, LimitMetrics::default())
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413() {
        let budget = budget(100);
        let none = HeaderMap::new();
        let err = read_limited(&none, Body::from(vec![b'x'; 11]), 10, &budget)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApiError::PayloadTooLarge { limit: 10 }),
            "{err}"
        );
        let (ok, _reserved) = read_limited(&none, Body::from(vec![b'x'; 10]), 10, &budget)
            .await
            .unwrap();
        assert_eq!(ok.len(), 10);
        let mut announced = HeaderMap::new();
        announced.insert(CONTENT_LENGTH, HeaderValue::from_static("1000000"));
        let err = read_limited(&announced, Body::empty(), 10, &budget)
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::PayloadTooLarge { .. }), "{err}");
    }

    #[tokio::test]
    async fn bodies_share_the_budget_until_they_are_dropped() {
        let budget = budget(25);
        let none = HeaderMap::new();
        let (_first, first) = read_limited(&none, Body::from(vec![b'x'; 10]), 20, &budget)
            .await
            .unwrap();
        let (_second, second) = read_limited(&none, Body::from(vec![b'x'; 10]), 20, &budget)
            .await
            .unwrap();
        let err = read_limited(&none, Body::from(vec![b'x'; 10]), 20, &budget)
            .await
            .unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            err.to_string().contains("--max-body-bytes-in-flight"),
            "{err}"
        );
        drop((first, second));
        let mut announced = HeaderMap::new();
        announced.insert(CONTENT_LENGTH, HeaderValue::from_static("20"));
        let (body, _third) = read_limited(&announced, Body::from(vec![b'x'; 20]), 20, &budget)
            .await
            .unwrap();
        assert_eq!(body.len(), 20);
        assert_eq!(budget.bytes.available_permits(), 5);
    }
}

//! Reading request bodies safely: the `Content-Type` check (415) and the
//! size limit (413), before any parsing.

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::webhook::error::ApiError;

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

/// Reads the whole body, failing with 413 as soon as it passes `limit` bytes.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge { limit })
        }
        Err(err) => Err(ApiError::BodyRead(err.to_string())),
    }
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

    #[tokio::test]
    async fn bodies_over_the_limit_are_413() {
        let err = read_limited(Body::from(vec![b'x'; 11]), 10)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApiError::PayloadTooLarge { limit: 10 }),
            "{err}"
        );
        let ok = read_limited(Body::from(vec![b'x'; 10]), 10).await.unwrap();
        assert_eq!(ok.len(), 10);
    }
}

//! The webhook's HTTP surface, driven in process with `oneshot`: status
//! codes, content types, limits and overload. The real listener over TLS is
//! covered by `tests/webhook_*.rs`.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::*;
use crate::metrics::MetricsRegistry;

fn state(limits: Limits) -> AppState {
    AppState::new(
        Arc::new(ArcSwap::from_pointee(Config::default())),
        WebhookMetrics::register(&MetricsRegistry::new()),
        limits,
        Draining::default(),
        LimitMetrics::default(),
    )
}

fn review_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": {"containers": [{"name": "app", "image": "app"}]}}
        }
    }))
    .unwrap()
}

fn post(path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post(path);
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body.into()).unwrap()
}

async fn call(router: Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn inject_answers_a_review_on_every_accepted_path() {
    for path in ["/inject", "/inject/", "/inject/cluster/x/net/y"] {
        let router = router(state(Limits::default()));
        let (status, body) =
            call(router, post(path, Some("application/json"), review_body())).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(body["response"]["uid"], "u-1");
        assert_eq!(body["response"]["allowed"], true);
    }
}

#[tokio::test]
async fn unknown_paths_are_404_with_a_message() {
    let (status, body) = call(
        router(state(Limits::default())),
        post("/mutate", Some("application/json"), review_body()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"].as_str().unwrap().contains("/mutate"),
        "{body}"
    );
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let (status, body) = call(
        router(state(Limits::default())),
        post("/inject", Some("text/plain"), review_body()),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        body["error"].as_str().unwrap().contains("application/json"),
        "{body}"
    );
}

#[tokio::test]
async fn oversized_body_is_413() {
    let limits = Limits {
        max_body_bytes: 100,
        ..Limits::default()
    };
    let (status, body) = call(
        router(state(limits)),
        post("/inject", Some("application/json"), review_body()),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        body["error"].as_str().unwrap().contains("100 bytes"),
        "{body}"
    );
}

#[tokio::test]
async fn malformed_review_is_400_saying_what_is_wrong() {
    let (status, body) = call(
        router(state(Limits::default())),
        post("/inject", Some("application/json"), "{\"kind\": \"Pod\"}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("AdmissionReview"),
        "{body}"
    );
}

#[tokio::test]
async fn preview_reads_yaml_and_the_query() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: app\n    image: app\n";
    let (status, body) = call(
        router(state(Limits::default())),
        post(
            "/preview?namespace=shop&namespaceLabel=istio-injection=enabled",
            Some("application/yaml"),
            yaml,
        ),
    )
    .await;
    let object = preview::parse_object(yaml.as_bytes()).unwrap();
    let ctx = preview::context_from_query(Some(
        "namespace=shop&namespaceLabel=istio-injection=enabled",
    ))
    .unwrap();
    let expected = preview::preview(object, &ctx, &Config::default());
    let expected_status = if expected.decision == "deny" {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body, serde_json::to_value(&expected).unwrap());
}

#[tokio::test]
async fn preview_rejects_bad_queries_and_types() {
    let (status, _) = call(
        router(state(Limits::default())),
        post("/preview?nope=1", Some("application/json"), "{}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        router(state(Limits::default())),
        post("/preview", Some("application/x-www-form-urlencoded"), "{}"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// A request body that never arrives.
struct Stalled;

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Pending
    }
}

#[tokio::test]
async fn past_the_concurrency_bound_requests_get_503_at_once() {
    let limits = Limits {
        max_concurrent_requests: 1,
        request_timeout: Duration::from_secs(3600),
        ..Limits::default()
    };
    let router = router(state(limits));
    let held = tokio::spawn(router.clone().oneshot(post(
        "/inject",
        Some("application/json"),
        Body::new(Stalled),
    )));
    // Let the first request take the only permit.
    let mut answered = None;
    for _ in 0..1000 {
        tokio::task::yield_now().await;
        let (status, body) = call(
            router.clone(),
            post("/inject", Some("application/json"), review_body()),
        )
        .await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            answered = Some(body);
            break;
        }
    }
    let body = answered.expect("a second request was never refused");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("too many requests"),
        "{body}"
    );
    held.abort();
}

#[tokio::test]
async fn a_request_past_its_timeout_gets_503() {
    let limits = Limits {
        request_timeout: Duration::from_millis(20),
        ..Limits::default()
    };
    let (status, body) = call(
        router(state(limits)),
        post("/inject", Some("application/json"), Body::new(Stalled)),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"].as_str().unwrap().contains("timeout"),
        "{body}"
    );
}

#[tokio::test]
async fn while_draining_http1_responses_close_the_connection() {
    let state = state(Limits::default());
    let draining = state.draining.clone();
    let router = router(state);
    let request = |version| {
        let mut request = post("/inject", Some("application/json"), review_body());
        *request.version_mut() = version;
        request
    };
    let response = router
        .clone()
        .oneshot(request(axum::http::Version::HTTP_11))
        .await
        .unwrap();
    assert!(response.headers().get("connection").is_none());
    draining.start();
    let response = router
        .clone()
        .oneshot(request(axum::http::Version::HTTP_11))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["connection"], "close");
    let response = router
        .oneshot(request(axum::http::Version::HTTP_2))
        .await
        .unwrap();
    assert!(response.headers().get("connection").is_none());
}

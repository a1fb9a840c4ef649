//! TokenReview against a mocked API server (tower-test): the exact request
//! sent, the acceptance rules, and the cache cutting the number of reviews.

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

use super::*;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

fn authenticator(cache: CacheSettings) -> (TokenReviewAuthenticator, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    (TokenReviewAuthenticator::new(client, vec![], cache), handle)
}

fn sa_status(namespace: &str, name: &str) -> Value {
    json!({
        "authenticated": true,
        "audiences": ["istio-ca"],
        "user": {
            "username": format!("system:serviceaccount:{namespace}:{name}"),
            "uid": "3b5c3b8e-0000-4000-8000-000000000000",
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{namespace}"), "system:authenticated"],
        }
    })
}

/// Expects one TokenReview for `token`, checks it exactly, answers `status`.
async fn expect_review(handle: &mut Handle, token: &str, status: Value) {
    let (request, send) = handle.next_request().await.expect("a TokenReview request");
    assert_eq!(request.method(), Method::POST);
    assert_eq!(
        request.uri().to_string(),
        "/apis/authentication.k8s.io/v1/tokenreviews?&fieldManager=outrigger"
    );
    let body = request.into_body().collect_bytes().await.unwrap();
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        sent,
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {},
            "spec": {"audiences": ["istio-ca"], "token": token},
        })
    );
    let mut answer = sent;
    answer["status"] = status;
    send.send_response(
        Response::builder()
            .status(201)
            .body(Body::from(serde_json::to_vec(&answer).unwrap()))
            .unwrap(),
    );
}

/// Asserts that no request is left once every client handle is gone.
async fn expect_no_more(mut handle: Handle) {
    assert!(
        handle.next_request().await.is_none(),
        "unexpected extra TokenReview"
    );
}

#[tokio::test]
async fn sends_the_exact_review_and_reads_the_service_account() {
    let (auth, mut handle) = authenticator(CacheSettings::default());
    let api = tokio::spawn(async move {
        expect_review(&mut handle, "token-a", sa_status("ns-a", "sa-x")).await;
        handle
    });
    let caller = auth.review("token-a").await.unwrap();
    assert_eq!(caller, Caller::new("ns-a", "sa-x"));
    let handle = api.await.unwrap();
    drop(auth);
    expect_no_more(handle).await;
}

#[tokio::test]
async fn cache_turns_a_burst_into_one_review_per_token() {
    let (auth, mut handle) = authenticator(CacheSettings::default());
    let api = tokio::spawn(async move {
        expect_review(&mut handle, "token-a", sa_status("ns-a", "sa-x")).await;
        expect_review(&mut handle, "token-b", sa_status("ns-b", "sa-y")).await;
        handle
    });
    for _ in 0..10 {
        assert_eq!(
            auth.review("token-a").await.unwrap(),
            Caller::new("ns-a", "sa-x")
        );
    }
    for _ in 0..10 {
        assert_eq!(
            auth.review("token-b").await.unwrap(),
            Caller::new("ns-b", "sa-y")
        );
    }
    let handle = api.await.unwrap();
    drop(auth);
    // 20 authentications, 2 reviews.
    expect_no_more(handle).await;
}

#[tokio::test]
async fn without_cache_every_call_is_a_review() {
    let (auth, mut handle) = authenticator(CacheSettings::DISABLED);
    let api = tokio::spawn(async move {
        for _ in 0..3 {
            expect_review(&mut handle, "token-a", sa_status("ns-a", "sa-x")).await;
        }
        handle
    });
    for _ in 0..3 {
        auth.review("token-a").await.unwrap();
    }
    let handle = api.await.unwrap();
    drop(auth);
    expect_no_more(handle).await;
}

#[tokio::test]
async fn refusals_are_not_cached_and_say_why() {
    let (auth, mut handle) = authenticator(CacheSettings::default());
    let api = tokio::spawn(async move {
        for _ in 0..2 {
            expect_review(
                &mut handle,
                "bad",
                json!({"authenticated": false, "error": "token has expired"}),
            )
            .await;
        }
        expect_review(
            &mut handle,
            "user",
            json!({"authenticated": true, "user": {"username": "alice", "groups": ["system:authenticated"]}}),
        )
        .await;
        expect_review(
            &mut handle,
            "aud",
            json!({"authenticated": true, "audiences": ["other"], "user": {"username": "system:serviceaccount:a:b", "groups": ["system:serviceaccounts"]}}),
        )
        .await;
        expect_review(
            &mut handle,
            "name",
            json!({"authenticated": true, "user": {"username": "system:node:n1", "groups": ["system:serviceaccounts"]}}),
        )
        .await;
        handle
    });
    for _ in 0..2 {
        let err = auth.review("bad").await.unwrap_err();
        assert_eq!(err.to_string(), "token expired");
    }
    let err = auth.review("user").await.unwrap_err();
    assert_eq!(err.reason(), "not-service-account");
    assert!(
        err.to_string()
            .contains("not in group system:serviceaccounts")
    );
    let err = auth.review("aud").await.unwrap_err();
    assert_eq!(err.reason(), "wrong-audience");
    let err = auth.review("name").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("is not system:serviceaccount:<namespace>:<name>")
    );
    let handle = api.await.unwrap();
    drop(auth);
    expect_no_more(handle).await;
}

#[tokio::test]
async fn api_errors_are_backend_failures() {
    let (auth, mut handle) = authenticator(CacheSettings::default());
    let api = tokio::spawn(async move {
        let (_, send) = handle.next_request().await.unwrap();
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "tokenreviews.authentication.k8s.io is forbidden", "reason": "Forbidden", "code": 403});
        send.send_response(
            Response::builder()
                .status(403)
                .body(Body::from(serde_json::to_vec(&status).unwrap()))
                .unwrap(),
        );
    });
    let err = auth.review("t").await.unwrap_err();
    assert_eq!(err.reason(), "backend");
    assert!(err.to_string().contains("forbidden"), "{err}");
    api.await.unwrap();
}

#[test]
fn refusals_are_told_apart_by_what_the_api_server_says() {
    let audiences = vec!["istio-ca".to_string()];
    for (error, reason) in [
        (
            "[invalid bearer token, service account token has been invalidated]",
            "revoked",
        ),
        (
            "[invalid bearer token, serviceaccounts \"ghost\" not found]",
            "revoked",
        ),
        ("[invalid bearer token, pod \"web-0\" not found]", "revoked"),
        (
            "[invalid bearer token, service account UID (abc) does not match claim (def)]",
            "revoked",
        ),
        ("[invalid bearer token, token has expired]", "expired"),
        (
            "[invalid bearer token, token audiences [\"api\"] is invalid for the target audiences [\"istio-ca\"]]",
            "wrong-audience",
        ),
        (
            "[invalid bearer token, square/go-jose: error in cryptographic primitive]",
            "rejected",
        ),
        ("", "rejected"),
    ] {
        assert_eq!(refusal(error, &audiences).reason(), reason, "{error}");
    }
    assert!(
        refusal("service account token has been invalidated", &audiences)
            .to_string()
            .contains("has been invalidated")
    );
}

//! End to end: the real CA behind the real gRPC server (TLS on an ephemeral
//! loopback port), real tonic clients generated from the same proto, one
//! section per authenticator, and every chain checked by `openssl verify`.

#[path = "support/requires.rs"]
mod requires;

#[path = "ca_grpc/jwt.rs"]
mod jwt;
#[path = "ca_grpc/support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use outrigger::ca::SpiffeId;
use outrigger::ca::grpc::auth::client_cert::ClientCertAuthenticator;
use outrigger::ca::grpc::auth::jwt::{Jwks, JwtAuthenticator, JwtPolicy};
use outrigger::ca::grpc::auth::static_tokens::StaticTokens;
use outrigger::ca::grpc::auth::{AuthChain, Authenticator};
use outrigger::ca::grpc::client::{self, ClientError};
use outrigger::ca::grpc::proto::IstioCertificateRequest;
use outrigger::cluster::token_review::{CacheSettings, TokenReviewAuthenticator};
use serde_json::{Value, json};
use tonic::Code;

use support::{Harness, assert_issued_for, code_of, csr_asking_for};

fn chain_of(authenticators: Vec<Arc<dyn Authenticator>>) -> AuthChain {
    AuthChain::new(authenticators)
}

fn static_tokens() -> Arc<dyn Authenticator> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.txt");
    std::fs::write(
        &path,
        "# test tokens\ntok-a-x ns-a/sa-x\ntok-b-y ns-b/sa-y\n",
    )
    .unwrap();
    Arc::new(StaticTokens::load(&path).unwrap())
}

async fn request_csr(h: &Harness, token: &str, csr: &str) -> Result<Vec<String>, ClientError> {
    let mut c = h.client(None).await?;
    client::create_certificate(&mut c, Some(token), csr, None).await
}

// ---- static token file ------------------------------------------------------

#[tokio::test]
async fn static_token_gets_a_chain_for_its_identity() {
    if !requires::tool("openssl", "static_token_gets_a_chain_for_its_identity") {
        return;
    }
    let h = Harness::start(chain_of(vec![static_tokens()])).await;
    let chain = h.request(Some("tok-a-x")).await.unwrap();
    assert_issued_for(&h.ca, &chain, "ns-a", "sa-x");
    let chain = h.request(Some("tok-b-y")).await.unwrap();
    assert_issued_for(&h.ca, &chain, "ns-b", "sa-y");
    h.stop().await;
}

#[tokio::test]
async fn static_token_cannot_ask_for_another_identity() {
    let h = Harness::start(chain_of(vec![static_tokens()])).await;
    let csr = csr_asking_for("spiffe://cluster.local/ns/ns-b/sa/sa-y");
    let (code, message) = code_of(request_csr(&h, "tok-a-x", &csr).await);
    assert_eq!(code, Code::PermissionDenied, "{message}");
    assert!(message.contains("ns/ns-b/sa/sa-y"), "{message}");
    assert!(message.contains("ns/ns-a/sa/sa-x"), "{message}");

    let (code, message) = code_of(h.request(Some("no-such-token")).await);
    assert_eq!(code, Code::Unauthenticated);
    assert!(
        message.contains("not in the static token file"),
        "{message}"
    );
    h.stop().await;
}

// ---- local JWT verification -------------------------------------------------

struct JwtSetup {
    rsa: jwt::IssuerKey,
    ec: jwt::IssuerKey,
    auth: AuthChain,
}

fn jwt_setup() -> JwtSetup {
    let rsa = jwt::IssuerKey::rs256("rsa-1");
    let ec = jwt::IssuerKey::es256("ec-1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwt::jwks(&[&rsa, &ec])).unwrap();
    let jwks = Jwks::load(&path).unwrap();
    let auth = chain_of(vec![Arc::new(JwtAuthenticator::new(
        JwtPolicy::default(),
        jwks,
    ))]);
    JwtSetup { rsa, ec, auth }
}

#[tokio::test]
async fn jwt_rs256_and_es256_tokens_get_their_identity() {
    if !requires::tool("openssl", "jwt_rs256_and_es256_tokens_get_their_identity") {
        return;
    }
    let s = jwt_setup();
    let h = Harness::start(s.auth.clone()).await;
    let token = s.rsa.sign(&jwt::sa_claims("ns-a", "sa-x"));
    assert_issued_for(
        &h.ca,
        &h.request(Some(&token)).await.unwrap(),
        "ns-a",
        "sa-x",
    );
    let token = s.ec.sign(&jwt::sa_claims("shop", "frontend"));
    assert_issued_for(
        &h.ca,
        &h.request(Some(&token)).await.unwrap(),
        "shop",
        "frontend",
    );
    h.stop().await;
}

#[tokio::test]
async fn jwt_for_one_identity_cannot_ask_for_another() {
    if !requires::tool("openssl", "jwt_for_one_identity_cannot_ask_for_another") {
        return;
    }
    let s = jwt_setup();
    let h = Harness::start(s.auth.clone()).await;
    let token = s.rsa.sign(&jwt::sa_claims("ns-a", "sa-x"));
    let csr = csr_asking_for("spiffe://cluster.local/ns/ns-b/sa/sa-y");
    let (code, message) = code_of(request_csr(&h, &token, &csr).await);
    assert_eq!(code, Code::PermissionDenied, "{message}");
    h.stop().await;
}

#[tokio::test]
async fn bad_jwts_are_unauthenticated() {
    if !requires::tool("openssl", "bad_jwts_are_unauthenticated") {
        return;
    }
    let s = jwt_setup();
    let h = Harness::start(s.auth.clone()).await;
    let with = |patch: &dyn Fn(&mut Value)| {
        let mut claims = jwt::sa_claims("ns-a", "sa-x");
        patch(&mut claims);
        s.rsa.sign(&claims)
    };
    let stranger = jwt::IssuerKey::es256("ec-1");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            with(&|c| c["exp"] = json!(jwt::now() - 3600)),
            "token expired",
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!(["https://kubernetes.default.svc"])),
            "audience",
        ),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.example")),
            "issuer",
        ),
        ("malformed", "not.a-jwt".to_string(), "malformed token"),
        ("garbage", "abc".to_string(), "malformed token"),
        (
            "untrusted key",
            stranger.sign(&jwt::sa_claims("ns-a", "sa-x")),
            "signature",
        ),
    ];
    for (name, token, expected) in cases {
        let (code, message) = code_of(h.request(Some(&token)).await);
        assert_eq!(code, Code::Unauthenticated, "{name}: {message}");
        assert!(message.contains(expected), "{name}: {message}");
    }
    let text = h.metrics_text();
    for reason in [
        "expired",
        "wrong-audience",
        "wrong-issuer",
        "malformed",
        "bad-signature",
    ] {
        assert!(
            text.contains(&format!(
                "outrigger_ca_authentication_failures_total{{reason=\"{reason}\"}}"
            )),
            "{reason} missing in\n{text}"
        );
    }
    assert!(
        text.contains("outrigger_ca_requests_total{result=\"unauthenticated\"} 6"),
        "{text}"
    );
    h.stop().await;
}

// ---- TokenReview against a mocked API server --------------------------------

/// Answers TokenReviews like an API server that knows one token per
/// ServiceAccount; returns how many reviews it answered.
async fn fake_api_server(
    mut handle: tower_test::mock::Handle<Request<kube::client::Body>, Response<kube::client::Body>>,
) -> usize {
    let mut answered = 0;
    while let Some((request, send)) = handle.next_request().await {
        assert_eq!(
            request.uri().path(),
            "/apis/authentication.k8s.io/v1/tokenreviews"
        );
        let body = request.into_body().collect_bytes().await.unwrap();
        let mut review: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(review["spec"]["audiences"], json!(["istio-ca"]));
        review["status"] = match review["spec"]["token"].as_str() {
            Some("kube-token-a-x") => json!({
                "authenticated": true,
                "audiences": ["istio-ca"],
                "user": {"username": "system:serviceaccount:ns-a:sa-x",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:ns-a", "system:authenticated"]},
            }),
            _ => json!({"authenticated": false, "error": "invalid bearer token"}),
        };
        send.send_response(
            Response::builder()
                .status(201)
                .body(kube::client::Body::from(
                    serde_json::to_vec(&review).unwrap(),
                ))
                .unwrap(),
        );
        answered += 1;
    }
    answered
}

#[tokio::test]
async fn token_review_authenticates_through_the_api_server() {
    if !requires::tool(
        "openssl",
        "token_review_authenticates_through_the_api_server",
    ) {
        return;
    }
    let (service, handle) = tower_test::mock::pair();
    let api = tokio::spawn(fake_api_server(handle));
    let client = kube::Client::new(service, "default");
    let reviewer = TokenReviewAuthenticator::new(client, vec![], CacheSettings::default());
    let h = Harness::start(chain_of(vec![Arc::new(reviewer)])).await;

    for _ in 0..3 {
        let chain = h.request(Some("kube-token-a-x")).await.unwrap();
        assert_issued_for(&h.ca, &chain, "ns-a", "sa-x");
    }
    let csr = csr_asking_for("spiffe://cluster.local/ns/ns-b/sa/sa-y");
    let (code, _) = code_of(request_csr(&h, "kube-token-a-x", &csr).await);
    assert_eq!(code, Code::PermissionDenied);
    let (code, message) = code_of(h.request(Some("stolen")).await);
    assert_eq!(code, Code::Unauthenticated);
    assert!(message.contains("invalid bearer token"), "{message}");

    h.stop().await;
    // 4 requests with the good token, 1 with a bad one: 2 reviews thanks to the cache.
    assert_eq!(api.await.unwrap(), 2);
}

// ---- renewal by mutual TLS ----------------------------------------------------

async fn request_with_identity(
    h: &Harness,
    identity: (String, String),
) -> Result<Vec<String>, ClientError> {
    let (_, csr) = client::generate_key_and_csr().unwrap();
    let mut c = h.client(Some(identity)).await?;
    client::create_certificate(&mut c, None, &csr, None).await
}

/// The whole error chain of a request that must have failed.
fn refusal_text(result: Result<Vec<String>, ClientError>) -> String {
    let err = match result {
        Ok(_) => panic!("the client certificate was accepted"),
        Err(err) => err,
    };
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn renewal_with_a_valid_client_certificate() {
    if !requires::tool("openssl", "renewal_with_a_valid_client_certificate") {
        return;
    }
    let auth = chain_of(vec![
        static_tokens(),
        Arc::new(ClientCertAuthenticator::new(support::TRUST_DOMAIN)),
    ]);
    let h = Harness::start(auth).await;
    // First certificate by token, keeping its key.
    let (key, csr) = client::generate_key_and_csr().unwrap();
    let mut c = h.client(None).await.unwrap();
    let first = client::create_certificate(&mut c, Some("tok-b-y"), &csr, None)
        .await
        .unwrap();
    // Renew with it, no token.
    let renewed = request_with_identity(&h, (first.concat(), key.0.clone()))
        .await
        .unwrap();
    assert_issued_for(&h.ca, &renewed, "ns-b", "sa-y");
    assert_ne!(renewed[0], first[0]);
    // The client certificate decides the identity: asking for another is refused.
    let mut c = h
        .client(Some((first.concat(), key.0.clone())))
        .await
        .unwrap();
    let csr = csr_asking_for("spiffe://cluster.local/ns/ns-a/sa/sa-x");
    let (code, _) = code_of(client::create_certificate(&mut c, None, &csr, None).await);
    assert_eq!(code, Code::PermissionDenied);
    h.stop().await;
}

#[tokio::test]
async fn expired_or_foreign_client_certificates_are_refused() {
    let auth = chain_of(vec![Arc::new(ClientCertAuthenticator::new(
        support::TRUST_DOMAIN,
    ))]);
    let h = Harness::start(auth).await;
    let id = SpiffeId::new(support::TRUST_DOMAIN, "ns-a", "sa-x").unwrap();

    // Issued by this CA two days ago for one hour.
    let (key, csr) = client::generate_key_and_csr().unwrap();
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    let expired =
        h.ca.sign_csr_at(csr.as_bytes(), &id, Some(Duration::from_secs(3600)), past)
            .unwrap();
    let result = request_with_identity(&h, (expired.to_pem(), key.0.clone())).await;
    let text = refusal_text(result);
    assert!(text.contains("CertificateExpired"), "{text}");

    // Valid, but from another CA.
    let other = support::new_ca();
    let foreign = other.issue_workload(&id, None).unwrap();
    let result = request_with_identity(
        &h,
        (foreign.chain.to_pem(), foreign.key.expose().to_string()),
    )
    .await;
    // Same subject name as this CA's root, different key: the signature fails.
    let text = refusal_text(result);
    assert!(text.contains("received fatal alert"), "{text}");

    // No certificate and no token: Unauthenticated, saying what to send.
    let (code, message) = code_of(h.request(None).await);
    assert_eq!(code, Code::Unauthenticated);
    assert!(message.contains("no credentials"), "{message}");
    h.stop().await;
}

// ---- request checks -----------------------------------------------------------

#[tokio::test]
async fn bad_requests_are_invalid_arguments_and_ttl_defaults() {
    if !requires::tool(
        "openssl",
        "bad_requests_are_invalid_arguments_and_ttl_defaults",
    ) {
        return;
    }
    if !requires::tool(
        "openssl",
        "bad_requests_are_invalid_arguments_and_ttl_defaults",
    ) {
        return;
    }
    let h = Harness::start(chain_of(vec![static_tokens()])).await;
    let (code, message) = code_of(
        request_csr(
            &h,
            "tok-a-x",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        )
        .await,
    );
    assert_eq!(code, Code::InvalidArgument, "{message}");
    let (code, message) = code_of(request_csr(&h, "tok-a-x", "").await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("csr is empty"), "{message}");

    let (_, csr) = client::generate_key_and_csr().unwrap();
    let mut c = h.client(None).await.unwrap();
    let too_long = Some(Duration::from_secs(3600 * 24 * 365));
    let (code, message) =
        code_of(client::create_certificate(&mut c, Some("tok-a-x"), &csr, too_long).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("over the maximum"), "{message}");

    // A weak key, in a CSR made by openssl: refused as an invalid argument.
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-new", "-newkey", "rsa:1024", "-nodes", "-subj", "/CN=weak",
        ])
        .args(["-keyout", "/dev/null"])
        .stderr(std::process::Stdio::null())
        .output()
        .expect("openssl must be installed");
    assert!(out.status.success());
    let weak = String::from_utf8(out.stdout).unwrap();
    let (code, message) = code_of(request_csr(&h, "tok-a-x", &weak).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("1024"), "{message}");

    // validity_duration <= 0: the default TTL (24 h), on the raw generated client.
    for validity in [0, -5] {
        let mut request = tonic::Request::new(IstioCertificateRequest {
            csr: csr.clone(),
            subject_id: String::new(),
            validity_duration: validity,
            metadata: None,
        });
        request
            .metadata_mut()
            .insert("authorization", "Bearer tok-a-x".parse().unwrap());
        let chain = c
            .create_certificate(request)
            .await
            .unwrap()
            .into_inner()
            .cert_chain;
        let lifetime = support::lifetime_seconds(&chain[0]);
        // notBefore is backdated 2 minutes for clock skew.
        assert_eq!(lifetime, 24 * 3600 + 120, "validity {validity}");
    }

    // A malformed authorization header is refused before any authenticator.
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr,
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", "Basic abc".parse().unwrap());
    let status = c.create_certificate(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("Bearer"), "{}", status.message());

    let text = h.metrics_text();
    assert!(
        text.contains("outrigger_ca_requests_total{result=\"invalid-argument\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("outrigger_ca_requests_total{result=\"ok\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("outrigger_ca_root_expiry_timestamp_seconds "),
        "{text}"
    );
    h.stop().await;
}

// ---- the one-call entry `outrigger serve` uses ---------------------------------

#[tokio::test]
async fn run_serves_with_a_ca_issued_serving_certificate_until_shutdown() {
    if !requires::tool(
        "openssl",
        "run_serves_with_a_ca_issued_serving_certificate_until_shutdown",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.txt");
    std::fs::write(&tokens, "run-token ns-r/sa-r\n").unwrap();
    let config = outrigger::ca::grpc::CaServiceConfig {
        serving_dns_names: vec!["ca.outrigger.test".into()],
        static_token_file: Some(tokens),
        ..Default::default()
    };
    let auth = config.auth_chain(Vec::new()).unwrap();
    let ca = support::new_ca();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(outrigger::ca::grpc::run(
        listener,
        config,
        ca.clone(),
        auth,
        outrigger::ca::grpc::metrics::CaMetrics::new(),
        async {
            let _ = stopped.await;
        },
    ));
    let connect = |identity| client::ConnectOptions {
        addr: addr.to_string(),
        ca_bundle_pem: ca.root_pem().to_string(),
        server_name: Some("ca.outrigger.test".into()),
        client_identity: identity,
    };
    let (key, csr) = client::generate_key_and_csr().unwrap();
    let mut c = client::connect(&connect(None)).await.unwrap();
    let chain = client::create_certificate(&mut c, Some("run-token"), &csr, None)
        .await
        .unwrap();
    assert_issued_for(&ca, &chain, "ns-r", "sa-r");
    // Client certificates are on by default.
    let (_, csr) = client::generate_key_and_csr().unwrap();
    let mut c = client::connect(&connect(Some((chain.concat(), key.0.clone()))))
        .await
        .unwrap();
    let renewed = client::create_certificate(&mut c, None, &csr, None)
        .await
        .unwrap();
    assert_issued_for(&ca, &renewed, "ns-r", "sa-r");
    // The serving certificate names what the config says, not "localhost".
    let wrong_name = client::ConnectOptions {
        server_name: Some("localhost".into()),
        ..connect(None)
    };
    let refused = match client::connect(&wrong_name).await {
        Err(_) => true,
        Ok(mut c) => client::create_certificate(&mut c, Some("run-token"), &csr, None)
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a client checking another name accepted the server"
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

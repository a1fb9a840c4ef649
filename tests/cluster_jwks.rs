//! The CA service's in-cluster JWT keys against a scripted API server: the
//! exact discovery and JWKS requests, a token signed by the fetched key
//! authenticated with no TokenReview, an explicit issuer skipping discovery,
//! a failed refresh keeping the old keys, a malformed JWKS reported and not
//! installed, and the refresh/backoff schedule on tokio's paused clock.

#[path = "support/requires.rs"]
mod requires;

#[path = "ca_grpc/jwt.rs"]
mod jwt;
#[path = "cluster_support/scenario.rs"]
mod scenario;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use outrigger::ca::grpc::auth::jwt::JwtPolicy;
use outrigger::ca::grpc::auth::{AuthChain, AuthError, Authenticator, Caller, Credentials};
use outrigger::cluster::jwks::{
    self, ClusterJwt, DISCOVERY_MEDIA_TYPE, DISCOVERY_PATH, IssuerSource, JWKS_MEDIA_TYPE,
    JWKS_PATH, JwksFetchError,
};
use outrigger::cluster::token_review::{CacheSettings, TokenReviewAuthenticator};
use scenario::{Reply, Scenario, internal_error, ok};
use serde_json::{Value, json};

const ISSUER: &str = "https://oidc.test/cluster-1";
/// What a real kube-apiserver serves the discovery document as.
const SERVED_DISCOVERY: &str = "application/json";
/// What a real kube-apiserver serves the JWKS as: it answers 406 to a
/// request that accepts only `application/json` (seen on v1.32).
const SERVED_JWKS: &str = "application/jwk-set+json";

fn discovery() -> Reply {
    ok(json!({
        "issuer": ISSUER,
        "jwks_uri": "https://10.0.0.1:443/openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
    }))
}

fn jwks_reply(keys: &[&jwt::IssuerKey]) -> Reply {
    ok(serde_json::from_str(&jwt::jwks(keys)).unwrap())
}

fn token(key: &jwt::IssuerKey, issuer: &str) -> String {
    let mut claims: Value = jwt::sa_claims("ns-a", "sa-x");
    claims["iss"] = json!(issuer);
    key.sign(&claims)
}

fn bearer(token: &str) -> Credentials {
    Credentials {
        bearer_token: Some(token.to_string()),
        peer_certificates: None,
    }
}

fn verify_now(auth: &ClusterJwt, token: &str) -> Result<Option<Caller>, AuthError> {
    // The JWT check never waits on IO, so it can run inside a scripted
    // reply's hook.
    futures::executor::block_on(auth.authenticate(&bearer(token)))
}

fn requests(seen: &[(String, String, Value)]) -> Vec<(String, String)> {
    seen.iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect()
}

fn get(path: &str) -> (String, String) {
    ("GET".to_string(), path.to_string())
}

#[tokio::test]
async fn fetched_keys_authenticate_tokens_with_no_token_review() {
    if !requires::tool(
        "openssl",
        "fetched_keys_authenticate_tokens_with_no_token_review",
    ) {
        return;
    }
    let key = jwt::IssuerKey::rs256("kid-rsa");
    let (client, verifier) = Scenario::new()
        .get_served_as(DISCOVERY_PATH, SERVED_DISCOVERY, discovery())
        .get_served_as(JWKS_PATH, SERVED_JWKS, jwks_reply(&[&key]))
        .start();
    let local = Arc::new(ClusterJwt::new(
        JwtPolicy::default(),
        IssuerSource::Discover,
    ));
    jwks::refresh(&client, &local).await.unwrap();
    assert_eq!(local.issuer().as_deref(), Some(ISSUER));

    let review = TokenReviewAuthenticator::new(
        client.clone(),
        vec!["istio-ca".into()],
        CacheSettings::default(),
    );
    let local_dyn: Arc<dyn Authenticator> = local.clone();
    let chain = AuthChain::new(vec![local_dyn, Arc::new(review)]);
    let (caller, by) = chain
        .authenticate(&bearer(&token(&key, ISSUER)))
        .await
        .unwrap();
    assert_eq!((caller, by), (Caller::new("ns-a", "sa-x"), "jwt"));
    // The discovered issuer is the one enforced: the flag's default is not.
    assert!(matches!(
        verify_now(&local, &token(&key, jwt::ISSUER)),
        Err(AuthError::WrongIssuer { .. })
    ));

    assert_eq!(
        requests(&verifier.seen()),
        vec![get(DISCOVERY_PATH), get(JWKS_PATH)]
    );
    drop((chain, client));
    // No TokenReview (or anything else) after the two GETs.
    verifier.finish().await;
}

#[tokio::test]
async fn an_explicit_issuer_skips_discovery() {
    if !requires::tool("openssl", "an_explicit_issuer_skips_discovery") {
        return;
    }
    let key = jwt::IssuerKey::es256("kid-1");
    let (client, verifier) = Scenario::new()
        .get_served_as(JWKS_PATH, SERVED_JWKS, jwks_reply(&[&key]))
        .start();
    let fixed = "https://issuer.from.flag";
    let local = ClusterJwt::new(JwtPolicy::default(), IssuerSource::from_flag(Some(fixed)));
    jwks::refresh(&client, &local).await.unwrap();
    assert_eq!(local.issuer().as_deref(), Some(fixed));
    assert_eq!(
        verify_now(&local, &token(&key, fixed)).unwrap(),
        Some(Caller::new("ns-a", "sa-x"))
    );
    assert_eq!(requests(&verifier.seen()), vec![get(JWKS_PATH)]);
    drop(client);
    verifier.finish().await;
}

#[tokio::test]
async fn a_malformed_jwks_is_reported_and_not_installed() {
    if !requires::tool("openssl", "a_malformed_jwks_is_reported_and_not_installed") {
        return;
    }
    let key = jwt::IssuerKey::es256("kid-1");
    let (client, verifier) = Scenario::new()
        .get_served_as(DISCOVERY_PATH, SERVED_DISCOVERY, discovery())
        .get_served_as(
            JWKS_PATH,
            JWKS_MEDIA_TYPE,
            ok(json!({"keys": "not-a-list"})),
        )
        .get_served_as(DISCOVERY_PATH, SERVED_DISCOVERY, discovery())
        .get(
            JWKS_PATH,
            ok(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})),
        )
        .get_served_as(
            DISCOVERY_PATH,
            DISCOVERY_MEDIA_TYPE,
            ok(json!({"jwks_uri": "x"})),
        )
        .start();
    let local = ClusterJwt::new(JwtPolicy::default(), IssuerSource::Discover);
    for expected in ["not valid JSON", "no usable RSA or EC"] {
        let err = jwks::refresh(&client, &local).await.unwrap_err();
        assert!(matches!(err, JwksFetchError::Jwks(_)), "{err}");
        assert!(err.to_string().contains(JWKS_PATH), "{err}");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains(expected), "{cause}");
    }
    let err = jwks::refresh(&client, &local).await.unwrap_err();
    assert!(matches!(err, JwksFetchError::Discovery(_)), "{err}");
    // Nothing installed: every token is left to the next authenticator.
    assert_eq!(local.issuer(), None);
    assert_eq!(verify_now(&local, &token(&key, ISSUER)).unwrap(), None);
    drop(client);
    verifier.finish().await;
}

/// Records the paused clock's time and, if given, a check of the keys
/// installed at that moment, just before the API server answers.
fn at(
    times: &Arc<Mutex<Vec<tokio::time::Instant>>>,
    check: Option<Box<dyn FnOnce() + Send>>,
    reply: Reply,
) -> Reply {
    let times = Arc::clone(times);
    Reply::After(
        Box::new(move || {
            times.lock().unwrap().push(tokio::time::Instant::now());
            if let Some(check) = check {
                check();
            }
        }),
        Box::new(reply),
    )
}

#[tokio::test(start_paused = true)]
async fn refresh_errors_keep_the_old_keys_and_back_off() {
    if !requires::tool("openssl", "refresh_errors_keep_the_old_keys_and_back_off") {
        return;
    }
    let old = Arc::new(jwt::IssuerKey::es256("kid-old"));
    let new = Arc::new(jwt::IssuerKey::es256("kid-new"));
    let old_token = token(&old, ISSUER);
    let new_token = token(&new, ISSUER);
    let local = Arc::new(ClusterJwt::new(
        JwtPolicy::default(),
        IssuerSource::Discover,
    ));
    let times = Arc::new(Mutex::new(Vec::new()));
    let checks = Arc::new(Mutex::new(Vec::<(&str, bool, bool)>::new()));
    let check = |label: &'static str| -> Option<Box<dyn FnOnce() + Send>> {
        let (local, checks) = (Arc::clone(&local), Arc::clone(&checks));
        let (old_token, new_token) = (old_token.clone(), new_token.clone());
        Some(Box::new(move || {
            let old_ok = matches!(verify_now(&local, &old_token), Ok(Some(_)));
            let new_ok = matches!(verify_now(&local, &new_token), Ok(Some(_)));
            checks.lock().unwrap().push((label, old_ok, new_ok));
        }))
    };
    let (client, verifier) = Scenario::new()
        .get_served_as(
            DISCOVERY_PATH,
            DISCOVERY_MEDIA_TYPE,
            at(&times, check("before"), discovery()),
        )
        .get_served_as(JWKS_PATH, SERVED_JWKS, jwks_reply(&[&old]))
        .get(
            DISCOVERY_PATH,
            at(&times, check("period"), internal_error()),
        )
        .get_served_as(
            DISCOVERY_PATH,
            DISCOVERY_MEDIA_TYPE,
            at(&times, check("after 500"), discovery()),
        )
        .get_served_as(JWKS_PATH, SERVED_JWKS, ok(json!({"keys": {}})))
        .get(
            DISCOVERY_PATH,
            at(&times, check("after malformed"), discovery()),
        )
        .get_served_as(JWKS_PATH, SERVED_JWKS, jwks_reply(&[&new]))
        .start();

    let task = tokio::spawn(jwks::run(
        client.clone(),
        Arc::clone(&local),
        jwks::REFRESH_PERIOD,
    ));
    let mut polls = 0;
    while !matches!(verify_now(&local, &new_token), Ok(Some(_))) {
        polls += 1;
        assert!(polls < 10_000, "the rotated key was never installed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
    let _ = task.await;

    // Rotated: the new key is trusted, the old one no longer (its kid is
    // no longer published).
    assert!(matches!(
        verify_now(&local, &old_token),
        Err(AuthError::UnknownKey(_))
    ));
    assert_eq!(
        *checks.lock().unwrap(),
        vec![
            ("before", false, false),
            ("period", true, false),
            ("after 500", true, false),
            ("after malformed", true, false),
        ]
    );
    let times = times.lock().unwrap().clone();
    let gaps: Vec<u64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() as u64)
        .collect();
    // Refreshed after the period; then 1 s and 2 s backoff after the errors.
    assert_eq!(gaps, vec![300_000, 1_000, 2_000]);
    drop(client);
    verifier.finish().await;
}

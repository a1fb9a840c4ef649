//! JWT verification with ES256 keys made here (ring) and tokens signed by the
//! independent `jsonwebtoken` encoder.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use super::*;

struct Signer {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn es256(kid: &str) -> Signer {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    Signer {
        kid: kid.to_string(),
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }),
    }
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn claims(ns: &str, sa: &str) -> Value {
    json!({
        "iss": DEFAULT_ISSUER,
        "aud": ["istio-ca"],
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
        "iat": now(), "nbf": now(), "exp": now() + 3600,
        "kubernetes.io": {
            "namespace": ns,
            "pod": {"name": "p", "uid": "u"},
            "serviceaccount": {"name": sa, "uid": "u2"},
        },
    })
}

fn sign(signer: &Signer, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(signer.kid.clone());
    jsonwebtoken::encode(&header, claims, &signer.encoding).unwrap()
}

fn authenticator(signers: &[&Signer]) -> JwtAuthenticator {
    let jwks = json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()});
    JwtAuthenticator::new(
        JwtPolicy::default(),
        Jwks::from_json(jwks.to_string().as_bytes()).unwrap(),
    )
}

#[test]
fn a_good_token_names_its_service_account() {
    let key = es256("k1");
    let auth = authenticator(&[&key]);
    let caller = auth.verify(&sign(&key, &claims("ns-a", "sa-x"))).unwrap();
    assert_eq!(caller, Caller::new("ns-a", "sa-x"));
}

#[test]
fn claims_are_enforced() {
    let key = es256("k1");
    let auth = authenticator(&[&key]);
    let with = |patch: &dyn Fn(&mut Value)| {
        let mut c = claims("ns-a", "sa-x");
        patch(&mut c);
        auth.verify(&sign(&key, &c)).unwrap_err().reason()
    };
    assert_eq!(with(&|c| c["exp"] = json!(now() - 3600)), "expired");
    assert_eq!(with(&|c| c["nbf"] = json!(now() + 3600)), "not-yet-valid");
    assert_eq!(
        with(&|c| c["iss"] = json!("https://evil.example")),
        "wrong-issuer"
    );
    assert_eq!(
        with(&|c| c["aud"] = json!(["kubernetes"])),
        "wrong-audience"
    );
    assert_eq!(
        with(&|c| {
            c.as_object_mut().unwrap().remove("aud");
        }),
        "malformed"
    );
    assert_eq!(
        with(&|c| {
            c.as_object_mut().unwrap().remove("kubernetes.io");
        }),
        "not-service-account"
    );
    assert_eq!(
        with(&|c| c["sub"] = json!("system:serviceaccount:ns-b:sa-y")),
        "not-service-account"
    );
}

#[test]
fn signatures_must_verify_against_a_trusted_key() {
    let trusted = es256("k1");
    let stranger = es256("k1");
    let auth = authenticator(&[&trusted]);
    let err = auth
        .verify(&sign(&stranger, &claims("a", "b")))
        .unwrap_err();
    assert_eq!(err.reason(), "bad-signature");

    let other_kid = es256("k2");
    let err = auth
        .verify(&sign(&other_kid, &claims("a", "b")))
        .unwrap_err();
    assert!(
        err.to_string().contains("no trusted key with kid \"k2\""),
        "{err}"
    );

    // A rotated JWKS takes effect at once.
    auth.set_jwks(
        Jwks::from_json(json!({"keys": [other_kid.jwk]}).to_string().as_bytes()).unwrap(),
    );
    assert!(auth.verify(&sign(&other_kid, &claims("a", "b"))).is_ok());
    assert!(auth.verify(&sign(&trusted, &claims("a", "b"))).is_err());
}

#[test]
fn malformed_and_symmetric_tokens_are_refused() {
    let key = es256("k1");
    let auth = authenticator(&[&key]);
    for token in ["", "abc", "a.b.c", "a.b"] {
        assert_eq!(
            auth.verify(token).unwrap_err().reason(),
            "malformed",
            "{token}"
        );
    }
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("a", "b"),
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    let err = auth.verify(&hs).unwrap_err();
    assert!(err.to_string().contains("HS256"), "{err}");
}

#[test]
fn jwks_errors_are_clear() {
    assert!(matches!(Jwks::from_json(b"{"), Err(JwksError::Parse(_))));
    let err = Jwks::from_json(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "JWKS has no usable RSA or EC (P-256/P-384) public key (1 key(s) skipped)"
    );
}

#[test]
fn verified_tokens_are_cached_until_the_keys_change() {
    let key = es256("k1");
    let auth = authenticator(&[&key]);
    let token = sign(&key, &claims("ns-a", "sa-x"));
    assert_eq!(auth.verify(&token).unwrap(), Caller::new("ns-a", "sa-x"));
    assert_eq!(auth.cache.len(), 1);
    assert_eq!(auth.verify(&token).unwrap(), Caller::new("ns-a", "sa-x"));
    // Refusals are not remembered.
    let expired = sign(&key, &{
        let mut c = claims("ns-a", "sa-x");
        c["exp"] = json!(now() - 3600);
        c
    });
    assert!(auth.verify(&expired).is_err());
    assert_eq!(auth.cache.len(), 1);
    // Rotating the keys forgets every verified token: the old key's tokens fail.
    let other = es256("k2");
    auth.set_jwks(Jwks::from_json(json!({"keys": [other.jwk]}).to_string().as_bytes()).unwrap());
    assert_eq!(auth.cache.len(), 0);
    assert_eq!(auth.verify(&token).unwrap_err().reason(), "unknown-key");
}

#[test]
fn without_cache_nothing_is_remembered() {
    let key = es256("k1");
    let jwks = json!({"keys": [key.jwk.clone()]});
    let auth = JwtAuthenticator::new(
        JwtPolicy {
            cache: CacheSettings::DISABLED,
            ..JwtPolicy::default()
        },
        Jwks::from_json(jwks.to_string().as_bytes()).unwrap(),
    );
    auth.verify(&sign(&key, &claims("a", "b"))).unwrap();
    assert!(auth.cache.is_empty());
}

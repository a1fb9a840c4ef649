//! The CA's inputs, damaged byte by byte (a seeded series: flipped, dropped,
//! inserted and duplicated bytes, truncation): CSRs (DER and PEM), service
//! account tokens, JWKS documents and CA material. Each is refused with a
//! message or accepted, never with a panic; and the undamaged input is
//! accepted, so the series is known to start from something valid.

#[path = "support/requires.rs"]
mod requires;

// Only the ES256 key is needed here.
#[path = "support/damage.rs"]
mod damage;
#[allow(dead_code)]
#[path = "ca_grpc/jwt.rs"]
mod jwt;

use damage::{ANY_BYTE, series};
use outrigger::ca::grpc::auth::jwt::{Jwks, JwtAuthenticator, JwtPolicy};
use outrigger::ca::{CaPem, CertificateAuthority, PrivateKeyPem, RootOptions, SpiffeId};

const BASE64URL: &[u8] = b"AQZaz09-_.=+/ {}\"";

fn caller() -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", "checkout").unwrap()
}

#[test]
fn damaged_csrs_are_refused_never_panic() {
    let ca = CertificateAuthority::generate_root(&RootOptions::default()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    let (der, pem) = (csr.der().to_vec(), csr.pem().unwrap());
    for input in [&der[..], pem.as_bytes()] {
        ca.sign_csr(input, &caller(), None)
            .expect("the undamaged CSR is signed");
    }
    let sign = |bytes: &[u8]| {
        ca.sign_csr(bytes, &caller(), None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let refused = series("DER CSR", &der, ANY_BYTE, 6000, 1, sign);
    assert!(
        refused > 5000,
        "only {refused} of 6000 damaged DER CSRs refused"
    );
    let refused = series("PEM CSR", pem.as_bytes(), ANY_BYTE, 3000, 2, sign);
    assert!(
        refused > 2000,
        "only {refused} of 3000 damaged PEM CSRs refused"
    );
}

#[test]
fn damaged_tokens_and_jwks_are_refused_never_panic() {
    if !requires::tool("openssl", "damaged_tokens_and_jwks_are_refused_never_panic") {
        return;
    }
    let key = jwt::IssuerKey::es256("k1");
    let document = jwt::jwks(&[&key]);
    let policy = JwtPolicy {
        issuer: jwt::ISSUER.to_string(),
        ..JwtPolicy::default()
    };
    let authenticator = JwtAuthenticator::new(
        policy.clone(),
        Jwks::from_json(document.as_bytes()).unwrap(),
    );
    let token = key.sign(&jwt::sa_claims("shop", "checkout"));
    authenticator
        .verify(&token)
        .expect("the undamaged token is accepted");

    let refused = series("token", token.as_bytes(), BASE64URL, 6000, 3, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        authenticator
            .verify(&text)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    // Some edits leave a token valid (base64's unused trailing bits);
    // nearly all are refused.
    assert!(
        refused > 5000,
        "only {refused} of 6000 damaged tokens refused"
    );

    let refused = series("JWKS", document.as_bytes(), BASE64URL, 3000, 4, |bytes| {
        Jwks::from_json(bytes)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(
        refused > 1000,
        "only {refused} of 3000 damaged JWKS refused"
    );
}

#[test]
fn damaged_ca_material_is_refused_never_panics() {
    let ca = CertificateAuthority::generate_root(&RootOptions::default()).unwrap();
    let pem = ca.to_pem().clone();
    CertificateAuthority::from_pem(&pem).expect("the undamaged CA loads");
    let cert = pem.ca_cert.clone();
    let refused = series("ca-cert.pem", cert.as_bytes(), ANY_BYTE, 2000, 5, |bytes| {
        let damaged = CaPem {
            ca_cert: String::from_utf8_lossy(bytes).into_owned(),
            ..pem.clone()
        };
        CertificateAuthority::from_pem(&damaged)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    assert!(
        refused > 1500,
        "only {refused} of 2000 damaged certificates refused"
    );
    let key_text = pem.ca_key.expose().to_string();
    let refused = series(
        "ca-key.pem",
        key_text.as_bytes(),
        ANY_BYTE,
        2000,
        6,
        |bytes| {
            let damaged = CaPem {
                ca_key: PrivateKeyPem::new(String::from_utf8_lossy(bytes).into_owned()),
                ..pem.clone()
            };
            CertificateAuthority::from_pem(&damaged)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
    assert!(
        refused > 1500,
        "only {refused} of 2000 damaged keys refused"
    );
}

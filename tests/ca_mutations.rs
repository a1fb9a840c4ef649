//! The CA's inputs, damaged byte by byte (a seeded series: flipped, dropped,
//! inserted and duplicated bytes, truncation): CSRs (DER and PEM), service
//! account tokens, JWKS documents and CA material. Each is refused with a
//! message or accepted, never with a panic; and the undamaged input is
//! accepted, so the series is known to start from something valid.

// Only the ES256 key is needed here.
#[allow(dead_code)]
#[path = "ca_grpc/jwt.rs"]
mod jwt;

use std::panic::{AssertUnwindSafe, catch_unwind};

use outrigger::ca::grpc::auth::jwt::{Jwks, JwtAuthenticator, JwtPolicy};
use outrigger::ca::{CaPem, CertificateAuthority, PrivateKeyPem, RootOptions, SpiffeId};

/// xorshift64*: small and seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four random edits of `input`, using bytes from `alphabet`.
fn damage(input: &[u8], alphabet: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(5) {
            0 => out[at] = alphabet[rng.below(alphabet.len())],
            1 => {
                out.remove(at);
            }
            2 => out.insert(at, alphabet[rng.below(alphabet.len())]),
            3 => {
                let end = (at + rng.below(32)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Runs `check` on `rounds` damaged copies of `input`; returns the number
/// refused, and panics listing any round that panicked or was refused
/// without a message.
fn series(
    what: &str,
    input: &[u8],
    alphabet: &[u8],
    rounds: usize,
    seed: u64,
    mut check: impl FnMut(&[u8]) -> Result<(), String>,
) -> usize {
    let mut rng = Rng(seed | 1);
    let mut problems = Vec::new();
    let mut refused = 0;
    for round in 0..rounds {
        let damaged = damage(input, alphabet, &mut rng);
        match catch_unwind(AssertUnwindSafe(|| check(&damaged))) {
            Err(_) => problems.push(format!("{what} round {round}: panicked")),
            Ok(Err(message)) if message.trim().is_empty() => {
                problems.push(format!("{what} round {round}: refused without a message"))
            }
            Ok(Err(_)) => refused += 1,
            Ok(Ok(())) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    refused
}

const ANY_BYTE: &[u8] = b"\x00\x01\x02\x03\x04\x05\x06\x07\x0a\x0c\x13\x16\x17\x1e\x30\x31\x80\x81\x82\xa0\xa3\xff-\n=A";
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

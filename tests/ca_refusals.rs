//! Everything the CA must refuse, each with the message a user sees: bad
//! CSRs (tampered, weak key, foreign identity), TTLs over the maximum, and
//! plugged-in CA material that does not hold together.

#[path = "support/requires.rs"]
mod requires;

#[path = "testdata/ca/support.rs"]
mod support;

use std::time::Duration;

use outrigger::ca::{
    self, CaPem, CertificateAuthority, CsrError, IssueError, KeyAlgorithm, LoadError,
    PrivateKeyPem, RootOptions, SpiffeId, StoreError,
};
use support::*;
use time::OffsetDateTime;

fn caller() -> SpiffeId {
    SpiffeId::new("cluster.local", "bookinfo", "productpage").unwrap()
}

fn new_ca() -> CertificateAuthority {
    CertificateAuthority::generate_root(&RootOptions::default()).unwrap()
}

fn load_err(dir: &std::path::Path) -> String {
    match ca::store::load_dir(dir) {
        Ok(_) => panic!("the CA in {} must be refused", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn tampered_csr_is_refused() {
    if !requires::tool("openssl", "tampered_csr_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca();
    openssl_csr(dir.path(), "t", "ec", Some("prime256v1"), None);
    openssl_ok(
        dir.path(),
        &["req", "-in", "t.csr", "-outform", "DER", "-out", "t.der"],
    );
    let der = std::fs::read(dir.path().join("t.der")).unwrap();

    // Change the signed subject ("ignored" -> "ignorex"): the signature no longer covers it.
    let at = der.windows(7).position(|w| w == b"ignored").unwrap();
    let mut altered = der.clone();
    altered[at + 6] = b'x';
    let err = ca.sign_csr(&altered, &caller(), None).unwrap_err();
    assert!(
        matches!(err, IssueError::Csr(CsrError::BadSignature)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "CSR refused: its signature does not verify against its own public key \
         (altered request, or the requester does not hold the key)"
    );

    // Change the last byte of the signature itself.
    let mut bad_sig = der.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0x01;
    let err = ca.sign_csr(&bad_sig, &caller(), None).unwrap_err();
    assert!(
        err.to_string().contains("its signature does not verify"),
        "{err}"
    );
}

#[test]
fn rsa_1024_csr_is_refused_naming_the_key() {
    if !requires::tool("openssl", "rsa_1024_csr_is_refused_naming_the_key") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let csr = openssl_csr(dir.path(), "weak", "rsa:1024", None, None);
    let err = new_ca()
        .sign_csr(csr.as_bytes(), &caller(), None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "CSR refused: unsupported key: RSA 1024 bits; expected ECDSA P-256, ECDSA P-384 or RSA with 2048-8192 bits"
    );
}

#[test]
fn other_key_types_are_refused() {
    if !requires::tool("openssl", "other_key_types_are_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca();
    let csr = openssl_csr(dir.path(), "ed", "ed25519", None, None);
    let err = ca.sign_csr(csr.as_bytes(), &caller(), None).unwrap_err();
    assert!(
        err.to_string().contains("unsupported key: key algorithm"),
        "{err}"
    );
    let csr = openssl_csr(dir.path(), "k1", "ec", Some("secp256k1"), None);
    let err = ca.sign_csr(csr.as_bytes(), &caller(), None).unwrap_err();
    assert!(
        err.to_string()
            .contains("unsupported key: ECDSA on curve 1.3.132.0.10"),
        "{err}"
    );
}

#[test]
fn csr_asking_for_another_identity_is_refused() {
    if !requires::tool("openssl", "csr_asking_for_another_identity_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca();
    let csr = openssl_csr(
        dir.path(),
        "other",
        "ec",
        Some("prime256v1"),
        Some("URI:spiffe://cluster.local/ns/kube-system/sa/admin"),
    );
    let err = ca.sign_csr(csr.as_bytes(), &caller(), None).unwrap_err();
    assert!(matches!(
        err,
        IssueError::Csr(CsrError::IdentityMismatch { .. })
    ));
    assert_eq!(
        err.to_string(),
        "CSR refused: it asks for URI:spiffe://cluster.local/ns/kube-system/sa/admin \
         but the caller is spiffe://cluster.local/ns/bookinfo/sa/productpage"
    );
    // Its own identity plus an extra DNS name is refused too.
    let both = format!("URI:{},DNS:api.example.com", caller());
    let csr = openssl_csr(dir.path(), "extra", "ec", Some("prime256v1"), Some(&both));
    let err = ca.sign_csr(csr.as_bytes(), &caller(), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CSR refused: it asks for URI:spiffe://cluster.local/ns/bookinfo/sa/productpage, DNS:api.example.com \
         but the caller is spiffe://cluster.local/ns/bookinfo/sa/productpage"
    );
}

#[test]
fn ttl_over_the_maximum_is_refused() {
    if !requires::tool("openssl", "ttl_over_the_maximum_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca();
    let csr = openssl_csr(dir.path(), "ttl", "ec", Some("prime256v1"), None);
    let too_long = Some(Duration::from_secs(91 * 24 * 3600));
    let err = ca
        .sign_csr(csr.as_bytes(), &caller(), too_long)
        .unwrap_err();
    assert_eq!(err.to_string(), "requested TTL 91d is over the maximum 90d");
    assert_eq!(err.kind(), ca::issue::RefusalKind::InvalidRequest);
    let err = ca.issue_workload(&caller(), too_long).unwrap_err();
    assert!(matches!(err, IssueError::TtlTooLong { .. }));
    // A custom policy moves the limit.
    let strict = ca.with_policy(ca::IssuePolicy {
        default_ttl: Duration::from_secs(3600),
        max_ttl: Duration::from_secs(2 * 3600),
    });
    let err = strict
        .issue_workload(&caller(), Some(Duration::from_secs(3 * 3600)))
        .unwrap_err();
    assert_eq!(err.to_string(), "requested TTL 3h is over the maximum 2h");
}

#[test]
fn plugged_in_ca_whose_key_does_not_match_is_refused() {
    if !requires::tool(
        "openssl",
        "plugged_in_ca_whose_key_does_not_match_is_refused",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_cacerts(dir.path(), OsslKey::P256Sec1, OsslKey::Rsa2048Pkcs1);
    gen_key(dir.path(), "ca-key.pem", OsslKey::Rsa2048Pkcs1);
    assert_eq!(
        load_err(dir.path()),
        format!(
            "CA in {}: ca-key.pem does not match ca-cert.pem: the private key's public half differs from the certificate's public key",
            dir.path().display()
        )
    );
}

#[test]
fn non_ca_certificate_as_ca_cert_is_refused() {
    if !requires::tool("openssl", "non_ca_certificate_as_ca_cert_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_cacerts(dir.path(), OsslKey::P256Sec1, OsslKey::P256Sec1);
    make_leaf_signed_by_root(dir.path());
    std::fs::rename(
        dir.path().join("leaf-cert.pem"),
        dir.path().join("ca-cert.pem"),
    )
    .unwrap();
    std::fs::rename(
        dir.path().join("leaf-key.pem"),
        dir.path().join("ca-key.pem"),
    )
    .unwrap();
    let msg = load_err(dir.path());
    assert!(
        msg.ends_with(
            "ca-cert.pem is not a CA certificate (basicConstraints says CA:FALSE); expected basicConstraints CA:TRUE and keyUsage keyCertSign"
        ),
        "{msg}"
    );
}

/// A self-signed CA made with rcgen directly, valid from `from` to `to`.
fn ca_pem_valid(from: OffsetDateTime, to: OffsetDateTime) -> CaPem {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "old root");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    params.not_before = from;
    params.not_after = to;
    let cert = params.self_signed(&key).unwrap();
    CaPem {
        ca_cert: cert.pem(),
        ca_key: PrivateKeyPem::new(key.serialize_pem()),
        cert_chain: None,
        root_cert: None,
    }
}

#[test]
fn expired_ca_is_refused() {
    let pem = ca_pem_valid(
        rcgen::date_time_ymd(2020, 1, 1),
        rcgen::date_time_ymd(2021, 1, 1),
    );
    let err = CertificateAuthority::from_pem(&pem).unwrap_err();
    assert!(matches!(
        err,
        LoadError::Validity {
            state: "has expired",
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.starts_with("ca-cert.pem (CN=old root) has expired: valid from 2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z, now is"),
        "{msg}"
    );
    // Through a directory, too.
    let dir = tempfile::tempdir().unwrap();
    ca::store::write_ca(dir.path(), &pem, false).unwrap();
    assert!(load_err(dir.path()).contains("has expired"));

    // A generated root, checked as of eleven years from now.
    let ca = CertificateAuthority::generate_root(&RootOptions::default()).unwrap();
    let later = OffsetDateTime::now_utc() + Duration::from_secs(11 * 365 * 86_400);
    let err = CertificateAuthority::from_pem_at(ca.to_pem(), later).unwrap_err();
    assert!(err.to_string().contains("has expired"), "{err}");
}

#[test]
fn not_yet_valid_ca_is_refused() {
    let now = OffsetDateTime::now_utc();
    let pem = ca_pem_valid(
        now + Duration::from_secs(86_400),
        now + Duration::from_secs(10 * 86_400),
    );
    let err = CertificateAuthority::from_pem(&pem).unwrap_err();
    assert!(
        err.to_string().contains("(CN=old root) is not yet valid"),
        "{err}"
    );
}

#[test]
fn chain_that_does_not_reach_the_root_is_refused() {
    if !requires::tool("openssl", "chain_that_does_not_reach_the_root_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_cacerts(dir.path(), OsslKey::P256Sec1, OsslKey::P256Sec1);
    // Replace root-cert.pem with another CA's root of the same name.
    let other = tempfile::tempdir().unwrap();
    make_cacerts(other.path(), OsslKey::P256Sec1, OsslKey::P256Sec1);
    std::fs::copy(
        other.path().join("root-cert.pem"),
        dir.path().join("root-cert.pem"),
    )
    .unwrap();
    let ca_cert = std::fs::read_to_string(dir.path().join("ca-cert.pem")).unwrap();
    write(dir.path(), "cert-chain.pem", &ca_cert);
    let msg = load_err(dir.path());
    assert!(msg.contains("the chain does not verify up to root-cert.pem: the signature of ca-cert.pem (O=Istio, CN=Intermediate CA, L=cluster1) does not verify with the key of O=Istio, CN=Root CA"), "{msg}");
}

#[test]
fn unsupported_ca_key_is_refused() {
    if !requires::tool("openssl", "unsupported_ca_key_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    openssl_ok(
        dir.path(),
        &["genpkey", "-algorithm", "ed25519", "-out", "ca-key.pem"],
    );
    write(
        dir.path(),
        "ca.ext",
        "[v3_ca]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign\n",
    );
    openssl_ok(
        dir.path(),
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca-key.pem",
            "-subj",
            "/CN=ed root",
            "-days",
            "30",
            "-extensions",
            "v3_ca",
            "-config",
            "ca.ext",
            "-out",
            "ca-cert.pem",
        ],
    );
    let msg = load_err(dir.path());
    assert!(
        msg.contains("ca-cert.pem: unsupported key: key algorithm"),
        "{msg}"
    );
}

#[test]
fn unreadable_material_is_refused_clearly() {
    let pem = CaPem {
        ca_cert: "not pem".into(),
        ca_key: PrivateKeyPem::new("x"),
        cert_chain: None,
        root_cert: None,
    };
    let err = CertificateAuthority::from_pem(&pem).unwrap_err();
    assert!(err.to_string().starts_with("ca-cert.pem: "), "{err}");
    let good = new_ca();
    let pem = CaPem {
        ca_key: PrivateKeyPem::new(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ),
        ..good.to_pem().clone()
    };
    let err = CertificateAuthority::from_pem(&pem).unwrap_err();
    assert!(
        err.to_string()
            .contains("ca-key.pem: cannot read private key: no PRIVATE KEY block"),
        "{err}"
    );
    // Debug of the CA material never shows the key.
    let debug = format!("{:?} {:?}", good.to_pem(), good);
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    assert!(debug.contains("[elided]"), "{debug}");
}

#[test]
fn refusing_to_overwrite_an_existing_ca() {
    let dir = tempfile::tempdir().unwrap();
    let first = new_ca();
    ca::store::write_ca(dir.path(), first.to_pem(), false).unwrap();
    let second = CertificateAuthority::generate_root(&RootOptions {
        algorithm: KeyAlgorithm::EcdsaP384,
        ..RootOptions::default()
    })
    .unwrap();
    let err = ca::store::write_ca(dir.path(), second.to_pem(), false).unwrap_err();
    assert!(matches!(err, StoreError::Exists { .. }));
    let kept = ca::store::load_dir(dir.path()).unwrap();
    assert_eq!(kept.root_pem(), first.root_pem());
    ca::store::write_ca(dir.path(), second.to_pem(), true).unwrap();
    assert_eq!(
        ca::store::load_dir(dir.path()).unwrap().root_pem(),
        second.root_pem()
    );
}

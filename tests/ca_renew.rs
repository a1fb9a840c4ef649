//! Renewing a self-signed root (`ca::renew::renew_root`, `outrigger ca
//! renew-root`): the renewed root is the same issuer to openssl, in both
//! directions (what the old root signed verifies against the new one, and
//! what the renewed CA signs verifies against the old one); subject bytes,
//! key and key identifier are kept, for roots made by outrigger and by
//! openssl; an expired root can still be renewed; intermediates, chains and
//! a zero validity are refused with their reason.

#[path = "support/requires.rs"]
mod requires;

#[path = "testdata/ca/support.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use outrigger::ca::renew::{RenewError, renew_root};
use outrigger::ca::{
    CaPem, CertificateAuthority, KeyAlgorithm, PrivateKeyPem, RootOptions, SpiffeId,
};
use support::*;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Longer than any root these tests start from (openssl's: 3650 days).
const TWENTY_YEARS: Duration = Duration::from_secs(20 * 365 * 86_400);

fn id() -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", "checkout").unwrap()
}

fn der(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).expect("PEM").contents().to_vec()
}

/// What a renewal must keep or change, read from a certificate.
#[derive(Debug)]
struct Facts {
    subject: Vec<u8>,
    public_key: Vec<u8>,
    key_id: Option<Vec<u8>>,
    serial: Vec<u8>,
    not_after: OffsetDateTime,
}

fn facts(pem_text: &str) -> Facts {
    let der = der(pem_text);
    let (_, cert) = X509Certificate::from_der(&der).expect("certificate");
    let key_id = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
    Facts {
        subject: cert.subject().as_raw().to_vec(),
        public_key: cert.public_key().raw.to_vec(),
        key_id,
        serial: cert.raw_serial().to_vec(),
        not_after: cert.validity().not_after.to_datetime(),
    }
}

/// Renews `old`, then checks the renewal keeps the issuer and that trust
/// holds both ways, with openssl.
fn renew_and_cross_verify(dir: &Path, what: &str, old: &CaPem) {
    let old_ca = CertificateAuthority::from_pem(old).unwrap_or_else(|e| panic!("{what}: {e}"));
    let issued_before = old_ca.issue_workload(&id(), None).unwrap();

    let renewed = renew_root(old, TWENTY_YEARS, OffsetDateTime::now_utc())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(renewed.ca_key, old.ca_key, "{what}: the key is kept");
    let (before, after) = (facts(&old.ca_cert), facts(&renewed.ca_cert));
    assert_eq!(after.subject, before.subject, "{what}: subject bytes");
    assert_eq!(after.public_key, before.public_key, "{what}: public key");
    assert!(
        before.key_id.is_some(),
        "{what}: the root has a key identifier"
    );
    assert_eq!(
        after.key_id, before.key_id,
        "{what}: subject key identifier"
    );
    assert_ne!(after.serial, before.serial, "{what}: a new serial");
    assert!(
        after.not_after > before.not_after,
        "{what}: {after:?} after {before:?}"
    );

    // What the old root signed verifies against the renewed root.
    let (ok, out) = openssl_verify(
        dir,
        issued_before.chain.certs(),
        &renewed.ca_cert,
        "sslclient",
    );
    assert!(ok, "{what}: old leaf against the renewed root: {out}");
    // What the renewed CA signs verifies against the old root.
    let new_ca = CertificateAuthority::from_pem(&renewed).unwrap();
    let issued_after = new_ca.issue_workload(&id(), None).unwrap();
    let (ok, out) = openssl_verify(dir, issued_after.chain.certs(), &old.ca_cert, "sslclient");
    assert!(ok, "{what}: new leaf against the old root: {out}");
    // And the renewed CA's own check accepts the older chain.
    new_ca
        .verify_issued(&issued_before.chain.to_pem(), OffsetDateTime::now_utc())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

#[test]
fn outrigger_roots_are_renewed_as_the_same_issuer() {
    if !requires::tool("openssl", "outrigger_roots_are_renewed_as_the_same_issuer") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for algorithm in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
    ] {
        let ca = CertificateAuthority::generate_root(&RootOptions {
            algorithm,
            validity: Duration::from_secs(30 * 86_400),
            ..RootOptions::default()
        })
        .unwrap();
        renew_and_cross_verify(dir.path(), &algorithm.to_string(), ca.to_pem());
    }
}

#[test]
fn openssl_roots_keep_their_subject_and_key_identifier() {
    if !requires::tool(
        "openssl",
        "openssl_roots_keep_their_subject_and_key_identifier",
    ) {
        return;
    }
    if !requires::tool(
        "openssl",
        "openssl_roots_keep_their_subject_and_key_identifier",
    ) {
        return;
    }
    for kind in [OsslKey::P256Sec1, OsslKey::Rsa2048Pkcs1] {
        let dir = tempfile::tempdir().unwrap();
        // make_cacerts leaves the openssl root and its key beside the
        // intermediate: use the root itself as the CA.
        make_cacerts(dir.path(), kind, OsslKey::P256Sec1);
        let root = std::fs::read_to_string(dir.path().join("root-cert.pem")).unwrap();
        let key = std::fs::read_to_string(dir.path().join("root-key.pem")).unwrap();
        let pem = CaPem {
            ca_cert: root.clone(),
            ca_key: PrivateKeyPem::new(key),
            cert_chain: None,
            root_cert: Some(root),
        };
        renew_and_cross_verify(dir.path(), &format!("openssl {kind:?}"), &pem);
    }
}

#[test]
fn an_expired_root_is_renewed() {
    let ca = CertificateAuthority::generate_root(&RootOptions {
        validity: Duration::from_secs(86_400),
        ..RootOptions::default()
    })
    .unwrap();
    let later = OffsetDateTime::now_utc() + Duration::from_secs(30 * 86_400);
    assert!(
        CertificateAuthority::from_pem_at(ca.to_pem(), later).is_err(),
        "expired by then"
    );
    let renewed = renew_root(ca.to_pem(), TEN_YEARS, later).unwrap();
    CertificateAuthority::from_pem_at(&renewed, later).unwrap();
}

#[test]
fn intermediates_chains_and_zero_validity_are_refused() {
    if !requires::tool(
        "openssl",
        "intermediates_chains_and_zero_validity_are_refused",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_cacerts(dir.path(), OsslKey::P256Sec1, OsslKey::P256Sec1);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let now = OffsetDateTime::now_utc();

    // The intermediate on its own: not self-signed.
    let intermediate = CaPem {
        ca_cert: read("ca-cert.pem"),
        ca_key: PrivateKeyPem::new(read("ca-key.pem")),
        cert_chain: None,
        root_cert: None,
    };
    let err = renew_root(&intermediate, TEN_YEARS, now).unwrap_err();
    assert!(matches!(err, RenewError::NotSelfSigned { .. }), "{err}");
    assert!(err.to_string().contains("Intermediate CA"), "{err}");

    // A root listed with a chain above... or beside it.
    let root_with_chain = CaPem {
        ca_cert: read("root-cert.pem"),
        ca_key: PrivateKeyPem::new(read("root-key.pem")),
        cert_chain: Some(read("cert-chain.pem")),
        root_cert: None,
    };
    let err = renew_root(&root_with_chain, TEN_YEARS, now).unwrap_err();
    assert!(
        matches!(
            err,
            RenewError::PartOfChain {
                file: "cert-chain.pem"
            }
        ),
        "{err}"
    );

    // Another key than the certificate's.
    let wrong_key = CaPem {
        ca_cert: read("root-cert.pem"),
        ca_key: PrivateKeyPem::new(read("ca-key.pem")),
        cert_chain: None,
        root_cert: None,
    };
    let err = renew_root(&wrong_key, TEN_YEARS, now).unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");

    let ours = CertificateAuthority::generate_root(&RootOptions::default()).unwrap();
    let err = renew_root(ours.to_pem(), Duration::ZERO, now).unwrap_err();
    assert!(matches!(err, RenewError::Validity { .. }), "{err}");
    assert!(
        err.to_string().contains("expected a positive duration"),
        "{err}"
    );
}

fn outrigger(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args(args)
        .output()
        .expect("outrigger runs")
}

#[test]
fn renew_root_command_rewrites_the_certificate_and_keeps_the_key() {
    if !requires::tool(
        "openssl",
        "renew_root_command_rewrites_the_certificate_and_keeps_the_key",
    ) {
        return;
    }
    if !requires::tool(
        "openssl",
        "renew_root_command_rewrites_the_certificate_and_keeps_the_key",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let ca_path = ca_dir.to_str().unwrap();
    let out = outrigger(&["ca", "init", "--dir", ca_path, "--validity", "30d"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let leaf_dir = dir.path().join("leaf");
    let out = outrigger(&[
        "ca",
        "issue",
        "--dir",
        ca_path,
        "--namespace",
        "shop",
        "--service-account",
        "checkout",
        "--out",
        leaf_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_before = std::fs::read(ca_dir.join("ca-key.pem")).unwrap();
    let cert_before = std::fs::read_to_string(ca_dir.join("ca-cert.pem")).unwrap();

    let out = outrigger(&["ca", "renew-root", "--dir", ca_path, "--validity", "20y"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("same subject and key"), "{stdout}");

    assert_eq!(
        std::fs::read(ca_dir.join("ca-key.pem")).unwrap(),
        key_before
    );
    let cert_after = std::fs::read_to_string(ca_dir.join("ca-cert.pem")).unwrap();
    assert_ne!(cert_after, cert_before);
    assert_eq!(
        std::fs::read_to_string(ca_dir.join("root-cert.pem")).unwrap(),
        cert_after
    );
    let not_after = facts(&cert_after).not_after;
    assert!(not_after > OffsetDateTime::now_utc() + Duration::from_secs(19 * 365 * 86_400));

    // The leaf issued before the renewal verifies against the new root.
    let chain = std::fs::read_to_string(leaf_dir.join("cert-chain.pem")).unwrap();
    let certs: Vec<String> = pem::parse_many(&chain)
        .unwrap()
        .iter()
        .map(pem::encode)
        .collect();
    let (ok, out) = openssl_verify(dir.path(), &certs, &cert_after, "sslclient");
    assert!(ok, "{out}");

    // An intermediate directory is refused, and nothing is written.
    let cacerts = dir.path().join("cacerts");
    std::fs::create_dir(&cacerts).unwrap();
    make_cacerts(&cacerts, OsslKey::P256Sec1, OsslKey::P256Sec1);
    let before = std::fs::read(cacerts.join("ca-cert.pem")).unwrap();
    let out = outrigger(&["ca", "renew-root", "--dir", cacerts.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not a self-signed root"), "{stderr}");
    assert_eq!(std::fs::read(cacerts.join("ca-cert.pem")).unwrap(), before);
}

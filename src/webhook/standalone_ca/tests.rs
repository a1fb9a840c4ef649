//! The standalone CA: persistence, the directory layout, and serving
//! certificates checked by an independent verifier (webpki, via rustls).

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;

use super::*;

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "outrigger-ca-test-{name}-{}-{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn created_once_then_reused_with_istios_layout() {
    let dir = tempdir("reuse").join("ca");
    let (first, created) = StandaloneCa::load_or_create(&dir, &RootOptions::default()).unwrap();
    assert!(created);
    for file in [CA_CERT, CA_KEY, ROOT_CERT, CERT_CHAIN] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    assert_eq!(mode(&dir.join(CA_KEY)), 0o600);
    assert_eq!(mode(&dir), 0o700);
    let root = std::fs::read_to_string(dir.join(ROOT_CERT)).unwrap();
    assert_eq!(root, first.bundle_pem());

    let (second, created) = StandaloneCa::load_or_create(&dir, &RootOptions::default()).unwrap();
    assert!(!created);
    assert_eq!(second.bundle_pem(), first.bundle_pem());
    // A certificate issued by the reloaded CA chains to the original root.
    let cert = second
        .issue_serving(&["localhost".into()], Duration::from_secs(3600))
        .unwrap();
    verify(first.bundle_pem(), &cert, "localhost").unwrap();
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn serving_certificates_carry_dns_and_ip_names() {
    let dir = tempdir("names");
    let (ca, _) = StandaloneCa::load_or_create(&dir, &RootOptions::default()).unwrap();
    let names = vec![
        "outrigger.outrigger-system.svc".to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    let cert = ca.issue_serving(&names, Duration::from_secs(3600)).unwrap();
    for name in &names {
        verify(ca.bundle_pem(), &cert, name).unwrap();
    }
    assert!(verify(ca.bundle_pem(), &cert, "other.example").is_err());
    assert!(verify(ca.bundle_pem(), &cert, "10.0.0.1").is_err());
    assert!(cert.not_after - cert.not_before >= 3600);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn half_a_signing_pair_is_refused() {
    let dir = tempdir("half");
    StandaloneCa::load_or_create(&dir, &RootOptions::default()).unwrap();
    std::fs::remove_file(dir.join(CA_KEY)).unwrap();
    let err = StandaloneCa::load_or_create(&dir, &RootOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("has ca-cert.pem but not ca-key.pem"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_key_from_another_ca_is_refused() {
    let one = tempdir("one");
    let two = tempdir("two");
    StandaloneCa::load_or_create(&one, &RootOptions::default()).unwrap();
    StandaloneCa::load_or_create(&two, &RootOptions::default()).unwrap();
    std::fs::copy(two.join(CA_KEY), one.join(CA_KEY)).unwrap();
    let err = StandaloneCa::load_or_create(&one, &RootOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("ca-key.pem does not match ca-cert.pem"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&one);
    let _ = std::fs::remove_dir_all(&two);
}

#[test]
fn a_garbage_key_is_refused_with_the_expected_form() {
    let dir = tempdir("garbage");
    StandaloneCa::load_or_create(&dir, &RootOptions::default()).unwrap();
    std::fs::write(dir.join(CA_KEY), "not a key").unwrap();
    let err = StandaloneCa::load_or_create(&dir, &RootOptions::default()).unwrap_err();
    assert!(err.to_string().contains("PRIVATE KEY (PKCS#8)"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn debug_output_elides_the_key() {
    let dir = tempdir("debug");
    let (ca, _) = StandaloneCa::load_or_create(&dir, &RootOptions::default()).unwrap();
    let debug = format!("{ca:?}");
    assert!(debug.contains("[elided]"), "{debug}");
    assert!(!debug.contains("PRIVATE"), "{debug}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn verify(bundle_pem: &str, cert: &ServingCert, name: &str) -> Result<(), rustls::Error> {
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(crate::webhook::tls::provider()),
    )
    .build()
    .unwrap();
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    verifier
        .verify_server_cert(
            &cert.key.cert[0],
            &cert.key.cert[1..],
            &server_name,
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

//! The CA's output checked by an independent implementation: the `openssl`
//! binary verifies every issued chain, shows the extensions we promise, and
//! makes the CSRs we sign. Also plugged-in `cacerts` intermediates made by
//! openssl (RSA PKCS#1 and EC SEC1 keys).

#[path = "support/requires.rs"]
mod requires;

#[path = "testdata/ca/support.rs"]
mod support;

use std::time::Duration;

use outrigger::ca::{self, CertificateAuthority, KeyAlgorithm, RootOptions, SpiffeId};
use support::*;

fn id() -> SpiffeId {
    SpiffeId::new("cluster.local", "bookinfo", "productpage").unwrap()
}

fn root(algorithm: KeyAlgorithm) -> CertificateAuthority {
    CertificateAuthority::generate_root(&RootOptions {
        algorithm,
        ..RootOptions::default()
    })
    .unwrap()
}

#[test]
fn self_signed_root_issues_chains_openssl_accepts() {
    if !requires::tool("openssl", "self_signed_root_issues_chains_openssl_accepts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
        let ca = root(algorithm);
        let issued = ca.issue_workload(&id(), None).unwrap();
        assert_eq!(issued.chain.certs().len(), 2, "leaf + root");
        assert_eq!(issued.chain.certs()[1], ca.root_pem());
        let (ok, out) =
            openssl_verify(dir.path(), issued.chain.certs(), ca.root_pem(), "sslclient");
        assert!(ok && out.contains("v-leaf.pem: OK"), "{algorithm}: {out}");
        let (ok, out) =
            openssl_verify(dir.path(), issued.chain.certs(), ca.root_pem(), "sslserver");
        assert!(ok, "{algorithm}: {out}");
    }
}

#[test]
fn root_has_ca_extensions() {
    if !requires::tool("openssl", "root_has_ca_extensions") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = root(KeyAlgorithm::EcdsaP256);
    write(dir.path(), "root.pem", ca.root_pem());
    let text = openssl_ok(dir.path(), &["x509", "-in", "root.pem", "-noout", "-text"]);
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(text.contains("O = cluster.local"), "{text}");
    assert!(text.contains("Subject Key Identifier"), "{text}");
    // 10 years by default.
    let end = openssl_ok(
        dir.path(),
        &[
            "x509",
            "-in",
            "root.pem",
            "-noout",
            "-checkend",
            &(9 * 365 * 86_400).to_string(),
        ],
    );
    assert!(end.contains("will not expire"), "{end}");
}

#[test]
fn workload_leaf_shows_uri_san_usages_and_ca_false() {
    if !requires::tool("openssl", "workload_leaf_shows_uri_san_usages_and_ca_false") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = root(KeyAlgorithm::EcdsaP256);
    let issued = ca
        .issue_workload(&id(), Some(Duration::from_secs(3600)))
        .unwrap();
    write(dir.path(), "leaf.pem", issued.chain.leaf_pem());
    let text = openssl_ok(dir.path(), &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(
        text.contains("URI:spiffe://cluster.local/ns/bookinfo/sa/productpage"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("Digital Signature"), "{text}");
    assert!(!text.contains("Key Encipherment"), "EC key: {text}");
    assert!(
        text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "{text}"
    );
    assert!(text.contains("Authority Key Identifier"), "{text}");
    assert!(text.contains("Subject Key Identifier"), "{text}");
    // The URI is the only SAN.
    let san_line = text
        .lines()
        .skip_while(|l| !l.contains("Subject Alternative Name"))
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        san_line,
        "URI:spiffe://cluster.local/ns/bookinfo/sa/productpage"
    );
    // TTL honoured: valid for the next 59 minutes, not for 61.
    let ok = openssl_ok(
        dir.path(),
        &["x509", "-in", "leaf.pem", "-noout", "-checkend", "3540"],
    );
    assert!(ok.contains("will not expire"), "{ok}");
    let (expires, _) = openssl(
        dir.path(),
        &["x509", "-in", "leaf.pem", "-noout", "-checkend", "3660"],
    );
    assert!(!expires, "a 1h certificate must expire within 61 minutes");
    // Serial: 128 bits, positive.
    let serial = openssl_ok(
        dir.path(),
        &["x509", "-in", "leaf.pem", "-noout", "-serial"],
    );
    let hex = serial.trim().trim_start_matches("serial=");
    assert_eq!(hex.len(), 32, "{serial}");
}

#[test]
fn serving_certificate_has_dns_and_ip_sans_and_server_auth() {
    if !requires::tool(
        "openssl",
        "serving_certificate_has_dns_and_ip_sans_and_server_auth",
    ) {
        return;
    }
    if !requires::tool(
        "openssl",
        "serving_certificate_has_dns_and_ip_sans_and_server_auth",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = root(KeyAlgorithm::EcdsaP256);
    let names = vec![
        "outrigger.outrigger-system.svc".to_owned(),
        "localhost".to_owned(),
    ];
    let ips = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    let issued = ca.issue_serving(&names, &ips, None).unwrap();
    write(dir.path(), "serving.pem", issued.chain.leaf_pem());
    let text = openssl_ok(
        dir.path(),
        &["x509", "-in", "serving.pem", "-noout", "-text"],
    );
    assert!(text.contains("DNS:outrigger.outrigger-system.svc, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(!text.contains("TLS Web Client Authentication"), "{text}");
    let (ok, out) = openssl_verify(dir.path(), issued.chain.certs(), ca.root_pem(), "sslserver");
    assert!(ok, "{out}");
    let (ok, _) = openssl(
        dir.path(),
        &[
            "verify",
            "-CAfile",
            "v-root.pem",
            "-verify_hostname",
            "localhost",
            "v-leaf.pem",
        ],
    );
    assert!(ok);
    assert!(issued.key.expose().contains("BEGIN PRIVATE KEY"));
}

#[test]
fn csrs_made_by_openssl_are_signed() {
    if !requires::tool("openssl", "csrs_made_by_openssl_are_signed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = root(KeyAlgorithm::EcdsaP256);
    let own_uri = format!("URI:{}", id());
    let cases = [
        ("p256", "ec", Some("prime256v1"), None),
        ("p384", "ec", Some("secp384r1"), Some(own_uri.as_str())),
        ("rsa2048", "rsa:2048", None, Some(own_uri.as_str())),
    ];
    for (name, newkey, curve, san) in cases {
        let csr = openssl_csr(dir.path(), name, newkey, curve, san);
        let chain = ca.sign_csr(csr.as_bytes(), &id(), None).unwrap();
        let (ok, out) = openssl_verify(dir.path(), chain.certs(), ca.root_pem(), "sslclient");
        assert!(ok, "{name}: {out}");
        write(dir.path(), "signed.pem", chain.leaf_pem());
        let text = openssl_ok(
            dir.path(),
            &["x509", "-in", "signed.pem", "-noout", "-text"],
        );
        assert!(text.contains(&own_uri), "{name}: {text}");
        // Only the public key came from the CSR: the subject did not.
        assert!(!text.contains("ignored"), "{name}: {text}");
        if newkey.starts_with("rsa") {
            assert!(
                text.contains("Digital Signature, Key Encipherment"),
                "{name}: {text}"
            );
        }
        // The certified key is the CSR's key.
        let csr_pub = openssl_ok(
            dir.path(),
            &["req", "-in", &format!("{name}.csr"), "-noout", "-pubkey"],
        );
        let cert_pub = openssl_ok(
            dir.path(),
            &["x509", "-in", "signed.pem", "-noout", "-pubkey"],
        );
        assert_eq!(csr_pub, cert_pub, "{name}");
    }
}

#[test]
fn der_csr_is_signed() {
    if !requires::tool("openssl", "der_csr_is_signed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = root(KeyAlgorithm::EcdsaP256);
    openssl_csr(dir.path(), "d", "ec", Some("prime256v1"), None);
    openssl_ok(
        dir.path(),
        &["req", "-in", "d.csr", "-outform", "DER", "-out", "d.der"],
    );
    let der = std::fs::read(dir.path().join("d.der")).unwrap();
    let chain = ca.sign_csr(&der, &id(), None).unwrap();
    let (ok, out) = openssl_verify(dir.path(), chain.certs(), ca.root_pem(), "sslclient");
    assert!(ok, "{out}");
}

#[test]
fn rsa_root_signs_too() {
    if !requires::tool("openssl", "rsa_root_signs_too") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = root(KeyAlgorithm::Rsa2048);
    let issued = ca.issue_workload(&id(), None).unwrap();
    let (ok, out) = openssl_verify(dir.path(), issued.chain.certs(), ca.root_pem(), "sslclient");
    assert!(ok, "{out}");
    write(dir.path(), "root.pem", ca.root_pem());
    let text = openssl_ok(dir.path(), &["x509", "-in", "root.pem", "-noout", "-text"]);
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");
}

#[test]
fn plugged_in_intermediates_issue_chains_openssl_accepts() {
    if !requires::tool(
        "openssl",
        "plugged_in_intermediates_issue_chains_openssl_accepts",
    ) {
        return;
    }
    if !requires::tool(
        "openssl",
        "plugged_in_intermediates_issue_chains_openssl_accepts",
    ) {
        return;
    }
    for (root_kind, ca_kind) in [
        (OsslKey::Rsa2048Pkcs1, OsslKey::Rsa2048Pkcs1),
        (OsslKey::Rsa2048Pkcs1, OsslKey::P256Sec1),
        (OsslKey::P256Sec1, OsslKey::P256Sec1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        make_cacerts(dir.path(), root_kind, ca_kind);
        let ca = ca::store::load_dir(dir.path()).unwrap_or_else(|e| panic!("{ca_kind:?}: {e}"));
        let root_pem = std::fs::read_to_string(dir.path().join("root-cert.pem")).unwrap();
        assert_eq!(ca.root_pem(), root_pem);
        let issued = ca.issue_workload(&id(), None).unwrap();
        assert_eq!(issued.chain.certs().len(), 3, "leaf, intermediate, root");
        let (ok, out) = openssl_verify(dir.path(), issued.chain.certs(), &root_pem, "sslclient");
        assert!(ok, "{root_kind:?}/{ca_kind:?}: {out}");
        // A CSR signed by the intermediate verifies too.
        let csr = openssl_csr(dir.path(), "w", "ec", Some("prime256v1"), None);
        let chain = ca.sign_csr(csr.as_bytes(), &id(), None).unwrap();
        let (ok, out) = openssl_verify(dir.path(), chain.certs(), &root_pem, "sslclient");
        assert!(ok, "{root_kind:?}/{ca_kind:?}: {out}");
        // Issuer name of the leaf is the intermediate's subject, as openssl reads it.
        write(dir.path(), "leaf.pem", chain.leaf_pem());
        let issuer = openssl_ok(
            dir.path(),
            &["x509", "-in", "leaf.pem", "-noout", "-issuer"],
        );
        assert!(issuer.contains("CN = Intermediate CA"), "{issuer}");
    }
}

#[test]
fn plugged_in_ca_without_root_in_chain_still_builds_full_chain() {
    if !requires::tool(
        "openssl",
        "plugged_in_ca_without_root_in_chain_still_builds_full_chain",
    ) {
        return;
    }
    if !requires::tool(
        "openssl",
        "plugged_in_ca_without_root_in_chain_still_builds_full_chain",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_cacerts(dir.path(), OsslKey::P256Sec1, OsslKey::Rsa2048Pkcs1);
    // cert-chain.pem with only the intermediate (some installs do this).
    let ca_cert = std::fs::read_to_string(dir.path().join("ca-cert.pem")).unwrap();
    write(dir.path(), "cert-chain.pem", &ca_cert);
    let ca = ca::store::load_dir(dir.path()).unwrap();
    let chain = ca.issue_workload(&id(), None).unwrap().chain;
    assert_eq!(chain.certs().len(), 3);
    let (ok, out) = openssl_verify(dir.path(), chain.certs(), ca.root_pem(), "sslclient");
    assert!(ok, "{out}");
}

#[test]
fn what_a_csr_asks_for_beyond_its_key_is_ignored() {
    if !requires::tool("openssl", "what_a_csr_asks_for_beyond_its_key_is_ignored") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = root(KeyAlgorithm::EcdsaP256);
    openssl_ok(
        dir.path(),
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            "greedy.key",
            "-subj",
            "/CN=I am a CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-addext",
            "extendedKeyUsage=codeSigning",
            "-out",
            "greedy.csr",
        ],
    );
    let csr = std::fs::read(dir.path().join("greedy.csr")).unwrap();
    let chain = ca.sign_csr(&csr, &id(), None).unwrap();
    write(dir.path(), "greedy.pem", chain.leaf_pem());
    let text = openssl_ok(
        dir.path(),
        &["x509", "-in", "greedy.pem", "-noout", "-text"],
    );
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(!text.contains("Certificate Sign"), "{text}");
    assert!(!text.contains("Code Signing"), "{text}");
    assert!(!text.contains("I am a CA"), "{text}");
    assert!(
        text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "{text}"
    );
}

#[test]
fn two_level_intermediate_chain_is_followed_to_the_root() {
    if !requires::tool(
        "openssl",
        "two_level_intermediate_chain_is_followed_to_the_root",
    ) {
        return;
    }
    if !requires::tool(
        "openssl",
        "two_level_intermediate_chain_is_followed_to_the_root",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // root -> "Mid CA" (made as the cacerts intermediate) -> "Cluster CA".
    make_cacerts(dir.path(), OsslKey::P256Sec1, OsslKey::P256Sec1);
    std::fs::rename(
        dir.path().join("ca-cert.pem"),
        dir.path().join("mid-cert.pem"),
    )
    .unwrap();
    std::fs::rename(
        dir.path().join("ca-key.pem"),
        dir.path().join("mid-key.pem"),
    )
    .unwrap();
    make_sub_ca(
        dir.path(),
        "ca-key.pem",
        OsslKey::Rsa2048Pkcs1,
        "/O=Istio/CN=Cluster CA",
        "mid-cert.pem",
        "mid-key.pem",
        "ca-cert.pem",
    );
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
    let chain = format!(
        "{}{}{}",
        read("ca-cert.pem"),
        read("mid-cert.pem"),
        read("root-cert.pem")
    );
    write(dir.path(), "cert-chain.pem", &chain);
    let ca = ca::store::load_dir(dir.path()).unwrap();
    assert_eq!(ca.ca_chain().certs().len(), 3);
    let issued = ca.issue_workload(&id(), None).unwrap();
    assert_eq!(
        issued.chain.certs().len(),
        4,
        "leaf, cluster CA, mid CA, root"
    );
    let (ok, out) = openssl_verify(dir.path(), issued.chain.certs(), ca.root_pem(), "sslclient");
    assert!(ok, "{out}");

    // The same directory with the middle certificate missing is refused.
    write(dir.path(), "cert-chain.pem", &read("ca-cert.pem"));
    let err = match ca::store::load_dir(dir.path()) {
        Ok(_) => panic!("a chain with a gap must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("ca-cert.pem (O=Istio, CN=Cluster CA) was issued by O=Istio, CN=Intermediate CA, L=cluster1, but the next certificate is O=Istio, CN=Root CA"),
        "{err}"
    );
}

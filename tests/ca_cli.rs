//! `outrigger ca init | issue | sign | inspect` through the real binary,
//! with openssl checking what it writes.

#[path = "support/requires.rs"]
mod requires;

#[path = "testdata/ca/support.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use support::*;

fn outrigger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_a_root_and_refuses_to_overwrite_without_force() {
    if !requires::tool(
        "openssl",
        "init_creates_a_root_and_refuses_to_overwrite_without_force",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let out = outrigger(&[
        "ca",
        "init",
        "--dir",
        path(&dir),
        "--trust-domain",
        "example.org",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Basic constraints:  CA:TRUE"), "{stdout}");
    assert!(stdout.contains("O=example.org"), "{stdout}");
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    let x509 = openssl_ok(&dir, &["x509", "-in", "ca-cert.pem", "-noout", "-text"]);
    assert!(x509.contains("ASN1 OID: prime256v1"), "{x509}");

    let before = std::fs::read(dir.join("ca-key.pem")).unwrap();
    let out = outrigger(&["ca", "init", "--dir", path(&dir)]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("ca-cert.pem already exists; refusing to overwrite an existing CA (use --force to replace it)"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(dir.join("ca-key.pem")).unwrap(), before);

    let out = outrigger(&[
        "ca",
        "init",
        "--dir",
        path(&dir),
        "--force",
        "--key-algorithm",
        "ecdsa-p384",
        "--validity",
        "365d",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_ne!(std::fs::read(dir.join("ca-key.pem")).unwrap(), before);
    let x509 = openssl_ok(&dir, &["x509", "-in", "ca-cert.pem", "-noout", "-text"]);
    assert!(x509.contains("secp384r1"), "{x509}");
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
}

/// One trust domain (issue 20): `--config` names the injector's config, as
/// `serve --config` does, and its trust domain is the default; a
/// `--trust-domain` that contradicts it is refused naming both.
#[test]
fn the_ca_commands_take_the_trust_domain_of_the_injectors_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let out_dir = tmp.path().join("out");
    let config = tmp.path().join("config.yaml");
    std::fs::write(&config, "meshConfig:\n  trustDomain: foo.example\n").unwrap();
    let out = outrigger(&["ca", "init", "--dir", path(&dir), "--config", path(&config)]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("O=foo.example"), "{stdout}");

    let identity = ["--namespace", "shop", "--service-account", "web"];
    let mut issue = vec!["ca", "issue", "--dir", path(&dir), "--out", path(&out_dir)];
    issue.extend(identity);
    issue.extend(["--config", path(&config)]);
    let out = outrigger(&issue);
    assert!(out.status.success(), "{}", text(&out).1);
    let chain = out_dir.join("cert-chain.pem");
    let out = outrigger(&["ca", "inspect", path(&chain)]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("spiffe://foo.example/ns/shop/sa/web"),
        "{stdout}"
    );

    issue.extend(["--trust-domain", "cluster.local"]);
    let out = outrigger(&issue);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--trust-domain cluster.local disagrees") && stderr.contains("foo.example"),
        "{stderr}"
    );
}

#[test]
fn init_rejects_bad_flags_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let out = outrigger(&["ca", "init", "--dir", path(&dir), "--key-algorithm", "dsa"]);
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("unknown key algorithm \"dsa\"; expected one of ecdsa-p256"),
        "{}",
        text(&out).1
    );
    let out = outrigger(&["ca", "init", "--dir", path(&dir), "--validity", "forever"]);
    assert!(
        text(&out).1.contains("invalid duration \"forever\""),
        "{}",
        text(&out).1
    );
    let out = outrigger(&[
        "ca",
        "init",
        "--dir",
        path(&dir),
        "--trust-domain",
        "Bad Domain",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("invalid trust domain \"Bad Domain\""),
        "{}",
        text(&out).1
    );
    assert!(!dir.join("ca-key.pem").exists());
}

#[test]
fn issue_writes_the_istio_secret_layout() {
    if !requires::tool("openssl", "issue_writes_the_istio_secret_layout") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let out_dir = tmp.path().join("workload");
    assert!(
        outrigger(&["ca", "init", "--dir", path(&dir)])
            .status
            .success()
    );
    let out = outrigger(&[
        "ca",
        "issue",
        "--dir",
        path(&dir),
        "--namespace",
        "shop",
        "--service-account",
        "cart",
        "--ttl",
        "2h",
        "--out",
        path(&out_dir),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("Issued spiffe://cluster.local/ns/shop/sa/cart"),
        "{stdout}"
    );
    assert_eq!(mode(&out_dir.join("key.pem")), 0o600);
    // The chain is leaf + root; openssl verifies it against root-cert.pem.
    let chain = std::fs::read_to_string(out_dir.join("cert-chain.pem")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    let ok = openssl_ok(
        &out_dir,
        &[
            "verify",
            "-CAfile",
            "root-cert.pem",
            "-untrusted",
            "cert-chain.pem",
            "cert-chain.pem",
        ],
    );
    assert!(ok.contains("OK"), "{ok}");
    // The key is the certificate's key.
    let key_pub = openssl_ok(&out_dir, &["pkey", "-in", "key.pem", "-pubout"]);
    let cert_pub = openssl_ok(
        &out_dir,
        &["x509", "-in", "cert-chain.pem", "-noout", "-pubkey"],
    );
    assert_eq!(key_pub, cert_pub);

    let out = outrigger(&[
        "ca",
        "issue",
        "--dir",
        path(&dir),
        "--namespace",
        "shop",
        "--service-account",
        "cart",
        "--ttl",
        "100d",
        "--out",
        path(&out_dir),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("requested TTL 100d is over the maximum 90d"),
        "{}",
        text(&out).1
    );
}

#[test]
fn issue_works_from_an_istio_cacerts_dir() {
    if !requires::tool("openssl", "issue_works_from_an_istio_cacerts_dir") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    make_cacerts(tmp.path(), OsslKey::Rsa2048Pkcs1, OsslKey::Rsa2048Pkcs1);
    let out_dir = tmp.path().join("w");
    let out = outrigger(&[
        "ca",
        "issue",
        "--dir",
        path(tmp.path()),
        "--namespace",
        "a",
        "--service-account",
        "b",
        "--out",
        path(&out_dir),
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    let ok = openssl_ok(
        &out_dir,
        &[
            "verify",
            "-CAfile",
            "root-cert.pem",
            "-untrusted",
            "cert-chain.pem",
            "cert-chain.pem",
        ],
    );
    assert!(ok.contains("OK"), "{ok}");
}

#[test]
fn sign_prints_the_chain_and_refuses_foreign_csrs() {
    if !requires::tool("openssl", "sign_prints_the_chain_and_refuses_foreign_csrs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    assert!(
        outrigger(&["ca", "init", "--dir", path(&dir)])
            .status
            .success()
    );
    openssl_csr(tmp.path(), "req", "ec", Some("prime256v1"), None);
    let csr = tmp.path().join("req.csr");
    let out = outrigger(&[
        "ca",
        "sign",
        "--dir",
        path(&dir),
        "--csr",
        path(&csr),
        "--namespace",
        "shop",
        "--service-account",
        "cart",
        "--ttl",
        "1h",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.matches("BEGIN CERTIFICATE").count(), 2);
    write(tmp.path(), "chain.pem", &stdout);
    std::fs::copy(dir.join("root-cert.pem"), tmp.path().join("root.pem")).unwrap();
    let ok = openssl_ok(
        tmp.path(),
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "chain.pem",
            "chain.pem",
        ],
    );
    assert!(ok.contains("OK"), "{ok}");
    let san = openssl_ok(
        tmp.path(),
        &[
            "x509",
            "-in",
            "chain.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    assert!(
        san.contains("URI:spiffe://cluster.local/ns/shop/sa/cart"),
        "{san}"
    );

    openssl_csr(
        tmp.path(),
        "evil",
        "ec",
        Some("prime256v1"),
        Some("URI:spiffe://cluster.local/ns/kube-system/sa/admin"),
    );
    let out = outrigger(&[
        "ca",
        "sign",
        "--dir",
        path(&dir),
        "--csr",
        path(&tmp.path().join("evil.csr")),
        "--namespace",
        "shop",
        "--service-account",
        "cart",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("CSR refused: it asks for URI:spiffe://cluster.local/ns/kube-system/sa/admin but the caller is spiffe://cluster.local/ns/shop/sa/cart"),
        "{stderr}"
    );
}

#[test]
fn inspect_summarises_a_chain() {
    if !requires::tool("openssl", "inspect_summarises_a_chain") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let out_dir = tmp.path().join("w");
    assert!(
        outrigger(&["ca", "init", "--dir", path(&dir)])
            .status
            .success()
    );
    assert!(
        outrigger(&[
            "ca",
            "issue",
            "--dir",
            path(&dir),
            "--namespace",
            "shop",
            "--service-account",
            "cart",
            "--ttl",
            "2h",
            "--out",
            path(&out_dir),
        ])
        .status
        .success()
    );
    let out = outrigger(&["ca", "inspect", path(&out_dir.join("cert-chain.pem"))]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Certificate #1 of 2"), "{stdout}");
    assert!(
        stdout.contains("SANs:               URI:spiffe://cluster.local/ns/shop/sa/cart"),
        "{stdout}"
    );
    assert!(stdout.contains("Basic constraints:  CA:FALSE"), "{stdout}");
    assert!(
        stdout.contains("Key usage:          digitalSignature"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Extended key usage: serverAuth, clientAuth"),
        "{stdout}"
    );
    assert!(stdout.contains("(expires in 1h"), "{stdout}");
    assert!(
        stdout.contains("Issuer:             O=cluster.local, CN=outrigger root CA"),
        "{stdout}"
    );
    // The fingerprint is the one openssl computes.
    let fp = openssl_ok(
        &out_dir,
        &[
            "x509",
            "-in",
            "cert-chain.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let fp = fp.trim().rsplit('=').next().unwrap().to_owned();
    assert!(
        stdout.contains(&format!("SHA-256 fingerprint: {fp}")),
        "{stdout}\n{fp}"
    );

    write(tmp.path(), "junk.pem", "hello");
    let out = outrigger(&["ca", "inspect", path(&tmp.path().join("junk.pem"))]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("not valid X.509"), "{}", text(&out).1);
}

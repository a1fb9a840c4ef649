//! Helpers shared by the CA integration tests: run the real `openssl` binary
//! (the independent implementation everything is checked against) and build
//! plugged-in `cacerts` directories with it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs openssl with `args` in `dir`; returns (success, stdout + stderr).
pub fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed (Debian package `openssl`)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs openssl and panics with its output if it fails.
pub fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, text) = openssl(dir, args);
    assert!(ok, "openssl {args:?} failed:\n{text}");
    text
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Splits a chain into its leaf and the rest (intermediates + root), writes
/// them as files, and runs `openssl verify -CAfile root -untrusted rest
/// -purpose PURPOSE leaf` (`sslclient` or `sslserver`).
pub fn openssl_verify(
    dir: &Path,
    chain: &[String],
    root_pem: &str,
    purpose: &str,
) -> (bool, String) {
    assert!(chain.len() >= 2, "a chain has a leaf and at least the root");
    write(dir, "v-leaf.pem", &chain[0]);
    write(dir, "v-untrusted.pem", &chain[1..].concat());
    write(dir, "v-root.pem", root_pem);
    openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "v-root.pem",
            "-untrusted",
            "v-untrusted.pem",
            "-purpose",
            purpose,
            "v-leaf.pem",
        ],
    )
}

/// Writes an openssl extension file for a CA certificate.
fn ca_ext(dir: &Path) -> PathBuf {
    write(
        dir,
        "ca.ext",
        "[v3_ca]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n\n[v3_leaf]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n",
    )
}

/// Key kinds for openssl-made CAs.
#[derive(Clone, Copy, Debug)]
pub enum OsslKey {
    /// RSA 2048, written as PKCS#1 (`RSA PRIVATE KEY`), common in Istio cacerts.
    Rsa2048Pkcs1,
    /// ECDSA P-256, written as SEC1 (`EC PRIVATE KEY`).
    P256Sec1,
}

/// Generates a private key file `name` with openssl.
pub fn gen_key(dir: &Path, name: &str, kind: OsslKey) {
    match kind {
        OsslKey::Rsa2048Pkcs1 => {
            openssl_ok(dir, &["genrsa", "-traditional", "-out", name, "2048"]);
        }
        OsslKey::P256Sec1 => {
            openssl_ok(
                dir,
                &[
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                    name,
                ],
            );
        }
    }
}

/// Builds an Istio `cacerts` directory with openssl: a self-signed root
/// (`root-key.pem` kept aside) and an intermediate signed by it, in `dir`:
/// ca-cert.pem, ca-key.pem, cert-chain.pem (ca-cert + root), root-cert.pem.
pub fn make_cacerts(dir: &Path, root_kind: OsslKey, ca_kind: OsslKey) {
    ca_ext(dir);
    gen_key(dir, "root-key.pem", root_kind);
    openssl_ok(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root-key.pem",
            "-subj",
            "/O=Istio/CN=Root CA",
            "-days",
            "3650",
            "-sha256",
            "-extensions",
            "v3_ca",
            "-config",
            "ca.ext",
            "-out",
            "root-cert.pem",
        ],
    );
    gen_key(dir, "ca-key.pem", ca_kind);
    openssl_ok(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "ca-key.pem",
            "-subj",
            "/O=Istio/CN=Intermediate CA/L=cluster1",
            "-out",
            "ca.csr",
        ],
    );
    openssl_ok(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "ca.csr",
            "-CA",
            "root-cert.pem",
            "-CAkey",
            "root-key.pem",
            "-CAcreateserial",
            "-days",
            "730",
            "-sha256",
            "-extfile",
            "ca.ext",
            "-extensions",
            "v3_ca",
            "-out",
            "ca-cert.pem",
        ],
    );
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(dir.join("ca-cert.pem")).unwrap(),
        std::fs::read_to_string(dir.join("root-cert.pem")).unwrap()
    );
    write(dir, "cert-chain.pem", &chain);
    for f in ["ca.csr", "root-cert.srl"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
}

/// Makes a leaf (non-CA) certificate `leaf-cert.pem` / `leaf-key.pem`
/// signed by the root in `dir` (made by [`make_cacerts`]).
pub fn make_leaf_signed_by_root(dir: &Path) {
    ca_ext(dir);
    gen_key(dir, "leaf-key.pem", OsslKey::P256Sec1);
    openssl_ok(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "leaf-key.pem",
            "-subj",
            "/CN=not a ca",
            "-out",
            "leaf.csr",
        ],
    );
    openssl_ok(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "root-cert.pem",
            "-CAkey",
            "root-key.pem",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ca.ext",
            "-extensions",
            "v3_leaf",
            "-out",
            "leaf-cert.pem",
        ],
    );
}

/// Makes a CSR with openssl: `newkey` is e.g. `ec`, `rsa:2048`; `curve` is
/// for EC keys; `san` is an optional subjectAltName value. Returns the PEM.
pub fn openssl_csr(
    dir: &Path,
    name: &str,
    newkey: &str,
    curve: Option<&str>,
    san: Option<&str>,
) -> String {
    let key = format!("{name}.key");
    let out = format!("{name}.csr");
    let mut args: Vec<String> = vec!["req".into(), "-new".into(), "-nodes".into()];
    args.extend(["-newkey".into(), newkey.into()]);
    if let Some(c) = curve {
        args.extend(["-pkeyopt".into(), format!("ec_paramgen_curve:{c}")]);
    }
    args.extend([
        "-keyout".into(),
        key,
        "-subj".into(),
        "/O=ignored/CN=ignored".into(),
        "-out".into(),
        out.clone(),
    ]);
    if let Some(s) = san {
        args.extend(["-addext".into(), format!("subjectAltName={s}")]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl_ok(dir, &refs);
    std::fs::read_to_string(dir.join(out)).unwrap()
}

/// Makes a CA certificate `out` for the key `key` (generated here), signed
/// by `issuer_cert`/`issuer_key`, all files in `dir`.
pub fn make_sub_ca(
    dir: &Path,
    key: &str,
    kind: OsslKey,
    subj: &str,
    issuer_cert: &str,
    issuer_key: &str,
    out: &str,
) {
    ca_ext(dir);
    gen_key(dir, key, kind);
    openssl_ok(
        dir,
        &["req", "-new", "-key", key, "-subj", subj, "-out", "sub.csr"],
    );
    openssl_ok(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "sub.csr",
            "-CA",
            issuer_cert,
            "-CAkey",
            issuer_key,
            "-CAcreateserial",
            "-days",
            "365",
            "-sha256",
            "-extfile",
            "ca.ext",
            "-extensions",
            "v3_ca",
            "-out",
            out,
        ],
    );
}

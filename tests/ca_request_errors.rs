//! `outrigger ca request` failures a user meets first say what happened
//! and what to do: a `--ca-bundle` of another CA (was: a bare
//! `BadSignature`, printed twice), and a renewal with another CA's
//! certificate (was: `Cancelled ... connection closed`).

mod webhook_support;

use std::path::Path;
use std::process::Command;

use webhook_support::{Server, test_dir};

fn outrigger(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_wrong_ca_bundle_or_a_foreign_certificate_is_explained() {
    let dir = test_dir("ca-request-errors");
    std::fs::write(dir.join("tokens.txt"), "good-token shop/frontend\n").unwrap();
    std::fs::write(dir.join("token"), "good-token\n").unwrap();
    let server = Server::start(
        dir.clone(),
        &[
            "--ca-dir".to_string(),
            dir.join("ca").display().to_string(),
            "--ca-bundle-out".to_string(),
            dir.join("bundle.pem").display().to_string(),
            "--static-token-file".to_string(),
            dir.join("tokens.txt").display().to_string(),
        ],
    );
    let addr = format!("127.0.0.1:{}", server.ca.port());
    // Another CA: its root as the bundle, and a certificate it issued.
    let (ok, err) = outrigger(&["ca", "init", "--dir", "other"], &dir);
    assert!(ok, "{err}");
    let (ok, err) = outrigger(
        &[
            "ca",
            "issue",
            "--dir",
            "other",
            "--namespace",
            "shop",
            "--service-account",
            "frontend",
            "--out",
            "foreign",
        ],
        &dir,
    );
    assert!(ok, "{err}");

    let (ok, err) = outrigger(
        &[
            "ca",
            "request",
            "--addr",
            &addr,
            "--ca-bundle",
            "other/root-cert.pem",
            "--token-file",
            "token",
            "--out",
            "a",
        ],
        &dir,
    );
    assert!(!ok);
    assert!(
        err.contains("does not chain to --ca-bundle other/root-cert.pem"),
        "{err}"
    );
    assert!(err.contains("--ca-bundle-out"), "{err}");
    assert_eq!(err.matches("BadSignature").count(), 1, "{err}");

    let (ok, err) = outrigger(
        &[
            "ca",
            "request",
            "--addr",
            &addr,
            "--ca-bundle",
            "bundle.pem",
            "--cert-chain",
            "foreign/cert-chain.pem",
            "--key",
            "foreign/key.pem",
            "--out",
            "b",
        ],
        &dir,
    );
    assert!(!ok);
    assert!(
        err.contains(
            "does not accept the client certificate in --cert-chain foreign/cert-chain.pem"
        ),
        "{err}"
    );
    assert!(err.contains("--token-file"), "{err}");
}

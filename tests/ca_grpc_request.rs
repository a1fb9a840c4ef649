//! `outrigger ca request` (the real binary) against the real CA service.

#[path = "support/requires.rs"]
mod requires;

// Shared with the other ca_grpc test binaries; this one uses a part.
#[allow(dead_code)]
#[path = "ca_grpc/support.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use outrigger::ca::grpc::auth::client_cert::ClientCertAuthenticator;
use outrigger::ca::grpc::auth::static_tokens::StaticTokens;
use outrigger::ca::grpc::auth::{AuthChain, Authenticator};

use support::{Harness, assert_issued_for, lifetime_seconds};

async fn outrigger(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_outrigger"))
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn split_pem(text: &str) -> Vec<String> {
    pem::parse_many(text)
        .unwrap()
        .iter()
        .map(|p| {
            pem::encode_config(
                p,
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            )
        })
        .collect()
}

async fn harness(dir: &Path) -> Harness {
    let tokens = dir.join("tokens.txt");
    std::fs::write(&tokens, "cli-token shop/frontend\n").unwrap();
    let authenticators: Vec<Arc<dyn Authenticator>> = vec![
        Arc::new(StaticTokens::load(&tokens).unwrap()),
        Arc::new(ClientCertAuthenticator::new(support::TRUST_DOMAIN)),
    ];
    Harness::start(AuthChain::new(authenticators)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_request_writes_key_chain_and_root_then_renews_with_them() {
    if !requires::tool(
        "openssl",
        "ca_request_writes_key_chain_and_root_then_renews_with_them",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path()).await;
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, h.ca.root_pem()).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "cli-token\n").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();

    let path = |p: &Path| p.display().to_string();
    let result = outrigger(vec![
        "ca".into(),
        "request".into(),
        "--addr".into(),
        h.addr.to_string(),
        "--ca-bundle".into(),
        path(&bundle),
        "--token-file".into(),
        path(&token),
        "--ttl".into(),
        "1h".into(),
        "--out".into(),
        path(&out),
    ])
    .await;
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let key = out.join("key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let chain = split_pem(&std::fs::read_to_string(out.join("cert-chain.pem")).unwrap());
    assert_issued_for(&h.ca, &chain, "shop", "frontend");
    assert_eq!(lifetime_seconds(&chain[0]), 3600 + 120);
    assert_eq!(
        std::fs::read_to_string(out.join("root-cert.pem"))
            .unwrap()
            .trim(),
        h.ca.root_pem().trim()
    );

    // Renew with what was written, no token.
    let renewed = dir.path().join("renewed");
    std::fs::create_dir(&renewed).unwrap();
    let result = outrigger(vec![
        "ca".into(),
        "request".into(),
        "--addr".into(),
        format!("localhost:{}", h.addr.port()),
        "--ca-bundle".into(),
        path(&bundle),
        "--cert-chain".into(),
        path(&out.join("cert-chain.pem")),
        "--key".into(),
        path(&key),
        "--out".into(),
        path(&renewed),
    ])
    .await;
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let chain = split_pem(&std::fs::read_to_string(renewed.join("cert-chain.pem")).unwrap());
    assert_issued_for(&h.ca, &chain, "shop", "frontend");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_request_refusal_is_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path()).await;
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, h.ca.root_pem()).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "wrong-token").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let result = outrigger(vec![
        "ca".into(),
        "request".into(),
        "--addr".into(),
        h.addr.to_string(),
        "--ca-bundle".into(),
        bundle.display().to_string(),
        "--token-file".into(),
        token.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("the CA refused the request: Unauthenticated"),
        "{stderr}"
    );
    assert!(stderr.contains("not in the static token file"), "{stderr}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);

    let result = outrigger(vec![
        "ca".into(),
        "request".into(),
        "--addr".into(),
        "no-port".into(),
        "--ca-bundle".into(),
        bundle.display().to_string(),
        "--token-file".into(),
        token.display().to_string(),
    ])
    .await;
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("expected HOST:PORT"), "{stderr}");
    h.stop().await;
}

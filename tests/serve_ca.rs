//! `outrigger serve` runs the webhook and the CA service on one CA: the real
//! binary, standalone on ephemeral ports, with the real `outrigger ca
//! request` as the CA client and `openssl` as the independent verifier.

#[path = "support/requires.rs"]
mod requires;

mod webhook_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use webhook_support::{Server, client, sample, test_dir};

/// A standalone server whose CA service accepts `good-token` as
/// `shop/frontend`, in trust domain `example.org` (the injector's
/// `meshConfig.trustDomain`, which `--trust-domain` repeats).
fn server(name: &str, extra: &[&str]) -> Server {
    let dir = test_dir(name);
    let config = dir.join("config.yaml");
    std::fs::write(&config, "meshConfig:\n  trustDomain: example.org\n").unwrap();
    let tokens = dir.join("tokens.txt");
    std::fs::write(
        &tokens,
        "# test tokens\ngood-token shop/frontend\nother-token shop/backend\n",
    )
    .unwrap();
    let mut args: Vec<String> = vec![
        "--ca-dir".into(),
        dir.join("ca").display().to_string(),
        "--ca-bundle-out".into(),
        dir.join("bundle.pem").display().to_string(),
        "--static-token-file".into(),
        tokens.display().to_string(),
        "--trust-domain".into(),
        "example.org".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start(dir, &args)
}

/// Runs `outrigger ca request` against `server` with `token`, writing into
/// `out`.
fn ca_request(server: &Server, token: &str, out: &Path) -> Output {
    let token_file = out.with_extension("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    std::fs::create_dir_all(out).unwrap();
    Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args(["ca", "request", "--addr"])
        .arg(format!("127.0.0.1:{}", server.ca.port()))
        .arg("--ca-bundle")
        .arg(server.dir.join("bundle.pem"))
        .arg("--token-file")
        .arg(&token_file)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// Runs `outrigger serve` standalone on ephemeral ports with its CA in
/// `dir/ca` and `extra` flags; it must refuse to start. Its stderr.
fn start_up_refused(dir: &Path, extra: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--monitoring-listen",
            "127.0.0.1:0",
            "--ca-listen",
            "127.0.0.1:0",
            "--cluster-mode",
            "disabled",
            "--ca-dir",
        ])
        .arg(dir.join("ca"))
        .args(extra)
        .output()
        .unwrap();
    assert!(!output.status.success(), "serve started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes each certificate of a PEM chain to its own file, leaf first.
fn split_chain(chain_pem: &str, dir: &Path) -> Vec<PathBuf> {
    pem::parse_many(chain_pem)
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, block)| {
            let path = dir.join(format!("chain-{i}.pem"));
            std::fs::write(&path, pem::encode(block)).unwrap();
            path
        })
        .collect()
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn a_token_gets_a_workload_certificate_under_the_webhooks_root() {
    if !requires::tool(
        "openssl",
        "a_token_gets_a_workload_certificate_under_the_webhooks_root",
    ) {
        return;
    }
    let server = server("serve-ca", &[]);
    let before = server.metrics().await;
    assert_eq!(
        sample(&before, "outrigger_ca_requests_total{result=\"ok\"}"),
        0.0
    );
    assert!(
        before.contains("outrigger_ca_root_expiry_timestamp_seconds"),
        "{before}"
    );
    // Every result and refusal reason is there at 0 before the first request.
    for series in [
        "outrigger_ca_requests_total{result=\"ok\"} 0",
        "outrigger_ca_requests_total{result=\"unauthenticated\"} 0",
        "outrigger_ca_requests_total{result=\"permission-denied\"} 0",
        "outrigger_ca_requests_total{result=\"invalid-argument\"} 0",
        "outrigger_ca_requests_total{result=\"internal\"} 0",
        "outrigger_ca_authentication_failures_total{reason=\"missing\"} 0",
        "outrigger_ca_authentication_failures_total{reason=\"rejected\"} 0",
        "outrigger_ca_authentication_failures_total{reason=\"backend\"} 0",
    ] {
        assert!(before.lines().any(|l| l == series), "{series}: {before}");
    }

    let out = server.dir.join("issued");
    let result = ca_request(&server, "good-token", &out);
    assert!(
        result.status.success(),
        "{}\n{}",
        text(&result),
        server.log()
    );
    for file in ["key.pem", "cert-chain.pem", "root-cert.pem"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }

    // One root for both services: the CA's root is the webhook's caBundle.
    let bundle = server.bundle();
    let root = std::fs::read_to_string(out.join("root-cert.pem")).unwrap();
    assert_eq!(root.trim(), bundle.trim());
    let response = client(&bundle)
        .get(server.url("/nowhere"))
        .send()
        .await
        .expect("the webhook's certificate chains to the same root");
    assert_eq!(response.status(), 404);

    // openssl accepts the leaf under that root, with any intermediates
    // given as untrusted, and the leaf names the caller.
    let chain = std::fs::read_to_string(out.join("cert-chain.pem")).unwrap();
    let parts = split_chain(&chain, &out);
    assert!(parts.len() >= 2, "leaf and root expected:\n{chain}");
    let root_file = out.join("root-cert.pem");
    let mut args = vec![
        "verify".to_string(),
        "-CAfile".to_string(),
        root_file.display().to_string(),
    ];
    let middle = &parts[1..parts.len() - 1];
    if !middle.is_empty() {
        let untrusted = out.join("untrusted.pem");
        let joined: String = middle
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        std::fs::write(&untrusted, joined).unwrap();
        args.push("-untrusted".into());
        args.push(untrusted.display().to_string());
    }
    args.push(parts[0].display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let verified = openssl(&args);
    assert!(verified.status.success(), "{}", text(&verified));
    let leaf = parts[0].display().to_string();
    let san = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", &leaf]);
    assert!(
        text(&san).contains("URI:spiffe://example.org/ns/shop/sa/frontend"),
        "{}",
        text(&san)
    );

    let after = server.metrics().await;
    assert_eq!(
        sample(&after, "outrigger_ca_requests_total{result=\"ok\"}"),
        1.0,
        "{after}"
    );
    assert!(
        sample(&after, "outrigger_ca_signing_duration_seconds_count") >= 1.0,
        "{after}"
    );
}

#[tokio::test]
async fn a_bad_token_is_refused_with_a_message_and_counted() {
    let server = server("serve-ca-refused", &[]);
    let out = server.dir.join("refused");
    let result = ca_request(&server, "not-a-token", &out);
    assert!(!result.status.success(), "{}", text(&result));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("Unauthenticated"), "{stderr}");
    assert!(stderr.contains("not in the static token file"), "{stderr}");
    assert!(!out.join("key.pem").exists());
    let metrics = server.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "outrigger_ca_requests_total{result=\"unauthenticated\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "outrigger_ca_requests_total{result=\"ok\"}"),
        0.0
    );
}

#[tokio::test]
async fn a_malformed_static_token_file_stops_start_up_with_its_line() {
    let dir = test_dir("serve-ca-bad-tokens");
    let tokens = dir.join("tokens.txt");
    std::fs::write(&tokens, "lonely-token\n").unwrap();
    let stderr = start_up_refused(&dir, &["--static-token-file".as_ref(), tokens.as_os_str()]);
    assert!(stderr.contains("--static-token-file"), "{stderr}");
    assert!(stderr.contains("line 1"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sigterm_stops_both_services_and_exits_zero() {
    let mut server = server("serve-ca-term", &["--shutdown-delay", "0s"]);
    // The CA service is up before the signal.
    let out = server.dir.join("before");
    let result = ca_request(&server, "good-token", &out);
    assert!(result.status.success(), "{}", text(&result));
    let (webhook, ca) = (server.listen, server.ca);

    server.signal("TERM");
    let status = server.wait();
    assert!(status.success(), "{status}\n{}", server.log());
    let log = server.log();
    assert!(log.contains("CA gRPC service stopped"), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
    for addr in [webhook, ca] {
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{addr} still accepts connections"
        );
    }
}

#[tokio::test]
async fn a_second_signal_during_the_drain_exits_at_once_non_zero() {
    // Without the second signal this would wait ten minutes.
    let mut server = server("serve-second-signal", &["--shutdown-delay", "10m"]);
    server.signal("TERM");
    server.wait_for_log("still accepting connections while endpoints drain");
    server.signal("INT");
    let status = server.wait();
    assert!(!status.success(), "{status}");
    assert_eq!(status.code(), Some(128 + 2), "{status}");
    assert!(
        server.log().contains("second signal during shutdown"),
        "{}",
        server.log()
    );
}

/// A CA directory as earlier versions of standalone mode created it (rcgen,
/// ECDSA P-256, O=outrigger, all four files) is loaded as it is after the
/// upgrade: same caBundle, and the CA service signs with it.
#[tokio::test]
async fn a_ca_directory_from_earlier_versions_keeps_working() {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let dir = test_dir("serve-ca-upgrade");
    let ca_dir = dir.join("ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "outrigger");
    name.push(DnType::CommonName, "outrigger standalone CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&key).unwrap().pem();
    std::fs::write(ca_dir.join("ca-key.pem"), key.serialize_pem()).unwrap();
    for file in ["ca-cert.pem", "root-cert.pem", "cert-chain.pem"] {
        std::fs::write(ca_dir.join(file), &cert).unwrap();
    }
    let tokens = dir.join("tokens.txt");
    std::fs::write(&tokens, "good-token shop/frontend\n").unwrap();
    let args = [
        "--ca-dir".to_string(),
        ca_dir.display().to_string(),
        "--ca-bundle-out".to_string(),
        dir.join("bundle.pem").display().to_string(),
        "--static-token-file".to_string(),
        tokens.display().to_string(),
    ];
    let server = Server::start(dir, &args);
    assert_eq!(server.bundle(), cert);
    let out = server.dir.join("issued");
    let result = ca_request(&server, "good-token", &out);
    assert!(
        result.status.success(),
        "{}\n{}",
        text(&result),
        server.log()
    );
    let root = std::fs::read_to_string(out.join("root-cert.pem")).unwrap();
    assert_eq!(root.trim(), cert.trim());
}

#[tokio::test]
async fn a_trust_domain_flag_that_contradicts_the_injector_stops_start_up_naming_both() {
    let dir = test_dir("serve-ca-trust-domain-clash");
    let config = dir.join("config.yaml");
    std::fs::write(&config, "meshConfig:\n  trustDomain: foo.example\n").unwrap();
    let stderr = start_up_refused(
        &dir,
        &[
            "--trust-domain".as_ref(),
            "cluster.local".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
    );
    assert!(
        stderr.contains("--trust-domain cluster.local") && stderr.contains("foo.example"),
        "{stderr}"
    );
    assert!(
        !dir.join("ca").exists(),
        "nothing is created before the refusal"
    );
}

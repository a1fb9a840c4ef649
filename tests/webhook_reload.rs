//! Hot reload in the real binary: a certificate replaced on disk is served to
//! the next connection while established connections keep working; a broken
//! pair or an invalid config is rejected and the old one stays in force; a
//! new config is what the next injection is made with.

mod webhook_support;

use std::sync::Arc;
use std::time::Instant;

use outrigger::config::Config;
use outrigger::inject::{self, Context, Outcome};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use webhook_support::{
    PATIENCE, Server, client, pod, read_response_status, replace_file, review, tls_config,
};

/// A test CA and serving pairs for `localhost` issued by it.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// `(cert PEM, key PEM, leaf DER)`.
    fn leaf(&self) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

async fn connect(server: &Server, bundle: &str) -> TlsStream<TcpStream> {
    let connector = TlsConnector::from(Arc::new(tls_config(bundle, &[b"http/1.1"])));
    let tcp = TcpStream::connect(server.listen).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

async fn served_leaf(server: &Server, bundle: &str) -> Vec<u8> {
    let tls = connect(server, bundle).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

async fn wait_for_leaf(server: &Server, bundle: &str, want: &[u8]) {
    let started = Instant::now();
    while served_leaf(server, bundle).await != want {
        assert!(
            started.elapsed() < PATIENCE,
            "new certificate never served:\n{}",
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// One HTTP/1.1 admission request on an already open connection; the status.
async fn request_on(tls: &mut TlsStream<TcpStream>) -> String {
    let body = serde_json::to_vec(&review("admission.k8s.io/v1", "", "CREATE", &pod())).unwrap();
    let head = format!(
        "POST /inject HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body).await.unwrap();
    read_response_status(tls).await
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_the_next_connection() {
    let ca = TestCa::new();
    let (cert1, key1, der1) = ca.leaf();
    let (cert2, key2, der2) = ca.leaf();
    let dir = webhook_support::test_dir("certreload");
    let cert_file = dir.join("tls.crt");
    let key_file = dir.join("tls.key");
    std::fs::write(&cert_file, &cert1).unwrap();
    std::fs::write(&key_file, &key1).unwrap();
    let server = Server::start(
        dir.clone(),
        &[
            "--tls-cert-file".into(),
            cert_file.display().to_string(),
            "--tls-key-file".into(),
            key_file.display().to_string(),
        ],
    );
    assert_eq!(served_leaf(&server, &ca.pem).await, der1);
    let mut established = connect(&server, &ca.pem).await;
    assert_eq!(request_on(&mut established).await, "HTTP/1.1 200 OK");

    replace_file(&key_file, key2.as_bytes());
    replace_file(&cert_file, cert2.as_bytes());
    wait_for_leaf(&server, &ca.pem, &der2).await;
    // The connection opened before the swap was not dropped.
    assert_eq!(request_on(&mut established).await, "HTTP/1.1 200 OK");

    // A broken pair is rejected; the last good one is still served.
    replace_file(&cert_file, b"-----BEGIN CERTIFICATE-----\nnot base64\n");
    server.wait_for_log("new certificate/key pair rejected");
    assert_eq!(served_leaf(&server, &ca.pem).await, der2);
    // So is a key that does not belong to the certificate.
    replace_file(&cert_file, cert1.as_bytes());
    replace_file(&key_file, key2.as_bytes());
    let started = Instant::now();
    while server
        .log()
        .matches("new certificate/key pair rejected")
        .count()
        < 2
    {
        assert!(
            started.elapsed() < PATIENCE,
            "mismatched pair not rejected:\n{}",
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(served_leaf(&server, &ca.pem).await, der2);
    // The server keeps answering through all of it.
    let answer = client(&ca.pem)
        .post(server.url("/inject"))
        .json(&review("admission.k8s.io/v1", "", "CREATE", &pod()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn an_invalid_new_config_is_rejected_and_the_old_one_stays() {
    let dir = webhook_support::test_dir("configreload");
    let config_file = dir.join("config.yaml");
    std::fs::write(&config_file, "{}\n").unwrap();
    let server = start_with_config(&dir, &config_file);
    let bundle = server.bundle();

    replace_file(&config_file, b"# edited\n{}\n");
    server.wait_for_log("config reloaded");
    replace_file(&config_file, b"config: [unclosed\n");
    server.wait_for_log("new config rejected");

    // Still ready, still answering with the config last loaded.
    let ready = webhook_support::plain_client()
        .get(server.monitoring_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let answer = admit_pod(&server, &bundle).await;
    let ctx = Context {
        namespace: Some("shop".into()),
        namespace_labels: None,
    };
    let config = Config::from_yaml("{}\n").unwrap();
    let expected_patch = matches!(
        inject::inject(&pod(), &ctx, &config),
        Ok(Outcome::Injected { .. })
    );
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(
        answer["response"].get("patch").is_some(),
        expected_patch,
        "{answer}"
    );
}

/// A standalone server reading its config from `config_file`.
fn start_with_config(dir: &std::path::Path, config_file: &std::path::Path) -> Server {
    Server::start(
        dir.to_path_buf(),
        &[
            "--ca-dir".into(),
            dir.join("ca").display().to_string(),
            "--ca-bundle-out".into(),
            dir.join("bundle.pem").display().to_string(),
            "--config".into(),
            config_file.display().to_string(),
        ],
    )
}

/// The webhook's answer to a CREATE of `pod()`.
async fn admit_pod(server: &Server, bundle: &str) -> Value {
    client(bundle)
        .post(server.url("/inject"))
        .json(&review("admission.k8s.io/v1", "", "CREATE", &pod()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The patch text the webhook answers `pod()` with.
async fn patch_text(server: &Server, bundle: &str) -> Vec<u8> {
    use base64::Engine as _;
    let answer = admit_pod(server, bundle).await;
    let encoded = answer["response"]["patch"]
        .as_str()
        .unwrap_or_else(|| panic!("no patch: {answer}"));
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap()
}

/// The engine's patch text for `pod()` under the config document `yaml`.
fn engine_patch_text(yaml: &str) -> Vec<u8> {
    let ctx = Context {
        namespace: Some("shop".into()),
        namespace_labels: None,
    };
    let config = Config::from_yaml(yaml).unwrap();
    match inject::inject(&pod(), &ctx, &config) {
        Ok(Outcome::Injected { patch, .. }) => serde_json::to_vec(&patch).unwrap(),
        other => panic!("the engine does not inject: {other:?}"),
    }
}

#[tokio::test]
async fn a_reloaded_config_changes_the_next_injection() {
    // The webhook writes a first injection from the template it compiled
    // for its configuration: a new configuration must compile its own.
    let dir = webhook_support::test_dir("templatereload");
    let config_file = dir.join("config.yaml");
    let first = "values:\n  global:\n    hub: registry.one.example/istio\n";
    let second = "values:\n  global:\n    hub: registry.two.example/istio\n";
    std::fs::write(&config_file, first).unwrap();
    let server = start_with_config(&dir, &config_file);
    let bundle = server.bundle();

    let before = patch_text(&server, &bundle).await;
    assert_eq!(before, engine_patch_text(first));
    assert!(String::from_utf8_lossy(&before).contains("registry.one.example/istio/proxyv2"));

    replace_file(&config_file, second.as_bytes());
    server.wait_for_log("config reloaded");
    let after = patch_text(&server, &bundle).await;
    assert_eq!(after, engine_patch_text(second));
    let text = String::from_utf8_lossy(&after);
    assert!(
        text.contains("registry.two.example/istio/proxyv2"),
        "{text}"
    );
    assert!(!text.contains("registry.one.example"), "{text}");
}

#[test]
fn an_invalid_config_at_start_is_an_error_naming_the_file() {
    let dir = webhook_support::test_dir("badconfig");
    let config_file = dir.join("config.yaml");
    std::fs::write(&config_file, "config: [unclosed\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--monitoring-listen",
            "127.0.0.1:0",
        ])
        .arg("--ca-dir")
        .arg(dir.join("ca"))
        .arg("--config")
        .arg(&config_file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("config.yaml"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_broken_template_on_reload_is_refused_by_name_and_line_and_the_old_one_stays() {
    let dir = webhook_support::test_dir("brokentemplate");
    let config_file = dir.join("config.yaml");
    let first = "values:\n  sidecarInjectorWebhook:\n    defaultTemplates: [sidecar, stamp]\n    templates:\n      stamp: |\n        metadata:\n          annotations:\n            stamped: {{ quote \"one\" }}\n";
    let broken = first.replace("quote \"one\"", "nosuch \"two\"");
    std::fs::write(&config_file, first).unwrap();
    let server = start_with_config(&dir, &config_file);
    let bundle = server.bundle();
    let before = patch_text(&server, &bundle).await;
    assert_eq!(before, engine_patch_text(first));
    assert!(String::from_utf8_lossy(&before).contains("\"stamped\":\"one\""));

    replace_file(&config_file, broken.as_bytes());
    server.wait_for_log("new config rejected");
    let log = server.log();
    let rejection = log
        .lines()
        .find(|l| l.contains("new config rejected"))
        .unwrap();
    assert!(
        rejection.contains("template \\\"stamp\\\", line 3: function \\\"nosuch\\\" not defined"),
        "{rejection}"
    );
    // Still injecting with the template last loaded.
    assert_eq!(patch_text(&server, &bundle).await, before);
}

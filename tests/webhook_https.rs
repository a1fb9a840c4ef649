//! The real `outrigger serve` over real TLS, standalone mode: the client
//! trusts only the CA bundle the server wrote. Patches are checked by
//! applying them and comparing with the engine's own output for the same
//! object, context and config (never against template details).

mod webhook_support;

use base64::Engine as _;
use outrigger::config::Config;
use outrigger::inject::{self, Context, Outcome};
use serde_json::{Value, json};
use webhook_support::{Server, client, client_http1, deployment, pod, review, sample};

fn shop() -> Context {
    Context {
        namespace: Some("shop".into()),
        namespace_labels: None,
    }
}

async fn post_review(client: &reqwest::Client, server: &Server, body: &Value) -> Value {
    let response = client
        .post(server.url("/inject"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn apply_response_patch(response: &Value, object: &Value) -> Value {
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().expect("base64 patch"))
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    patched
}

#[tokio::test]
async fn v1_and_v1beta1_round_trips_give_the_engines_output() {
    let server = Server::standalone("roundtrip", &[]);
    let bundle = server.bundle();
    let cases = [
        ("admission.k8s.io/v1", "", "CREATE", pod()),
        ("admission.k8s.io/v1beta1", "", "CREATE", pod()),
        ("admission.k8s.io/v1", "apps", "CREATE", deployment()),
        ("admission.k8s.io/v1beta1", "apps", "UPDATE", deployment()),
    ];
    for client in [client(&bundle), client_http1(&bundle)] {
        for (version, group, operation, object) in &cases {
            let body = review(version, group, operation, object);
            let answer = post_review(&client, &server, &body).await;
            assert_eq!(answer["apiVersion"], *version);
            assert_eq!(answer["kind"], "AdmissionReview");
            let response = &answer["response"];
            assert_eq!(response["uid"], body["request"]["uid"]);
            assert_eq!(response["allowed"], true, "{response}");
            let Ok(Outcome::Injected { mutated, .. }) =
                inject::inject(object, &shop(), &Config::default())
            else {
                panic!("the engine does not inject the {} fixture", object["kind"]);
            };
            assert_eq!(apply_response_patch(response, object), mutated);
        }
    }
}

#[tokio::test]
async fn skips_are_allowed_without_a_patch() {
    let server = Server::standalone("skip", &[]);
    let client = client(&server.bundle());
    // A kind the webhook never injects.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let mut skips = vec![cm];
    // Objects the engine leaves alone: an opt-out, host networking, and its
    // own output (already injected).
    let mut opted_out = pod();
    opted_out["metadata"]["annotations"] = json!({"sidecar.istio.io/inject": "false"});
    let mut host_network = pod();
    host_network["spec"]["hostNetwork"] = json!(true);
    let Ok(Outcome::Injected { mutated, .. }) = inject::inject(&pod(), &shop(), &Config::default())
    else {
        panic!("the engine does not inject the Pod fixture");
    };
    for object in [opted_out, host_network, mutated] {
        assert!(
            matches!(
                inject::inject(&object, &shop(), &Config::default()),
                Ok(Outcome::Skipped { .. })
            ),
            "the engine does not skip {object}"
        );
        skips.push(object);
    }
    for object in &skips {
        let answer = post_review(
            &client,
            &server,
            &review("admission.k8s.io/v1", "", "CREATE", object),
        )
        .await;
        let response = &answer["response"];
        assert_eq!(response["allowed"], true, "{response}");
        assert!(response.get("patch").is_none(), "{object}: {response}");
    }
    // Pods are not injected on UPDATE.
    let answer = post_review(
        &client,
        &server,
        &review("admission.k8s.io/v1", "", "UPDATE", &pod()),
    )
    .await;
    assert!(answer["response"].get("patch").is_none(), "{answer}");
}

#[tokio::test]
async fn bad_annotations_are_denied_with_the_engines_message() {
    let server = Server::standalone("deny", &[]);
    let client = client(&server.bundle());
    let mut candidates = Vec::new();
    // (A bad sidecar.istio.io/inject value is a warning, not a denial, as
    // in Istio: src/webhook/admission/tests.rs.)
    let mut bad_interception = pod();
    bad_interception["metadata"]["annotations"] =
        json!({"sidecar.istio.io/interceptionMode": "SIDEWAYS"});
    candidates.push(bad_interception);
    let mut bad_ports = pod();
    bad_ports["metadata"]["annotations"] =
        json!({"traffic.sidecar.istio.io/includeInboundPorts": "abc"});
    candidates.push(bad_ports);
    for object in &candidates {
        let err = inject::inject(object, &shop(), &Config::default())
            .expect_err("the engine accepted a bad annotation");
        let answer = post_review(
            &client,
            &server,
            &review("admission.k8s.io/v1", "", "CREATE", object),
        )
        .await;
        let response = &answer["response"];
        assert_eq!(response["allowed"], false, "{response}");
        assert_eq!(response["status"]["code"], 400);
        assert_eq!(response["status"]["message"], err.to_string());
        assert!(response.get("patch").is_none(), "{response}");
    }
}

#[tokio::test]
async fn http_errors_say_what_is_wrong() {
    let server = Server::standalone("errors", &["--max-body-bytes", "2048"]);
    let client = client(&server.bundle());
    let send = |path: &str, content_type: &str, body: Vec<u8>| {
        client
            .post(server.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "/inject",
            "application/json",
            b"{oops".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "/inject",
            "application/json",
            br#"{"kind":"Pod"}"#.to_vec(),
            400,
            "AdmissionReview",
        ),
        (
            "/inject",
            "text/plain",
            b"{}".to_vec(),
            415,
            "application/json",
        ),
        (
            "/inject",
            "application/json",
            vec![b' '; 4096],
            413,
            "2048 bytes",
        ),
        (
            "/mutate",
            "application/json",
            b"{}".to_vec(),
            404,
            "/mutate",
        ),
    ];
    for (path, content_type, body, status, needle) in cases {
        let response = send(path, content_type, body).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path} {content_type}");
        let body: Value = response.json().await.unwrap();
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{status}: {message:?} lacks {needle:?}"
        );
    }
    // The server is unaffected by the bad requests.
    let answer = post_review(
        &client,
        &server,
        &review("admission.k8s.io/v1", "", "CREATE", &pod()),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], true);
}

#[tokio::test]
async fn preview_answers_from_the_same_engine() {
    let server = Server::standalone("preview", &[]);
    let client = client(&server.bundle());
    let yaml = serde_yaml::to_string(&deployment()).unwrap();
    let response = client
        .post(server.url("/preview?namespace=shop"))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let Ok(Outcome::Injected { patch, mutated, .. }) =
        inject::inject(&deployment(), &shop(), &Config::default())
    else {
        panic!("the engine does not inject the Deployment fixture");
    };
    assert_eq!(body["decision"], "inject");
    assert_eq!(body["object"], mutated);
    assert_eq!(body["patch"], serde_json::to_value(&patch).unwrap());
}

#[tokio::test]
async fn metrics_counters_move_with_requests() {
    let server = Server::standalone("metrics", &[]);
    let client = client(&server.bundle());
    let before = server.metrics().await;
    let injected = r#"outrigger_injection_requests_total{kind="Deployment",result="injected"}"#;
    let skipped = r#"outrigger_injection_requests_total{kind="other",result="skipped"}"#;
    let ignored = r#"outrigger_injection_skips_total{reason="ignored-kind"}"#;
    let invalid = r#"outrigger_injection_requests_total{kind="other",result="invalid"}"#;
    let count = "outrigger_injection_duration_seconds_count";

    for _ in 0..3 {
        post_review(
            &client,
            &server,
            &review("admission.k8s.io/v1", "apps", "CREATE", &deployment()),
        )
        .await;
    }
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    post_review(
        &client,
        &server,
        &review("admission.k8s.io/v1", "", "CREATE", &cm),
    )
    .await;
    let bad = client
        .post(server.url("/inject"))
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let after = server.metrics().await;
    assert_eq!(
        sample(&after, injected) - sample(&before, injected),
        3.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, skipped) - sample(&before, skipped),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, ignored) - sample(&before, ignored),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, invalid) - sample(&before, invalid),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, count) - sample(&before, count),
        4.0,
        "{after}"
    );
    assert!(sample(&after, "outrigger_tls_certificate_expiry_timestamp_seconds") > 1.7e9);
    assert!(after.contains("outrigger_build_info{"), "{after}");
}

#[tokio::test]
async fn health_and_readiness_are_served_in_plain_http() {
    let server = Server::standalone("health", &[]);
    for path in ["/healthz", "/readyz"] {
        let response = webhook_support::plain_client()
            .get(server.monitoring_url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn the_standalone_ca_is_reused_across_restarts() {
    let first = Server::standalone("reuse", &[]);
    let bundle = first.bundle();
    let ca_dir = first.dir.join("ca");
    let second_dir = webhook_support::test_dir("reuse-second");
    let second = Server::start(
        second_dir.clone(),
        &[
            "--ca-dir".to_string(),
            ca_dir.display().to_string(),
            "--ca-bundle-out".to_string(),
            second_dir.join("bundle.pem").display().to_string(),
        ],
    );
    assert_eq!(second.bundle(), bundle);
    // The first server's bundle is trusted by the second server's certificate.
    let answer = post_review(
        &client(&bundle),
        &second,
        &review("admission.k8s.io/v1", "", "CREATE", &pod()),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], true);
    drop(first);
}

/// A TLS client with only `versions`, trusting only `bundle`, offering `alpn`.
async fn handshake(
    server: &Server,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let bundle = server.bundle();
    use rustls_pki_types::pem::PemObject as _;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(bundle.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(server.listen).await.unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn tls_1_2_and_1_3_with_alpn_h2_and_http1() {
    let server = Server::standalone("tls", &[]);
    let tls13 = handshake(&server, &[&rustls::version::TLS13], &[b"h2", b"http/1.1"]).await;
    let (_, conn) = tls13.get_ref();
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
    let tls12 = handshake(&server, &[&rustls::version::TLS12], &[b"http/1.1"]).await;
    let (_, conn) = tls12.get_ref();
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn each_admission_is_one_structured_log_line() {
    let server = Server::standalone("logline", &[]);
    let client = client(&server.bundle());
    post_review(
        &client,
        &server,
        &review("admission.k8s.io/v1", "apps", "CREATE", &deployment()),
    )
    .await;
    server.wait_for_log("\"uid\":\"uid-Deployment-CREATE\"");
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.contains("uid-Deployment-CREATE"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    let fields = &lines[0]["fields"];
    assert_eq!(fields["message"], "admission");
    assert_eq!(fields["kind"], "Deployment");
    assert_eq!(fields["namespace"], "shop");
    assert_eq!(fields["name"], "api");
    assert_eq!(fields["operation"], "CREATE");
    assert_eq!(fields["decision"], "injected");
    assert!(fields["duration_us"].is_u64(), "{fields}");
}

//! `outrigger serve` in cluster mode with no reachable API server: it keeps
//! retrying, stays alive but not ready (no shared CA, no serving
//! certificate yet, so its TLS ports do not listen), and still shuts down
//! cleanly.

mod webhook_support;

use webhook_support::{Server, plain_client, test_dir};

#[tokio::test]
async fn without_an_api_server_it_is_alive_not_ready_and_stops_on_sigterm() {
    let dir = test_dir("serve-cluster-unreachable");
    let kubeconfig = dir.join("missing-kubeconfig");
    let args = [
        "--cluster-mode".to_string(),
        "enabled".to_string(),
        "--kubeconfig".to_string(),
        kubeconfig.display().to_string(),
        "--shutdown-delay".to_string(),
        "0s".to_string(),
    ];
    let mut server = Server::start(dir, &args);
    server.wait_for_log("cannot reach the Kubernetes API server; retrying");

    let client = plain_client();
    let alive = client
        .get(server.monitoring_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200);
    let ready = client
        .get(server.monitoring_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let why = ready.text().await.unwrap();
    assert!(why.contains("serving certificate is not loaded"), "{why}");
    // The controllers' and the CA service's metrics are on the same port.
    let metrics = server.metrics().await;
    for name in [
        "outrigger_leader",
        "outrigger_ca_signing_duration_seconds",
        "outrigger_tls_certificate_expiry_timestamp_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    // No certificate to serve yet: the webhook's and the CA's ports refuse
    // connections (the API server tries another endpoint) rather than
    // accept them and fail the TLS handshake or hold them.
    for (port, addr) in [("webhook", server.listen), ("CA", server.ca)] {
        let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(
            refused.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "the {port} port at {addr}"
        );
    }

    server.signal("TERM");
    let status = server.wait();
    assert!(status.success(), "{status}\n{}", server.log());
    assert!(
        server.log().contains("shutdown complete"),
        "{}",
        server.log()
    );
}

//! Graceful shutdown of the real binary: on SIGTERM the server reports
//! not-ready at once, stops accepting after the delay, lets the request in
//! flight finish, and exits 0.

mod webhook_support;

use std::sync::Arc;
use std::time::Instant;

use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use webhook_support::{PATIENCE, Server, pod, read_response_status, review, tls_config};

async fn connect(server: &Server) -> TlsStream<TcpStream> {
    let connector = TlsConnector::from(Arc::new(tls_config(&server.bundle(), &[b"http/1.1"])));
    let tcp = TcpStream::connect(server.listen).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

fn request_head(body_len: usize) -> String {
    format!(
        "POST /inject HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
    )
}

/// A connection that has already carried one full exchange, so the server
/// is certainly serving it.
async fn served_connection(server: &Server) -> TlsStream<TcpStream> {
    let body = serde_json::to_vec(&review("admission.k8s.io/v1", "", "CREATE", &pod())).unwrap();
    let mut tls = connect(server).await;
    tls.write_all(request_head(body.len()).as_bytes())
        .await
        .unwrap();
    tls.write_all(&body).await.unwrap();
    assert_eq!(read_response_status(&mut tls).await, "HTTP/1.1 200 OK");
    tls
}

async fn readyz(server: &Server) -> u16 {
    webhook_support::plain_client()
        .get(server.monitoring_url("/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_and_exits_0() {
    let mut server = Server::standalone(
        "sigterm",
        &[
            "--shutdown-delay",
            "1s",
            "--shutdown-grace",
            "60s",
            "--request-timeout",
            "120s",
        ],
    );
    let body = serde_json::to_vec(&review("admission.k8s.io/v1", "", "CREATE", &pod())).unwrap();
    let mut tls = served_connection(&server).await;
    // The second request stays in flight: half its body, then nothing.
    let (first_half, second_half) = body.split_at(body.len() / 2);
    tls.write_all(request_head(body.len()).as_bytes())
        .await
        .unwrap();
    tls.write_all(first_half).await.unwrap();
    tls.flush().await.unwrap();
    assert_eq!(readyz(&server).await, 200);

    server.signal("TERM");
    let started = Instant::now();
    while readyz(&server).await == 200 {
        assert!(started.elapsed() < PATIENCE, "still ready after SIGTERM");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // After the delay the listener is closed: new connections are refused.
    server.wait_for_log("listener closed");
    assert!(TcpStream::connect(server.listen).await.is_err());

    // The request in flight completes.
    tls.write_all(second_half).await.unwrap();
    tls.flush().await.unwrap();
    assert_eq!(read_response_status(&mut tls).await, "HTTP/1.1 200 OK");
    let status = server.wait();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(server.log().contains("shutdown complete"));
}

#[tokio::test]
async fn sigint_on_an_idle_server_exits_0() {
    let mut server = Server::standalone("sigint", &["--shutdown-delay", "0s"]);
    server.signal("INT");
    let status = server.wait();
    assert_eq!(status.code(), Some(0), "{}", server.log());
}

#[tokio::test]
async fn a_request_that_never_finishes_does_not_hold_the_exit_past_the_grace() {
    let mut server = Server::standalone(
        "grace",
        &[
            "--shutdown-delay",
            "0s",
            "--shutdown-grace",
            "1s",
            "--request-timeout",
            "1h",
        ],
    );
    let mut tls = served_connection(&server).await;
    tls.write_all(request_head(1000).as_bytes()).await.unwrap();
    tls.write_all(b"{").await.unwrap();
    tls.flush().await.unwrap();
    server.signal("TERM");
    let status = server.wait();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(
        server
            .log()
            .contains("still in flight after the grace period"),
        "{}",
        server.log()
    );
}

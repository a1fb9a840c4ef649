//! For `tests/serve_hostile.rs`: the hostile inputs, a raw HTTP/2 client
//! over TLS that can leave bodies unfinished, and the server's peak memory
//! read from `/proc`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;

/// The server's peak resident memory so far (`VmHWM`), in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib / 1024.0
}

/// One anchor of `k` items referenced `m` times: about 4 bytes of text per
/// item and per reference, `k` x `m` nodes once expanded.
pub fn alias_bomb(k: usize, m: usize) -> String {
    let items = vec!["x"; k].join(", ");
    let refs = vec!["*a"; m].join(", ");
    format!("items: &a [{items}]\nrefs: [{refs}]\n")
}

/// `{a: {a: {a: ...` `depth` levels deep.
pub fn flow_nesting(depth: usize) -> String {
    format!("{}{}", "{a: ".repeat(depth), "}".repeat(depth))
}

/// A request body that sends `sent` bytes (in 16 KiB chunks) and then
/// never finishes.
pub struct Unfinished {
    prefix: Option<Bytes>,
    left: usize,
}

impl Unfinished {
    pub fn new(sent: usize) -> Self {
        Unfinished {
            prefix: None,
            left: sent,
        }
    }

    /// `prefix` first (e.g. a gRPC message header), then `sent` bytes.
    pub fn with_prefix(prefix: Vec<u8>, sent: usize) -> Self {
        Unfinished {
            prefix: Some(Bytes::from(prefix)),
            left: sent,
        }
    }
}

static CHUNK: [u8; 16 << 10] = [b'x'; 16 << 10];

impl http_body::Body for Unfinished {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if self.left == 0 {
            return Poll::Pending; // never ends
        }
        let n = self.left.min(CHUNK.len());
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n])))))
    }
}

/// An HTTP/2 connection over TLS to `addr` (trusting `bundle_pem`), driven
/// in the background; the task ends when the server closes the connection.
pub async fn h2_connect(
    addr: SocketAddr,
    bundle_pem: &str,
) -> (SendRequest<Unfinished>, tokio::task::JoinHandle<()>) {
    let config = crate::webhook_support::tls_config(bundle_pem, &[b"h2"]);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (send, task)
}

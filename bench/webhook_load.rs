//! Load generator for `outrigger serve` (driven by `bench/webhook`).
//!
//! Opens N keep-alive HTTPS connections (HTTP/1.1, trusting only the given CA
//! bundle) — or, with `--http2`, one HTTP/2 connection carrying N streams at
//! a time, as the API server calls webhooks — and posts `AdmissionReview`s
//! of a typical Deployment for a fixed time, either as fast as each connection allows (closed loop) or at a fixed
//! total rate (open loop: latency is measured from each request's scheduled
//! start, so a stalled server is not hidden by the generator waiting). Prints
//! one JSON line: requests, errors, throughput, p50/p99/max latency.
//!
//! Scenarios: `inject` (the Deployment gets the sidecar) and `skip` (the same
//! Deployment with `sidecar.istio.io/inject: "false"` on its pod template:
//! TLS, HTTP and parsing only). The first answer is checked to be what the
//! scenario claims, so a mislabelled run fails instead of misleading.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[path = "review.rs"]
mod review;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// A typical Deployment that gets the sidecar.
    Inject,
    /// The same Deployment, opted out: the floor.
    Skip,
}

/// Drive `outrigger serve` with AdmissionReviews.
#[derive(Debug, Parser)]
struct Args {
    /// The webhook's address.
    #[arg(long, required_unless_present = "print_body")]
    addr: Option<SocketAddr>,
    /// The CA bundle (PEM) to trust; nothing else is trusted.
    #[arg(long, required_unless_present = "print_body")]
    ca: Option<PathBuf>,
    /// Print the scenario's request body and exit (to reproduce with curl).
    #[arg(long)]
    print_body: bool,
    /// The TLS server name to verify.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Keep-alive connections (with `--http2`: concurrent streams on the
    /// one connection).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// One HTTP/2 connection for every request, as the API server connects
    /// to a webhook, instead of one HTTP/1.1 connection per worker.
    #[arg(long)]
    http2: bool,
    /// Seconds to run.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Total requests per second across all connections (0: as fast as
    /// possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// What to post.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// What the Deployment carries besides itself.
    #[arg(long, value_enum, default_value_t = EnvelopeArg::Managed)]
    review: EnvelopeArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EnvelopeArg {
    /// The Deployment alone (the benchmark's input until session 6; no API
    /// server sends a new object without managedFields).
    Minimal,
    /// As `kubectl create`, Helm or a controller creates it: with the
    /// managedFields the API server sets on every object before admission.
    Managed,
    /// As `kubectl apply` creates it: with its last-applied annotation and
    /// managedFields, as the API server sends it to mutating webhooks.
    Applied,
}

/// A connection to post on: HTTP/1.1 (one request at a time) or HTTP/2
/// (cloned into every worker; each request is a stream).
#[derive(Clone)]
enum Sender {
    Http1(Arc<tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn open(args: &Args, connector: &TlsConnector) -> Result<Sender, String> {
    let addr = args.addr.ok_or("--addr is required")?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(args.server_name.clone()).map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let io = TokioIo::new(tls);
    if args.http2 {
        let (sender, connection) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("HTTP/2: {e}"))?;
        tokio::spawn(connection);
        return Ok(Sender::Http2(sender));
    }
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(connection);
    Ok(Sender::Http1(Arc::new(tokio::sync::Mutex::new(sender))))
}

/// One request; the response body on 200.
async fn post(sender: &Sender, body: &Bytes) -> Result<Bytes, String> {
    // HTTP/1.1: origin-form and a Host header; HTTP/2: the URI carries the
    // :scheme and :authority pseudo-headers.
    let request = match sender {
        Sender::Http1(_) => Request::post("/inject").header("host", "localhost"),
        Sender::Http2(_) => Request::post("https://localhost/inject"),
    };
    let request = request
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .map_err(|e| e.to_string())?;
    let response = match sender {
        Sender::Http1(sender) => {
            let mut sender = sender.lock().await;
            sender.ready().await.map_err(|e| e.to_string())?;
            sender.send_request(request).await
        }
        Sender::Http2(sender) => {
            let mut sender = sender.clone();
            sender.ready().await.map_err(|e| e.to_string())?;
            sender.send_request(request).await
        }
    }
    .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != 200 {
        return Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    Ok(bytes)
}

/// Checks that the answer is what the scenario claims.
fn check_answer(scenario: Scenario, bytes: &[u8]) -> Result<(), String> {
    let answer: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let response = &answer["response"];
    if response["allowed"] != true {
        return Err(format!("not allowed: {response}"));
    }
    let patch = response.get("patch").and_then(Value::as_str);
    match (scenario, patch) {
        (Scenario::Inject, Some(p)) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| e.to_string())?;
            eprintln!("inject: patch of {} bytes", decoded.len());
            Ok(())
        }
        (Scenario::Skip, None) => Ok(()),
        (Scenario::Inject, None) => Err("scenario inject, but the answer has no patch".into()),
        (Scenario::Skip, Some(_)) => Err("scenario skip, but the answer has a patch".into()),
    }
}

struct WorkerResult {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// One worker: posts on its own HTTP/1.1 connection, or on the shared
/// HTTP/2 one (`shared`).
async fn worker(
    args: Arc<Args>,
    connector: TlsConnector,
    shared: Option<Sender>,
    body: Bytes,
    index: usize,
    start: Instant,
    end: Instant,
) -> WorkerResult {
    let mut result = WorkerResult {
        latencies_us: Vec::with_capacity(1 << 16),
        errors: 0,
        first_error: None,
    };
    let opened = match shared {
        Some(sender) => Ok(sender),
        None => open(&args, &connector).await,
    };
    let mut sender = match opened {
        Ok(sender) => sender,
        Err(e) => {
            result.errors += 1;
            result.first_error = Some(e);
            return result;
        }
    };
    // Open loop: this connection's share of the rate, staggered.
    let interval =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(args.connections as f64 / args.rate));
    let mut scheduled = start
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / args.connections as f64)
        });
    loop {
        if interval.is_some() {
            if scheduled >= end {
                break;
            }
            tokio::time::sleep_until(scheduled.into()).await;
        } else if Instant::now() >= end {
            break;
        }
        let t0 = interval.map_or_else(Instant::now, |_| scheduled);
        match post(&sender, &body).await {
            Ok(_) => {
                let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                result.latencies_us.push(us);
            }
            Err(e) => {
                result.errors += 1;
                result.first_error.get_or_insert(e);
                // HTTP/1.1: a failed request may leave the connection
                // unusable; HTTP/2 streams fail alone.
                if matches!(sender, Sender::Http1(_)) {
                    match open(&args, &connector).await {
                        Ok(s) => sender = s,
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            }
        }
        if let Some(interval) = interval {
            scheduled += interval;
        }
    }
    result
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Arc::new(Args::parse());
    let envelope = match args.review {
        EnvelopeArg::Minimal => review::Envelope::Minimal,
        EnvelopeArg::Managed => review::Envelope::Managed,
        EnvelopeArg::Applied => review::Envelope::Applied,
    };
    let body = Bytes::from(review::review_of(args.scenario == Scenario::Skip, envelope));
    if args.print_body {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(());
    }
    let ca = args.ca.clone().ok_or("--ca is required")?;
    let pem = std::fs::read(&ca).map_err(|e| format!("{}: {e}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = if args.http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let connector = TlsConnector::from(Arc::new(config));

    // Check the scenario once, on its own connection (HTTP/2: the one every
    // worker then shares).
    let probe = open(&args, &connector).await?;
    check_answer(args.scenario, &post(&probe, &body).await?)?;
    let shared = args.http2.then_some(probe);

    let start = Instant::now() + Duration::from_millis(200);
    // This process's CPU time over the run (set-up included: connections
    // are already open, so it is small), to show what the generator costs.
    let cpu_start = cpu_time::ProcessTime::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let workers: Vec<_> = (0..args.connections)
        .map(|i| {
            tokio::spawn(worker(
                args.clone(),
                connector.clone(),
                shared.clone(),
                body.clone(),
                i,
                start,
                end,
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for w in workers {
        let r = w.await.map_err(|e| e.to_string())?;
        latencies.extend(r.latencies_us);
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let elapsed = Instant::now()
        .saturating_duration_since(start)
        .as_secs_f64()
        .max(args.seconds);
    let generator_cpu_us = cpu_start.elapsed().as_secs_f64() * 1e6;
    latencies.sort_unstable();
    let out = json!({
        "scenario": format!("{:?}", args.scenario).to_lowercase(),
        "review": format!("{:?}", args.review).to_lowercase(),
        "connections": if args.http2 { 1 } else { args.connections },
        "http2": args.http2,
        "streams": args.connections,
        "seconds": args.seconds,
        "target_rate": args.rate,
        "body_bytes": body.len(),
        "requests": latencies.len(),
        "errors": errors,
        "first_error": first_error,
        "throughput_rps": (latencies.len() as f64 / elapsed).round(),
        "p50_ms": percentile(&latencies, 50.0),
        "p99_ms": percentile(&latencies, 99.0),
        "max_ms": latencies.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
        "generator_cpu_us_per_request": (generator_cpu_us / latencies.len().max(1) as f64 * 10.0).round() / 10.0,
    });
    println!("{out}");
    Ok(())
}

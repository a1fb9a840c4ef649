//! `outrigger serve`: flags, the tokio runtime and the shutdown signals; the
//! server itself is [`outrigger::webhook::server`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use outrigger::metrics::MetricsRegistry;
use outrigger::webhook::Limits;
use outrigger::webhook::server::{self, ServeOptions, TlsSource};
use tracing::info;

/// Flags of `outrigger serve` (boxed: they are many, and `cli::Command`
/// should stay small).
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    flags: Box<ServeFlags>,
}

/// The flags themselves.
#[derive(Debug, Args)]
struct ServeFlags {
    /// The webhook's HTTPS address (`POST /inject`, `POST /preview`).
    #[arg(long, default_value = "0.0.0.0:15017")]
    listen: SocketAddr,
    /// The plain-HTTP monitoring address (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, default_value = "0.0.0.0:15014")]
    monitoring_listen: SocketAddr,
    /// Serving certificate chain (PEM, leaf first); reloaded when it changes.
    /// Without it, the server runs standalone on its own CA (`--ca-dir`).
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The serving certificate's private key (PEM); reloaded when it changes.
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// Standalone mode: the CA's directory (Istio's layout: ca-cert.pem,
    /// ca-key.pem, root-cert.pem, cert-chain.pem), created on first start.
    #[arg(long, default_value = "outrigger-ca", conflicts_with = "tls_cert_file")]
    ca_dir: PathBuf,
    /// Standalone mode: a name for the serving certificate (repeatable); IP
    /// addresses become IP SANs.
    #[arg(
        long = "dns-name",
        value_name = "NAME",
        conflicts_with = "tls_cert_file",
        default_values_t = [
            "outrigger.outrigger-system.svc".to_string(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ]
    )]
    dns_names: Vec<String>,
    /// Standalone mode: write the CA certificate (the webhook's `caBundle`,
    /// PEM) to this file.
    #[arg(long, value_name = "FILE", conflicts_with = "tls_cert_file")]
    ca_bundle_out: Option<PathBuf>,
    /// The injector's config file; reloaded when it changes (an invalid new
    /// config is rejected and the old one kept).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Largest request body accepted, in bytes (413 above).
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Requests in progress past which new ones get 503 at once.
    #[arg(long, default_value_t = Limits::default().max_concurrent_requests)]
    max_concurrent_requests: usize,
    /// A request not answered within this gets 503 (e.g. `10s`, `500ms`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// After SIGTERM/SIGINT: how long to keep accepting while not ready.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    shutdown_delay: Duration,
    /// Then: how long in-flight requests get to finish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Write the bound addresses as JSON (`{"listen": ..., "monitoring": ...}`)
    /// to this file once serving; useful with port 0.
    #[arg(long, value_name = "FILE")]
    addresses_out: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e}: expected a duration such as 10s, 500ms or 1m"))
}

impl ServeFlags {
    fn into_options(self) -> ServeOptions {
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            _ => TlsSource::Standalone {
                ca_dir: self.ca_dir,
                dns_names: self.dns_names,
                ca_bundle_out: self.ca_bundle_out,
            },
        };
        ServeOptions {
            listen: self.listen,
            monitoring_listen: self.monitoring_listen,
            tls,
            config: self.config,
            limits: Limits {
                max_body_bytes: self.max_body_bytes,
                max_concurrent_requests: self.max_concurrent_requests,
                request_timeout: self.request_timeout,
            },
            shutdown_delay: self.shutdown_delay,
            shutdown_grace: self.shutdown_grace,
            reload_interval: Duration::from_secs(1),
            addresses_out: self.addresses_out,
            registry: MetricsRegistry::new(),
        }
    }
}

/// Runs `outrigger serve` until SIGTERM or SIGINT, then drains; exit 0.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let options = args.flags.into_options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(server::serve(options, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => Some(terminate),
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; only SIGINT will stop the server");
            None
        }
    };
    let sigterm = async {
        match terminate.as_mut() {
            Some(terminate) => {
                terminate.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!(signal = "SIGINT", "shutdown requested"),
        _ = sigterm => info!(signal = "SIGTERM", "shutdown requested"),
    }
}

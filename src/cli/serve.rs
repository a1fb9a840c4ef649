//! `outrigger serve`: flags, the tokio runtime and the shutdown signals; the
//! server itself is [`outrigger::webhook::server`].

mod signals;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use outrigger::ca::RootOptions;
use outrigger::ca::grpc::CaServiceConfig;
use outrigger::ca::grpc::auth::DEFAULT_AUDIENCE;
use outrigger::ca::grpc::server::ServerLimits;
use outrigger::cluster::ClusterArgs;
use outrigger::limits::ConnectionLimits;
use outrigger::metrics::MetricsRegistry;
use outrigger::webhook::Limits;
use outrigger::webhook::server::{self, CaServiceOptions, CaSource, ServeOptions, TlsSource};
use outrigger::webhook::standalone_ca::split_names;

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
    #[arg(long, default_value = "0.0.0.0:15017", value_parser = crate::cli::parse_listen)]
    listen: SocketAddr,
    /// The plain-HTTP monitoring address (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, default_value = "0.0.0.0:15014", value_parser = crate::cli::parse_listen)]
    monitoring_listen: SocketAddr,
    /// The CA service's address (gRPC over TLS, Istio's
    /// `IstioCertificateService`; what pilot-agent's `CA_ADDR` points at).
    #[arg(long, default_value = "0.0.0.0:15012", value_parser = crate::cli::parse_listen)]
    ca_listen: SocketAddr,
    /// The webhook's serving certificate chain (PEM, leaf first); reloaded
    /// when it changes. Without it, the CA issues the webhook's certificate.
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The webhook's serving key (PEM); reloaded when it changes.
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// Standalone mode: the CA's directory (Istio's layout: ca-cert.pem,
    /// ca-key.pem, root-cert.pem, cert-chain.pem), created on first start.
    /// It issues the serving certificates and signs workload certificates.
    #[arg(long, default_value = "outrigger-ca")]
    ca_dir: PathBuf,
    /// Standalone mode: a name for the webhook's and the CA service's
    /// serving certificate (repeatable); IP addresses become IP SANs. (In a
    /// cluster: the Service's names and --extra-dns-name.)
    #[arg(
        long = "dns-name",
        value_name = "NAME",
        default_values_t = [
            "outrigger.outrigger-system.svc".to_string(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ]
    )]
    dns_names: Vec<String>,
    /// Write the CA's root certificate (PEM) to this file: the webhook's
    /// `caBundle`, and the `--ca-bundle` of `outrigger ca request`.
    #[arg(long, value_name = "FILE")]
    ca_bundle_out: Option<PathBuf>,
    /// CA service: a static token file (`<token> <namespace>/<service-account>`
    /// per line), for trying it out without a cluster.
    #[arg(long, value_name = "FILE")]
    static_token_file: Option<PathBuf>,
    /// CA service: verify ServiceAccount tokens locally against this JWKS
    /// file (the API server's `/openid/v1/jwks`).
    #[arg(long, value_name = "FILE")]
    jwks_file: Option<PathBuf>,
    /// CA service: the only accepted issuer (`iss`) of JWTs checked
    /// locally. Default: with --jwks-file, Kubernetes' default issuer
    /// (https://kubernetes.default.svc.cluster.local); in a cluster, the
    /// issuer the API server's discovery document names.
    #[arg(long, value_name = "URL")]
    jwt_issuer: Option<String>,
    /// CA service: an accepted token audience (repeatable; JWT and
    /// TokenReview).
    #[arg(long = "token-audience", value_name = "AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    token_audiences: Vec<String>,
    /// The injector's config file; reloaded when it changes (an invalid new
    /// config is rejected and the old one kept).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Largest request body accepted, in bytes (413 above). Default: 3 MiB,
    /// the API server's own limit on a request body.
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Bytes all request bodies being read or handled may hold together; a
    /// body that would pass it gets 503 at once.
    #[arg(long, default_value_t = Limits::default().max_body_bytes_in_flight)]
    max_body_bytes_in_flight: usize,
    /// Requests in progress past which new ones get 503 at once.
    #[arg(long, default_value_t = Limits::default().max_concurrent_requests)]
    max_concurrent_requests: usize,
    /// A request not answered within this gets 503 (e.g. `10s`, `500ms`);
    /// the CA service ends its requests after the same time.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Threads that parse and inject (off the async workers, so that
    /// /healthz and the CA service keep answering).
    #[arg(long, default_value_t = Limits::default().workers, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    workers: usize,
    /// Jobs waiting for a worker past which new requests get 503 at once.
    #[arg(long, default_value_t = Limits::default().max_queued)]
    max_queued: usize,
    /// Connections each TLS listener (webhook, CA service) keeps open at
    /// once; one more is closed on accept. The monitoring port keeps 64.
    #[arg(long, default_value_t = ConnectionLimits::SERVING.max_connections, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_connections: usize,
    /// A connection (any port) that moves no byte for this long is closed.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// A TLS handshake, or an HTTP/1 request's headers, not complete within
    /// this is dropped (any port).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// CA service: the largest gRPC message read, in bytes (a CSR is about
    /// 1 KiB; the message is read before the token is checked).
    #[arg(long, default_value_t = ServerLimits::default().max_message_bytes)]
    ca_max_message_bytes: usize,
    /// CA service: requests in progress across all connections past which
    /// new ones get UNAVAILABLE at once.
    #[arg(long, default_value_t = ServerLimits::default().max_concurrent_requests)]
    ca_max_concurrent_requests: usize,
    /// After SIGTERM/SIGINT: how long to keep accepting while not ready (a
    /// second signal exits at once).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    shutdown_delay: Duration,
    /// Then: how long in-flight requests get to finish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Write the bound addresses as JSON (`{"listen": ..., "monitoring":
    /// ..., "ca": ...}`) to this file once serving; useful with port 0.
    #[arg(long, value_name = "FILE")]
    addresses_out: Option<PathBuf>,
    /// In-cluster operation.
    #[command(flatten, next_help_heading = "In-cluster operation")]
    cluster: ClusterArgs,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e}: expected a duration such as 10s, 500ms or 1m"))
}

impl ServeFlags {
    /// The server's options; `in_pod` says whether the process runs in a
    /// Kubernetes pod (which, with `--cluster-mode auto`, means in-cluster).
    fn into_options(mut self, in_pod: bool) -> anyhow::Result<ServeOptions> {
        self.cluster
            .validate()
            .map_err(anyhow::Error::msg)
            .context("invalid in-cluster flags")?;
        let trust_domain = super::trust_domain::resolve(
            self.cluster.trust_domain.as_deref(),
            self.config.as_deref(),
        )?;
        self.cluster.trust_domain = Some(trust_domain.clone());
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            _ => TlsSource::FromCa {
                dns_names: self.dns_names.clone(),
            },
        };
        let ca = if self.cluster.wants_cluster(in_pod) {
            CaSource::Cluster(Box::new(self.cluster))
        } else {
            CaSource::Directory {
                dir: self.ca_dir,
                root: RootOptions {
                    trust_domain: trust_domain.clone(),
                    ..RootOptions::default()
                },
            }
        };
        let (serving_dns_names, serving_ips) = split_names(&self.dns_names);
        let connections = ConnectionLimits {
            max_connections: self.max_connections,
            idle_timeout: self.idle_timeout,
            handshake_timeout: self.handshake_timeout,
        };
        let ca_service = CaServiceOptions {
            limits: ServerLimits {
                connections,
                max_message_bytes: self.ca_max_message_bytes,
                max_concurrent_requests: self.ca_max_concurrent_requests,
                request_timeout: self.request_timeout,
                ..ServerLimits::default()
            },
            listen: self.ca_listen,
            config: CaServiceConfig {
                trust_domain,
                serving_dns_names,
                serving_ips,
                client_certificates: true,
                jwks_file: self.jwks_file,
                jwt_issuer: self.jwt_issuer,
                audiences: self.token_audiences,
                static_token_file: self.static_token_file,
            },
        };
        Ok(ServeOptions {
            listen: self.listen,
            monitoring_listen: self.monitoring_listen,
            tls,
            ca,
            ca_bundle_out: self.ca_bundle_out,
            ca_service: Some(ca_service),
            config: self.config,
            limits: Limits {
                max_body_bytes: self.max_body_bytes,
                max_body_bytes_in_flight: self.max_body_bytes_in_flight,
                max_concurrent_requests: self.max_concurrent_requests,
                request_timeout: self.request_timeout,
                workers: self.workers,
                max_queued: self.max_queued,
            },
            connections,
            shutdown_delay: self.shutdown_delay,
            shutdown_grace: self.shutdown_grace,
            reload_interval: Duration::from_secs(1),
            addresses_out: self.addresses_out,
            registry: MetricsRegistry::new(),
        })
    }
}

/// Runs `outrigger serve` until SIGTERM or SIGINT, then drains; exit 0. A
/// second signal during the drain exits at once, non-zero.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let options = args.flags.into_options(in_pod)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let mut signals = signals::Signals::install();
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        let first = async {
            let _ = first_rx.await;
        };
        let served = server::serve(options, first);
        tokio::pin!(served);
        let mut first_tx = Some(first_tx);
        loop {
            tokio::select! {
                result = &mut served => return result.map(|()| None),
                signal = signals.next() => match first_tx.take() {
                    Some(tx) => {
                        tracing::info!(signal = signal.name(), "shutdown requested");
                        let _ = tx.send(());
                    }
                    None => {
                        tracing::warn!(signal = signal.name(), "second signal during shutdown: exiting now");
                        return Ok(Some(signal.exit_code()));
                    }
                },
            }
        }
    });
    // Tasks still draining are dropped, not waited for.
    runtime.shutdown_background();
    match outcome? {
        None => Ok(ExitCode::SUCCESS),
        Some(code) => Ok(ExitCode::from(code)),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn options(args: &[&str], in_pod: bool) -> anyhow::Result<ServeOptions> {
        let mut argv = vec!["serve"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)?.serve.flags.into_options(in_pod)
    }

    #[test]
    fn standalone_by_default_with_one_trust_domain_for_ca_and_service() {
        let dir = std::env::temp_dir().join(format!("outrigger-serve-td-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.yaml");
        std::fs::write(&config, "meshConfig:\n  trustDomain: example.org\n").unwrap();
        let options = options(&["--config", config.to_str().unwrap()], false).unwrap();
        let CaSource::Directory { dir, root } = &options.ca else {
            panic!("expected standalone, got {:?}", options.ca);
        };
        assert_eq!(dir, &PathBuf::from("outrigger-ca"));
        assert_eq!(root.trust_domain, "example.org");
        let service = options.ca_service.unwrap();
        assert_eq!(service.listen, "0.0.0.0:15012".parse().unwrap());
        assert_eq!(service.config.trust_domain, "example.org");
        assert_eq!(service.config.audiences, vec!["istio-ca".to_string()]);
        assert!(service.config.client_certificates);
        assert_eq!(
            service.config.serving_ips,
            vec!["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(
            service.config.serving_dns_names,
            vec!["outrigger.outrigger-system.svc", "localhost"]
        );
        assert!(matches!(options.tls, TlsSource::FromCa { .. }));
    }

    #[test]
    fn in_a_pod_the_cluster_supplies_the_ca_unless_disabled() {
        let in_pod = options(&[], true).unwrap();
        assert!(matches!(in_pod.ca, CaSource::Cluster(_)), "{:?}", in_pod.ca);
        let disabled = options(&["--cluster-mode", "disabled"], true).unwrap();
        assert!(matches!(disabled.ca, CaSource::Directory { .. }));
        let kubeconfig = options(&["--kubeconfig", "/k"], false).unwrap();
        assert!(matches!(kubeconfig.ca, CaSource::Cluster(_)));
    }

    #[test]
    fn audiences_repeat_and_bad_cluster_flags_are_refused() {
        let repeated = options(&["--token-audience", "a", "--token-audience", "b"], false).unwrap();
        assert_eq!(
            repeated.ca_service.unwrap().config.audiences,
            vec!["a", "b"]
        );
        let err = options(&["--trust-domain", "Not A Domain!"], false).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("--trust-domain"), "{text}");
    }
}

//! `outrigger ca request`: get a workload certificate from a running CA
//! service, the way Istio's pilot-agent does (a fresh P-256 key, a CSR, a
//! ServiceAccount or static token), and write `key.pem` (0600),
//! `cert-chain.pem` and `root-cert.pem`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use outrigger::ca::grpc::client::{self, ConnectOptions, RequestOptions};
use outrigger::ca::issue::parse_duration;

/// Flags of `outrigger ca request`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The CA service, HOST:PORT (for example istiod.istio-system.svc:15012).
    #[arg(long)]
    pub addr: String,
    /// PEM roots the CA's serving certificate must chain to (its root-cert.pem).
    #[arg(long)]
    pub ca_bundle: PathBuf,
    /// File holding the bearer token (a projected ServiceAccount token or a
    /// token from the CA's static token file).
    #[arg(long, required_unless_present = "cert_chain")]
    pub token_file: Option<PathBuf>,
    /// Renew with an existing certificate instead of a token: its chain (PEM) ...
    #[arg(long, requires = "key")]
    pub cert_chain: Option<PathBuf>,
    /// ... and its private key (PEM).
    #[arg(long, requires = "cert_chain")]
    pub key: Option<PathBuf>,
    /// Requested lifetime, e.g. 24h, 90m; default: the CA's default.
    #[arg(long, value_parser = parse_ttl)]
    pub ttl: Option<Duration>,
    /// Name checked in the CA's serving certificate; default: HOST of --addr.
    #[arg(long)]
    pub server_name: Option<String>,
    /// Directory receiving key.pem, cert-chain.pem and root-cert.pem.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// The error chain once: a cause whose text its parent already shows is
/// left out (the transport repeated `invalid peer certificate: BadSignature`).
fn chain_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// The failure, with what it means and what to do for the two a user
/// meets first: a `--ca-bundle` that is not the server's root, and a
/// renewal certificate the server does not trust (it closes the
/// connection in the handshake, which tonic reports as `Cancelled`, a
/// TLS alert or a broken pipe, depending on timing).
fn explain(err: &anyhow::Error, args: &RequestArgs) -> anyhow::Error {
    let text = chain_text(err);
    let bundle = args.ca_bundle.display();
    if ["BadSignature", "UnknownIssuer", "invalid peer certificate"]
        .iter()
        .any(|t| text.contains(t))
    {
        return anyhow::anyhow!(
            "{text}\nThe CA service's serving certificate does not chain to --ca-bundle {bundle}: pass that server's root (the file its --ca-bundle-out wrote, or its root-cert.pem)"
        );
    }
    if let Some(chain) = &args.cert_chain
        && [
            "transport error",
            "connection closed",
            "Cancelled",
            "fatal alert",
        ]
        .iter()
        .any(|t| text.contains(t))
    {
        return anyhow::anyhow!(
            "{text}\nThe CA service closed the connection during the TLS handshake: it does not accept the client certificate in --cert-chain {} (issued by another CA, or expired). Renew with a certificate this CA issued, or request a new one with --token-file",
            chain.display()
        );
    }
    anyhow::anyhow!("{text}")
}

fn read(path: &PathBuf, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// Runs `outrigger ca request`.
pub fn run(args: RequestArgs) -> anyhow::Result<ExitCode> {
    let client_identity = match (&args.cert_chain, &args.key) {
        (Some(chain), Some(key)) => {
            Some((read(chain, "certificate chain")?, read(key, "private key")?))
        }
        _ => None,
    };
    let token = match &args.token_file {
        Some(path) => Some(client::read_token_file(path)?),
        None => None,
    };
    let options = RequestOptions {
        connect: ConnectOptions {
            addr: args.addr.clone(),
            ca_bundle_pem: read(&args.ca_bundle, "CA bundle")?,
            server_name: args.server_name.clone(),
            client_identity,
        },
        token,
        ttl: args.ttl,
        out_dir: args.out.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let written = runtime
        .block_on(client::request_certificate(&options))
        .map_err(|err| explain(&err.into(), &args))?;
    println!(
        "wrote {} (0600), {} ({} certificates) and {}",
        written.key.display(),
        written.cert_chain.display(),
        written.chain_len,
        written.root_cert.display()
    );
    Ok(ExitCode::SUCCESS)
}

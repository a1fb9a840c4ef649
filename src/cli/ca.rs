//! `outrigger ca ...`: create a CA, issue workload certificates, sign CSRs,
//! read certificates, and request one from a running CA service. A thin
//! layer over [`outrigger::ca`].

pub mod request;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use outrigger::ca::{self, CertificateAuthority, KeyAlgorithm, RootOptions, SpiffeId};
use time::OffsetDateTime;
use tracing::info;

/// The `ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a new self-signed root CA in a directory (ca-cert.pem, ca-key.pem, root-cert.pem).
    Init(InitArgs),
    /// Issue a workload certificate with a new key: writes key.pem, cert-chain.pem, root-cert.pem.
    Issue(IssueArgs),
    /// Sign a CSR for a ServiceAccount identity; prints the chain (leaf first, root last).
    Sign(SignArgs),
    /// Show what is in a certificate file: subject, SANs, validity, usages, issuer, fingerprint.
    Inspect(InspectArgs),
    /// Renew a self-signed root before it expires: a new root certificate
    /// with the same subject and key, so every certificate already issued
    /// stays valid; rewrites ca-cert.pem (and root-cert.pem, cert-chain.pem).
    RenewRoot(RenewRootArgs),
    /// Get a workload certificate from a running CA service (gRPC), writing
    /// key.pem, cert-chain.pem and root-cert.pem.
    Request(request::RequestArgs),
}

/// `ca init` flags.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create the CA in.
    #[arg(long)]
    pub dir: PathBuf,
    /// Key algorithm of the root: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096.
    #[arg(long, default_value = "ecdsa-p256", value_parser = parse_key_algorithm)]
    pub key_algorithm: KeyAlgorithm,
    /// Validity of the root, e.g. 10y, 3650d, 8760h.
    #[arg(long, default_value = "10y", value_parser = parse_ttl)]
    pub validity: Duration,
    /// Trust domain (written as the root's Organization, as Istio does).
    #[command(flatten)]
    pub trust_domain: TrustDomainArgs,
    /// Replace an existing CA in the directory.
    #[arg(long)]
    pub force: bool,
}

/// Flags choosing the trust domain: the mesh's, as `serve` has it.
#[derive(Debug, Args)]
pub struct TrustDomainArgs {
    /// Trust domain. Default: the injector's from --config
    /// (meshConfig.trustDomain, else values.global.trustDomain), else
    /// cluster.local.
    #[arg(long)]
    pub trust_domain: Option<String>,
    /// The injector's config file, as `serve --config` takes it: its trust
    /// domain is the default, and a --trust-domain that differs is refused.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl TrustDomainArgs {
    fn resolve(&self) -> anyhow::Result<String> {
        Ok(super::trust_domain::resolve_offline(
            self.trust_domain.as_deref(),
            self.config.as_deref(),
        )?)
    }
}

/// Flags naming the workload identity.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// Kubernetes namespace of the workload.
    #[arg(long)]
    pub namespace: String,
    /// Kubernetes ServiceAccount of the workload.
    #[arg(long)]
    pub service_account: String,
    /// Trust domain of the SPIFFE ID.
    #[command(flatten)]
    pub trust_domain: TrustDomainArgs,
}

impl IdentityArgs {
    fn spiffe_id(&self) -> anyhow::Result<SpiffeId> {
        Ok(SpiffeId::new(
            &self.trust_domain.resolve()?,
            &self.namespace,
            &self.service_account,
        )?)
    }
}

/// `ca issue` flags.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// CA directory (made by `ca init`, or an Istio cacerts directory).
    #[arg(long)]
    pub dir: PathBuf,
    /// The identity to issue for.
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Certificate lifetime, e.g. 24h, 1h30m, 7d.
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// Directory to write key.pem, cert-chain.pem and root-cert.pem to.
    #[arg(long)]
    pub out: PathBuf,
}

/// `ca sign` flags.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// CA directory (made by `ca init`, or an Istio cacerts directory).
    #[arg(long)]
    pub dir: PathBuf,
    /// The PKCS#10 request, PEM or DER (`-` for stdin).
    #[arg(long)]
    pub csr: PathBuf,
    /// The identity the certificate is for (the CSR's own SANs must match or be absent).
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Certificate lifetime, e.g. 24h, 1h30m, 7d.
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    pub ttl: Duration,
}

/// `ca renew-root` flags.
#[derive(Debug, Args)]
pub struct RenewRootArgs {
    /// CA directory holding a self-signed root (made by `ca init`, or a
    /// `cacerts` directory whose ca-cert.pem is the root itself).
    #[arg(long)]
    pub dir: PathBuf,
    /// Validity of the renewed root from now, e.g. 10y, 3650d.
    #[arg(long, default_value = "10y", value_parser = parse_ttl)]
    pub validity: Duration,
}

/// `ca inspect` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A PEM file (one or several certificates) or a DER certificate (`-` for stdin).
    pub file: PathBuf,
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    ca::issue::parse_duration(text)
}

fn parse_key_algorithm(text: &str) -> Result<KeyAlgorithm, String> {
    text.parse()
}

/// Runs one `ca` subcommand.
pub fn run(cmd: CaCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CaCommand::Init(args) => init(args),
        CaCommand::Issue(args) => issue(args),
        CaCommand::Sign(args) => sign(args),
        CaCommand::Inspect(args) => inspect(args),
        CaCommand::RenewRoot(args) => renew_root(args),
        CaCommand::Request(args) => request::run(args),
    }
}

fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    // Check before generating (RSA keys take a while).
    if !args.force {
        for name in [ca::store::CA_CERT, ca::store::CA_KEY] {
            let path = args.dir.join(name);
            if path.exists() {
                return Err(ca::StoreError::Exists { path }.into());
            }
        }
    }
    let opts = RootOptions {
        algorithm: args.key_algorithm,
        validity: args.validity,
        trust_domain: args.trust_domain.resolve()?,
    };
    let authority =
        CertificateAuthority::generate_root(&opts).context("cannot create the root CA")?;
    ca::store::write_ca(&args.dir, authority.to_pem(), args.force)?;
    info!(dir = %args.dir.display(), key = %authority.key_kind(), "created a self-signed root CA");
    let summary = ca::inspect::inspect(authority.root_pem().as_bytes(), OffsetDateTime::now_utc())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Created a root CA in {}", args.dir.display())?;
    for s in summary {
        write!(out, "{s}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn load(dir: &std::path::Path) -> anyhow::Result<CertificateAuthority> {
    Ok(ca::store::load_dir(dir)?)
}

fn issue(args: IssueArgs) -> anyhow::Result<ExitCode> {
    let id = args.identity.spiffe_id()?;
    let authority = load(&args.dir)?;
    let issued = authority.issue_workload(&id, Some(args.ttl))?;
    ca::store::write_bundle(&args.out, &issued, authority.root_pem())?;
    info!(identity = %id, out = %args.out.display(), not_after = %ca::issue::format_time(issued.not_after), "issued a workload certificate");
    println!(
        "Issued {id} until {}: wrote {}, {}, {} in {}",
        ca::issue::format_time(issued.not_after),
        ca::store::KEY,
        ca::store::CERT_CHAIN,
        ca::store::ROOT_CERT,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        return Ok(buf);
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let id = args.identity.spiffe_id()?;
    let csr = read_input(&args.csr)?;
    let authority = load(&args.dir)?;
    let chain = authority
        .sign_csr(&csr, &id, Some(args.ttl))
        .with_context(|| format!("{}", args.csr.display()))?;
    info!(identity = %id, "signed a CSR");
    std::io::stdout()
        .lock()
        .write_all(chain.to_pem().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let input = read_input(&args.file)?;
    let summaries = ca::inspect::inspect(&input, OffsetDateTime::now_utc())
        .with_context(|| format!("{}", args.file.display()))?;
    let mut out = std::io::stdout().lock();
    let many = summaries.len() > 1;
    for (i, s) in summaries.iter().enumerate() {
        if many {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "Certificate #{} of {}", i + 1, summaries.len())?;
        }
        write!(out, "{s}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn renew_root(args: RenewRootArgs) -> anyhow::Result<ExitCode> {
    let old = ca::store::read_dir(&args.dir)?;
    let now = OffsetDateTime::now_utc();
    let renewed = ca::renew::renew_root(&old, args.validity, now)
        .with_context(|| format!("cannot renew the root in {}", args.dir.display()))?;
    ca::store::write_ca(&args.dir, &renewed, true)?;
    let before = ca::inspect::inspect(old.ca_cert.as_bytes(), now)?;
    let after = ca::inspect::inspect(renewed.ca_cert.as_bytes(), now)?;
    info!(dir = %args.dir.display(), "renewed the root CA certificate (same subject and key)");
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Renewed the root in {} (same subject and key: certificates it issued stay valid)",
        args.dir.display()
    )?;
    for (label, summary) in [("Before", before), ("After", after)] {
        writeln!(out, "{label}:")?;
        for s in summary {
            write!(out, "{s}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! The harness: a real CA, the real gRPC server on an ephemeral loopback
//! port over TLS, real tonic clients, and independent checks of what comes
//! back (`openssl verify`, x509-parser for the URI SAN).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use outrigger::ca::grpc::auth::AuthChain;
use outrigger::ca::grpc::client::{self, CaClient, ClientError, ConnectOptions};
use outrigger::ca::grpc::metrics::CaMetrics;
use outrigger::ca::grpc::signer::AuthoritySigner;
use outrigger::ca::grpc::tls::{ServingCert, tls_config};
use outrigger::ca::grpc::{CaService, ServeError, serve};
use outrigger::ca::{CertificateAuthority, RootOptions};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

pub const TRUST_DOMAIN: &str = "cluster.local";

/// A fresh self-signed P-256 CA in trust domain `cluster.local`.
pub fn new_ca() -> Arc<CertificateAuthority> {
    Arc::new(CertificateAuthority::generate_root(&RootOptions::default()).unwrap())
}

/// The real server, running until [`Harness::stop`].
pub struct Harness {
    pub ca: Arc<CertificateAuthority>,
    pub addr: SocketAddr,
    pub registry: Registry,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Harness {
    pub async fn start(auth: AuthChain) -> Self {
        Self::start_with(new_ca(), auth).await
    }

    pub async fn start_with(ca: Arc<CertificateAuthority>, auth: AuthChain) -> Self {
        let serving = ServingCert::issue(
            &ca,
            &["localhost".to_string()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )
        .unwrap();
        let tls = tls_config(Arc::new(serving), ca.root_pem()).unwrap();
        let metrics = CaMetrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let signer = Arc::new(AuthoritySigner::new(ca.clone(), TRUST_DOMAIN));
        let service = CaService::new(signer, auth, metrics);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, tls, service, async {
            let _ = rx.await;
        }));
        Self {
            ca,
            addr,
            registry,
            shutdown: Some(tx),
            task,
        }
    }

    /// One TLS connection, optionally with a client certificate (chain, key).
    pub async fn client(
        &self,
        identity: Option<(String, String)>,
    ) -> Result<CaClient, ClientError> {
        client::connect(&ConnectOptions {
            addr: self.addr.to_string(),
            ca_bundle_pem: self.ca.root_pem().to_string(),
            server_name: Some("localhost".to_string()),
            client_identity: identity,
        })
        .await
    }

    /// Asks for a certificate with a fresh key and a name-less CSR.
    pub async fn request(&self, token: Option<&str>) -> Result<Vec<String>, ClientError> {
        let (_, csr) = client::generate_key_and_csr().unwrap();
        let mut client = self.client(None).await?;
        client::create_certificate(&mut client, token, &csr, None).await
    }

    /// The metrics as Prometheus text.
    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

/// The gRPC code of a refusal.
pub fn code_of(result: Result<Vec<String>, ClientError>) -> (tonic::Code, String) {
    match result {
        Err(ClientError::Refused { code, message }) => (code, message),
        Err(other) => panic!("expected a gRPC refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got a certificate"),
    }
}

/// A P-256 CSR asking for `uri` as its URI SAN.
pub fn csr_asking_for(uri: &str) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// The URI SANs of a PEM certificate.
pub fn uri_sans(pem_text: &str) -> Vec<String> {
    let block = pem::parse(pem_text).unwrap();
    let (_, cert) = X509Certificate::from_der(block.contents()).unwrap();
    let san = cert
        .subject_alternative_name()
        .unwrap()
        .expect("a SAN extension");
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect()
}

/// Runs `openssl verify` on the chain (leaf first, root last) against the
/// CA's root; returns whether openssl accepted it, and its output.
pub fn openssl_verify(dir: &Path, root_pem: &str, chain: &[String]) -> (bool, String) {
    let root = dir.join("root-cert.pem");
    let leaf = dir.join("leaf.pem");
    std::fs::write(&root, root_pem).unwrap();
    std::fs::write(&leaf, &chain[0]).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.arg("verify").arg("-CAfile").arg(&root);
    if chain.len() > 2 {
        let untrusted = dir.join("untrusted.pem");
        std::fs::write(&untrusted, chain[1..chain.len() - 1].concat()).unwrap();
        cmd.arg("-untrusted").arg(&untrusted);
    }
    let out = cmd.arg(&leaf).output().expect("openssl must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Asserts the chain is what a workload `ns/sa` must get: it ends at the CA's
/// root, openssl verifies it, and its leaf names exactly `ns/sa`.
pub fn assert_issued_for(ca: &CertificateAuthority, chain: &[String], ns: &str, sa: &str) {
    assert!(chain.len() >= 2, "chain has leaf and root: {chain:?}");
    assert_eq!(
        chain.last().unwrap().trim(),
        ca.root_pem().trim(),
        "the chain ends with the root"
    );
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = openssl_verify(dir.path(), ca.root_pem(), chain);
    assert!(ok, "openssl verify refused the chain: {out}");
    assert_eq!(
        uri_sans(&chain[0]),
        vec![format!("spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/{sa}")]
    );
}

/// notAfter - notBefore of a PEM certificate, in seconds.
pub fn lifetime_seconds(pem_text: &str) -> i64 {
    let block = pem::parse(pem_text).unwrap();
    let (_, cert) = X509Certificate::from_der(block.contents()).unwrap();
    cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()
}

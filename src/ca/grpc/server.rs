//! The listener: TLS (rustls with the ring provider) with a serving
//! certificate from the CA, optional client certificates verified against
//! the CA's root (renewal by mutual TLS), and the tonic server on top.
//!
//! Handshakes run in their own tasks, bounded in time, so one slow or broken
//! client never holds up the accept loop; a failed handshake (an expired
//! client certificate, say) is logged and the connection dropped.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

use super::service::CaService;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The serving certificate chain has no certificate.
    #[error("serving certificate chain: no PEM CERTIFICATE found")]
    NoServingCertificate,
    /// A PEM input is malformed.
    #[error("{what}: not valid PEM")]
    Pem {
        /// Which input.
        what: &'static str,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The client CA bundle has no usable certificate.
    #[error("client CA bundle: no usable CA certificate ({0})")]
    ClientRoots(String),
    /// rustls refused the combination (key does not match certificate...).
    #[error("TLS configuration refused: {0}")]
    Rustls(#[source] rustls::Error),
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The gRPC server failed.
    #[error("CA gRPC server failed")]
    Transport(#[source] tonic::transport::Error),
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server's TLS configuration.
///
/// `cert_chain_pem`/`key_pem`: the serving certificate (from the CA) and its
/// key. `client_ca_pem`: roots that client certificates must chain to (the
/// CA's root); clients without a certificate are still admitted, since most
/// authenticate with a token. ALPN offers `h2` only, as gRPC requires.
pub fn tls_config(
    cert_chain_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let chain = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsConfigError::Pem {
            what: "serving certificate chain",
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsConfigError::NoServingCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|source| {
        TlsConfigError::Pem {
            what: "serving private key",
            source,
        }
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        let cert = cert.map_err(|source| TlsConfigError::Pem {
            what: "client CA bundle",
            source,
        })?;
        roots
            .add(cert)
            .map_err(|e| TlsConfigError::ClientRoots(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::ClientRoots("empty bundle".into()));
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), ring())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsConfigError::ClientRoots(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Rustls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(TlsConfigError::Rustls)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections and hands over those whose handshake succeeds.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<Result<TlsStream<TcpStream>, io::Error>>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly.
                warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send(Ok(stream)).await;
                }
                Ok(Err(err)) => info!(peer = %peer, error = %err, "TLS handshake refused"),
                Err(_) => debug!(peer = %peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Serves `IstioCertificateService` on `listener` until `shutdown` resolves,
/// then stops accepting and lets in-flight requests finish.
///
/// `tls` comes from [`tls_config`]; `service` holds the signer, the
/// authenticators and the metrics.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    service: CaService,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let local = listener.local_addr().ok();
    let (tx, rx) = mpsc::channel(64);
    let accept = tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), tx));
    info!(addr = ?local, "CA gRPC service listening");
    let result = tonic::transport::Server::builder()
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
        .await
        .map_err(ServeError::Transport);
    accept.abort();
    info!(addr = ?local, "CA gRPC service stopped");
    result
}

//! The webhook's TLS: rustls with the ring provider, TLS 1.2 and 1.3 only,
//! ALPN `h2` and `http/1.1`, and a serving certificate that can be swapped
//! while the server runs.
//!
//! Every new handshake asks [`CertResolver`] for the current certificate, so
//! a swap takes effect on the next connection and never touches established
//! ones. What feeds the swaps (files on disk, the standalone CA, or the
//! cluster's shared CA) lives in `server` and [`crate::webhook::reload`].

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate/key pair that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no PEM `CERTIFICATE` block.
    #[error("{what} holds no PEM CERTIFICATE block")]
    NoCertificate {
        /// Which input.
        what: String,
    },
    /// The certificate file's PEM is broken.
    #[error("{what} is not valid PEM: {source}")]
    CertificatePem {
        /// Which input.
        what: String,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The key file holds no usable private key.
    #[error(
        "{what} holds no usable private key: expected one PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block ({source})"
    )]
    KeyPem {
        /// Which input.
        what: String,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The key is of an unsupported type, or does not match the certificate.
    #[error("{what}: {source}")]
    Key {
        /// Which pair.
        what: String,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// The leaf certificate is not valid DER X.509.
    #[error("{what}: the first certificate is not a valid X.509 certificate: {reason}")]
    Certificate {
        /// Which input.
        what: String,
        /// The parser's complaint.
        reason: String,
    },
    /// rustls refused the server configuration.
    #[error("cannot build the TLS server configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// A certificate chain and key ready to serve, with the leaf's expiry.
#[derive(Clone)]
pub struct ServingCert {
    /// What rustls serves.
    pub key: Arc<CertifiedKey>,
    /// The leaf's `notAfter`, Unix seconds.
    pub not_after: i64,
    /// The leaf's `notBefore`, Unix seconds.
    pub not_before: i64,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert")
            .field("chain_len", &self.key.cert.len())
            .field("key", &"[elided]")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl ServingCert {
    /// Builds a serving pair from PEM text (`what` names the source in
    /// errors). The key must match the leaf certificate.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], what: &str) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::CertificatePem {
                what: what.to_string(),
                source,
            })?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::KeyPem {
            what: what.to_string(),
            source,
        })?;
        Self::from_der(chain, key, what)
    }

    /// Builds a serving pair from DER.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        what: &str,
    ) -> Result<Self, TlsError> {
        let Some(leaf) = chain.first() else {
            return Err(TlsError::NoCertificate {
                what: what.to_string(),
            });
        };
        let (not_before, not_after) = validity(leaf).map_err(|reason| TlsError::Certificate {
            what: what.to_string(),
            reason,
        })?;
        let key =
            CertifiedKey::from_der(chain, key, &provider()).map_err(|source| TlsError::Key {
                what: what.to_string(),
                source,
            })?;
        Ok(ServingCert {
            key: Arc::new(key),
            not_after,
            not_before,
        })
    }

    /// Reads a PEM certificate chain file and its key file.
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, TlsError> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let what = format!("{} / {}", cert.display(), key.display());
        Self::from_pem(&read(cert)?, &read(key)?, &what)
    }
}

/// `(notBefore, notAfter)` of a DER certificate, in Unix seconds.
pub fn validity(cert: &CertificateDer<'_>) -> Result<(i64, i64), String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| e.to_string())?;
    let validity = parsed.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

/// Hands every new handshake the current serving certificate.
///
/// It may start empty (in a cluster, the certificate comes from the shared
/// CA once the controllers have loaded it): until the first
/// [`swap`](Self::swap), handshakes fail and `/readyz` says not ready.
pub struct CertResolver {
    current: ArcSwapOption<ServingCert>,
    /// Whether a certificate has been loaded, for [`CertResolver::loaded`].
    has_certificate: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("current", &"[elided]")
            .finish()
    }
}

impl CertResolver {
    /// Starts with `cert`.
    pub fn new(cert: ServingCert) -> Self {
        CertResolver {
            current: ArcSwapOption::from_pointee(cert),
            has_certificate: tokio::sync::watch::Sender::new(true),
        }
    }

    /// Starts with no certificate: handshakes fail until the first swap.
    pub fn empty() -> Self {
        CertResolver {
            current: ArcSwapOption::empty(),
            has_certificate: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Serves `cert` to every connection from now on.
    pub fn swap(&self, cert: ServingCert) {
        self.current.store(Some(Arc::new(cert)));
        self.has_certificate.send_replace(true);
    }

    /// Returns once a certificate is loaded (at once if one is): the
    /// listener starts listening then (see `server::port`).
    pub async fn loaded(&self) {
        let mut has_certificate = self.has_certificate.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = has_certificate.wait_for(|loaded| *loaded).await;
    }

    /// The certificate being served, if any yet.
    pub fn current(&self) -> Option<Arc<ServingCert>> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load().as_ref().map(|cert| cert.key.clone())
    }
}

/// The crypto provider: ring, whatever else the process links.
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The server configuration: TLS 1.3 and 1.2, no client certificates, ALPN
/// `h2` then `http/1.1`, certificates from `resolver`.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

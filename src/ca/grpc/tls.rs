//! The gRPC port's TLS material: a serving certificate issued by the CA
//! itself, swapped in place when it is renewed (new handshakes get the new
//! one, open connections keep theirs), and the rustls configuration that
//! also asks, optionally, for a client certificate chaining to the CA's root.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::{CertificateAuthority, IssueError};

/// Why TLS material could not be used.
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
    /// The key is unusable or does not match the certificate.
    #[error("serving key refused (unsupported, or does not match the certificate)")]
    Key(#[source] rustls::Error),
    /// The client CA bundle has no usable certificate.
    #[error("client CA bundle: no usable CA certificate ({0})")]
    ClientRoots(String),
    /// rustls refused the configuration.
    #[error("TLS configuration refused")]
    Rustls(#[source] rustls::Error),
    /// The CA could not issue the serving certificate.
    #[error("cannot issue the serving certificate")]
    Issue(#[source] IssueError),
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// (notBefore, notAfter) of a leaf, Unix seconds.
type Validity = Option<(i64, i64)>;

/// The serving certificate, replaceable while the server runs.
pub struct ServingCert {
    current: RwLock<(Arc<CertifiedKey>, Validity)>,
}

impl fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCert")
            .field("validity", &self.validity())
            .field("key", &"[elided]")
            .finish()
    }
}

fn certified(chain_pem: &str, key_pem: &str) -> Result<CertifiedKey, TlsConfigError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
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
    CertifiedKey::from_der(chain, key, &ring()).map_err(TlsConfigError::Key)
}

/// (notBefore, notAfter) of a certified key's leaf, Unix seconds.
fn validity_of(key: &CertifiedKey) -> Option<(i64, i64)> {
    let leaf = key.cert.first()?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let v = cert.validity();
    Some((v.not_before.timestamp(), v.not_after.timestamp()))
}

impl ServingCert {
    /// From a PEM chain (leaf first) and its PEM private key.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Self, TlsConfigError> {
        let key = certified(chain_pem, key_pem)?;
        let validity = validity_of(&key);
        Ok(Self {
            current: RwLock::new((Arc::new(key), validity)),
        })
    }

    /// Issues a serving certificate from `ca` for these names (server auth,
    /// fresh P-256 key, the CA's default TTL).
    pub fn issue(
        ca: &CertificateAuthority,
        dns_names: &[String],
        ips: &[IpAddr],
    ) -> Result<Self, TlsConfigError> {
        let issued = ca
            .issue_serving(dns_names, ips, None)
            .map_err(TlsConfigError::Issue)?;
        Self::from_pem(&issued.chain.to_pem(), issued.key.expose())
    }

    /// Replaces the certificate for new handshakes. On error the current
    /// one stays.
    pub fn replace_pem(&self, chain_pem: &str, key_pem: &str) -> Result<(), TlsConfigError> {
        let key = certified(chain_pem, key_pem)?;
        let validity = validity_of(&key);
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = (Arc::new(key), validity);
        Ok(())
    }

    /// (notBefore, notAfter) of the current leaf, Unix seconds.
    pub fn validity(&self) -> Option<(i64, i64)> {
        match self.current.read() {
            Ok(guard) => guard.1,
            Err(poisoned) => poisoned.into_inner().1,
        }
    }

    fn key(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(guard) => guard.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }
}

/// How long to wait before renewing a certificate valid over
/// `[not_before, not_after]`, at `now`: at half its lifetime, never less than
/// a minute (so a failing CA is not hammered).
pub fn renew_in(not_before: i64, not_after: i64, now: i64) -> Duration {
    let half = not_before + (not_after - not_before) / 2;
    Duration::from_secs(u64::try_from(half - now).unwrap_or(0).max(60))
}

/// Keeps `cert` fresh: re-issues it from `ca` at half its lifetime until
/// `shutdown` resolves. Run it beside [`super::serve`].
pub async fn keep_fresh(
    ca: Arc<CertificateAuthority>,
    dns_names: Vec<String>,
    ips: Vec<IpAddr>,
    cert: Arc<ServingCert>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let wait = match cert.validity() {
            Some((not_before, not_after)) => renew_in(not_before, not_after, now),
            None => Duration::from_secs(60),
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => return,
        }
        let renewed = ca
            .issue_serving(&dns_names, &ips, None)
            .map_err(TlsConfigError::Issue)
            .and_then(|issued| cert.replace_pem(&issued.chain.to_pem(), issued.key.expose()));
        match renewed {
            Ok(()) => info!(
                not_after_unix = cert.validity().map(|(_, not_after)| not_after),
                "CA gRPC serving certificate renewed"
            ),
            Err(err) => warn!(error = %err, "CA gRPC serving certificate renewal failed; retrying"),
        }
    }
}

/// Builds the server's TLS configuration: `serving` answers every handshake;
/// clients may present a certificate, which must chain to `client_ca_pem`
/// (the CA's root) and be valid now, or the handshake fails; clients without
/// one are admitted, since most authenticate with a token. ALPN: `h2`.
pub fn tls_config(
    serving: Arc<ServingCert>,
    client_ca_pem: &str,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
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
        .with_cert_resolver(serving);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::RootOptions;

    #[test]
    fn renewal_happens_at_half_life_and_never_in_a_tight_loop() {
        assert_eq!(renew_in(0, 86_400, 0), Duration::from_secs(43_200));
        assert_eq!(renew_in(0, 86_400, 40_000), Duration::from_secs(3_200));
        assert_eq!(renew_in(0, 86_400, 50_000), Duration::from_secs(60));
        assert_eq!(renew_in(0, 86_400, 90_000), Duration::from_secs(60));
    }

    #[test]
    fn replace_swaps_the_served_certificate_and_bad_input_keeps_the_old_one() {
        let ca = CertificateAuthority::generate_root(&RootOptions::default()).unwrap();
        let serving = ServingCert::issue(&ca, &["localhost".into()], &[]).unwrap();
        let first = serving.key().cert[0].clone();
        let next = ca.issue_serving(&["localhost".into()], &[], None).unwrap();
        serving
            .replace_pem(&next.chain.to_pem(), next.key.expose())
            .unwrap();
        let second = serving.key().cert[0].clone();
        assert_ne!(first, second);

        let other = ca.issue_serving(&["localhost".into()], &[], None).unwrap();
        let err = serving
            .replace_pem(&next.chain.to_pem(), other.key.expose())
            .unwrap_err();
        assert!(matches!(err, TlsConfigError::Key(_)), "{err}");
        assert!(matches!(
            serving.replace_pem("", next.key.expose()),
            Err(TlsConfigError::NoServingCertificate)
        ));
        assert_eq!(serving.key().cert[0], second);
        assert!(!format!("{serving:?}").contains("PRIVATE"));
    }

    #[test]
    fn client_roots_are_required() {
        let ca = CertificateAuthority::generate_root(&RootOptions::default()).unwrap();
        let serving = Arc::new(ServingCert::issue(&ca, &["localhost".into()], &[]).unwrap());
        assert!(tls_config(serving.clone(), ca.root_pem()).is_ok());
        let err = tls_config(serving, "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "client CA bundle: no usable CA certificate (empty bundle)"
        );
    }
}

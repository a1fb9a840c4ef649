//! The narrow seam between the gRPC service and the CA core: sign a CSR for
//! an authenticated caller and tell what status code a refusal deserves.
//!
//! The service only needs this trait, so it can be tested with any signer;
//! [`AuthoritySigner`] connects it to [`CertificateAuthority`];
//! [`SwappableSigner`] lets a running service move to a renewed root.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::auth::Caller;
use crate::ca::issue::RefusalKind;
use crate::ca::{CertificateAuthority, IssueError, SpiffeId};

/// How a refusal maps onto the gRPC status codes Istio's clients expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignErrorKind {
    /// The request is bad: unparsable CSR, unsupported key, TTL over maximum.
    InvalidArgument,
    /// The CSR asks for an identity that is not the caller's.
    PermissionDenied,
    /// The CA itself failed (expired CA, signing error).
    Internal,
}

/// A refused or failed signing, with a message for the caller.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SignError {
    /// Which status code it becomes.
    pub kind: SignErrorKind,
    /// What went wrong, said for the caller.
    pub message: String,
}

impl SignError {
    /// A refusal of this kind.
    pub fn new(kind: SignErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Signs workload CSRs. Implementations must take only the public key from
/// the CSR and refuse a CSR naming anything but the caller's identity.
pub trait CertificateSigner: Send + Sync {
    /// The trust domain of the SPIFFE IDs this signer issues.
    fn trust_domain(&self) -> &str;

    /// The caller's SPIFFE ID as a URI, `spiffe://<td>/ns/<ns>/sa/<sa>`.
    fn spiffe_uri(&self, caller: &Caller) -> Result<String, SignError>;

    /// Signs `csr` (PEM or DER PKCS#10) for `caller`; `ttl` `None` means the
    /// default. Returns the chain in PEM, leaf first and root last.
    fn sign(
        &self,
        csr: &[u8],
        caller: &Caller,
        ttl: Option<Duration>,
    ) -> Result<Vec<String>, SignError>;

    /// The root certificate's notAfter, in seconds since the Unix epoch.
    fn root_expiry_unix(&self) -> Option<i64>;

    /// The notAfter of the certificate that signs workloads (the end of the
    /// CA chain), in seconds since the Unix epoch.
    fn chain_expiry_unix(&self) -> Option<i64>;
}

/// The CA core behind the seam, with the trust domain of the identities it
/// issues (the CA itself does not record one).
pub struct AuthoritySigner {
    ca: Arc<CertificateAuthority>,
    trust_domain: String,
    root_expiry: Option<i64>,
}

impl fmt::Debug for AuthoritySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthoritySigner")
            .field("ca", &self.ca)
            .field("trust_domain", &self.trust_domain)
            .finish()
    }
}

impl AuthoritySigner {
    /// Signs with `ca` for identities in `trust_domain`.
    pub fn new(ca: Arc<CertificateAuthority>, trust_domain: impl Into<String>) -> Self {
        let root_expiry = Some(ca.root_not_after().unix_timestamp());
        Self {
            ca,
            trust_domain: trust_domain.into(),
            root_expiry,
        }
    }

    fn identity(&self, caller: &Caller) -> Result<SpiffeId, SignError> {
        SpiffeId::new(
            &self.trust_domain,
            &caller.namespace,
            &caller.service_account,
        )
        .map_err(|e| SignError::new(SignErrorKind::InvalidArgument, e.to_string()))
    }
}

fn kind_of(err: &IssueError) -> SignErrorKind {
    match err.kind() {
        RefusalKind::NotPermitted => SignErrorKind::PermissionDenied,
        RefusalKind::InvalidRequest => SignErrorKind::InvalidArgument,
        RefusalKind::Internal => SignErrorKind::Internal,
    }
}

impl CertificateSigner for AuthoritySigner {
    fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    fn spiffe_uri(&self, caller: &Caller) -> Result<String, SignError> {
        self.identity(caller).map(|id| id.uri())
    }

    fn sign(
        &self,
        csr: &[u8],
        caller: &Caller,
        ttl: Option<Duration>,
    ) -> Result<Vec<String>, SignError> {
        let id = self.identity(caller)?;
        self.ca
            .sign_csr(csr, &id, ttl)
            .map(|chain| chain.certs().to_vec())
            .map_err(|err| SignError::new(kind_of(&err), err.to_string()))
    }

    fn root_expiry_unix(&self) -> Option<i64> {
        self.root_expiry
    }

    fn chain_expiry_unix(&self) -> Option<i64> {
        Some(self.ca.ca_not_after().unix_timestamp())
    }
}

/// An [`AuthoritySigner`] that can be replaced while the service runs: in a
/// cluster, when the CA Secret's root is renewed (same subject and key, so
/// certificates from either verify against both), the service signs with
/// the new one from the next request on.
#[derive(Debug)]
pub struct SwappableSigner {
    current: arc_swap::ArcSwap<AuthoritySigner>,
    /// Fixed for the service's life (a renewal keeps the trust domain).
    trust_domain: String,
}

impl SwappableSigner {
    /// Starts with `signer`.
    pub fn new(signer: AuthoritySigner) -> Self {
        Self {
            trust_domain: signer.trust_domain.clone(),
            current: arc_swap::ArcSwap::from_pointee(signer),
        }
    }

    /// Signs with `signer` from now on (requests in flight finish with the
    /// previous one).
    pub fn replace(&self, signer: AuthoritySigner) {
        debug_assert_eq!(signer.trust_domain, self.trust_domain);
        self.current.store(Arc::new(signer));
    }
}

impl CertificateSigner for SwappableSigner {
    fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    fn spiffe_uri(&self, caller: &Caller) -> Result<String, SignError> {
        self.current.load().spiffe_uri(caller)
    }

    fn sign(
        &self,
        csr: &[u8],
        caller: &Caller,
        ttl: Option<Duration>,
    ) -> Result<Vec<String>, SignError> {
        self.current.load().sign(csr, caller, ttl)
    }

    fn root_expiry_unix(&self) -> Option<i64> {
        self.current.load().root_expiry_unix()
    }

    fn chain_expiry_unix(&self) -> Option<i64> {
        self.current.load().chain_expiry_unix()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::RootOptions;

    fn csr() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn a_swapped_signer_signs_with_the_renewed_root_from_then_on() {
        let old = CertificateAuthority::generate_root(&RootOptions {
            validity: Duration::from_secs(30 * 86_400),
            ..RootOptions::default()
        })
        .unwrap();
        let renewed_pem = crate::ca::renew::renew_root(
            old.to_pem(),
            Duration::from_secs(3650 * 86_400),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        let renewed = CertificateAuthority::from_pem(&renewed_pem).unwrap();
        let caller = Caller::new("shop", "checkout");
        let signer = SwappableSigner::new(AuthoritySigner::new(Arc::new(old), "cluster.local"));
        let before = signer.sign(&csr(), &caller, None).unwrap();
        let expiry_before = signer.root_expiry_unix();

        signer.replace(AuthoritySigner::new(Arc::new(renewed), "cluster.local"));
        let after = signer.sign(&csr(), &caller, None).unwrap();
        assert_eq!(after.last().unwrap().trim(), renewed_pem.ca_cert.trim());
        assert_ne!(
            before.last(),
            after.last(),
            "the chain ends in the new root"
        );
        assert!(signer.root_expiry_unix() > expiry_before);
        assert_eq!(signer.trust_domain(), "cluster.local");
        assert_eq!(
            signer.spiffe_uri(&caller).unwrap(),
            "spiffe://cluster.local/ns/shop/sa/checkout"
        );
    }
}

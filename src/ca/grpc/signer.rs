//! The narrow seam between the gRPC service and the CA core: sign a CSR for
//! an authenticated caller and tell what status code a refusal deserves.
//!
//! The service only needs this trait, so it can be tested with any signer;
//! [`crate::ca::CertificateAuthority`] implements it.

use std::time::Duration;

use super::auth::Caller;

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

//! The workload certificate authority (Citadel-like): key material, SPIFFE
//! identities, issuing and CSR signing. Pure apart from reading and writing
//! its own files: no async, no network, no Kubernetes client.
//!
//! Users trust a mesh CA because the identity in a certificate comes from who
//! asked (the authenticated caller), never from what they asked for, and
//! because its root can be their own (Istio's plugged-in `cacerts`).
//!
//! # Parts
//! - [`identity`]: [`SpiffeId`], `spiffe://<td>/ns/<ns>/sa/<sa>`.
//! - [`keys`]: key generation and policy (ECDSA P-256/P-384, RSA ≥ 2048),
//!   reading PKCS#8 / PKCS#1 / SEC1 private keys; `Debug` prints `[elided]`.
//! - [`csr`]: parse + verify a PKCS#10 request, take only its public key.
//! - [`issue`]: the issuing policy (serial, validity, usages, SANs, TTL).
//! - [`authority`]: [`CertificateAuthority`], the checked CA and its operations.
//! - [`chain`]: load-time checks of CA material ([`LoadError`]).
//! - [`store`]: the CA directory (Istio `cacerts` layout) and issued bundles,
//!   written atomically, keys 0600.
//! - [`inspect`]: readable certificate summaries.
//!
//! # API for the server and cluster parts
//! ```no_run
//! use std::path::Path;
//! use outrigger::ca::{self, CaPem, CertificateAuthority, PrivateKeyPem, RootOptions, SpiffeId};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // (1) Load the CA in a directory, or create a self-signed root there.
//! let (ca, _created) = ca::store::load_or_create(Path::new("/var/lib/outrigger/ca"), &RootOptions::default())?;
//! // ... or from a Kubernetes Secret's keys (`istio-ca-secret`: ca-cert.pem, ca-key.pem;
//! // a `cacerts` Secret also has cert-chain.pem and root-cert.pem):
//! let from_secret = CertificateAuthority::from_pem(&CaPem {
//!     ca_cert: "-----BEGIN CERTIFICATE-----...".into(),
//!     ca_key: PrivateKeyPem::new("-----BEGIN PRIVATE KEY-----..."),
//!     cert_chain: None,
//!     root_cert: None,
//! });
//! // ... or a brand-new root to store in such a Secret: `ca.to_pem()` gives the PEM back.
//! let fresh = CertificateAuthority::generate_root(&RootOptions::default())?;
//! let _secret_data = (&fresh.to_pem().ca_cert, fresh.to_pem().ca_key.expose());
//!
//! // (2) A serving certificate (serverAuth, DNS + IP SANs, CA:false) with a fresh key.
//! let serving = ca.issue_serving(&["outrigger.outrigger-system.svc".into()], &[], None)?;
//! let (_key_pem, _chain_pem) = (serving.key.expose(), serving.chain.to_pem());
//!
//! // (3) A SPIFFE workload certificate with a generated key.
//! let id = SpiffeId::new("cluster.local", "default", "bookinfo")?;
//! let issued = ca.issue_workload(&id, None)?;
//!
//! // (4) Sign a CSR for an authenticated identity (only its public key is used).
//! # let csr_pem = b"";
//! let chain = ca.sign_csr(csr_pem, &id, Some(std::time::Duration::from_secs(3600)))?;
//! let _istio_cert_chain: &[String] = chain.certs(); // leaf first, root last
//!
//! // (5) The root (the webhook's caBundle, root-cert.pem) and the CA's own chain.
//! let _ca_bundle = ca.root_pem();
//! let _ca_chain = ca.ca_chain();
//!
//! // (6) Is a stored chain still good under the current root? (renewal, Secrets)
//! let leaf = ca.verify_issued(&issued.chain.to_pem(), time::OffsetDateTime::now_utc())?;
//! let _renew_at = leaf.not_before + (leaf.not_after - leaf.not_before) / 2;
//! # let _ = (from_secret, issued); Ok(()) }
//! ```
//!
//! [`IssueError::kind`] says how to report a refusal remotely
//! ([`issue::RefusalKind`]): a CSR naming another identity is `NotPermitted`
//! (gRPC PermissionDenied); a bad CSR, key, signature or TTL is
//! `InvalidRequest` (InvalidArgument); an expired CA or crypto failure is
//! `Internal`. Every error's message is fit to show the caller.

pub mod authority;
pub mod chain;
pub mod csr;
pub mod grpc;
pub mod identity;
pub mod inspect;
pub mod issue;
pub mod keys;
pub mod renew;
pub mod store;

pub use authority::{
    CaPem, CertificateAuthority, DEFAULT_ROOT_VALIDITY, RootOptions, VerifiedLeaf,
};
pub use chain::LoadError;
pub use csr::CsrError;
pub use identity::{IdentityError, SpiffeId};
pub use issue::{CertChain, IssueError, IssuePolicy, IssuedCertificate};
pub use keys::{KeyAlgorithm, KeyError, PrivateKeyPem};
pub use renew::RenewError;
pub use store::StoreError;

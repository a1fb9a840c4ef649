//! The authority itself: a checked signing certificate + key + chain up to a
//! root, and the operations on it (issue, sign a CSR, hand out the root).
//!
//! Every way of getting a [`CertificateAuthority`] (a new self-signed root,
//! PEM strings from a Kubernetes Secret, files in a directory) ends in
//! [`CertificateAuthority::from_pem_at`], which runs all load-time checks.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer, KeyPair};
use time::OffsetDateTime;
use tracing::{debug, warn};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::csr::verify_csr;
use super::identity::SpiffeId;
use super::issue::{
    CertChain, IssueError, IssuePolicy, IssuedCertificate, LeafKind, leaf_params, make_ca,
    random_serial,
};
use super::keys::{
    KeyAlgorithm, KeyError, KeyKind, PrivateKeyPem, classify_spki, parse_private_key,
};

/// The default validity of a new self-signed root: 10 years.
pub const DEFAULT_ROOT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The PEM texts that make up a CA, in Istio's `cacerts` naming.
///
/// For a self-signed root only `ca_cert` and `ca_key` are needed (Istio's
/// `istio-ca-secret` holds exactly those two); a plugged-in intermediate
/// also has `cert_chain` (ca-cert → intermediates, optionally ending in the
/// root) and `root_cert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPem {
    /// `ca-cert.pem`: the certificate the CA signs with.
    pub ca_cert: String,
    /// `ca-key.pem`: its private key. Debug prints `[elided]`.
    pub ca_key: PrivateKeyPem,
    /// `cert-chain.pem`: from `ca_cert` up towards the root.
    pub cert_chain: Option<String>,
    /// `root-cert.pem`: the trust anchor. Absent means `ca_cert` is the root.
    pub root_cert: Option<String>,
}

/// Options for a new self-signed root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootOptions {
    /// Key algorithm of the root (default ECDSA P-256).
    pub algorithm: KeyAlgorithm,
    /// Validity of the root (default 10 years).
    pub validity: Duration,
    /// Trust domain, written as the root's Organization like Istio does.
    pub trust_domain: String,
}

impl Default for RootOptions {
    fn default() -> Self {
        Self {
            algorithm: KeyAlgorithm::EcdsaP256,
            validity: DEFAULT_ROOT_VALIDITY,
            trust_domain: "cluster.local".to_owned(),
        }
    }
}

/// Why CA material was refused at load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A PEM file could not be read as certificates.
    #[error("{file}: {reason}")]
    Pem {
        /// Which input (e.g. `ca-cert.pem`).
        file: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The CA certificate is not a CA.
    #[error(
        "ca-cert.pem is not a CA certificate ({reason}); expected basicConstraints CA:TRUE and keyUsage keyCertSign"
    )]
    NotCa {
        /// What is missing.
        reason: String,
    },
    /// The private key could not be read or is outside the policy.
    #[error("ca-key.pem: {0}")]
    Key(#[source] KeyError),
    /// The CA certificate's key is outside the policy.
    #[error("ca-cert.pem: {0}")]
    CertKey(#[source] KeyError),
    /// The key is not the certificate's.
    #[error(
        "ca-key.pem does not match ca-cert.pem: the private key's public half differs from the certificate's public key"
    )]
    KeyMismatch,
    /// A certificate is outside its validity window.
    #[error("{which} ({subject}) {state}: valid from {not_before} to {not_after}, now is {now}")]
    Validity {
        /// Which certificate.
        which: String,
        /// Its subject.
        subject: String,
        /// "has expired" or "is not yet valid".
        state: &'static str,
        /// notBefore.
        not_before: OffsetDateTime,
        /// notAfter.
        not_after: OffsetDateTime,
        /// The time of the check.
        now: OffsetDateTime,
    },
    /// The chain does not lead to the root.
    #[error("the chain does not verify up to root-cert.pem: {reason}")]
    Chain {
        /// Which link failed and why.
        reason: String,
    },
    /// The CA's subject cannot be written back byte-for-byte as an issuer name.
    #[error(
        "ca-cert.pem subject {subject} cannot be used as an issuer name: {reason}; expected single-valued RDNs with distinct attribute types"
    )]
    SubjectName {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// Signing a probe certificate failed.
    #[error("cannot sign with this CA: {0}")]
    Sign(#[source] rcgen::Error),
}

/// A loaded, checked certificate authority.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    key_kind: KeyKind,
    pem: CaPem,
    /// ca-cert → intermediates → root, each PEM.
    ca_chain: Vec<String>,
    root_pem: String,
    ca_not_after: OffsetDateTime,
    policy: IssuePolicy,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("key", &format_args!("{} [elided]", self.key_kind))
            .field("chain_len", &self.ca_chain.len())
            .field("ca_not_after", &self.ca_not_after)
            .field("policy", &self.policy)
            .finish()
    }
}

impl CertificateAuthority {
    /// Creates a new self-signed root CA.
    pub fn generate_root(opts: &RootOptions) -> Result<Self, LoadError> {
        super::identity::validate_trust_domain(&opts.trust_domain).map_err(|e| LoadError::Pem {
            file: "trust domain",
            reason: e.to_string(),
        })?;
        let key = opts.algorithm.generate().map_err(LoadError::Key)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.serial_number = Some(random_serial().map_err(|e| LoadError::Pem {
            file: "serial",
            reason: e.to_string(),
        })?);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, opts.trust_domain.as_str());
        dn.push(DnType::CommonName, "outrigger root CA");
        params.distinguished_name = dn;
        params.not_before = now - super::issue::CLOCK_SKEW;
        params.not_after = now + opts.validity;
        make_ca(&mut params);
        let cert = params.self_signed(key.pair()).map_err(LoadError::Sign)?;
        Self::from_pem(&CaPem {
            ca_cert: cert.pem(),
            ca_key: key.to_pem(),
            cert_chain: None,
            root_cert: None,
        })
    }

    /// Loads and checks CA material given as PEM (files or a Secret's keys).
    pub fn from_pem(pem: &CaPem) -> Result<Self, LoadError> {
        Self::from_pem_at(pem, OffsetDateTime::now_utc())
    }

    /// [`from_pem`](Self::from_pem) with an explicit clock, for checks "as of" a time.
    ///
    /// Refuses, each with its own message: unreadable PEM, a certificate that is
    /// not a CA, an unsupported or mismatched key, any certificate of the chain
    /// outside its validity, a chain that does not verify up to the root.
    pub fn from_pem_at(pem: &CaPem, now: OffsetDateTime) -> Result<Self, LoadError> {
        let ca_der = single_cert("ca-cert.pem", &pem.ca_cert)?;
        let ca = parse_cert("ca-cert.pem", &ca_der)?;
        check_is_ca(&ca)?;
        let cert_kind = classify_spki(ca.public_key()).map_err(LoadError::CertKey)?;
        let key = parse_private_key(&pem.ca_key).map_err(LoadError::Key)?;
        if key.pair().public_key_raw() != ca.public_key().subject_public_key.data.as_ref() {
            return Err(LoadError::KeyMismatch);
        }
        check_validity("ca-cert.pem", &ca, now)?;

        // Assemble ca-cert → intermediates → root, without duplicates.
        let mut chain_der = vec![ca_der.clone()];
        if let Some(text) = &pem.cert_chain {
            for der in all_certs("cert-chain.pem", text)? {
                if !chain_der.contains(&der) {
                    chain_der.push(der);
                }
            }
        }
        let root_der = match &pem.root_cert {
            Some(text) => single_cert("root-cert.pem", text)?,
            None => chain_der.last().cloned().unwrap_or_else(|| ca_der.clone()),
        };
        if chain_der.last() != Some(&root_der) {
            chain_der.push(root_der.clone());
        }
        // No leaf may outlive any certificate above it.
        let ca_not_after = verify_chain(&chain_der, now)?;

        check_subject_encodable(&ca)?;
        let issuer = Issuer::from_ca_cert_der(
            &rustls_pki_types::CertificateDer::from(ca_der.as_slice()),
            key.into_pair(),
        )
        .map_err(|e| LoadError::SubjectName {
            subject: ca.subject().to_string(),
            reason: e.to_string(),
        })?;
        let authority = Self {
            issuer,
            key_kind: cert_kind,
            pem: pem.clone(),
            ca_chain: chain_der.iter().map(|d| to_pem(d)).collect(),
            root_pem: to_pem(&root_der),
            ca_not_after,
            policy: IssuePolicy::default(),
        };
        authority.probe(&ca, now)?;
        debug!(key = %cert_kind, chain_len = authority.ca_chain.len(), not_after = %ca_not_after, "CA loaded");
        Ok(authority)
    }

    /// Replaces the TTL policy (default 24 h, maximum 90 days).
    pub fn with_policy(mut self, policy: IssuePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The TTL policy in force.
    pub fn policy(&self) -> IssuePolicy {
        self.policy
    }

    /// The PEM material this CA was built from (to store in files or a Secret).
    pub fn to_pem(&self) -> &CaPem {
        &self.pem
    }

    /// The root certificate PEM: the trust anchor, the webhook's `caBundle`,
    /// `root-cert.pem` in every issued bundle.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The CA's own chain, signing certificate first, root last.
    pub fn ca_chain(&self) -> CertChain {
        CertChain::new(self.ca_chain.clone())
    }

    /// When the signing certificate expires (no leaf outlives it).
    pub fn ca_not_after(&self) -> OffsetDateTime {
        self.ca_not_after
    }

    /// The kind of the CA's signing key.
    pub fn key_kind(&self) -> KeyKind {
        self.key_kind
    }

    /// Issues a SPIFFE workload certificate for `id` with a fresh P-256 key.
    pub fn issue_workload(
        &self,
        id: &SpiffeId,
        ttl: Option<Duration>,
    ) -> Result<IssuedCertificate, IssueError> {
        self.issue_with_new_key(
            &LeafKind::Workload(id.clone()),
            ttl,
            OffsetDateTime::now_utc(),
        )
    }

    /// Issues a TLS serving certificate (server auth; DNS names and IP SANs)
    /// with a fresh P-256 key, for the webhook and gRPC ports.
    pub fn issue_serving(
        &self,
        dns_names: &[String],
        ips: &[IpAddr],
        ttl: Option<Duration>,
    ) -> Result<IssuedCertificate, IssueError> {
        let kind = LeafKind::Serving {
            dns_names: dns_names.to_vec(),
            ips: ips.to_vec(),
        };
        self.issue_with_new_key(&kind, ttl, OffsetDateTime::now_utc())
    }

    /// Signs a CSR (PEM or DER) for the authenticated `caller`.
    ///
    /// Only the CSR's public key is used; the identity is `caller`. Returns
    /// the chain leaf → intermediates → root.
    pub fn sign_csr(
        &self,
        csr: &[u8],
        caller: &SpiffeId,
        ttl: Option<Duration>,
    ) -> Result<CertChain, IssueError> {
        self.sign_csr_at(csr, caller, ttl, OffsetDateTime::now_utc())
    }

    /// [`sign_csr`](Self::sign_csr) with an explicit clock.
    pub fn sign_csr_at(
        &self,
        csr: &[u8],
        caller: &SpiffeId,
        ttl: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<CertChain, IssueError> {
        let ttl = self.policy.ttl(ttl)?;
        let public_key = verify_csr(csr, caller)?;
        let params = leaf_params(
            &LeafKind::Workload(caller.clone()),
            public_key.kind(),
            ttl,
            now,
            self.ca_not_after,
        )?;
        self.warn_if_clamped(&params, now, ttl);
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(IssueError::Build)?;
        Ok(self.chain_with(cert.pem()))
    }

    /// Issues a leaf of `kind` with a freshly generated P-256 key.
    pub fn issue_with_new_key(
        &self,
        kind: &LeafKind,
        ttl: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        let ttl = self.policy.ttl(ttl)?;
        let key = KeyAlgorithm::EcdsaP256.generate()?;
        let params = leaf_params(kind, key.kind(), ttl, now, self.ca_not_after)?;
        self.warn_if_clamped(&params, now, ttl);
        let cert = params
            .signed_by(key.pair(), &self.issuer)
            .map_err(IssueError::Build)?;
        Ok(IssuedCertificate {
            key: key.to_pem(),
            not_after: params.not_after,
            not_before: params.not_before,
            chain: self.chain_with(cert.pem()),
        })
    }

    fn chain_with(&self, leaf_pem: String) -> CertChain {
        let mut certs = Vec::with_capacity(self.ca_chain.len() + 1);
        certs.push(leaf_pem);
        certs.extend(self.ca_chain.iter().cloned());
        CertChain::new(certs)
    }

    fn warn_if_clamped(&self, params: &CertificateParams, now: OffsetDateTime, ttl: Duration) {
        if params.not_after < now + ttl {
            warn!(ca_not_after = %self.ca_not_after, "certificate lifetime shortened to the CA certificate's expiry");
        }
    }

    /// Signs a throwaway certificate for the CA's own key and checks that its
    /// issuer name is byte-identical to the CA's subject and that the
    /// signature verifies: strict verifiers (webpki) compare names by bytes.
    fn probe(&self, ca: &X509Certificate<'_>, now: OffsetDateTime) -> Result<(), LoadError> {
        let id = SpiffeId::new("probe.invalid", "probe", "probe").map_err(|e| LoadError::Pem {
            file: "probe",
            reason: e.to_string(),
        })?;
        let params = leaf_params(
            &LeafKind::Workload(id),
            self.key_kind,
            Duration::from_secs(60),
            now,
            self.ca_not_after,
        )
        .map_err(|e| LoadError::Pem {
            file: "probe",
            reason: e.to_string(),
        })?;
        let cert = params
            .signed_by(self.issuer.key(), &self.issuer)
            .map_err(LoadError::Sign)?;
        let probe = parse_cert("probe", cert.der())?;
        if probe.issuer().as_raw() != ca.subject().as_raw() {
            return Err(LoadError::SubjectName {
                subject: ca.subject().to_string(),
                reason: "its encoding changes when written back".to_owned(),
            });
        }
        probe
            .verify_signature(Some(ca.public_key()))
            .map_err(|e| LoadError::Chain {
                reason: format!("a certificate signed with ca-key.pem does not verify: {e}"),
            })
    }
}

fn to_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Every CERTIFICATE block of a PEM text, in order.
pub(crate) fn all_certs(file: &'static str, text: &str) -> Result<Vec<Vec<u8>>, LoadError> {
    let blocks = pem::parse_many(text).map_err(|e| LoadError::Pem {
        file,
        reason: format!("not valid PEM ({e})"),
    })?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certs.is_empty() {
        return Err(LoadError::Pem {
            file,
            reason: "no CERTIFICATE block; expected PEM certificates".to_owned(),
        });
    }
    Ok(certs)
}

fn single_cert(file: &'static str, text: &str) -> Result<Vec<u8>, LoadError> {
    let mut certs = all_certs(file, text)?;
    if certs.len() != 1 {
        return Err(LoadError::Pem {
            file,
            reason: format!("{} certificates; expected exactly one", certs.len()),
        });
    }
    Ok(certs.remove(0))
}

fn parse_cert<'a>(file: &'static str, der: &'a [u8]) -> Result<X509Certificate<'a>, LoadError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| LoadError::Pem {
        file,
        reason: format!("not a valid X.509 certificate ({e})"),
    })?;
    if !rest.is_empty() {
        return Err(LoadError::Pem {
            file,
            reason: "trailing bytes after the certificate".to_owned(),
        });
    }
    Ok(cert)
}

fn check_is_ca(cert: &X509Certificate<'_>) -> Result<(), LoadError> {
    let bc = cert.basic_constraints().map_err(|e| LoadError::NotCa {
        reason: format!("basicConstraints is malformed: {e}"),
    })?;
    match bc {
        Some(bc) if bc.value.ca => {}
        Some(_) => {
            return Err(LoadError::NotCa {
                reason: "basicConstraints says CA:FALSE".to_owned(),
            });
        }
        None => {
            return Err(LoadError::NotCa {
                reason: "it has no basicConstraints".to_owned(),
            });
        }
    }
    let ku = cert.key_usage().map_err(|e| LoadError::NotCa {
        reason: format!("keyUsage is malformed: {e}"),
    })?;
    if let Some(ku) = ku
        && !ku.value.key_cert_sign()
    {
        return Err(LoadError::NotCa {
            reason: "keyUsage lacks keyCertSign".to_owned(),
        });
    }
    Ok(())
}

fn check_validity(
    which: &str,
    cert: &X509Certificate<'_>,
    now: OffsetDateTime,
) -> Result<(), LoadError> {
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    let state = if now > not_after {
        "has expired"
    } else if now < not_before {
        "is not yet valid"
    } else {
        return Ok(());
    };
    Err(LoadError::Validity {
        which: which.to_owned(),
        subject: cert.subject().to_string(),
        state,
        not_before,
        not_after,
        now,
    })
}

/// Checks each link of `chain` (signing cert first, root last): issuer name,
/// signature, CA flag and validity; and that the root signs itself.
/// Returns the earliest notAfter of the chain.
fn verify_chain(chain: &[Vec<u8>], now: OffsetDateTime) -> Result<OffsetDateTime, LoadError> {
    let mut parsed = Vec::with_capacity(chain.len());
    for (i, der) in chain.iter().enumerate() {
        let name = if i + 1 == chain.len() {
            "root-cert.pem"
        } else {
            "cert-chain.pem"
        };
        parsed.push(parse_cert(name, der)?);
    }
    for (i, cert) in parsed.iter().enumerate() {
        let which = match i {
            0 => "ca-cert.pem".to_owned(),
            i if i + 1 == parsed.len() => "root-cert.pem".to_owned(),
            i => format!("cert-chain.pem certificate #{}", i + 1),
        };
        check_validity(&which, cert, now)?;
        if i > 0 {
            check_is_ca(cert).map_err(|e| LoadError::Chain {
                reason: format!("{which} ({}) {e}", cert.subject()),
            })?;
        }
        let signer = parsed.get(i + 1).unwrap_or(cert);
        if cert.issuer().as_raw() != signer.subject().as_raw() {
            return Err(LoadError::Chain {
                reason: if i + 1 == parsed.len() {
                    format!(
                        "the root ({}) is not self-signed (issuer {})",
                        cert.subject(),
                        cert.issuer()
                    )
                } else {
                    format!(
                        "{which} ({}) was issued by {}, but the next certificate is {}",
                        cert.subject(),
                        cert.issuer(),
                        signer.subject()
                    )
                },
            });
        }
        cert.verify_signature(Some(signer.public_key()))
            .map_err(|e| LoadError::Chain {
                reason: format!(
                    "the signature of {which} ({}) does not verify with the key of {} ({e})",
                    cert.subject(),
                    signer.subject()
                ),
            })?;
    }
    parsed
        .iter()
        .map(|c| c.validity().not_after.to_datetime())
        .min()
        .ok_or_else(|| LoadError::Chain {
            reason: "the chain is empty".to_owned(),
        })
}

/// rcgen rebuilds the issuer name from its parts; refuse names it cannot
/// rebuild faithfully (multi-valued RDNs, repeated attribute types).
fn check_subject_encodable(cert: &X509Certificate<'_>) -> Result<(), LoadError> {
    let subject = cert.subject();
    let mut seen = Vec::new();
    for rdn in subject.iter() {
        let attrs: Vec<_> = rdn.iter().collect();
        if attrs.len() != 1 {
            return Err(LoadError::SubjectName {
                subject: subject.to_string(),
                reason: format!("an RDN has {} attributes", attrs.len()),
            });
        }
        let oid = attrs[0].attr_type().to_id_string();
        if seen.contains(&oid) {
            return Err(LoadError::SubjectName {
                subject: subject.to_string(),
                reason: format!("attribute {oid} appears twice"),
            });
        }
        seen.push(oid);
    }
    Ok(())
}

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

use super::chain::{
    LoadError, all_certs, check_is_ca, check_subject_encodable, check_validity, parse_cert,
    single_cert, to_pem, verify_chain,
};
use super::csr::verify_csr;
use super::identity::SpiffeId;
use super::issue::{
    CertChain, IssueError, IssuePolicy, IssuedCertificate, LeafKind, add_duration, leaf_params,
    make_ca, random_serial,
};
use super::keys::{KeyAlgorithm, KeyKind, PrivateKeyPem, classify_spki, parse_private_key};

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

/// What [`CertificateAuthority::verify_issued`] found in a valid chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLeaf {
    /// The leaf's notBefore.
    pub not_before: OffsetDateTime,
    /// The leaf's notAfter.
    pub not_after: OffsetDateTime,
    /// The leaf's URI SANs (a workload certificate has exactly its SPIFFE ID).
    pub uris: Vec<String>,
}

/// A loaded, checked certificate authority.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    key_kind: KeyKind,
    pem: CaPem,
    /// ca-cert → intermediates → root, each PEM.
    ca_chain: Vec<String>,
    root_pem: String,
    root_der: Vec<u8>,
    ca_not_after: OffsetDateTime,
    root_not_after: OffsetDateTime,
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
        super::identity::validate_trust_domain(&opts.trust_domain)
            .map_err(LoadError::TrustDomain)?;
        let key = opts.algorithm.generate().map_err(LoadError::Key)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.serial_number = Some(random_serial().map_err(|e| LoadError::Probe(e.to_string()))?);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, opts.trust_domain.as_str());
        dn.push(DnType::CommonName, "outrigger root CA");
        params.distinguished_name = dn;
        params.not_before = now - super::issue::CLOCK_SKEW;
        params.not_after = match add_duration(now, opts.validity) {
            Some(end) if !opts.validity.is_zero() => end,
            _ => {
                return Err(LoadError::RootValidity {
                    validity: super::issue::format_duration(opts.validity),
                });
            }
        };
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
        let ca_not_after = verify_chain(&chain_der, "ca-cert.pem", now)?;

        let root_not_after = parse_cert("root-cert.pem", &root_der)?
            .validity()
            .not_after
            .to_datetime();

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
            root_der,
            ca_not_after,
            root_not_after,
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

    /// The earliest notAfter of the CA's chain (signing certificate,
    /// intermediates, root): no leaf outlives it, and the CA must be replaced
    /// before it (the `outrigger_ca_chain_expiry_timestamp_seconds` metric).
    pub fn ca_not_after(&self) -> OffsetDateTime {
        self.ca_not_after
    }

    /// When the root expires (the `outrigger_ca_root_expiry_timestamp_seconds` metric).
    pub fn root_not_after(&self) -> OffsetDateTime {
        self.root_not_after
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

    /// Checks a previously issued chain (e.g. a stored `cert-chain.pem`)
    /// against this CA's root as of `now`: every link's signature, names,
    /// CA flags and validity. Returns the leaf's validity and URI SANs, so a
    /// caller can decide to renew (chain from an old root, near expiry) or
    /// accept a client certificate for renewal.
    pub fn verify_issued(
        &self,
        chain_pem: &str,
        now: OffsetDateTime,
    ) -> Result<VerifiedLeaf, LoadError> {
        let mut ders = all_certs("cert-chain.pem", chain_pem)?;
        if ders.last() != Some(&self.root_der) {
            ders.push(self.root_der.clone());
        }
        verify_chain(&ders, "the leaf certificate", now)?;
        let leaf = parse_cert("cert-chain.pem", &ders[0])?;
        let uris = match leaf.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(VerifiedLeaf {
            not_before: leaf.validity().not_before.to_datetime(),
            not_after: leaf.validity().not_after.to_datetime(),
            uris,
        })
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
        if add_duration(now, ttl).is_none_or(|end| params.not_after < end) {
            warn!(ca_not_after = %self.ca_not_after, "certificate lifetime shortened to the CA certificate's expiry");
        }
    }

    /// Signs a throwaway certificate for the CA's own key and checks that its
    /// issuer name is byte-identical to the CA's subject and that the
    /// signature verifies: strict verifiers (webpki) compare names by bytes.
    fn probe(&self, ca: &X509Certificate<'_>, now: OffsetDateTime) -> Result<(), LoadError> {
        let id = SpiffeId::new("probe.invalid", "probe", "probe")
            .map_err(|e| LoadError::Probe(e.to_string()))?;
        let params = leaf_params(
            &LeafKind::Workload(id),
            self.key_kind,
            Duration::from_secs(60),
            now,
            self.ca_not_after,
        )
        .map_err(|e| LoadError::Probe(e.to_string()))?;
        let cert = params
            .signed_by(self.issuer.key(), &self.issuer)
            .map_err(LoadError::Sign)?;
        let probe = parse_cert("a probe certificate", cert.der())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The servers share one CA across tasks and threads.
    #[test]
    fn authority_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CertificateAuthority>();
    }

    #[test]
    fn chain_expiry_is_the_earliest_in_the_chain() {
        let ca = CertificateAuthority::generate_root(&RootOptions {
            validity: Duration::from_secs(3600),
            ..RootOptions::default()
        })
        .unwrap();
        let id = SpiffeId::new("cluster.local", "a", "b").unwrap();
        let issued = ca.issue_workload(&id, None).unwrap();
        // A 24h request under a 1h root ends with the root.
        assert_eq!(issued.not_after, ca.ca_not_after());
        assert_eq!(ca.root_not_after(), ca.ca_not_after());
    }

    #[test]
    fn verify_issued_accepts_own_chains_and_refuses_others() {
        let ca = CertificateAuthority::generate_root(&RootOptions::default()).unwrap();
        let other = CertificateAuthority::generate_root(&RootOptions::default()).unwrap();
        let id = SpiffeId::new("cluster.local", "a", "b").unwrap();
        let issued = ca.issue_workload(&id, None).unwrap();
        let now = OffsetDateTime::now_utc();
        let leaf = ca.verify_issued(&issued.chain.to_pem(), now).unwrap();
        assert_eq!(leaf.uris, vec![id.uri()]);
        assert_eq!(
            leaf.not_after,
            issued.not_after.replace_nanosecond(0).unwrap()
        );
        // Leaf alone (without the root) is completed with the root.
        ca.verify_issued(issued.chain.leaf_pem(), now).unwrap();
        // Another CA's chain is refused.
        let err = other
            .verify_issued(&issued.chain.to_pem(), now)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the chain does not verify up to root-cert.pem"),
            "{err}"
        );
        // An expired leaf is refused.
        let later = now + Duration::from_secs(2 * 86_400);
        let err = ca
            .verify_issued(&issued.chain.to_pem(), later)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the leaf certificate (empty subject) has expired"),
            "{err}"
        );
    }
}

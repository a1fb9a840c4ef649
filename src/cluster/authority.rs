//! The narrow seam between the cluster controllers and the CA core
//! ([`crate::ca`]): the few operations the in-cluster parts need (build a CA
//! from its PEMs or generate a new root, give the root's PEM, issue a
//! workload or serving certificate, verify a chain against the current root,
//! read a certificate's validity), in the shapes the controllers store
//! (PEM text, `SystemTime`).
//!
//! Issuing and loading are the CA core's (its policy: serials, clock skew,
//! key usages, notAfter clamped to the CA's); this file adds only chain
//! verification against the current root and validity reading
//! (x509-parser), which the Secrets controller needs to decide rewrites.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;
use time::OffsetDateTime;

use crate::ca::issue::LeafKind;
use crate::ca::{
    CaPem, CertificateAuthority, IdentityError, IssueError, LoadError, PrivateKeyPem, RootOptions,
    SpiffeId,
};

/// Why CA material could not be used or a certificate could not be made.
#[derive(Debug, Error)]
pub enum AuthorityError {
    /// The CA core refused the material; `what` names its source.
    #[error("{what}: {source}")]
    Load {
        /// The Secret or directory the PEMs came from.
        what: String,
        /// The CA core's reason (boxed: it is large).
        #[source]
        source: Box<LoadError>,
    },
    /// The root PEM held no certificate.
    #[error("{what}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate {
        /// Which input was read.
        what: String,
    },
    /// The CA core refused to issue.
    #[error("issuing a certificate failed: {0}")]
    Issue(#[source] IssueError),
    /// A ServiceAccount's identity is not a valid SPIFFE ID.
    #[error("not a valid workload identity: {0}")]
    Identity(#[source] IdentityError),
}

/// The PEMs that make up a CA, as stored in a Secret or a `cacerts`
/// directory (the CA core's type).
pub type CaMaterial = CaPem;

/// A certificate and its new private key, as handed to a workload or listener.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// Leaf first, then intermediates, then the root, in PEM.
    pub chain_pem: String,
    /// The leaf's private key (PKCS#8 PEM; Debug prints `[elided]`, wiped
    /// on drop).
    pub key_pem: PrivateKeyPem,
    /// When the leaf expires.
    pub not_after: SystemTime,
    /// When the leaf became valid (skew included).
    pub not_before: SystemTime,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("chain_pem", &self.chain_pem)
            .field("key_pem", &"[elided]")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// Why a stored certificate chain was not accepted against the current
/// root (the CA core's reason: a link's signature, names, CA flags or
/// validity).
#[derive(Debug, Error)]
#[error("the chain does not verify against the current root: {0}")]
pub struct ChainError(#[source] pub Box<LoadError>);

/// What a verified chain's leaf says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedLeaf {
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
    /// URI SANs (a workload certificate has exactly its SPIFFE ID).
    pub uris: Vec<String>,
}

/// The authority as the cluster controllers use it.
pub struct ClusterCa {
    inner: Arc<CertificateAuthority>,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("inner", &self.inner)
            .finish()
    }
}

impl ClusterCa {
    /// Generates a new self-signed root (the CA core's defaults: ECDSA
    /// P-256, ten years) and returns it with the PEMs to store, so that
    /// every replica can load it.
    pub fn generate(trust_domain: &str) -> Result<(Self, CaMaterial), AuthorityError> {
        let opts = RootOptions {
            trust_domain: trust_domain.to_string(),
            ..RootOptions::default()
        };
        let inner =
            CertificateAuthority::generate_root(&opts).map_err(|source| AuthorityError::Load {
                what: "generated root".into(),
                source: Box::new(source),
            })?;
        let material = inner.to_pem().clone();
        let ca = Self::wrap(inner, "generated root")?;
        Ok((ca, material))
    }

    /// Loads a CA from its PEMs. `what` names the source in errors (a file
    /// or a Secret). The CA core refuses a key that does not match, a non-CA
    /// certificate, a broken chain and an expired certificate.
    pub fn from_material(material: &CaMaterial, what: &str) -> Result<Self, AuthorityError> {
        let inner =
            CertificateAuthority::from_pem(material).map_err(|source| AuthorityError::Load {
                what: what.to_string(),
                source: Box::new(source),
            })?;
        Self::wrap(inner, what)
    }

    fn wrap(inner: CertificateAuthority, what: &str) -> Result<Self, AuthorityError> {
        if inner.root_pem().trim().is_empty() {
            return Err(AuthorityError::NoCertificate {
                what: format!("{what}: root-cert.pem"),
            });
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The CA core's authority.
    pub fn authority(&self) -> &CertificateAuthority {
        &self.inner
    }

    /// The CA core's authority, shared (for the gRPC CA service to sign CSRs
    /// with, without loading the material a second time).
    pub fn shared_authority(&self) -> Arc<CertificateAuthority> {
        Arc::clone(&self.inner)
    }

    /// The root certificate in PEM: what trust bundles (caBundle, the root
    /// ConfigMap, `root-cert.pem`) carry.
    pub fn root_pem(&self) -> &str {
        self.inner.root_pem()
    }

    /// Issues the workload certificate of a ServiceAccount (its SPIFFE ID is
    /// the only SAN).
    pub fn issue_workload(
        &self,
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<IssuedCert, AuthorityError> {
        let id = SpiffeId::new(trust_domain, namespace, service_account)
            .map_err(AuthorityError::Identity)?;
        self.issue(&LeafKind::Workload(id), ttl, now)
    }

    /// Issues a serving certificate for DNS names (an IP literal becomes an
    /// IP SAN); the first name is also the subject's common name.
    pub fn issue_serving(
        &self,
        names: &[String],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<IssuedCert, AuthorityError> {
        let mut dns_names = Vec::new();
        let mut ips = Vec::new();
        for name in names {
            match name.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => dns_names.push(name.clone()),
            }
        }
        self.issue(&LeafKind::Serving { dns_names, ips }, ttl, now)
    }

    fn issue(
        &self,
        kind: &LeafKind,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<IssuedCert, AuthorityError> {
        let issued = self
            .inner
            .issue_with_new_key(kind, Some(ttl), OffsetDateTime::from(now))
            .map_err(AuthorityError::Issue)?;
        Ok(IssuedCert {
            chain_pem: issued.chain.to_pem(),
            key_pem: issued.key,
            // The certificate carries whole seconds.
            not_after: to_system_time(issued.not_after.unix_timestamp()),
            not_before: to_system_time(issued.not_before.unix_timestamp()),
        })
    }

    /// Checks a stored PEM chain (leaf first) against the current root at
    /// `now` (the CA core's verification) and returns what its leaf says.
    pub fn check_chain(&self, chain_pem: &str, now: SystemTime) -> Result<CheckedLeaf, ChainError> {
        let leaf = self
            .inner
            .verify_issued(chain_pem, OffsetDateTime::from(now))
            .map_err(|e| ChainError(Box::new(e)))?;
        Ok(CheckedLeaf {
            not_before: to_system_time(leaf.not_before.unix_timestamp()),
            not_after: to_system_time(leaf.not_after.unix_timestamp()),
            uris: leaf.uris,
        })
    }
}

/// Whether a certificate valid from `not_before` to `not_after` should be
/// renewed at `now`: when less than `ratio` of its lifetime is left (0.5 =
/// renew at half-life). An expired or malformed period always renews.
pub fn needs_renewal(
    not_before: SystemTime,
    not_after: SystemTime,
    now: SystemTime,
    ratio: f64,
) -> bool {
    let Ok(lifetime) = not_after.duration_since(not_before) else {
        return true;
    };
    let Ok(left) = not_after.duration_since(now) else {
        return true;
    };
    left.as_secs_f64() < lifetime.as_secs_f64() * ratio
}

/// When a certificate valid from `not_before` to `not_after` reaches the
/// point where [`needs_renewal`] turns true.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime, ratio: f64) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    not_after - lifetime.mul_f64(ratio.clamp(0.0, 1.0))
}

/// A Unix time in seconds (negative before 1970) as a `SystemTime`.
pub(super) fn to_system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::now()
    }

    #[test]
    fn generated_root_issues_chains_that_verify() {
        let (ca, material) = ClusterCa::generate("cluster.local").unwrap();
        assert_eq!(ca.root_pem().trim(), material.ca_cert.trim());
        let issued = ca
            .issue_workload("cluster.local", "a", "b", Duration::from_secs(3600), now())
            .unwrap();
        let leaf = ca.check_chain(&issued.chain_pem, now()).unwrap();
        assert_eq!(
            leaf.uris,
            vec!["spiffe://cluster.local/ns/a/sa/b".to_string()]
        );
        assert_eq!(
            (leaf.not_before, leaf.not_after),
            (issued.not_before, issued.not_after)
        );
        assert!(!format!("{issued:?}").contains("PRIVATE KEY"));
        assert!(!format!("{material:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn invalid_identity_is_refused() {
        let (ca, _) = ClusterCa::generate("cluster.local").unwrap();
        let err = ca
            .issue_workload(
                "cluster.local",
                "Not_A_Namespace",
                "b",
                Duration::from_secs(60),
                now(),
            )
            .unwrap_err();
        assert!(matches!(err, AuthorityError::Identity(_)), "{err}");
    }

    #[test]
    fn chain_from_another_root_is_refused() {
        let (old, _) = ClusterCa::generate("cluster.local").unwrap();
        let (new, _) = ClusterCa::generate("cluster.local").unwrap();
        let issued = old
            .issue_serving(&["a.b.svc".into()], Duration::from_secs(3600), now())
            .unwrap();
        let leaf_only: String = issued
            .chain_pem
            .split_inclusive("-----END CERTIFICATE-----\n")
            .next()
            .unwrap()
            .to_string();
        assert!(new.check_chain(&issued.chain_pem, now()).is_err());
        assert!(new.check_chain(&leaf_only, now()).is_err());
        assert!(old.check_chain(&leaf_only, now()).is_ok());
        assert!(old.check_chain("", now()).is_err());
    }

    #[test]
    fn expired_leaf_is_refused() {
        let (ca, _) = ClusterCa::generate("cluster.local").unwrap();
        let issued = ca
            .issue_serving(
                &["a".into(), "10.0.0.1".into()],
                Duration::from_secs(60),
                now(),
            )
            .unwrap();
        let later = now() + Duration::from_secs(3600);
        let err = ca.check_chain(&issued.chain_pem, later).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn reloaded_material_is_the_same_ca() {
        let (ca, material) = ClusterCa::generate("cluster.local").unwrap();
        let again = ClusterCa::from_material(&material, "secret x").unwrap();
        let issued = again
            .issue_serving(&["a".into()], Duration::from_secs(60), now())
            .unwrap();
        assert!(ca.check_chain(&issued.chain_pem, now()).is_ok());
    }

    #[test]
    fn mismatched_key_is_refused_with_its_source() {
        let (_, a) = ClusterCa::generate("cluster.local").unwrap();
        let (_, b) = ClusterCa::generate("cluster.local").unwrap();
        let mixed = CaMaterial {
            ca_key: b.ca_key.clone(),
            ..a.clone()
        };
        let err = ClusterCa::from_material(&mixed, "Secret ns/istio-ca-secret").unwrap_err();
        assert!(
            matches!(&err, AuthorityError::Load { source, .. } if matches!(**source, LoadError::KeyMismatch)),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("Secret ns/istio-ca-secret: ca-key.pem"),
            "{err}"
        );
    }

    #[test]
    fn renewal_at_ratio_of_lifetime() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + Duration::from_secs(100);
        let at = |secs| start + Duration::from_secs(secs);
        assert!(!needs_renewal(start, end, at(49), 0.5));
        assert!(needs_renewal(start, end, at(51), 0.5));
        assert!(needs_renewal(start, end, at(101), 0.5));
        assert!(!needs_renewal(start, end, at(79), 0.2));
        assert_eq!(renewal_time(start, end, 0.5), at(50));
        assert!(
            needs_renewal(end, start, at(0), 0.5),
            "a reversed period renews"
        );
    }
}

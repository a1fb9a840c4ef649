//! The narrow seam between the cluster controllers and the certificate
//! authority: the few operations the in-cluster parts need (build a CA from
//! its PEMs or generate a new root, give the root's PEM, issue a workload or
//! serving certificate, verify a chain against the current root, read a
//! certificate's validity).
//!
//! The controllers only ever see [`ClusterCa`], so connecting them to the CA
//! core (`crate::ca`) changes this file and nothing else. Until then the
//! operations are built on rcgen (issuing) and x509-parser (reading and
//! verifying) directly, with the CA policy of the CA issue: random positive
//! 128-bit serials, notBefore two minutes in the past for clock skew, notAfter
//! never past the signing certificate's, CA:false leaves with digitalSignature
//! and serverAuth + clientAuth.

use std::fmt;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use thiserror::Error;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Clock skew allowance: issued certificates start this far in the past.
const CLOCK_SKEW: Duration = Duration::from_secs(120);
/// Validity of a newly generated root (ten years).
const ROOT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Why CA material could not be used or a certificate could not be made.
#[derive(Debug, Error)]
pub enum AuthorityError {
    /// A PEM text held no certificate.
    #[error("{what}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate {
        /// Which input (file or Secret key) was read.
        what: String,
    },
    /// A certificate could not be parsed.
    #[error("{what}: not a valid X.509 certificate: {reason}")]
    BadCertificate {
        /// Which input was read.
        what: String,
        /// The parser's explanation.
        reason: String,
    },
    /// The private key could not be read.
    #[error("{what}: not a usable PKCS#8 private key")]
    BadKey {
        /// Which input was read.
        what: String,
        /// The parser's error.
        #[source]
        source: rcgen::Error,
    },
    /// The key does not belong to the CA certificate.
    #[error("{what}: the private key does not match the CA certificate's public key")]
    KeyMismatch {
        /// Which input was read.
        what: String,
    },
    /// The signing certificate is not a CA.
    #[error("{what}: the certificate is not a CA (basicConstraints CA:true required)")]
    NotCa {
        /// Which input was read.
        what: String,
    },
    /// rcgen refused the parameters.
    #[error("building a certificate failed")]
    Build(#[source] rcgen::Error),
    /// The system random source failed.
    #[error("the system random generator failed")]
    Random,
    /// The signing certificate has expired: nothing valid can be issued.
    #[error("the CA certificate has expired; nothing valid can be issued under it")]
    CaExpired,
}

/// Why a certificate chain was not accepted against the current root.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChainError {
    /// The chain held no certificate.
    #[error("the chain is empty")]
    Empty,
    /// One certificate could not be parsed.
    #[error("certificate {index} of the chain cannot be parsed: {reason}")]
    Unparsable {
        /// Position in the chain, 0 = leaf.
        index: usize,
        /// The parser's explanation.
        reason: String,
    },
    /// A certificate's signature does not verify with the next one's key.
    #[error("certificate {index} of the chain is not signed by the next one (or by the root)")]
    BadSignature {
        /// Position in the chain, 0 = leaf.
        index: usize,
    },
    /// A certificate is outside its validity period.
    #[error("certificate {index} of the chain is expired or not yet valid")]
    NotValidNow {
        /// Position in the chain, 0 = leaf.
        index: usize,
    },
}

/// The PEMs that make up a CA, as stored in a Secret or a `cacerts` directory.
#[derive(Clone, PartialEq, Eq)]
pub struct CaMaterial {
    /// The signing certificate (`ca-cert.pem`).
    pub ca_cert: String,
    /// Its private key (`ca-key.pem`).
    pub ca_key: String,
    /// Intermediates from the signing certificate up (`cert-chain.pem`); empty
    /// for a self-signed root.
    pub cert_chain: String,
    /// The root (`root-cert.pem`); empty when `ca_cert` is itself the root.
    pub root_cert: String,
}

impl fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaMaterial")
            .field("ca_cert", &self.ca_cert)
            .field("ca_key", &"[elided]")
            .field("cert_chain", &self.cert_chain)
            .field("root_cert", &self.root_cert)
            .finish()
    }
}

/// A certificate and its new private key, as handed to a workload or listener.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// Leaf first, then intermediates, then the root, in PEM.
    pub chain_pem: String,
    /// The leaf's private key (PKCS#8 PEM).
    pub key_pem: String,
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

/// The authority as the cluster controllers use it.
pub struct ClusterCa {
    issuer: Issuer<'static, KeyPair>,
    /// Signing cert + intermediates + root, appended after each leaf.
    chain_tail: String,
    root_pem: String,
    root_der: Vec<u8>,
    signer_not_after: SystemTime,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("root_pem", &self.root_pem)
            .field("key", &"[elided]")
            .finish()
    }
}

impl ClusterCa {
    /// Generates a new self-signed ECDSA P-256 root valid for ten years, and
    /// returns it with the PEMs to store (so that every replica can load it).
    pub fn generate(
        trust_domain: &str,
        now: SystemTime,
    ) -> Result<(Self, CaMaterial), AuthorityError> {
        let key = KeyPair::generate().map_err(AuthorityError::Build)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, trust_domain);
        dn.push(DnType::CommonName, "outrigger root CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial()?);
        params.not_before = (now - CLOCK_SKEW).into();
        params.not_after = (now + ROOT_VALIDITY).into();
        let cert = params.self_signed(&key).map_err(AuthorityError::Build)?;
        let material = CaMaterial {
            ca_cert: cert.pem(),
            ca_key: key.serialize_pem(),
            cert_chain: String::new(),
            root_cert: String::new(),
        };
        let ca = Self::from_material(&material, "generated root")?;
        Ok((ca, material))
    }

    /// Loads a CA from its PEMs. `what` names the source in errors (a file
    /// or a Secret). Refuses a key that does not match, a non-CA certificate
    /// and an expired one.
    pub fn from_material(material: &CaMaterial, what: &str) -> Result<Self, AuthorityError> {
        let ca_what = format!("{what}: ca-cert.pem");
        let ca_der = first_der(&material.ca_cert, &ca_what)?;
        let (_, ca_cert) =
            X509Certificate::from_der(&ca_der).map_err(|e| AuthorityError::BadCertificate {
                what: ca_what.clone(),
                reason: e.to_string(),
            })?;
        if !ca_cert.is_ca() {
            return Err(AuthorityError::NotCa { what: ca_what });
        }
        let key_what = format!("{what}: ca-key.pem");
        let key = KeyPair::from_pem(&material.ca_key).map_err(|source| AuthorityError::BadKey {
            what: key_what.clone(),
            source,
        })?;
        if key.subject_public_key_info() != ca_cert.public_key().raw {
            return Err(AuthorityError::KeyMismatch { what: key_what });
        }
        let signer_not_after = to_system_time(ca_cert.validity().not_after.timestamp());
        if signer_not_after <= SystemTime::now() {
            return Err(AuthorityError::CaExpired);
        }
        let issuer = Issuer::from_ca_cert_der(&ca_der.clone().into(), key).map_err(|e| {
            AuthorityError::BadCertificate {
                what: ca_what.clone(),
                reason: e.to_string(),
            }
        })?;
        let root_pem = if material.root_cert.trim().is_empty() {
            material.ca_cert.trim().to_string() + "\n"
        } else {
            material.root_cert.trim().to_string() + "\n"
        };
        let root_der = first_der(&root_pem, &format!("{what}: root-cert.pem"))?;
        let mut chain_tail = material.ca_cert.trim().to_string() + "\n";
        if !material.cert_chain.trim().is_empty() {
            // Istio's cert-chain.pem usually starts with ca-cert.pem again.
            let chain = material.cert_chain.trim();
            let rest = chain.strip_prefix(material.ca_cert.trim()).unwrap_or(chain);
            if !rest.trim().is_empty() {
                chain_tail.push_str(rest.trim());
                chain_tail.push('\n');
            }
        }
        if root_der != ca_der && !chain_tail.contains(root_pem.trim()) {
            chain_tail.push_str(&root_pem);
        }
        Ok(Self {
            issuer,
            chain_tail,
            root_pem,
            root_der,
            signer_not_after,
        })
    }

    /// The root certificate in PEM: what trust bundles (caBundle, the root
    /// ConfigMap, `root-cert.pem`) carry.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// Issues a workload certificate whose only SAN is `spiffe_uri`.
    pub fn issue_workload(
        &self,
        spiffe_uri: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<IssuedCert, AuthorityError> {
        let uri = spiffe_uri
            .to_string()
            .try_into()
            .map_err(AuthorityError::Build)?;
        self.issue(vec![SanType::URI(uri)], None, ttl, now)
    }

    /// Issues a serving certificate for DNS names (an IP literal becomes an
    /// IP SAN); the first name is also the subject's common name.
    pub fn issue_serving(
        &self,
        names: &[String],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<IssuedCert, AuthorityError> {
        let mut sans = Vec::with_capacity(names.len());
        for name in names {
            match name.parse::<std::net::IpAddr>() {
                Ok(ip) => sans.push(SanType::IpAddress(ip)),
                Err(_) => sans.push(SanType::DnsName(
                    name.clone().try_into().map_err(AuthorityError::Build)?,
                )),
            }
        }
        self.issue(sans, names.first().map(String::as_str), ttl, now)
    }

    fn issue(
        &self,
        sans: Vec<SanType>,
        common_name: Option<&str>,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<IssuedCert, AuthorityError> {
        if self.signer_not_after <= now {
            return Err(AuthorityError::CaExpired);
        }
        let key = KeyPair::generate().map_err(AuthorityError::Build)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        if let Some(cn) = common_name {
            dn.push(DnType::CommonName, cn);
        }
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        let not_before = now - CLOCK_SKEW;
        let not_after = (now + ttl).min(self.signer_not_after);
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(AuthorityError::Build)?;
        Ok(IssuedCert {
            chain_pem: cert.pem() + &self.chain_tail,
            key_pem: key.serialize_pem(),
            // Certificates carry whole seconds.
            not_after: truncate_secs(not_after),
            not_before: truncate_secs(not_before),
        })
    }

    /// Checks that a PEM chain (leaf first) verifies up to the current root
    /// and that every certificate in it is valid at `now`.
    pub fn verify_chain(&self, chain_pem: &str, now: SystemTime) -> Result<(), ChainError> {
        let ders = all_ders(chain_pem);
        if ders.is_empty() {
            return Err(ChainError::Empty);
        }
        let mut certs = Vec::with_capacity(ders.len());
        for (index, der) in ders.iter().enumerate() {
            let (_, cert) = X509Certificate::from_der(der).map_err(|e| ChainError::Unparsable {
                index,
                reason: e.to_string(),
            })?;
            certs.push(cert);
        }
        let (_, root) =
            X509Certificate::from_der(&self.root_der).map_err(|e| ChainError::Unparsable {
                index: ders.len(),
                reason: e.to_string(),
            })?;
        let now_secs = unix_secs(now);
        for (index, cert) in certs.iter().enumerate() {
            let validity = cert.validity();
            if validity.not_before.timestamp() > now_secs
                || validity.not_after.timestamp() < now_secs
            {
                return Err(ChainError::NotValidNow { index });
            }
            if ders[index] == self.root_der {
                return Ok(());
            }
            let issuer = certs.get(index + 1).unwrap_or(&root);
            cert.verify_signature(Some(issuer.public_key()))
                .map_err(|_| ChainError::BadSignature { index })?;
            if index + 1 == certs.len() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// The validity period of the first certificate in a PEM text.
pub fn leaf_validity(chain_pem: &str) -> Option<(SystemTime, SystemTime)> {
    let der = all_ders(chain_pem).into_iter().next()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    let v = cert.validity();
    Some((
        to_system_time(v.not_before.timestamp()),
        to_system_time(v.not_after.timestamp()),
    ))
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

fn first_der(pem_text: &str, what: &str) -> Result<Vec<u8>, AuthorityError> {
    all_ders(pem_text)
        .into_iter()
        .next()
        .ok_or_else(|| AuthorityError::NoCertificate {
            what: what.to_string(),
        })
}

fn all_ders(pem_text: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem_text.as_bytes())
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .map(|p| p.contents)
        .collect()
}

fn random_serial() -> Result<SerialNumber, AuthorityError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthorityError::Random)?;
    // Positive, and a full 16 bytes in DER (no leading zero to strip).
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn to_system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn truncate_secs(t: SystemTime) -> SystemTime {
    to_system_time(unix_secs(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::now()
    }

    #[test]
    fn generated_root_issues_chains_that_verify() {
        let (ca, material) = ClusterCa::generate("cluster.local", now()).unwrap();
        assert_eq!(ca.root_pem().trim(), material.ca_cert.trim());
        let issued = ca
            .issue_workload(
                "spiffe://cluster.local/ns/a/sa/b",
                Duration::from_secs(3600),
                now(),
            )
            .unwrap();
        assert_eq!(ca.verify_chain(&issued.chain_pem, now()), Ok(()));
        assert!(!format!("{issued:?}").contains("PRIVATE KEY"));
        assert!(!format!("{material:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn chain_from_another_root_is_refused() {
        let (old, _) = ClusterCa::generate("cluster.local", now()).unwrap();
        let (new, _) = ClusterCa::generate("cluster.local", now()).unwrap();
        let issued = old
            .issue_serving(&["a.b.svc".into()], Duration::from_secs(3600), now())
            .unwrap();
        assert_eq!(
            new.verify_chain(&issued.chain_pem, now()),
            // The leaf is signed by the old root (index 1), which the new
            // root did not sign.
            Err(ChainError::BadSignature { index: 1 })
        );
    }

    #[test]
    fn expired_leaf_is_refused() {
        let (ca, _) = ClusterCa::generate("cluster.local", now()).unwrap();
        let issued = ca
            .issue_serving(&["a".into()], Duration::from_secs(60), now())
            .unwrap();
        let later = now() + Duration::from_secs(3600);
        assert_eq!(
            ca.verify_chain(&issued.chain_pem, later),
            Err(ChainError::NotValidNow { index: 0 })
        );
    }

    #[test]
    fn reloaded_material_is_the_same_ca() {
        let (ca, material) = ClusterCa::generate("cluster.local", now()).unwrap();
        let again = ClusterCa::from_material(&material, "secret x").unwrap();
        let issued = again
            .issue_serving(&["a".into()], Duration::from_secs(60), now())
            .unwrap();
        assert_eq!(ca.verify_chain(&issued.chain_pem, now()), Ok(()));
    }

    #[test]
    fn mismatched_key_is_refused_with_its_source() {
        let (_, a) = ClusterCa::generate("cluster.local", now()).unwrap();
        let (_, b) = ClusterCa::generate("cluster.local", now()).unwrap();
        let mixed = CaMaterial {
            ca_key: b.ca_key,
            ..a
        };
        let err = ClusterCa::from_material(&mixed, "Secret ns/istio-ca-secret").unwrap_err();
        assert!(matches!(err, AuthorityError::KeyMismatch { .. }));
        assert!(
            err.to_string()
                .contains("Secret ns/istio-ca-secret: ca-key.pem")
        );
    }

    #[test]
    fn leaf_is_not_a_ca() {
        let (ca, _) = ClusterCa::generate("cluster.local", now()).unwrap();
        let issued = ca
            .issue_serving(&["a".into()], Duration::from_secs(60), now())
            .unwrap();
        let leaf_only = CaMaterial {
            ca_cert: issued.chain_pem.clone(),
            ca_key: issued.key_pem.clone(),
            cert_chain: String::new(),
            root_cert: String::new(),
        };
        assert!(matches!(
            ClusterCa::from_material(&leaf_only, "dir"),
            Err(AuthorityError::NotCa { .. })
        ));
    }

    #[test]
    fn renewal_at_ratio_of_lifetime() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + Duration::from_secs(100);
        assert!(!needs_renewal(
            start,
            end,
            start + Duration::from_secs(49),
            0.5
        ));
        assert!(needs_renewal(
            start,
            end,
            start + Duration::from_secs(51),
            0.5
        ));
        assert!(needs_renewal(start, end, end + Duration::from_secs(1), 0.5));
        assert!(!needs_renewal(
            start,
            end,
            start + Duration::from_secs(79),
            0.2
        ));
        assert_eq!(
            renewal_time(start, end, 0.5),
            start + Duration::from_secs(50)
        );
        let (_, material) = ClusterCa::generate("cluster.local", now()).unwrap();
        let (from, to) = leaf_validity(&material.ca_cert).unwrap();
        assert!(to.duration_since(from).unwrap() > Duration::from_secs(9 * 365 * 24 * 3600));
    }
}

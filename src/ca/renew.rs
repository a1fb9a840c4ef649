//! Renewing a self-signed root before it expires.
//!
//! A root is a name and a key. A new certificate with the same subject (the
//! same bytes), the same key and the same subject key identifier is, to
//! every verifier, the same issuer: every certificate the old one signed
//! still chains to the new one, and certificates signed afterwards chain to
//! the old one while it lasts. So a renewal needs no overlap of two roots,
//! no re-issuing of workload certificates, and no coordinated roll-out: the
//! new `root-cert.pem` can reach proxies, ConfigMaps and the webhook's
//! `caBundle` in any order. (This is how Istio's self-signed CA renews its
//! root too.) An intermediate, or a root whose subject cannot be written
//! back byte for byte, is refused: renewing those needs their issuer, or a
//! real rotation.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, KeyIdMethod,
    KeyUsagePurpose,
};
use thiserror::Error;
use time::OffsetDateTime;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::prelude::{ParsedExtension, X509Certificate, X509Name};

use super::authority::{CaPem, CertificateAuthority};
use super::chain::{LoadError, check_is_ca, parse_cert, single_cert};
use super::issue::{CLOCK_SKEW, add_duration, format_duration, random_serial};
use super::keys::parse_private_key;

/// Why a root could not be renewed.
#[derive(Debug, Error)]
pub enum RenewError {
    /// The material could not be read.
    #[error(transparent)]
    Load(#[from] Box<LoadError>),
    /// The signing certificate is not a self-signed root.
    #[error(
        "ca-cert.pem is not a self-signed root (subject {subject}, issued by {issuer}); an intermediate is renewed by its issuer"
    )]
    NotSelfSigned {
        /// The certificate's subject.
        subject: String,
        /// Who signed it.
        issuer: String,
    },
    /// The directory or Secret also holds a chain above the CA.
    #[error(
        "{file} holds another certificate than ca-cert.pem: this CA is part of a chain; renew its root where it was made"
    )]
    PartOfChain {
        /// `cert-chain.pem` or `root-cert.pem`.
        file: &'static str,
    },
    /// The subject cannot be reproduced exactly, so the renewed root would
    /// be another issuer.
    #[error("the root's subject {subject} cannot be written back unchanged: {reason}")]
    Subject {
        /// The subject.
        subject: String,
        /// What stands in the way.
        reason: String,
    },
    /// An extension this renewal does not carry over.
    #[error("the root has a {extension} extension, which renewal would not carry over")]
    Extension {
        /// The extension's name.
        extension: &'static str,
    },
    /// The requested validity is zero or out of range.
    #[error("root validity {validity} is not usable: expected a positive duration, e.g. 10y")]
    Validity {
        /// The requested validity.
        validity: String,
    },
    /// Signing failed.
    #[error("signing the renewed root failed: {0}")]
    Sign(#[source] rcgen::Error),
}

/// A new certificate for the self-signed root in `pem`, valid from `now`
/// (less the clock skew allowance) for `validity`: same subject, key and
/// subject key identifier, basic constraints and key usage as before, a new
/// serial. The key is unchanged; the old root may have expired already.
/// The result is loaded as a CA before it is returned.
pub fn renew_root(
    pem: &CaPem,
    validity: Duration,
    now: OffsetDateTime,
) -> Result<CaPem, RenewError> {
    let load = |e: LoadError| RenewError::Load(Box::new(e));
    let der = single_cert("ca-cert.pem", &pem.ca_cert).map_err(load)?;
    let old = parse_cert("ca-cert.pem", &der).map_err(load)?;
    check_is_ca(&old).map_err(load)?;
    if old.subject().as_raw() != old.issuer().as_raw() || old.verify_signature(None).is_err() {
        return Err(RenewError::NotSelfSigned {
            subject: old.subject().to_string(),
            issuer: old.issuer().to_string(),
        });
    }
    for (file, text) in [
        ("cert-chain.pem", &pem.cert_chain),
        ("root-cert.pem", &pem.root_cert),
    ] {
        if let Some(text) = text {
            let other = super::chain::all_certs(file, text).map_err(load)?;
            if other.iter().any(|c| *c != der) {
                return Err(RenewError::PartOfChain { file });
            }
        }
    }
    let key = parse_private_key(&pem.ca_key).map_err(|e| load(LoadError::Key(e)))?;
    if key.pair().public_key_raw() != old.public_key().subject_public_key.data.as_ref() {
        return Err(load(LoadError::KeyMismatch));
    }

    let mut params = CertificateParams::default();
    params.distinguished_name = same_subject(old.subject())?;
    params.serial_number =
        Some(random_serial().map_err(|e| load(LoadError::Probe(e.to_string())))?);
    params.not_before = now - CLOCK_SKEW;
    params.not_after = match add_duration(now, validity) {
        Some(end) if !validity.is_zero() => end,
        _ => {
            return Err(RenewError::Validity {
                validity: format_duration(validity),
            });
        }
    };
    carry_extensions(&old, &mut params)?;
    let renewed = params.self_signed(key.pair()).map_err(RenewError::Sign)?;

    // The whole point: the new certificate names the very same issuer.
    let new_der = renewed.der().to_vec();
    let new = parse_cert("ca-cert.pem", &new_der).map_err(load)?;
    if new.subject().as_raw() != old.subject().as_raw() {
        return Err(RenewError::Subject {
            subject: old.subject().to_string(),
            reason: "its encoding differs once written again".into(),
        });
    }
    // Where the old certificate also stood as the chain or the root, so
    // does the new one.
    let renewed_pem = CaPem {
        ca_cert: renewed.pem(),
        ca_key: pem.ca_key.clone(),
        cert_chain: pem.cert_chain.as_ref().map(|_| renewed.pem()),
        root_cert: pem.root_cert.as_ref().map(|_| renewed.pem()),
    };
    CertificateAuthority::from_pem_at(&renewed_pem, now).map_err(load)?;
    Ok(renewed_pem)
}

/// The subject as rcgen writes it: one attribute per RDN, each with its
/// original string type (checked afterwards byte for byte).
fn same_subject(name: &X509Name<'_>) -> Result<DistinguishedName, RenewError> {
    let refuse = |reason: String| RenewError::Subject {
        subject: name.to_string(),
        reason,
    };
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(refuse("a multi-valued RDN".into()));
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .map(|arcs| arcs.collect())
            .ok_or_else(|| refuse(format!("attribute type {} is too large", attr.attr_type())))?;
        let raw = attr.attr_value();
        let text = || {
            std::str::from_utf8(raw.data)
                .map(str::to_owned)
                .map_err(|_| refuse(format!("attribute {} is not text", attr.attr_type())))
        };
        let value = match raw.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?),
            Tag::PrintableString => DnValue::PrintableString(
                text()?
                    .try_into()
                    .map_err(|e| refuse(format!("attribute {}: {e}", attr.attr_type())))?,
            ),
            Tag::Ia5String => DnValue::Ia5String(
                text()?
                    .try_into()
                    .map_err(|e| refuse(format!("attribute {}: {e}", attr.attr_type())))?,
            ),
            other => {
                return Err(refuse(format!(
                    "attribute {} is a {other:?}, which is not carried over",
                    attr.attr_type()
                )));
            }
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

/// Basic constraints (with any path length), key usage and the subject key
/// identifier, as they were; any other extension but the authority key
/// identifier is refused rather than silently dropped.
fn carry_extensions(
    old: &X509Certificate<'_>,
    params: &mut CertificateParams,
) -> Result<(), RenewError> {
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    for ext in old.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                if let Some(len) = bc.path_len_constraint {
                    let len = u8::try_from(len).map_err(|_| RenewError::Extension {
                        extension: "basicConstraints pathLen over 255",
                    })?;
                    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(len));
                }
            }
            ParsedExtension::KeyUsage(ku) => {
                let mut usages = Vec::new();
                for (set, usage) in [
                    (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
                    (ku.non_repudiation(), KeyUsagePurpose::ContentCommitment),
                    (ku.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
                    (ku.data_encipherment(), KeyUsagePurpose::DataEncipherment),
                    (ku.key_agreement(), KeyUsagePurpose::KeyAgreement),
                    (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
                    (ku.crl_sign(), KeyUsagePurpose::CrlSign),
                    (ku.encipher_only(), KeyUsagePurpose::EncipherOnly),
                    (ku.decipher_only(), KeyUsagePurpose::DecipherOnly),
                ] {
                    if set {
                        usages.push(usage);
                    }
                }
                params.key_usages = usages;
            }
            ParsedExtension::SubjectKeyIdentifier(ski) => {
                params.key_identifier_method = KeyIdMethod::PreSpecified(ski.0.to_vec());
            }
            // A self-signed root's AKI names itself; rcgen leaves it out.
            ParsedExtension::AuthorityKeyIdentifier(_) => {}
            ParsedExtension::NameConstraints(_) => {
                return Err(RenewError::Extension {
                    extension: "nameConstraints",
                });
            }
            ParsedExtension::CertificatePolicies(_) => {
                return Err(RenewError::Extension {
                    extension: "certificatePolicies",
                });
            }
            ParsedExtension::SubjectAlternativeName(_) => {
                return Err(RenewError::Extension {
                    extension: "subjectAltName",
                });
            }
            ParsedExtension::ExtendedKeyUsage(_) => {
                return Err(RenewError::Extension {
                    extension: "extendedKeyUsage",
                });
            }
            _ if ext.critical => {
                return Err(RenewError::Extension {
                    extension: "critical (unknown)",
                });
            }
            // Non-critical extensions nobody verifies against (Netscape
            // comments and the like) are not carried over.
            _ => {}
        }
    }
    Ok(())
}

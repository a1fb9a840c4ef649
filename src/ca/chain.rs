//! Load-time checks of CA material: reading PEM certificates, "is this a
//! CA", validity windows, the chain from the signing certificate up to the
//! root (names, signatures, CA flags), and whether the CA's subject can be
//! written back byte-for-byte as the issuer name of what it signs.
//!
//! Each refusal is a [`LoadError`] whose message names the file and what is
//! wrong with it, as Istio's `cacerts` users see it.

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::issue::format_time;
use super::keys::KeyError;

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
    #[error(
        "{which} ({subject}) {state}: valid from {} to {}, now is {}",
        format_time(*not_before),
        format_time(*not_after),
        format_time(*now)
    )]
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
    /// The validity asked for a new root is zero or past the year 9999.
    #[error(
        "root validity {validity} is out of range; expected a positive duration ending before the year 9999, such as 10y"
    )]
    RootValidity {
        /// The validity asked for.
        validity: String,
    },
    /// The trust domain of a new root is invalid.
    #[error(transparent)]
    TrustDomain(super::identity::IdentityError),
    /// Preparing a probe or root certificate failed.
    #[error("cannot prepare a certificate with this CA: {0}")]
    Probe(String),
    /// Signing a probe certificate failed.
    #[error("cannot sign with this CA: {0}")]
    Sign(#[source] rcgen::Error),
}

pub(crate) fn to_pem(der: &[u8]) -> String {
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

pub(crate) fn single_cert(file: &'static str, text: &str) -> Result<Vec<u8>, LoadError> {
    let mut certs = all_certs(file, text)?;
    if certs.len() != 1 {
        return Err(LoadError::Pem {
            file,
            reason: format!("{} certificates; expected exactly one", certs.len()),
        });
    }
    Ok(certs.remove(0))
}

pub(crate) fn parse_cert<'a>(
    file: &'static str,
    der: &'a [u8],
) -> Result<X509Certificate<'a>, LoadError> {
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

pub(crate) fn check_is_ca(cert: &X509Certificate<'_>) -> Result<(), LoadError> {
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

pub(crate) fn check_validity(
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
        subject: subject_text(cert),
        state,
        not_before,
        not_after,
        now,
    })
}

/// Checks each link of `chain` (signing cert first, root last): issuer name,
/// signature, CA flag and validity; and that the root signs itself.
/// Returns the earliest notAfter of the chain.
///
/// `first` names the first certificate in messages (`ca-cert.pem`, or the
/// leaf of an issued chain).
pub(crate) fn verify_chain(
    chain: &[Vec<u8>],
    first: &str,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, LoadError> {
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
            0 => first.to_owned(),
            i if i + 1 == parsed.len() => "root-cert.pem".to_owned(),
            i => format!("cert-chain.pem certificate #{}", i + 1),
        };
        check_validity(&which, cert, now)?;
        if i > 0 {
            check_is_ca(cert).map_err(|e| LoadError::Chain {
                reason: format!("{which} ({}) {e}", subject_text(cert)),
            })?;
        }
        let signer = parsed.get(i + 1).unwrap_or(cert);
        if cert.issuer().as_raw() != signer.subject().as_raw() {
            return Err(LoadError::Chain {
                reason: if i + 1 == parsed.len() {
                    format!(
                        "the root ({}) is not self-signed (issuer {})",
                        subject_text(cert),
                        cert.issuer()
                    )
                } else {
                    format!(
                        "{which} ({}) was issued by {}, but the next certificate is {}",
                        subject_text(cert),
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
                    subject_text(cert),
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
pub(crate) fn check_subject_encodable(cert: &X509Certificate<'_>) -> Result<(), LoadError> {
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

/// A certificate's subject for messages; workload leaves have an empty one.
fn subject_text(cert: &X509Certificate<'_>) -> String {
    let text = cert.subject().to_string();
    if text.is_empty() {
        "empty subject".to_owned()
    } else {
        text
    }
}

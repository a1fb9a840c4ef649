//! Certificate signing requests (PKCS#10): parse, check the key policy,
//! verify the self-signature, check that the requested SANs name nobody but
//! the caller, and hand back ONLY the public key.
//!
//! Nothing else in a CSR (subject, extensions, key usages) reaches the
//! certificate: the identity comes from the authenticated caller, and the
//! certificate's contents from the CA's policy.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
};
use x509_parser::prelude::FromDer;

use super::identity::SpiffeId;
use super::keys::{KeyError, KeyKind, classify_spki};

/// Why a CSR was refused.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// Not a PEM `CERTIFICATE REQUEST` nor DER PKCS#10.
    #[error(
        "cannot parse the CSR: {reason}; expected a PKCS#10 request in PEM (BEGIN CERTIFICATE REQUEST) or DER"
    )]
    Parse {
        /// What was wrong.
        reason: String,
    },
    /// The CSR's key is outside the policy.
    #[error("CSR refused: {0}")]
    Key(#[source] KeyError),
    /// The request is signed with an algorithm the CA does not accept.
    #[error(
        "CSR refused: signature algorithm {algorithm} is not accepted; expected ECDSA with SHA-256/384 or RSA with SHA-256/384/512 (PKCS#1 v1.5 or PSS)"
    )]
    SignatureAlgorithm {
        /// The algorithm's name or OID.
        algorithm: String,
    },
    /// The self-signature does not verify: the request was altered or the
    /// requester does not hold the private key.
    #[error(
        "CSR refused: its signature does not verify against its own public key (altered request, or the requester does not hold the key)"
    )]
    BadSignature,
    /// The CSR asks for names other than the caller's identity.
    #[error("CSR refused: it asks for {requested} but the caller is {caller}")]
    IdentityMismatch {
        /// What the CSR asked for, comma-separated.
        requested: String,
        /// The authenticated caller's identity.
        caller: String,
    },
}

/// The public key of a verified CSR: what the CA takes from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrPublicKey {
    spki_der: Vec<u8>,
    raw: Vec<u8>,
    kind: KeyKind,
}

impl CsrPublicKey {
    /// The key's kind (decides keyEncipherment for RSA).
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The DER SubjectPublicKeyInfo, as it was in the request.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }
}

impl rcgen::PublicKeyData for CsrPublicKey {
    fn subject_public_key_info(&self) -> Vec<u8> {
        self.spki_der.clone()
    }

    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.kind.signature_algorithm()
    }
}

/// Parses and verifies a CSR for `caller`, returning only its public key.
///
/// Order of checks: parse; key policy (so an RSA-1024 request is named as
/// such rather than as a bad signature); signature algorithm; signature;
/// requested SANs. Accepts PEM or DER input.
pub fn verify_csr(input: &[u8], caller: &SpiffeId) -> Result<CsrPublicKey, CsrError> {
    let der = csr_der(input)?;
    let (rest, csr) = X509CertificationRequest::from_der(&der).map_err(|e| CsrError::Parse {
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(CsrError::Parse {
            reason: format!("{} bytes after the request", rest.len()),
        });
    }
    let info = &csr.certification_request_info;
    let kind = classify_spki(&info.subject_pki).map_err(CsrError::Key)?;

    let sig_oid = &csr.signature_algorithm.algorithm;
    let accepted = [
        OID_SIG_ECDSA_WITH_SHA256,
        OID_SIG_ECDSA_WITH_SHA384,
        OID_PKCS1_SHA256WITHRSA,
        OID_PKCS1_SHA384WITHRSA,
        OID_PKCS1_SHA512WITHRSA,
        OID_PKCS1_RSASSAPSS,
    ];
    if !accepted.contains(sig_oid) {
        return Err(CsrError::SignatureAlgorithm {
            algorithm: oid_name(sig_oid),
        });
    }
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;

    check_requested_names(&csr, caller)?;

    Ok(CsrPublicKey {
        spki_der: info.subject_pki.raw.to_vec(),
        raw: info.subject_pki.subject_public_key.data.to_vec(),
        kind,
    })
}

/// The DER bytes of a CSR given as PEM or DER.
fn csr_der(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    let looks_pem = input
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'-');
    if !looks_pem {
        return Ok(input.to_vec());
    }
    let blocks = pem::parse_many(input).map_err(|e| CsrError::Parse {
        reason: format!("bad PEM: {e}"),
    })?;
    let mut requests = blocks
        .into_iter()
        .filter(|b| matches!(b.tag(), "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"));
    let first = requests.next().ok_or_else(|| CsrError::Parse {
        reason: "no CERTIFICATE REQUEST block in the PEM".to_owned(),
    })?;
    if requests.next().is_some() {
        return Err(CsrError::Parse {
            reason: "more than one CERTIFICATE REQUEST block".to_owned(),
        });
    }
    Ok(first.into_contents())
}

/// Refuses a CSR whose SANs name anything but `caller`.
///
/// A request with no SAN at all is fine (the identity comes from the caller);
/// a request with exactly the caller's URI is fine; anything else is refused,
/// listing every name it asked for.
fn check_requested_names(
    csr: &X509CertificationRequest<'_>,
    caller: &SpiffeId,
) -> Result<(), CsrError> {
    let caller_uri = caller.uri();
    let mut requested = Vec::new();
    let mut foreign = false;
    if let Some(extensions) = csr.requested_extensions() {
        for ext in extensions {
            match ext {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        let (text, is_caller) = describe(name, &caller_uri);
                        foreign |= !is_caller;
                        requested.push(text);
                    }
                }
                ParsedExtension::ParseError { error } => {
                    return Err(CsrError::Parse {
                        reason: format!("a requested extension is malformed: {error}"),
                    });
                }
                _ => {}
            }
        }
    }
    if foreign {
        return Err(CsrError::IdentityMismatch {
            requested: requested.join(", "),
            caller: caller_uri,
        });
    }
    Ok(())
}

/// A SAN as people write it, and whether it is the caller's URI.
fn describe(name: &GeneralName<'_>, caller_uri: &str) -> (String, bool) {
    match name {
        GeneralName::URI(uri) => (format!("URI:{uri}"), *uri == caller_uri),
        GeneralName::DNSName(dns) => (format!("DNS:{dns}"), false),
        GeneralName::RFC822Name(mail) => (format!("email:{mail}"), false),
        GeneralName::IPAddress(bytes) => (format!("IP:{}", ip_text(bytes)), false),
        other => (format!("{other}"), false),
    }
}

/// An IP SAN as text (falls back to hex for odd lengths).
fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => {
            let mut a = [0u8; 4];
            a.copy_from_slice(bytes);
            std::net::Ipv4Addr::from(a).to_string()
        }
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(bytes);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// A signature algorithm's short name, or its dotted OID.
fn oid_name(oid: &x509_parser::oid_registry::Oid<'_>) -> String {
    x509_parser::oid_registry::OidRegistry::default()
        .with_crypto()
        .get(oid)
        .map(|e| e.sn().to_owned())
        .unwrap_or_else(|| oid.to_id_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn caller() -> SpiffeId {
        SpiffeId::new("cluster.local", "default", "app").unwrap()
    }

    fn csr_with(sans: Vec<SanType>) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn accepts_no_san_and_the_callers_own_uri() {
        let pem = csr_with(vec![]);
        let key = verify_csr(pem.as_bytes(), &caller()).unwrap();
        assert_eq!(key.kind(), KeyKind::EcdsaP256);
        let uri = rcgen::string::Ia5String::try_from(caller().uri()).unwrap();
        let pem = csr_with(vec![SanType::URI(uri)]);
        verify_csr(pem.as_bytes(), &caller()).unwrap();
    }

    #[test]
    fn accepts_der_input() {
        let key = KeyPair::generate().unwrap();
        let der = CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .der()
            .to_vec();
        verify_csr(&der, &caller()).unwrap();
    }

    #[test]
    fn refuses_foreign_names_listing_them() {
        let other = rcgen::string::Ia5String::try_from("spiffe://cluster.local/ns/x/sa/y").unwrap();
        let pem = csr_with(vec![
            SanType::URI(other),
            SanType::DnsName("evil.example".try_into().unwrap()),
        ]);
        let err = verify_csr(pem.as_bytes(), &caller()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CSR refused: it asks for URI:spiffe://cluster.local/ns/x/sa/y, DNS:evil.example \
             but the caller is spiffe://cluster.local/ns/default/sa/app"
        );
    }

    #[test]
    fn refuses_garbage() {
        let err = verify_csr(b"not a csr", &caller()).unwrap_err();
        assert!(matches!(err, CsrError::Parse { .. }), "{err}");
        let err = verify_csr(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            &caller(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("no CERTIFICATE REQUEST block"),
            "{err}"
        );
    }
}

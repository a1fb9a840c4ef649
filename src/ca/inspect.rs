//! A readable summary of certificates: what people otherwise squint at in
//! `openssl x509 -text` (subject, SANs, validity and time left, key usages,
//! issuer, SHA-256 fingerprint), for each certificate of a PEM file.

use std::fmt;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::issue::{format_duration_coarse, format_time};
use super::keys::classify_spki;

/// Why a certificate could not be summarised.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// No certificate in the input.
    #[error("no certificate found; expected PEM (BEGIN CERTIFICATE) or one DER certificate")]
    Empty,
    /// A certificate is malformed.
    #[error("certificate #{index} is not valid X.509: {reason}")]
    Parse {
        /// 1-based position in the file.
        index: usize,
        /// What was wrong.
        reason: String,
    },
}

/// The facts about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// SANs, as `URI:...`, `DNS:...`, `IP:...`.
    pub sans: Vec<String>,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// The time the summary was made (for "time left").
    pub now: OffsetDateTime,
    /// `CA:TRUE` / `CA:FALSE` / absent.
    pub basic_constraints: Option<String>,
    /// Key usage names.
    pub key_usages: Vec<String>,
    /// Extended key usage names.
    pub extended_key_usages: Vec<String>,
    /// The public key (e.g. "ECDSA P-256").
    pub public_key: String,
    /// SHA-256 fingerprint of the DER, colon-separated hex.
    pub fingerprint_sha256: String,
}

/// Summarises every certificate of a PEM text (or one DER certificate).
pub fn inspect(input: &[u8], now: OffsetDateTime) -> Result<Vec<CertSummary>, InspectError> {
    let ders: Vec<Vec<u8>> = match pem::parse_many(input) {
        Ok(blocks) if !blocks.is_empty() => blocks
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(pem::Pem::into_contents)
            .collect(),
        _ => vec![input.to_vec()],
    };
    if ders.is_empty() || ders.iter().all(|d| d.is_empty()) {
        return Err(InspectError::Empty);
    }
    ders.iter()
        .enumerate()
        .map(|(i, der)| summarise(i + 1, der, now))
        .collect()
}

fn summarise(index: usize, der: &[u8], now: OffsetDateTime) -> Result<CertSummary, InspectError> {
    let parse_err = |reason: String| InspectError::Parse { index, reason };
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| parse_err(e.to_string()))?;
    let mut sans = Vec::new();
    if let Some(san) = cert
        .subject_alternative_name()
        .map_err(|e| parse_err(e.to_string()))?
    {
        for name in &san.value.general_names {
            sans.push(match name {
                GeneralName::URI(u) => format!("URI:{u}"),
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::RFC822Name(m) => format!("email:{m}"),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => format!("IP:{}", std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        format!("IP:{}", std::net::Ipv6Addr::from(a))
                    }
                    _ => format!("IP:{}", hex(b, "")),
                },
                other => other.to_string(),
            });
        }
    }
    let basic_constraints = cert
        .basic_constraints()
        .map_err(|e| parse_err(e.to_string()))?
        .map(|bc| match (bc.value.ca, bc.value.path_len_constraint) {
            (true, Some(n)) => format!("CA:TRUE, pathlen:{n}"),
            (true, None) => "CA:TRUE".to_owned(),
            (false, _) => "CA:FALSE".to_owned(),
        });
    let key_usages = match cert.key_usage().map_err(|e| parse_err(e.to_string()))? {
        Some(ku) => {
            let ku = ku.value;
            [
                (ku.digital_signature(), "digitalSignature"),
                (ku.non_repudiation(), "nonRepudiation"),
                (ku.key_encipherment(), "keyEncipherment"),
                (ku.data_encipherment(), "dataEncipherment"),
                (ku.key_agreement(), "keyAgreement"),
                (ku.key_cert_sign(), "keyCertSign"),
                (ku.crl_sign(), "cRLSign"),
                (ku.encipher_only(), "encipherOnly"),
                (ku.decipher_only(), "decipherOnly"),
            ]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| n.to_owned())
            .collect()
        }
        None => Vec::new(),
    };
    let extended_key_usages = match cert
        .extended_key_usage()
        .map_err(|e| parse_err(e.to_string()))?
    {
        Some(eku) => {
            let e = eku.value;
            let mut v = Vec::new();
            for (on, name) in [
                (e.server_auth, "serverAuth"),
                (e.client_auth, "clientAuth"),
                (e.code_signing, "codeSigning"),
                (e.email_protection, "emailProtection"),
                (e.time_stamping, "timeStamping"),
                (e.ocsp_signing, "OCSPSigning"),
                (e.any, "anyExtendedKeyUsage"),
            ] {
                if on {
                    v.push(name.to_owned());
                }
            }
            v.extend(e.other.iter().map(|o| o.to_id_string()));
            v
        }
        None => Vec::new(),
    };
    let public_key = match classify_spki(cert.public_key()) {
        Ok(kind) => kind.to_string(),
        Err(e) => e.to_string(),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    Ok(CertSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex(cert.raw_serial(), ":"),
        sans,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        now,
        basic_constraints,
        key_usages,
        extended_key_usages,
        public_key,
        fingerprint_sha256: hex(digest.as_ref(), ":"),
    })
}

fn hex(bytes: &[u8], sep: &str) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(sep)
}

impl CertSummary {
    /// "expires in 23h59m", "EXPIRED 2h ago" or "not yet valid (starts in 5m)".
    pub fn time_left(&self) -> String {
        if self.now > self.not_after {
            let ago = (self.now - self.not_after).unsigned_abs();
            format!("EXPIRED {} ago", format_duration_coarse(ago))
        } else if self.now < self.not_before {
            let until = (self.not_before - self.now).unsigned_abs();
            format!(
                "not yet valid (starts in {})",
                format_duration_coarse(until)
            )
        } else {
            let left = (self.not_after - self.now).unsigned_abs();
            format!("expires in {}", format_duration_coarse(left))
        }
    }
}

impl fmt::Display for CertSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_none = |v: &[String]| {
            if v.is_empty() {
                "(none)".to_owned()
            } else {
                v.join(", ")
            }
        };
        let subject = if self.subject.is_empty() {
            "(empty)"
        } else {
            &self.subject
        };
        writeln!(f, "Subject:            {subject}")?;
        writeln!(f, "Issuer:             {}", self.issuer)?;
        writeln!(f, "SANs:               {}", or_none(&self.sans))?;
        writeln!(f, "Not before:         {}", format_time(self.not_before))?;
        writeln!(
            f,
            "Not after:          {} ({})",
            format_time(self.not_after),
            self.time_left()
        )?;
        writeln!(
            f,
            "Basic constraints:  {}",
            self.basic_constraints.as_deref().unwrap_or("(absent)")
        )?;
        writeln!(f, "Key usage:          {}", or_none(&self.key_usages))?;
        writeln!(
            f,
            "Extended key usage: {}",
            or_none(&self.extended_key_usages)
        )?;
        writeln!(f, "Public key:         {}", self.public_key)?;
        writeln!(f, "Serial:             {}", self.serial)?;
        writeln!(f, "SHA-256 fingerprint: {}", self.fingerprint_sha256)
    }
}

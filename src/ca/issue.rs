//! The issuing policy and the leaf certificates it produces.
//!
//! Every leaf is built from explicit parameters chosen here, never from what
//! a CSR asked for: a random positive 128-bit serial, notBefore = now − 2
//! minutes (clock skew), notAfter = now + TTL clamped to the signing
//! certificate's notAfter, CA:false, keyUsage digitalSignature (+
//! keyEncipherment for RSA keys), the subject and authority key identifiers,
//! and either the SPIFFE URI as the only SAN (workload certificates, with
//! serverAuth + clientAuth) or DNS/IP SANs (serving certificates, serverAuth).

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use super::identity::SpiffeId;
use super::keys::{KeyKind, PrivateKeyPem};

/// How far notBefore is set in the past, so that a peer whose clock is a
/// little behind still accepts a fresh certificate.
pub const CLOCK_SKEW: Duration = Duration::from_secs(2 * 60);
/// The TTL when the caller asks for none (Istio's default workload TTL).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest TTL the CA grants unless configured otherwise (Istio's default max).
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// Why a certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The requested TTL is above the maximum.
    #[error("requested TTL {requested} is over the maximum {maximum}")]
    TtlTooLong {
        /// The TTL asked for, human-readable.
        requested: String,
        /// The maximum, human-readable.
        maximum: String,
    },
    /// The requested TTL is zero.
    #[error("requested TTL is zero; expected a positive duration such as 24h")]
    TtlZero,
    /// The signing certificate has already expired (or expires within the skew).
    #[error(
        "the CA certificate expired at {not_after}; nothing can be issued until it is replaced"
    )]
    CaExpired {
        /// The CA certificate's notAfter.
        not_after: OffsetDateTime,
    },
    /// A serving certificate was asked for with no name.
    #[error("a serving certificate needs at least one DNS name or IP address")]
    NoServingNames,
    /// A DNS name cannot be encoded.
    #[error(
        "invalid DNS name {name:?}: expected ASCII letters, digits, '-', '.' or a leading '*.'"
    )]
    DnsName {
        /// The name given.
        name: String,
    },
    /// Building or signing the certificate failed.
    #[error("cannot build the certificate: {0}")]
    Build(#[source] rcgen::Error),
    /// The CSR was refused.
    #[error(transparent)]
    Csr(#[from] super::csr::CsrError),
    /// Key generation failed.
    #[error(transparent)]
    Key(#[from] super::keys::KeyError),
}

/// How a refusal should be reported to a remote caller (the CA service maps
/// these onto gRPC status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request itself is wrong: unparsable CSR, bad key, bad signature,
    /// TTL out of range, bad names (gRPC `InvalidArgument`).
    InvalidRequest,
    /// The caller asked for an identity that is not theirs (gRPC `PermissionDenied`).
    NotPermitted,
    /// The CA cannot sign right now: expired CA, crypto failure (gRPC `Internal`).
    Internal,
}

impl IssueError {
    /// Whose fault the refusal is, for mapping onto protocol status codes.
    pub fn kind(&self) -> RefusalKind {
        use super::csr::CsrError;
        match self {
            IssueError::Csr(CsrError::IdentityMismatch { .. }) => RefusalKind::NotPermitted,
            IssueError::Csr(_)
            | IssueError::TtlTooLong { .. }
            | IssueError::TtlZero
            | IssueError::NoServingNames
            | IssueError::DnsName { .. } => RefusalKind::InvalidRequest,
            IssueError::CaExpired { .. } | IssueError::Build(_) | IssueError::Key(_) => {
                RefusalKind::Internal
            }
        }
    }
}

/// The TTL policy: what callers get by default and the most they may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuePolicy {
    /// TTL when the caller asks for none.
    pub default_ttl: Duration,
    /// Longest TTL granted; longer requests are refused, not shortened.
    pub max_ttl: Duration,
}

impl Default for IssuePolicy {
    fn default() -> Self {
        Self {
            default_ttl: DEFAULT_TTL,
            max_ttl: DEFAULT_MAX_TTL,
        }
    }
}

impl IssuePolicy {
    /// The TTL to grant for a request, or why not.
    pub fn ttl(&self, requested: Option<Duration>) -> Result<Duration, IssueError> {
        let ttl = requested.unwrap_or(self.default_ttl);
        if ttl.is_zero() {
            return Err(IssueError::TtlZero);
        }
        if ttl > self.max_ttl {
            return Err(IssueError::TtlTooLong {
                requested: format_duration(ttl),
                maximum: format_duration(self.max_ttl),
            });
        }
        Ok(ttl)
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafKind {
    /// A workload identity: the SPIFFE URI as the only SAN, server + client auth.
    Workload(SpiffeId),
    /// A TLS server (webhook, gRPC): DNS names and IPs, server auth only.
    Serving {
        /// DNS SANs; the first is also the subject CN.
        dns_names: Vec<String>,
        /// IP SANs.
        ips: Vec<IpAddr>,
    },
}

/// The certificate parameters for one leaf, by policy.
///
/// `ca_not_after` clamps notAfter so a leaf never outlives its issuer.
pub fn leaf_params(
    kind: &LeafKind,
    key_kind: KeyKind,
    ttl: Duration,
    now: OffsetDateTime,
    ca_not_after: OffsetDateTime,
) -> Result<CertificateParams, IssueError> {
    if ca_not_after <= now {
        return Err(IssueError::CaExpired {
            not_after: ca_not_after,
        });
    }
    let mut params = CertificateParams::default();
    params.serial_number = Some(random_serial()?);
    params.not_before = now - CLOCK_SKEW;
    // A TTL too large for the calendar is simply clamped to the CA's end.
    params.not_after = match add_duration(now, ttl) {
        Some(end) => std::cmp::min(end, ca_not_after),
        None => ca_not_after,
    };
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if key_kind.is_rsa() {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.use_authority_key_identifier_extension = true;
    params.distinguished_name = DistinguishedName::new();
    match kind {
        LeafKind::Workload(id) => {
            let uri = rcgen::string::Ia5String::try_from(id.uri()).map_err(IssueError::Build)?;
            params.subject_alt_names = vec![SanType::URI(uri)];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        }
        LeafKind::Serving { dns_names, ips } => {
            if dns_names.is_empty() && ips.is_empty() {
                return Err(IssueError::NoServingNames);
            }
            let mut sans = Vec::with_capacity(dns_names.len() + ips.len());
            for name in dns_names {
                let valid = !name.is_empty()
                    && name
                        .trim_start_matches("*.")
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                let encoded = rcgen::string::Ia5String::try_from(name.as_str())
                    .ok()
                    .filter(|_| valid)
                    .ok_or_else(|| IssueError::DnsName { name: name.clone() })?;
                sans.push(SanType::DnsName(encoded));
            }
            sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
            params.subject_alt_names = sans;
            if let Some(first) = dns_names.first() {
                params
                    .distinguished_name
                    .push(DnType::CommonName, first.as_str());
            }
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
    }
    Ok(params)
}

/// `t + d`, or `None` past the calendar's end (year 9999).
pub fn add_duration(t: OffsetDateTime, d: Duration) -> Option<OffsetDateTime> {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d))
}

/// A random positive serial of 128 bits (RFC 5280: positive, at most 20 octets).
pub fn random_serial() -> Result<SerialNumber, IssueError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| IssueError::Build(rcgen::Error::RingUnspecified))?;
    // Clear the top bit so the DER INTEGER is positive without padding, and
    // set the next one so every serial is exactly 16 octets.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// A certificate chain in PEM: leaf first, root last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertChain {
    certs: Vec<String>,
}

impl CertChain {
    /// Builds a chain from PEM certificates, leaf first.
    pub fn new(certs: Vec<String>) -> Self {
        Self { certs }
    }

    /// Each certificate's PEM, leaf first, root last (Istio's `cert_chain`).
    pub fn certs(&self) -> &[String] {
        &self.certs
    }

    /// The leaf certificate's PEM.
    pub fn leaf_pem(&self) -> &str {
        self.certs.first().map(String::as_str).unwrap_or("")
    }

    /// The whole chain as one PEM text (`cert-chain.pem`).
    pub fn to_pem(&self) -> String {
        self.certs.concat()
    }
}

/// A certificate issued with a key the CA generated.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// The private key (PKCS#8 PEM). Debug prints `[elided]`.
    pub key: PrivateKeyPem,
    /// The chain, leaf first, root last.
    pub chain: CertChain,
    /// The leaf's notAfter (for renewal at a fraction of the lifetime).
    pub not_after: OffsetDateTime,
    /// The leaf's notBefore.
    pub not_before: OffsetDateTime,
}

/// A duration as people write it: `90d`, `24h`, `1h30m`, `45s`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// A duration rounded to its two largest units, for people: `89d23h`, `1h30m`.
pub fn format_duration_coarse(d: Duration) -> String {
    let full = format_duration(d);
    let mut units = 0;
    let mut out = String::new();
    for c in full.chars() {
        out.push(c);
        if c.is_ascii_alphabetic() {
            units += 1;
            if units == 2 {
                break;
            }
        }
    }
    out
}

/// A timestamp as RFC 3339 in UTC, to the second: `2026-11-21T05:47:33Z`.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Parses `10y` (365-day years), `90d`, `24h`, `1h30m`, `45s` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let err = || {
        format!(
            "invalid duration {text:?}: expected a number with a unit, such as 24h, 90d, 30m, 1h30m or 10y"
        )
    };
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let size = match c {
            'y' => 365 * 86_400,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(err()),
        };
        let n: u64 = digits.parse().map_err(|_| err())?;
        total = n
            .checked_mul(size)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
        digits.clear();
        any = true;
    }
    if !digits.is_empty() || !any {
        return Err(err());
    }
    Ok(Duration::from_secs(total))
}

/// Sets basicConstraints CA:true and the CA key usages on `params`.
pub fn make_ca(params: &mut CertificateParams) {
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_policy() {
        let policy = IssuePolicy::default();
        assert_eq!(policy.ttl(None).unwrap(), DEFAULT_TTL);
        assert_eq!(
            policy.ttl(Some(Duration::from_secs(3600))).unwrap(),
            Duration::from_secs(3600)
        );
        let err = policy
            .ttl(Some(Duration::from_secs(91 * 86_400)))
            .unwrap_err();
        assert_eq!(err.to_string(), "requested TTL 91d is over the maximum 90d");
        assert!(matches!(
            policy.ttl(Some(Duration::ZERO)),
            Err(IssueError::TtlZero)
        ));
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("90d").unwrap(), DEFAULT_MAX_TTL);
        assert_eq!(
            parse_duration("1y").unwrap(),
            Duration::from_secs(365 * 86_400)
        );
        assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
        assert_eq!(format_duration_coarse(Duration::from_secs(90_061)), "1d1h");
        assert_eq!(format_duration_coarse(Duration::from_secs(59)), "59s");
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(format_time(t), "2023-11-14T22:13:20Z");
        for bad in ["", "24", "h", "1x", "-1h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serials_are_positive_and_16_octets() {
        for _ in 0..32 {
            let s = random_serial().unwrap().to_bytes();
            assert_eq!(s.len(), 16);
            assert_eq!(s[0] & 0x80, 0);
            assert_ne!(s[0] & 0x40, 0);
        }
    }

    #[test]
    fn not_after_is_clamped_to_the_ca() {
        let now = OffsetDateTime::now_utc();
        let ca_end = now + Duration::from_secs(3600);
        let id = SpiffeId::new("td", "ns", "sa").unwrap();
        let p = leaf_params(
            &LeafKind::Workload(id.clone()),
            KeyKind::EcdsaP256,
            DEFAULT_TTL,
            now,
            ca_end,
        )
        .unwrap();
        assert_eq!(p.not_after, ca_end);
        assert_eq!(p.not_before, now - CLOCK_SKEW);
        let err = leaf_params(
            &LeafKind::Workload(id),
            KeyKind::EcdsaP256,
            DEFAULT_TTL,
            now,
            now,
        )
        .unwrap_err();
        assert!(err.to_string().contains("CA certificate expired"), "{err}");
    }
}

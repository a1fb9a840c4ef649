//! Workload identity: the SPIFFE ID `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`
//! that Istio puts as the only URI SAN of a workload certificate.
//!
//! See the SPIFFE ID specification (trust-domain rules) and Istio's
//! `pkg/spiffe` for the Kubernetes path layout. Parsing and printing
//! round-trip: `id.to_string().parse() == Ok(id)`.

use std::fmt;
use std::str::FromStr;

/// Istio's default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// Why a SPIFFE ID, trust domain, namespace or service-account name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The text does not have the `spiffe://TD/ns/NS/sa/SA` shape.
    #[error(
        "invalid SPIFFE ID {text:?}: expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>"
    )]
    Shape {
        /// The text that was given.
        text: String,
    },
    /// The trust domain breaks the SPIFFE rules.
    #[error(
        "invalid trust domain {value:?}: expected 1-255 characters of lowercase letters, digits, '.', '-' or '_'"
    )]
    TrustDomain {
        /// The trust domain that was given.
        value: String,
    },
    /// The namespace is not a Kubernetes DNS-1123 label.
    #[error(
        "invalid namespace {value:?}: expected a DNS-1123 label (1-63 lowercase letters, digits or '-', starting and ending with a letter or digit)"
    )]
    Namespace {
        /// The namespace that was given.
        value: String,
    },
    /// The service-account name is not a Kubernetes DNS-1123 subdomain.
    #[error(
        "invalid service account {value:?}: expected a DNS-1123 subdomain (1-253 lowercase letters, digits, '-' or '.', each part starting and ending with a letter or digit)"
    )]
    ServiceAccount {
        /// The service-account name that was given.
        value: String,
    },
}

/// The identity of one Kubernetes ServiceAccount in a mesh.
///
/// The only way to build one is through validation, so a `SpiffeId` in hand
/// always prints as a well-formed URI.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    trust_domain: String,
    namespace: String,
    service_account: String,
}

/// The URI scheme prefix of every SPIFFE ID.
const SCHEME: &str = "spiffe://";

impl SpiffeId {
    /// Builds the identity of `service_account` in `namespace`, checking every part.
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, IdentityError> {
        validate_trust_domain(trust_domain)?;
        if !is_dns1123_label(namespace) {
            return Err(IdentityError::Namespace {
                value: namespace.to_owned(),
            });
        }
        if !is_dns1123_subdomain(service_account) {
            return Err(IdentityError::ServiceAccount {
                value: service_account.to_owned(),
            });
        }
        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        })
    }

    /// The trust domain (`cluster.local` in a default Istio install).
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The Kubernetes namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Kubernetes ServiceAccount name.
    pub fn service_account(&self) -> &str {
        &self.service_account
    }

    /// The identity as a URI string, the form it takes in a certificate SAN.
    pub fn uri(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({self})")
    }
}

impl FromStr for SpiffeId {
    type Err = IdentityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shape = || IdentityError::Shape {
            text: text.to_owned(),
        };
        let rest = text.strip_prefix(SCHEME).ok_or_else(shape)?;
        let (trust_domain, path) = rest.split_once('/').ok_or_else(shape)?;
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["ns", namespace, "sa", service_account] => {
                Self::new(trust_domain, namespace, service_account)
            }
            _ => Err(shape()),
        }
    }
}

/// Checks a trust domain against the SPIFFE ID specification.
pub fn validate_trust_domain(value: &str) -> Result<(), IdentityError> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(IdentityError::TrustDomain {
            value: value.to_owned(),
        })
    }
}

/// A Kubernetes DNS-1123 label: what namespace names must be.
fn is_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

/// A Kubernetes DNS-1123 subdomain: what ServiceAccount names must be.
fn is_dns1123_subdomain(value: &str) -> bool {
    !value.is_empty() && value.len() <= 253 && value.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let text = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";
        let id: SpiffeId = text.parse().unwrap();
        assert_eq!(id.trust_domain(), "cluster.local");
        assert_eq!(id.namespace(), "default");
        assert_eq!(id.service_account(), "bookinfo-productpage");
        assert_eq!(id.to_string(), text);
        assert_eq!(id.to_string().parse::<SpiffeId>().unwrap(), id);
    }

    #[test]
    fn service_account_may_contain_dots() {
        let id = SpiffeId::new("example.org", "ns-1", "svc.v2").unwrap();
        assert_eq!(id.uri(), "spiffe://example.org/ns/ns-1/sa/svc.v2");
    }

    #[test]
    fn refuses_wrong_shapes() {
        for text in [
            "",
            "http://cluster.local/ns/a/sa/b",
            "spiffe://cluster.local",
            "spiffe://cluster.local/ns/a",
            "spiffe://cluster.local/ns/a/sa/b/extra",
            "spiffe://cluster.local/sa/b/ns/a",
            "spiffe://cluster.local/ns/a/sa/",
        ] {
            let err = text.parse::<SpiffeId>().unwrap_err();
            assert!(
                matches!(
                    err,
                    IdentityError::Shape { .. } | IdentityError::ServiceAccount { .. }
                ),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn refuses_bad_trust_domain_namespace_and_account() {
        let err = SpiffeId::new("Cluster.Local", "a", "b").unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid trust domain \"Cluster.Local\"")
        );
        let err = SpiffeId::new("td", "-a", "b").unwrap_err();
        assert!(err.to_string().contains("invalid namespace \"-a\""));
        let err = SpiffeId::new("td", "a", "B_c").unwrap_err();
        assert!(err.to_string().contains("invalid service account \"B_c\""));
        let long = "a".repeat(64);
        assert!(SpiffeId::new("td", &long, "b").is_err());
        assert!(SpiffeId::new("", "a", "b").is_err());
    }
}

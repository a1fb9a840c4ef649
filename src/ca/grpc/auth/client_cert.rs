//! Renewal by mutual TLS: a workload that still holds a valid certificate from
//! this CA proves its identity with it.
//!
//! The TLS layer ([`super::super::server`]) has already verified the chain up to
//! this CA's root, the validity period and the clientAuth usage during the
//! handshake; this authenticator re-checks the validity period (defence in
//! depth) and reads the identity: the single `spiffe://` URI SAN, which must be
//! in this CA's trust domain.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use tonic::async_trait;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{AuthError, Authenticator, Caller, Credentials};
use crate::ca::SpiffeId;

/// Accepts callers presenting a client certificate issued by this CA.
#[derive(Debug, Clone)]
pub struct ClientCertAuthenticator {
    trust_domain: String,
}

impl ClientCertAuthenticator {
    /// Accepts SPIFFE IDs in this trust domain only.
    pub fn new(trust_domain: impl Into<String>) -> Self {
        Self {
            trust_domain: trust_domain.into(),
        }
    }

    /// Reads the caller from a DER leaf certificate.
    pub fn identity_of(&self, leaf_der: &[u8]) -> Result<Caller, AuthError> {
        let bad = |m: String| AuthError::BadCertificate(m);
        let (_, cert) = X509Certificate::from_der(leaf_der)
            .map_err(|e| bad(format!("not a valid X.509 certificate: {e}")))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let validity = cert.validity();
        if now > validity.not_after.timestamp() {
            return Err(bad(format!("expired at {}", validity.not_after)));
        }
        if now < validity.not_before.timestamp() {
            return Err(bad(format!("not valid before {}", validity.not_before)));
        }
        let san = cert
            .subject_alternative_name()
            .map_err(|e| bad(format!("unreadable subjectAltName: {e}")))?
            .ok_or_else(|| bad("no subjectAltName with a SPIFFE ID".into()))?;
        let uris: Vec<&str> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(uri) => Some(*uri),
                _ => None,
            })
            .collect();
        let [uri] = uris.as_slice() else {
            return Err(bad(format!(
                "expected exactly one URI SAN, found {}",
                uris.len()
            )));
        };
        self.parse_spiffe(uri)
    }

    fn parse_spiffe(&self, uri: &str) -> Result<Caller, AuthError> {
        let id = SpiffeId::from_str(uri)
            .map_err(|e| AuthError::BadCertificate(format!("URI SAN: {e}")))?;
        if id.trust_domain() != self.trust_domain {
            return Err(AuthError::BadCertificate(format!(
                "SPIFFE ID {uri:?} is outside trust domain {:?}",
                self.trust_domain
            )));
        }
        Ok(Caller::new(id.namespace(), id.service_account()))
    }
}

#[async_trait]
impl Authenticator for ClientCertAuthenticator {
    fn name(&self) -> &'static str {
        "client-cert"
    }

    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Caller>, AuthError> {
        let Some(chain) = &credentials.peer_certificates else {
            return Ok(None);
        };
        let Some(leaf) = chain.first() else {
            return Ok(None);
        };
        self.identity_of(leaf.as_ref()).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_uri_parsing() {
        let auth = ClientCertAuthenticator::new("cluster.local");
        assert_eq!(
            auth.parse_spiffe("spiffe://cluster.local/ns/a/sa/b")
                .unwrap(),
            Caller::new("a", "b")
        );
        for bad in [
            "spiffe://other.domain/ns/a/sa/b",
            "spiffe://cluster.local/ns/a",
            "spiffe://cluster.local/ns//sa/b",
            "spiffe://cluster.local/ns/a/sa/b/c",
            "https://cluster.local/ns/a/sa/b",
        ] {
            let err = auth.parse_spiffe(bad).unwrap_err();
            assert_eq!(err.reason(), "bad-certificate", "{bad}");
        }
    }

    #[test]
    fn garbage_is_refused() {
        let auth = ClientCertAuthenticator::new("cluster.local");
        let err = auth.identity_of(b"not der").unwrap_err();
        assert!(err.to_string().contains("not a valid X.509 certificate"));
    }
}

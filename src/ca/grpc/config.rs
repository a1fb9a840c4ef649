//! What `outrigger serve` decides about the CA service: the trust domain,
//! the serving certificate's names, and which authenticators to use; and
//! turning that into an [`AuthChain`].
//!
//! Authenticators are tried in this order: client certificate (renewal by
//! mutual TLS), then the token authenticators (local JWT, TokenReview,
//! static token file) in the order given.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::auth::client_cert::ClientCertAuthenticator;
use super::auth::jwt::{DEFAULT_ISSUER, Jwks, JwksError, JwtAuthenticator, JwtPolicy};
use super::auth::static_tokens::{StaticTokenError, StaticTokens};
use super::auth::{AuthChain, Authenticator, DEFAULT_AUDIENCE};

/// Istio's port for the CA service (`CA_ADDR`).
pub const DEFAULT_PORT: u16 = 15012;

/// The CA service's settings.
#[derive(Debug, Clone)]
pub struct CaServiceConfig {
    /// The trust domain of issued SPIFFE IDs (`cluster.local`).
    pub trust_domain: String,
    /// DNS names of the serving certificate (e.g. `outrigger.outrigger-system.svc`).
    pub serving_dns_names: Vec<String>,
    /// IP addresses of the serving certificate.
    pub serving_ips: Vec<IpAddr>,
    /// Accept renewal with a client certificate from this CA.
    pub client_certificates: bool,
    /// Verify ServiceAccount JWTs locally against this JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// The only accepted JWT issuer, when given; otherwise Kubernetes'
    /// default issuer for `jwks_file`, and the API server's discovered issuer
    /// in a cluster.
    pub jwt_issuer: Option<String>,
    /// Accepted token audiences (JWT and TokenReview).
    pub audiences: Vec<String>,
    /// Standalone mode: the static token file (see
    /// [`static_tokens`](super::auth::static_tokens) for the format).
    pub static_token_file: Option<PathBuf>,
}

impl Default for CaServiceConfig {
    fn default() -> Self {
        Self {
            trust_domain: "cluster.local".to_string(),
            serving_dns_names: vec!["localhost".to_string()],
            serving_ips: Vec::new(),
            client_certificates: true,
            jwks_file: None,
            jwt_issuer: None,
            audiences: vec![DEFAULT_AUDIENCE.to_string()],
            static_token_file: None,
        }
    }
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The JWKS file is unusable.
    #[error("--jwks-file")]
    Jwks(#[source] JwksError),
    /// The static token file is unusable.
    #[error("--static-token-file")]
    StaticTokens(#[source] StaticTokenError),
    /// No authenticator at all: nobody could get a certificate.
    #[error(
        "the CA service has no authenticator: give a JWKS file, a static token file, enable client certificates, or run in a cluster (TokenReview)"
    )]
    NoAuthenticator,
}

impl CaServiceConfig {
    /// The authenticator chain: client certificates, local JWT, then
    /// `extra` (the cluster layer's TokenReview, a JWKS fetched from the API
    /// server...), then the static token file.
    pub fn auth_chain(&self, extra: Vec<Arc<dyn Authenticator>>) -> Result<AuthChain, ConfigError> {
        let mut chain = AuthChain::default();
        let mut tokens = 0;
        if self.client_certificates {
            chain.push(Arc::new(ClientCertAuthenticator::new(&self.trust_domain)));
        }
        if let Some(path) = &self.jwks_file {
            let jwks = Jwks::load(path).map_err(ConfigError::Jwks)?;
            chain.push(Arc::new(JwtAuthenticator::new(self.jwt_policy(), jwks)));
            tokens += 1;
        }
        for authenticator in extra {
            chain.push(authenticator);
            tokens += 1;
        }
        if let Some(path) = &self.static_token_file {
            let file = StaticTokens::load(path).map_err(ConfigError::StaticTokens)?;
            chain.push(Arc::new(file));
            tokens += 1;
        }
        if tokens == 0 && !self.client_certificates {
            return Err(ConfigError::NoAuthenticator);
        }
        Ok(chain)
    }

    /// The JWT policy these settings describe.
    pub fn jwt_policy(&self) -> JwtPolicy {
        JwtPolicy {
            issuer: self
                .jwt_issuer
                .clone()
                .unwrap_or_else(|| DEFAULT_ISSUER.to_string()),
            audiences: self.audiences.clone(),
            ..JwtPolicy::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_order_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, "t a/b\n").unwrap();
        let config = CaServiceConfig {
            static_token_file: Some(tokens.clone()),
            ..CaServiceConfig::default()
        };
        let chain = config.auth_chain(Vec::new()).unwrap();
        assert_eq!(format!("{chain:?}"), r#"["client-cert", "static-token"]"#);

        std::fs::write(&tokens, "t a\n").unwrap();
        let err = config.auth_chain(Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "--static-token-file");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("line 1"), "{cause}");

        let config = CaServiceConfig {
            jwks_file: Some(dir.path().join("missing.json")),
            ..CaServiceConfig::default()
        };
        assert!(matches!(
            config.auth_chain(Vec::new()),
            Err(ConfigError::Jwks(JwksError::Read { .. }))
        ));

        let config = CaServiceConfig {
            client_certificates: false,
            ..CaServiceConfig::default()
        };
        assert!(matches!(
            config.auth_chain(Vec::new()),
            Err(ConfigError::NoAuthenticator)
        ));
    }
}

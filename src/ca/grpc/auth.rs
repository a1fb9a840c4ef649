//! Who is calling: the one [`Authenticator`] trait every way of proving an
//! identity implements, and the chain that tries them in turn.
//!
//! A caller proves it runs as a Kubernetes ServiceAccount with its projected
//! token (`authorization: Bearer <token>` metadata, as Istio's pilot-agent
//! sends it) or, when renewing, with a still-valid client certificate from
//! this CA. The identity always comes from these credentials, never from what
//! the request asks for.
//!
//! Implementations: [`jwt`] (local verification against the issuer's JWKS),
//! [`static_tokens`] (standalone mode), [`client_cert`] (mutual-TLS renewal)
//! and `crate::cluster::token_review` (the API server's TokenReview).

pub mod binding;
pub mod cache;
pub mod client_cert;
pub mod jwt;
pub mod static_tokens;
pub mod watched_file;

use std::fmt;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use tonic::async_trait;
use tracing::debug;

use binding::{BindingCheck, BindingVerdict, TokenBinding};

/// The name every local JWT authenticator ([`jwt::JwtAuthenticator`], the
/// cluster's `ClusterJwt`) gives, and by which the chain knows whose
/// acceptances its binding check confirms.
pub const JWT: &str = "jwt";

/// The audience a ServiceAccount token must carry to be accepted, as in Istio.
pub const DEFAULT_AUDIENCE: &str = "istio-ca";

/// An authenticated caller: the ServiceAccount it runs as.
///
/// The CA turns it into `spiffe://<trust-domain>/ns/<namespace>/sa/<sa>`
/// with its own trust domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub service_account: String,
}

impl Caller {
    /// A caller from its namespace and ServiceAccount name.
    pub fn new(namespace: impl Into<String>, service_account: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            service_account: service_account.into(),
        }
    }

    /// Parses Kubernetes' ServiceAccount username,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub fn from_username(username: &str) -> Option<Self> {
        let rest = username.strip_prefix("system:serviceaccount:")?;
        let (namespace, name) = rest.split_once(':')?;
        if namespace.is_empty() || name.is_empty() || name.contains(':') {
            return None;
        }
        Some(Self::new(namespace, name))
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.service_account)
    }
}

/// What a request carries that can prove who sent it.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The bearer token from the `authorization` metadata, if any.
    pub bearer_token: Option<String>,
    /// The client certificate chain the TLS handshake verified, leaf first.
    pub peer_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "[elided]"),
            )
            .field(
                "peer_certificates",
                &self.peer_certificates.as_ref().map(|c| c.len()),
            )
            .finish()
    }
}

/// Why credentials were refused. Each variant has a stable
/// [`reason`](AuthError::reason), used as the
/// `outrigger_ca_authentication_failures_total{reason}` label.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Neither a bearer token nor a client certificate was presented.
    #[error(
        "no credentials: send `authorization: Bearer <service-account token>` metadata or a client certificate from this CA"
    )]
    Missing,
    /// The token is not a well-formed JWT or lacks a required claim.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The token's signature does not verify against any trusted key.
    #[error("token signature does not verify: {0}")]
    BadSignature(String),
    /// The token expired.
    #[error("token expired")]
    Expired,
    /// The token is not valid yet (`nbf` in the future).
    #[error("token not valid yet (nbf is in the future)")]
    NotYetValid,
    /// The token was issued by someone else.
    #[error("token issuer is not trusted (expected {expected})")]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
    },
    /// The token names a ServiceAccount, or a pod or Secret, that no longer
    /// exists or was replaced: the API server has revoked it.
    #[error("token revoked: {0}")]
    Revoked(String),
    /// The token names a signing key the issuer does not (or no longer)
    /// publish.
    #[error("token signed by an unknown key: {0}")]
    UnknownKey(String),
    /// The token was minted for another audience.
    #[error("token audience does not include any of {expected:?}")]
    WrongAudience {
        /// The accepted audiences.
        expected: Vec<String>,
    },
    /// The token is valid but does not name a ServiceAccount.
    #[error("token does not identify a Kubernetes ServiceAccount: {0}")]
    NotServiceAccount(String),
    /// The token is not known (static token file) or was rejected by the
    /// API server (TokenReview).
    #[error("token rejected: {0}")]
    Rejected(String),
    /// The client certificate cannot be used as an identity.
    #[error("client certificate refused: {0}")]
    BadCertificate(String),
    /// The authenticator could not do its job (API server unreachable...).
    #[error("authentication backend failed: {0}")]
    Backend(String),
}

impl AuthError {
    /// Every [`AuthError::reason`], so that the metrics can show each at 0
    /// before the first refusal.
    pub const REASONS: [&'static str; 13] = [
        "missing",
        "malformed",
        "bad-signature",
        "unknown-key",
        "revoked",
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "not-service-account",
        "rejected",
        "bad-certificate",
        "backend",
    ];

    /// A short stable name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed(_) => "malformed",
            AuthError::BadSignature(_) => "bad-signature",
            AuthError::UnknownKey(_) => "unknown-key",
            AuthError::Revoked(_) => "revoked",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not-yet-valid",
            AuthError::WrongIssuer { .. } => "wrong-issuer",
            AuthError::WrongAudience { .. } => "wrong-audience",
            AuthError::NotServiceAccount(_) => "not-service-account",
            AuthError::Rejected(_) => "rejected",
            AuthError::BadCertificate(_) => "bad-certificate",
            AuthError::Backend(_) => "backend",
        }
    }
}

/// One way of proving who calls.
///
/// `Ok(None)` means "these credentials are not for me" (no bearer token for a
/// token authenticator, no client certificate for the mTLS one), so the next
/// authenticator is tried; `Err` means the credentials were meant for this
/// authenticator and are bad.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// A short name for logs (`jwt`, `token-review`, `static-token`, `client-cert`).
    fn name(&self) -> &'static str;

    /// Authenticates the caller.
    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Caller>, AuthError>;
}

/// Tries authenticators in order; the first that accepts wins. A token the
/// local JWT path (`jwt`) accepted counts only once the [`BindingCheck`],
/// when there is one, finds its bound objects current (see [`binding`]).
#[derive(Clone, Default)]
pub struct AuthChain {
    authenticators: Vec<Arc<dyn Authenticator>>,
    binding_check: Option<Arc<dyn BindingCheck>>,
}

impl fmt::Debug for AuthChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.authenticators.iter().map(|a| a.name()))
            .entries(self.binding_check.iter().map(|_| "+binding-check"))
            .finish()
    }
}

/// The chain refused the caller: every error the authenticators gave.
#[derive(Debug)]
pub struct ChainError {
    /// `(authenticator name, error)` for each authenticator that refused;
    /// empty when none applied.
    pub errors: Vec<(&'static str, AuthError)>,
}

impl ChainError {
    /// The reason label of the first refusal, or `missing`.
    pub fn reason(&self) -> &'static str {
        self.errors
            .first()
            .map(|(_, e)| e.reason())
            .unwrap_or("missing")
    }

    /// True when every refusal came from a failing backend rather than from
    /// bad credentials.
    pub fn is_backend_failure(&self) -> bool {
        !self.errors.is_empty()
            && self
                .errors
                .iter()
                .all(|(_, e)| matches!(e, AuthError::Backend(_)))
    }
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errors.is_empty() {
            return write!(f, "{}", AuthError::Missing);
        }
        write!(f, "authentication failed: ")?;
        for (i, (name, err)) in self.errors.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{name}: {err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ChainError {}

impl AuthChain {
    /// A chain over these authenticators, tried in this order.
    pub fn new(authenticators: Vec<Arc<dyn Authenticator>>) -> Self {
        Self {
            authenticators,
            binding_check: None,
        }
    }

    /// Checks the bound objects of every token the `jwt` authenticator
    /// accepts with `check` (in a cluster: against the API server).
    pub fn set_binding_check(&mut self, check: Arc<dyn BindingCheck>) {
        self.binding_check = Some(check);
    }

    /// Adds an authenticator at the end.
    pub fn push(&mut self, authenticator: Arc<dyn Authenticator>) {
        self.authenticators.push(authenticator);
    }

    /// The authenticated caller and the name of the authenticator that
    /// accepted it.
    pub async fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> Result<(Caller, &'static str), ChainError> {
        let mut errors = Vec::new();
        for authenticator in &self.authenticators {
            match authenticator.authenticate(credentials).await {
                Ok(Some(caller)) if authenticator.name() == JWT => {
                    match self.check_binding(credentials).await {
                        BindingVerdict::Current => return Ok((caller, JWT)),
                        BindingVerdict::Revoked(why) => {
                            errors.push((JWT, AuthError::Revoked(why)));
                        }
                        BindingVerdict::Unknown(why) => {
                            debug!(caller = %caller, why, "token binding not checked locally; asking the next authenticator");
                        }
                    }
                }
                Ok(Some(caller)) => return Ok((caller, authenticator.name())),
                Ok(None) => {}
                Err(err) => errors.push((authenticator.name(), err)),
            }
        }
        Err(ChainError { errors })
    }

    async fn check_binding(&self, credentials: &Credentials) -> BindingVerdict {
        let Some(check) = &self.binding_check else {
            return BindingVerdict::Current;
        };
        let Some(binding) = credentials
            .bearer_token
            .as_deref()
            .and_then(TokenBinding::of_verified_jwt)
        else {
            return BindingVerdict::Unknown(
                "the token has no kubernetes.io ServiceAccount UID".into(),
            );
        };
        check.check(&binding).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Result<Option<Caller>, &'static str>, &'static str);

    #[async_trait]
    impl Authenticator for Fixed {
        fn name(&self) -> &'static str {
            self.1
        }
        async fn authenticate(&self, _: &Credentials) -> Result<Option<Caller>, AuthError> {
            self.0
                .clone()
                .map_err(|m| AuthError::Rejected(m.to_string()))
        }
    }

    #[test]
    fn reasons_lists_the_reason_of_every_error() {
        let every = [
            AuthError::Missing,
            AuthError::Malformed(String::new()),
            AuthError::BadSignature(String::new()),
            AuthError::UnknownKey(String::new()),
            AuthError::Revoked(String::new()),
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::WrongIssuer {
                expected: String::new(),
            },
            AuthError::WrongAudience {
                expected: Vec::new(),
            },
            AuthError::NotServiceAccount(String::new()),
            AuthError::Rejected(String::new()),
            AuthError::BadCertificate(String::new()),
            AuthError::Backend(String::new()),
        ];
        let reasons: Vec<&str> = every.iter().map(AuthError::reason).collect();
        assert_eq!(reasons, AuthError::REASONS);
        // The chain's fallback when no authenticator applied is listed too.
        assert!(AuthError::REASONS.contains(&ChainError { errors: Vec::new() }.reason()));
    }

    #[test]
    fn username_parsing() {
        assert_eq!(
            Caller::from_username("system:serviceaccount:ns-a:sa-x"),
            Some(Caller::new("ns-a", "sa-x"))
        );
        assert_eq!(Caller::from_username("system:serviceaccount:ns-a"), None);
        assert_eq!(Caller::from_username("system:serviceaccount::x"), None);
        assert_eq!(Caller::from_username("system:serviceaccount:a:b:c"), None);
        assert_eq!(Caller::from_username("alice"), None);
    }

    #[tokio::test]
    async fn chain_takes_first_acceptance_and_collects_refusals() {
        let chain = AuthChain::new(vec![
            Arc::new(Fixed(Ok(None), "none")),
            Arc::new(Fixed(Err("nope"), "bad")),
            Arc::new(Fixed(Ok(Some(Caller::new("a", "b"))), "good")),
        ]);
        let (caller, by) = chain.authenticate(&Credentials::default()).await.unwrap();
        assert_eq!((caller, by), (Caller::new("a", "b"), "good"));

        let chain = AuthChain::new(vec![
            Arc::new(Fixed(Ok(None), "none")),
            Arc::new(Fixed(Err("nope"), "bad")),
        ]);
        let err = chain
            .authenticate(&Credentials::default())
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "rejected");
        assert_eq!(
            err.to_string(),
            "authentication failed: bad: token rejected: nope"
        );

        let empty = AuthChain::new(vec![Arc::new(Fixed(Ok(None), "none"))]);
        let err = empty
            .authenticate(&Credentials::default())
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "missing");
        assert!(err.to_string().starts_with("no credentials"));
    }

    /// A binding check with a fixed verdict, counting its calls.
    #[derive(Debug)]
    struct Verdict(binding::BindingVerdict, std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl BindingCheck for Verdict {
        async fn check(&self, binding: &TokenBinding) -> BindingVerdict {
            assert_eq!(binding.service_account.uid, "sa-uid");
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.clone()
        }
    }

    fn bound_token() -> Credentials {
        use base64::Engine as _;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let payload =
            br#"{"kubernetes.io":{"namespace":"a","serviceaccount":{"name":"b","uid":"sa-uid"}}}"#;
        Credentials {
            bearer_token: Some(format!("{}.{}.sig", b64(b"{}"), b64(payload))),
            peer_certificates: None,
        }
    }

    async fn through_checked_chain(
        verdict: BindingVerdict,
    ) -> (Result<(Caller, &'static str), ChainError>, usize) {
        let check = Arc::new(Verdict(verdict, Default::default()));
        let mut chain = AuthChain::new(vec![
            Arc::new(Fixed(Ok(Some(Caller::new("a", "b"))), JWT)),
            Arc::new(Fixed(
                Err("serviceaccounts \"b\" not found"),
                "token-review",
            )),
        ]);
        chain.set_binding_check(check.clone());
        let result = chain.authenticate(&bound_token()).await;
        (result, check.1.load(std::sync::atomic::Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_locally_verified_token_counts_only_while_its_bindings_are_current() {
        let (accepted, calls) = through_checked_chain(BindingVerdict::Current).await;
        assert_eq!(accepted.unwrap(), (Caller::new("a", "b"), JWT));
        assert_eq!(calls, 1);

        let (revoked, _) =
            through_checked_chain(BindingVerdict::Revoked("serviceaccount a/b is gone".into()))
                .await;
        let err = revoked.unwrap_err();
        assert_eq!(err.reason(), "revoked");
        assert!(
            err.to_string().contains("serviceaccount a/b is gone"),
            "{err}"
        );

        // When the check cannot tell, the next authenticator decides.
        let (unknown, _) =
            through_checked_chain(BindingVerdict::Unknown("cache not synced".into())).await;
        let err = unknown.unwrap_err();
        assert_eq!(err.errors.len(), 1, "{err}");
        assert_eq!(err.errors[0].0, "token-review");
    }

    #[test]
    fn credentials_debug_hides_the_token() {
        let creds = Credentials {
            bearer_token: Some("secret-token".into()),
            peer_certificates: None,
        };
        assert!(!format!("{creds:?}").contains("secret-token"));
    }
}

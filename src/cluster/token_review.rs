//! ServiceAccount tokens checked by the API server: a Kubernetes
//! [TokenReview](https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-review-v1/)
//! per new token, for the configured audiences (default `istio-ca`).
//!
//! A review is accepted only when it is authenticated, its user is in group
//! `system:serviceaccounts` and its username is
//! `system:serviceaccount:<namespace>:<name>`; that ServiceAccount is the
//! caller. Successful reviews are cached for a short, bounded time, keyed by
//! the SHA-256 of the token (the token itself is never stored), so that a
//! burst of renewals does not become a burst of API calls.

use std::fmt;
use std::time::Instant;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::api::Api;
use tonic::async_trait;
use tracing::debug;

use super::writes;
pub use crate::ca::grpc::auth::cache::CacheSettings;

use crate::ca::grpc::auth::cache::{TokenCache, token_hash};
use crate::ca::grpc::auth::{AuthError, Authenticator, Caller, Credentials, DEFAULT_AUDIENCE};

/// The group every ServiceAccount belongs to.
const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

/// Authenticates bearer tokens with the API server's TokenReview.
pub struct TokenReviewAuthenticator {
    api: Api<TokenReview>,
    audiences: Vec<String>,
    cache: TokenCache,
}

impl fmt::Debug for TokenReviewAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReviewAuthenticator")
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl TokenReviewAuthenticator {
    /// Reviews with `client` for `audiences` (empty: `istio-ca`).
    pub fn new(client: kube::Client, audiences: Vec<String>, cache: CacheSettings) -> Self {
        let audiences = if audiences.is_empty() {
            vec![DEFAULT_AUDIENCE.to_string()]
        } else {
            audiences
        };
        Self {
            api: Api::all(client),
            audiences,
            cache: TokenCache::new(cache),
        }
    }

    /// Reviews one token (through the cache).
    pub async fn review(&self, token: &str) -> Result<Caller, AuthError> {
        let key = token_hash(token);
        if let Some(caller) = self.cache.get(&key, Instant::now()) {
            debug!(caller = %caller, "token review cache hit");
            return Ok(caller);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                audiences: Some(self.audiences.clone()),
                token: token.to_string(),
            },
            ..TokenReview::default()
        };
        let answer = self
            .api
            .create(&writes::post_params(), &review)
            .await
            .map_err(|e| AuthError::Backend(format!("TokenReview failed: {e}")))?;
        let caller = self.judge(answer.status.unwrap_or_default())?;
        self.cache.put(key, caller.clone(), Instant::now(), None);
        Ok(caller)
    }

    fn judge(&self, status: TokenReviewStatus) -> Result<Caller, AuthError> {
        if status.authenticated != Some(true) {
            return Err(refusal(
                status.error.as_deref().unwrap_or_default(),
                &self.audiences,
            ));
        }
        if let Some(granted) = &status.audiences
            && !granted.is_empty()
            && !granted.iter().any(|a| self.audiences.contains(a))
        {
            return Err(AuthError::WrongAudience {
                expected: self.audiences.clone(),
            });
        }
        let user = status.user.unwrap_or_default();
        let username = user.username.unwrap_or_default();
        let groups = user.groups.unwrap_or_default();
        if !groups.iter().any(|g| g == SERVICE_ACCOUNTS_GROUP) {
            return Err(AuthError::NotServiceAccount(format!(
                "user {username:?} is not in group {SERVICE_ACCOUNTS_GROUP}"
            )));
        }
        Caller::from_username(&username).ok_or_else(|| {
            AuthError::NotServiceAccount(format!(
                "username {username:?} is not system:serviceaccount:<namespace>:<name>"
            ))
        })
    }
}

#[async_trait]
impl Authenticator for TokenReviewAuthenticator {
    fn name(&self) -> &'static str {
        "token-review"
    }

    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Caller>, AuthError> {
        match &credentials.bearer_token {
            Some(token) => self.review(token).await.map(Some),
            None => Ok(None),
        }
    }
}

/// The refusal for a TokenReview's `status.error`, by what the API server
/// says (its wording, v1.24 to v1.32): a revoked token (its ServiceAccount,
/// pod or Secret deleted or replaced), an expired one, one for another
/// audience, or any other refusal. The metric labels tell them apart.
pub fn refusal(error: &str, audiences: &[String]) -> AuthError {
    let detail = if error.is_empty() {
        "TokenReview: not authenticated".to_string()
    } else {
        format!("TokenReview: {error}")
    };
    let lower = error.to_ascii_lowercase();
    if lower.contains("has been invalidated")
        || lower.contains("not found")
        || lower.contains("does not match")
        || lower.contains("is being deleted")
        || lower.contains("has been deleted")
    {
        AuthError::Revoked(detail)
    } else if lower.contains("expired") {
        AuthError::Expired
    } else if lower.contains("audience") {
        AuthError::WrongAudience {
            expected: audiences.to_vec(),
        }
    } else {
        AuthError::Rejected(detail)
    }
}

#[cfg(test)]
mod tests;

//! The cluster's ServiceAccount issuer keys, fetched from the API server so
//! the CA service verifies projected tokens locally (no TokenReview round
//! trip per request).
//!
//! The API server publishes its OIDC discovery document at
//! `/.well-known/openid-configuration` (whose `issuer` is the `iss` of every
//! token it signs) and the public keys at `/openid/v1/jwks` (Kubernetes'
//! "Service account issuer discovery"). [`run`] fetches both, installs them
//! in a [`ClusterJwt`] authenticator, and refreshes them every
//! [`REFRESH_PERIOD`] so key rotations are followed; a failed fetch is
//! retried with backoff and keeps the keys already installed.
//!
//! Issuer precedence: an explicit `--jwt-issuer` wins over discovery
//! ([`IssuerSource::from_flag`]); the discovery document is then not fetched.
//! A `--jwks-file` wins over all of this (the CA service then does not start
//! the fetcher at all).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use tonic::async_trait;
use tracing::{info, warn};

use super::retry::Backoff;
use crate::ca::grpc::auth::jwt::{Jwks, JwksError, JwtAuthenticator, JwtPolicy};
use crate::ca::grpc::auth::{AuthError, Authenticator, Caller, Credentials};

/// The API server's OIDC discovery document.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// The API server's ServiceAccount token signing keys.
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// The only media type the API server serves [`DISCOVERY_PATH`] as.
pub const DISCOVERY_MEDIA_TYPE: &str = "application/json";
/// The only media type the API server serves [`JWKS_PATH`] as (RFC 7517):
/// it answers 406 Not Acceptable to `Accept: application/json`.
pub const JWKS_MEDIA_TYPE: &str = "application/jwk-set+json";
/// How often the keys are fetched again after a success (the API server
/// keeps old keys published across a rotation, so minutes are ample).
pub const REFRESH_PERIOD: Duration = Duration::from_secs(5 * 60);
/// First retry delay after a failed fetch (doubles up to the refresh period).
pub const RETRY_BASE: Duration = Duration::from_secs(1);

/// Where the accepted `iss` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerSource {
    /// Given with `--jwt-issuer`: used as is, discovery is skipped.
    Fixed(String),
    /// Read from the API server's discovery document on each refresh.
    Discover,
}

impl IssuerSource {
    /// The source for `--jwt-issuer`: a value given explicitly wins over
    /// discovery; without one, the issuer is discovered.
    pub fn from_flag(flag: Option<&str>) -> Self {
        match flag {
            Some(issuer) => Self::Fixed(issuer.to_string()),
            None => Self::Discover,
        }
    }
}

/// Why the keys could not be fetched or used (the old keys stay).
#[derive(Debug, Error)]
pub enum JwksFetchError {
    /// The API server could not be asked or refused the request.
    #[error("GET {path} failed")]
    Request {
        /// The path requested.
        path: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The discovery document is not JSON with a string `issuer`.
    #[error("{DISCOVERY_PATH} is not an OIDC discovery document with a string \"issuer\"")]
    Discovery(#[source] serde_json::Error),
    /// The discovery document's `issuer` is empty.
    #[error("{DISCOVERY_PATH} has an empty \"issuer\"")]
    EmptyIssuer,
    /// The JWKS is malformed or has no usable key.
    #[error("{JWKS_PATH} is not a usable JWKS")]
    Jwks(#[source] JwksError),
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
}

/// The `issuer` of an OIDC discovery document.
pub fn parse_discovery(text: &[u8]) -> Result<String, JwksFetchError> {
    let doc: Discovery = serde_json::from_slice(text).map_err(JwksFetchError::Discovery)?;
    if doc.issuer.trim().is_empty() {
        return Err(JwksFetchError::EmptyIssuer);
    }
    Ok(doc.issuer)
}

/// How long to wait before the next fetch: the refresh period after a
/// success (and the backoff starts over), else the next backoff delay,
/// never longer than the period.
pub fn next_wait(succeeded: bool, backoff: &mut Backoff, period: Duration) -> Duration {
    if succeeded {
        backoff.reset();
        period
    } else {
        backoff.next_delay().min(period)
    }
}

/// A JWT authenticator whose issuer and keys come from the API server.
///
/// Until the first fetch succeeds it declines every token (`Ok(None)`), so
/// the next authenticator (TokenReview) decides; afterwards it verifies like
/// [`JwtAuthenticator`], and a token it cannot verify is still offered to
/// the rest of the chain.
pub struct ClusterJwt {
    policy: JwtPolicy,
    source: IssuerSource,
    current: RwLock<Option<Installed>>,
}

impl std::fmt::Debug for ClusterJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterJwt")
            .field("source", &self.source)
            .field("issuer", &self.issuer())
            .finish_non_exhaustive()
    }
}

impl ClusterJwt {
    /// An authenticator with `policy`'s audiences, leeway and cache, whose
    /// issuer comes from `source`; no keys yet.
    pub fn new(policy: JwtPolicy, source: IssuerSource) -> Self {
        Self {
            policy,
            source,
            current: RwLock::new(None),
        }
    }

    /// Where the issuer comes from.
    pub fn source(&self) -> &IssuerSource {
        &self.source
    }

    fn current(&self) -> Option<Installed> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The issuer accepted now (`None` before the first successful fetch).
    pub fn issuer(&self) -> Option<String> {
        self.current().map(|installed| installed.issuer)
    }

    /// Installs freshly fetched keys for `issuer`: the same issuer keeps its
    /// authenticator (keys swapped, verified-token cache emptied); a new
    /// issuer gets a new one.
    pub fn install(&self, issuer: &str, jwks: Jwks) {
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match guard.as_ref() {
            Some(installed) if installed.issuer == issuer => installed.auth.set_jwks(jwks),
            _ => {
                let policy = JwtPolicy {
                    issuer: issuer.to_string(),
                    ..self.policy.clone()
                };
                *guard = Some(Installed {
                    issuer: issuer.to_string(),
                    auth: Arc::new(JwtAuthenticator::new(policy, jwks)),
                });
            }
        }
    }
}

/// The authenticator built for the last fetched issuer.
#[derive(Clone)]
struct Installed {
    issuer: String,
    auth: Arc<JwtAuthenticator>,
}

#[async_trait]
impl Authenticator for ClusterJwt {
    fn name(&self) -> &'static str {
        crate::ca::grpc::auth::JWT
    }

    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Caller>, AuthError> {
        match self.current() {
            Some(installed) => installed.auth.authenticate(credentials).await,
            None => Ok(None),
        }
    }
}

async fn get(
    client: &kube::Client,
    path: &'static str,
    media_type: &'static str,
) -> Result<String, JwksFetchError> {
    let request = http::Request::get(path)
        .header(http::header::ACCEPT, media_type)
        .body(Vec::new())
        .map_err(|e| JwksFetchError::Request {
            path,
            source: kube::Error::HttpError(e),
        })?;
    client
        .request_text(request)
        .await
        .map_err(|source| JwksFetchError::Request { path, source })
}

/// Fetches the issuer (unless fixed) and the keys once; nothing is
/// installed.
pub async fn fetch(
    client: &kube::Client,
    source: &IssuerSource,
) -> Result<(String, Jwks), JwksFetchError> {
    let issuer = match source {
        IssuerSource::Fixed(issuer) => issuer.clone(),
        IssuerSource::Discover => parse_discovery(
            get(client, DISCOVERY_PATH, DISCOVERY_MEDIA_TYPE)
                .await?
                .as_bytes(),
        )?,
    };
    let text = get(client, JWKS_PATH, JWKS_MEDIA_TYPE).await?;
    let jwks = Jwks::from_json(text.as_bytes()).map_err(JwksFetchError::Jwks)?;
    Ok((issuer, jwks))
}

/// Fetches and installs once; on error the installed keys stay.
pub async fn refresh(client: &kube::Client, auth: &ClusterJwt) -> Result<(), JwksFetchError> {
    let (issuer, jwks) = fetch(client, &auth.source).await?;
    info!(issuer = %issuer, keys = ?jwks, "ServiceAccount issuer keys installed from the API server");
    auth.install(&issuer, jwks);
    Ok(())
}

/// Keeps `auth`'s keys fresh, forever: fetches now, then every `period`;
/// after an error, retries with backoff (1 s doubling, at most `period`),
/// logging the error and keeping the old keys.
pub async fn run(client: kube::Client, auth: Arc<ClusterJwt>, period: Duration) {
    let mut backoff = Backoff::new(RETRY_BASE, period);
    loop {
        let result = refresh(&client, &auth).await;
        let wait = next_wait(result.is_ok(), &mut backoff, period);
        if let Err(error) = result {
            warn!(
                %error,
                source = ?std::error::Error::source(&error).map(ToString::to_string),
                have_keys = auth.current().is_some(),
                retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "fetching the ServiceAccount issuer keys failed; keeping the current ones"
            );
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_gives_the_issuer() {
        let doc = br#"{"issuer":"https://oidc.example/abc","jwks_uri":"https://x/openid/v1/jwks","response_types_supported":["id_token"]}"#;
        assert_eq!(parse_discovery(doc).unwrap(), "https://oidc.example/abc");
    }

    #[test]
    fn bad_discovery_documents_are_refused() {
        for doc in [&b"not json"[..], br#"{"jwks_uri":"x"}"#, br#"{"issuer":7}"#] {
            let err = parse_discovery(doc).unwrap_err();
            assert!(matches!(err, JwksFetchError::Discovery(_)), "{err}");
            assert!(err.to_string().contains("\"issuer\""), "{err}");
        }
        assert!(matches!(
            parse_discovery(br#"{"issuer":" "}"#),
            Err(JwksFetchError::EmptyIssuer)
        ));
    }

    #[test]
    fn explicit_issuer_flag_wins_and_the_default_discovers() {
        assert_eq!(IssuerSource::from_flag(None), IssuerSource::Discover);
        assert_eq!(
            IssuerSource::from_flag(Some("https://issuer.example")),
            IssuerSource::Fixed("https://issuer.example".into())
        );
    }

    #[test]
    fn waits_the_period_after_success_and_backs_off_after_errors() {
        let period = Duration::from_secs(300);
        let mut backoff = Backoff::new(Duration::from_secs(1), period);
        let waits: Vec<u64> = [false, false, false, true, false]
            .into_iter()
            .map(|ok| next_wait(ok, &mut backoff, period).as_secs())
            .collect();
        assert_eq!(waits, vec![1, 2, 4, 300, 1]);
        let mut long = Backoff::new(Duration::from_secs(200), Duration::from_secs(900));
        assert_eq!(
            next_wait(false, &mut long, period),
            Duration::from_secs(200)
        );
        assert_eq!(next_wait(false, &mut long, period), period);
    }

    #[tokio::test]
    async fn declines_every_token_before_the_first_fetch() {
        let auth = ClusterJwt::new(JwtPolicy::default(), IssuerSource::Discover);
        let credentials = Credentials {
            bearer_token: Some("a.b.c".into()),
            peer_certificates: None,
        };
        assert!(auth.authenticate(&credentials).await.unwrap().is_none());
        assert_eq!(auth.issuer(), None);
    }
}

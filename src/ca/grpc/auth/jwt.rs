//! Local verification of Kubernetes ServiceAccount tokens (JWTs) against the
//! issuer's public keys, with no API round trip per request.
//!
//! The keys are a JWKS: the API server's `/openid/v1/jwks` (fetched by the
//! cluster layer and handed in with [`JwtAuthenticator::set_jwks`]) or a file
//! given by flag. A token is accepted when its signature verifies (RS256/384/512,
//! PS256/384/512, ES256/384), `iss` is the configured issuer, `aud` includes
//! one of the accepted audiences (default `istio-ca`), `exp`/`nbf` hold, and
//! its `kubernetes.io` claims name a namespace and ServiceAccount, which become
//! the caller's identity (see Kubernetes' "Service account token volume
//! projection").

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tonic::async_trait;
use tracing::{info, warn};

use super::cache::{CacheSettings, TokenCache, token_hash};
use super::watched_file::WatchedFile;
use super::{AuthError, Authenticator, Caller, Credentials, DEFAULT_AUDIENCE};

/// The issuer of a default Kubernetes API server's ServiceAccount tokens.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A JWKS that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The file could not be read.
    #[error("cannot read JWKS file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a JWKS document.
    #[error("JWKS is not valid JSON of the form {{\"keys\": [...]}}")]
    Parse(#[source] serde_json::Error),
    /// The JWKS has no RSA or EC public key this CA can verify with.
    #[error("JWKS has no usable RSA or EC (P-256/P-384) public key ({skipped} key(s) skipped)")]
    NoUsableKey {
        /// How many keys were present but unusable.
        skipped: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
}

fn family_of(alg: Algorithm) -> Option<Family> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(Family::Rsa),
        Algorithm::ES256 | Algorithm::ES384 => Some(Family::Ec),
        // HMAC and EdDSA are not used for ServiceAccount tokens: refuse them,
        // which also rules out algorithm-confusion tricks.
        _ => None,
    }
}

#[derive(Clone)]
struct Key {
    kid: Option<String>,
    family: Family,
    key: DecodingKey,
}

/// Parsed, usable public keys.
#[derive(Clone)]
pub struct Jwks {
    keys: Vec<Key>,
    /// The file they were read from ([`Jwks::load`]), and its contents: an
    /// authenticator made from them reads the file again when it changes.
    source: Option<(PathBuf, Vec<u8>)>,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field(
                "kids",
                &self
                    .keys
                    .iter()
                    .map(|k| k.kid.as_deref())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`), keeping the RSA and EC keys.
    pub fn from_json(text: &[u8]) -> Result<Self, JwksError> {
        let set: JwkSet = serde_json::from_slice(text).map_err(JwksError::Parse)?;
        let mut keys = Vec::new();
        let mut skipped = 0;
        for jwk in &set.keys {
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Family::Rsa,
                AlgorithmParameters::EllipticCurve(_) => Family::Ec,
                _ => {
                    skipped += 1;
                    continue;
                }
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    family,
                    key,
                }),
                Err(err) => {
                    warn!(kid = jwk.common.key_id.as_deref().unwrap_or(""), error = %err, "skipping unusable JWKS key");
                    skipped += 1;
                }
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey { skipped });
        }
        Ok(Self { keys, source: None })
    }

    /// Reads and parses a JWKS file. A [`JwtAuthenticator`] made from the
    /// result reads the file again when it changes.
    pub fn load(path: &Path) -> Result<Self, JwksError> {
        let text = std::fs::read(path).map_err(|source| JwksError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut jwks = Self::from_json(&text)?;
        jwks.source = Some((path.to_path_buf(), text));
        Ok(jwks)
    }
}

/// Which tokens the [`JwtAuthenticator`] accepts.
#[derive(Debug, Clone)]
pub struct JwtPolicy {
    /// The only accepted `iss`.
    pub issuer: String,
    /// `aud` must include at least one of these.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// Verified tokens are remembered (by hash, never past their `exp`) so a
    /// burst of requests with one token costs one signature check. The cache
    /// is emptied when the keys change.
    pub cache: CacheSettings,
}

impl Default for JwtPolicy {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_string(),
            audiences: vec![DEFAULT_AUDIENCE.to_string()],
            leeway_seconds: 30,
            cache: CacheSettings::default(),
        }
    }
}

/// Verifies ServiceAccount JWTs locally (see the module docs).
pub struct JwtAuthenticator {
    policy: JwtPolicy,
    jwks: RwLock<Arc<Jwks>>,
    cache: TokenCache,
    /// `--jwks-file`, read again when it changes.
    file: Option<WatchedFile>,
}

impl fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<u64>,
    sub: Option<String>,
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<KubernetesClaims>,
}

#[derive(Deserialize)]
struct KubernetesClaims {
    namespace: Option<String>,
    serviceaccount: Option<Named>,
}

#[derive(Deserialize)]
struct Named {
    name: Option<String>,
}

impl JwtAuthenticator {
    /// An authenticator with this policy and these keys; keys read from a
    /// file ([`Jwks::load`]) follow the file: a changed file replaces them
    /// (and empties the cache, so that a removed key stops working at
    /// once), an unreadable or invalid one is reported and the previous
    /// keys kept.
    pub fn new(policy: JwtPolicy, mut jwks: Jwks) -> Self {
        let file = jwks
            .source
            .take()
            .map(|(path, text)| WatchedFile::new(&path, &text));
        Self {
            cache: TokenCache::new(policy.cache),
            policy,
            jwks: RwLock::new(Arc::new(jwks)),
            file,
        }
    }

    /// Reads the JWKS file again if it changed.
    fn follow_file(&self) {
        let Some(file) = &self.file else {
            return;
        };
        let Some(read) = file.changed() else {
            return;
        };
        let path = file.path().display().to_string();
        match read
            .map_err(|source| JwksError::Read {
                path: file.path().to_path_buf(),
                source,
            })
            .and_then(|text| Jwks::from_json(&text))
        {
            Ok(jwks) => {
                info!(file = %path, keys = jwks.keys.len(), "JWKS file reloaded");
                self.set_jwks(jwks);
            }
            Err(error) => {
                warn!(file = %path, %error, "JWKS file unusable; keeping the previous keys");
            }
        }
    }

    /// Replaces the trusted keys (the issuer rotated its keys).
    pub fn set_jwks(&self, jwks: Jwks) {
        let mut guard = match self.jwks.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(jwks);
        self.cache.clear();
    }

    fn current_jwks(&self) -> Arc<Jwks> {
        match self.jwks.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Verifies one token (through the cache) and returns the
    /// ServiceAccount it names.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        self.follow_file();
        let key = token_hash(token);
        let now = Instant::now();
        if let Some(caller) = self.cache.get(&key, now) {
            return Ok(caller);
        }
        let (caller, exp) = self.verify_uncached(token)?;
        let remaining = exp.saturating_sub(jsonwebtoken::get_current_timestamp());
        self.cache.put(
            key,
            caller.clone(),
            now,
            Some(now + Duration::from_secs(remaining)),
        );
        Ok(caller)
    }

    /// Verifies signature and claims; returns the caller and the token's `exp`.
    fn verify_uncached(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| AuthError::Malformed(format!("not a JWT: {err}")))?;
        let family = family_of(header.alg).ok_or_else(|| {
            AuthError::Malformed(format!(
                "algorithm {:?} is not accepted (RS*, PS*, ES256, ES384 are)",
                header.alg
            ))
        })?;

        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.policy.issuer]);
        validation.set_audience(&self.policy.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.policy.leeway_seconds;

        let jwks = self.current_jwks();
        let candidates: Vec<&Key> = jwks
            .keys
            .iter()
            .filter(|k| k.family == family)
            .filter(|k| match &header.kid {
                Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
                None => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(AuthError::UnknownKey(match &header.kid {
                Some(kid) => format!("no trusted key with kid {kid:?} for {:?}", header.alg),
                None => format!("no trusted key for {:?}", header.alg),
            }));
        }

        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    let caller = identity(&data.claims)?;
                    return Ok((caller, data.claims.exp.unwrap_or(0)));
                }
                Err(err) => match err.kind() {
                    ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                        last = Some(err);
                    }
                    _ => return Err(self.map_error(err.into_kind())),
                },
            }
        }
        Err(AuthError::BadSignature(
            last.map(|e| e.to_string())
                .unwrap_or_else(|| "no key verified it".to_string()),
        ))
    }

    fn map_error(&self, kind: ErrorKind) -> AuthError {
        match kind {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer {
                expected: self.policy.issuer.clone(),
            },
            ErrorKind::InvalidAudience => AuthError::WrongAudience {
                expected: self.policy.audiences.clone(),
            },
            ErrorKind::MissingRequiredClaim(claim) => {
                AuthError::Malformed(format!("missing required claim {claim:?}"))
            }
            ErrorKind::InvalidSignature => {
                AuthError::BadSignature("signature does not verify".to_string())
            }
            other => AuthError::Malformed(format!("{other:?}")),
        }
    }
}

fn identity(claims: &Claims) -> Result<Caller, AuthError> {
    let missing =
        || AuthError::NotServiceAccount("no kubernetes.io namespace/serviceaccount claims".into());
    let kube = claims.kubernetes.as_ref().ok_or_else(missing)?;
    let namespace = kube.namespace.as_deref().ok_or_else(missing)?;
    let name = kube
        .serviceaccount
        .as_ref()
        .and_then(|sa| sa.name.as_deref())
        .ok_or_else(missing)?;
    if namespace.is_empty() || name.is_empty() {
        return Err(missing());
    }
    let caller = Caller::new(namespace, name);
    if let Some(sub) = &claims.sub {
        let expected = format!("system:serviceaccount:{namespace}:{name}");
        if *sub != expected {
            return Err(AuthError::NotServiceAccount(format!(
                "sub {sub:?} disagrees with the kubernetes.io claims ({expected})"
            )));
        }
    }
    Ok(caller)
}

#[async_trait]
impl Authenticator for JwtAuthenticator {
    fn name(&self) -> &'static str {
        super::JWT
    }

    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Caller>, AuthError> {
        match &credentials.bearer_token {
            Some(token) => self.verify(token).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;

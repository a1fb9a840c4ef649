//! Standalone mode: a static file mapping bearer tokens to ServiceAccounts,
//! for trying outrigger without a cluster and for tests.
//!
//! # File format
//!
//! One token per line: the token, whitespace, then `<namespace>/<service-account>`.
//! Blank lines and lines starting with `#` are ignored.
//!
//! ```text
//! # token                          identity
//! 3f1c0a9e2b7d4c58a6e1f0b2c9d8e7a6  default/httpbin
//! 9b2e7d4c1a0f3e5d8c6b4a2918f7e6d5  shop/frontend
//! ```
//!
//! Tokens are kept only as SHA-256 hashes in memory and compared by hash.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ring::digest::{SHA256, digest};
use tonic::async_trait;
use tracing::{info, warn};

use super::watched_file::WatchedFile;
use super::{AuthError, Authenticator, Caller, Credentials};

/// A malformed or unreadable static token file.
#[derive(Debug, thiserror::Error)]
pub enum StaticTokenError {
    /// The file could not be read.
    #[error("cannot read static token file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line does not have the expected form.
    #[error(
        "static token file {path}, line {line}: {problem}; expected `<token> <namespace>/<service-account>`"
    )]
    Line {
        /// The file (or `<inline>`).
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong (never includes the token).
        problem: String,
    },
    /// The file names no token at all.
    #[error("static token file {path} has no tokens")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

type TokenHash = [u8; 32];

fn hash(token: &str) -> TokenHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

/// Authenticates callers by a static token file (see the module docs).
pub struct StaticTokens {
    by_hash: RwLock<Arc<HashMap<TokenHash, Caller>>>,
    /// The file ([`StaticTokens::load`]), read again when it changes.
    file: Option<WatchedFile>,
}

impl fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokens")
            .field("tokens", &self.current().len())
            .finish()
    }
}

fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !value.starts_with(['-', '.'])
        && !value.ends_with(['-', '.'])
}

impl StaticTokens {
    /// Reads and parses a token file. The tokens follow the file: a
    /// changed file replaces them, an unreadable or invalid one is
    /// reported and the previous tokens kept.
    pub fn load(path: &Path) -> Result<Self, StaticTokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| StaticTokenError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut tokens = Self::parse(&text, path)?;
        tokens.file = Some(WatchedFile::new(path, text.as_bytes()));
        Ok(tokens)
    }

    fn current(&self) -> Arc<HashMap<TokenHash, Caller>> {
        match self.by_hash.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the token file again if it changed.
    fn follow_file(&self) {
        let Some(file) = &self.file else {
            return;
        };
        let Some(read) = file.changed() else {
            return;
        };
        let path = file.path();
        let parsed = read
            .map_err(|source| StaticTokenError::Read {
                path: path.to_path_buf(),
                source,
            })
            .and_then(|bytes| Self::parse(&String::from_utf8_lossy(&bytes), path));
        match parsed {
            Ok(tokens) => {
                let tokens = tokens.current();
                info!(file = %path.display(), tokens = tokens.len(), "static token file reloaded");
                match self.by_hash.write() {
                    Ok(mut guard) => *guard = tokens,
                    Err(poisoned) => *poisoned.into_inner() = tokens,
                }
            }
            Err(error) => warn!(
                file = %path.display(),
                %error,
                "static token file unusable; keeping the previous tokens"
            ),
        }
    }

    /// Parses a token file's text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, StaticTokenError> {
        let bad = |line: usize, problem: &str| StaticTokenError::Line {
            path: path.to_path_buf(),
            line,
            problem: problem.to_string(),
        };
        let mut by_hash = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let mut fields = trimmed.split_whitespace();
            let (Some(token), Some(identity), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad(line, "expected exactly two fields"));
            };
            let Some((namespace, service_account)) = identity.split_once('/') else {
                return Err(bad(
                    line,
                    &format!("identity {identity:?} is not <namespace>/<service-account>"),
                ));
            };
            if !is_dns_label(namespace) || !is_dns_label(service_account) {
                return Err(bad(
                    line,
                    &format!(
                        "identity {identity:?}: namespace and service account must be lowercase DNS names"
                    ),
                ));
            }
            if by_hash
                .insert(hash(token), Caller::new(namespace, service_account))
                .is_some()
            {
                return Err(bad(line, "the same token appears twice"));
            }
        }
        if by_hash.is_empty() {
            return Err(StaticTokenError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Self {
            by_hash: RwLock::new(Arc::new(by_hash)),
            file: None,
        })
    }
}

#[async_trait]
impl Authenticator for StaticTokens {
    fn name(&self) -> &'static str {
        "static-token"
    }

    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Caller>, AuthError> {
        let Some(token) = &credentials.bearer_token else {
            return Ok(None);
        };
        self.follow_file();
        match self.current().get(&hash(token)) {
            Some(caller) => Ok(Some(caller.clone())),
            None => Err(AuthError::Rejected(
                "not in the static token file".to_string(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StaticTokens, StaticTokenError> {
        StaticTokens::parse(text, Path::new("tokens.txt"))
    }

    fn bearer(token: &str) -> Credentials {
        Credentials {
            bearer_token: Some(token.to_string()),
            peer_certificates: None,
        }
    }

    #[tokio::test]
    async fn maps_tokens_to_callers() {
        let tokens = parse("# comment\n\n tok-1  ns-a/sa-x\ntok-2 ns-b/sa-y\n").unwrap();
        assert_eq!(
            tokens.authenticate(&bearer("tok-1")).await.unwrap(),
            Some(Caller::new("ns-a", "sa-x"))
        );
        assert_eq!(
            tokens.authenticate(&bearer("tok-2")).await.unwrap(),
            Some(Caller::new("ns-b", "sa-y"))
        );
        let err = tokens.authenticate(&bearer("tok-3")).await.unwrap_err();
        assert_eq!(err.reason(), "rejected");
        assert_eq!(
            tokens.authenticate(&Credentials::default()).await.unwrap(),
            None
        );
        assert!(!format!("{tokens:?}").contains("tok-1"));
    }

    #[test]
    fn malformed_files_name_the_line_and_the_form() {
        let err = parse("tok-1 ns-a/sa-x\ntok-2 ns-b\n").err().unwrap();
        assert_eq!(
            err.to_string(),
            "static token file tokens.txt, line 2: identity \"ns-b\" is not <namespace>/<service-account>; expected `<token> <namespace>/<service-account>`"
        );
        let err = parse("tok-1\n").err().unwrap();
        assert!(
            err.to_string()
                .contains("line 1: expected exactly two fields")
        );
        let err = parse("tok-1 a/b extra\n").err().unwrap();
        assert!(
            err.to_string()
                .contains("line 1: expected exactly two fields")
        );
        let err = parse("tok-1 NS/sa\n").err().unwrap();
        assert!(err.to_string().contains("lowercase DNS names"));
        let err = parse("tok-1 a/b\ntok-1 c/d\n").err().unwrap();
        assert!(
            err.to_string()
                .contains("line 2: the same token appears twice")
        );
        assert!(!err.to_string().contains("tok-1"));
        let err = parse("# nothing\n").err().unwrap();
        assert_eq!(
            err.to_string(),
            "static token file tokens.txt has no tokens"
        );
    }
}

//! Hot reload: watching the config file and the certificate/key files, and
//! swapping in what they now say only if it is valid.
//!
//! Files are polled (contents, once a second by default) rather than watched
//! with inotify: Kubernetes updates mounted ConfigMaps and Secrets by swapping
//! a symlink, which content polling sees without special cases, and a pair of
//! small files costs nothing to read. A change that does not load is logged
//! once and the old value stays in force; the next valid change is taken.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{Config, ConfigError};
use crate::webhook::metrics::WebhookMetrics;
use crate::webhook::tls::{CertResolver, ServingCert};

/// The files one watcher reads, and what it last saw in them.
#[derive(Debug)]
pub struct FileSet {
    paths: Vec<PathBuf>,
    last: Result<Vec<Vec<u8>>, String>,
}

impl FileSet {
    /// Reads `paths` now; that reading is the baseline changes are judged by.
    pub fn read(paths: Vec<PathBuf>) -> Result<(Self, Vec<Vec<u8>>), std::io::Error> {
        let contents = read_all(&paths)?;
        let set = FileSet {
            paths,
            last: Ok(contents.clone()),
        };
        Ok((set, contents))
    }

    /// The files' contents if they changed since the last call, `None` if
    /// not. Unreadable files are logged once per distinct error.
    pub async fn changed(&mut self) -> Option<Vec<Vec<u8>>> {
        let paths = self.paths.clone();
        let now = tokio::task::spawn_blocking(move || read_all(&paths))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
            .map_err(|e| e.to_string());
        if now == self.last {
            return None;
        }
        self.last = now.clone();
        match now {
            Ok(contents) => Some(contents),
            Err(error) => {
                warn!(files = %self.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "), %error, "watched file unreadable; keeping what was loaded");
                None
            }
        }
    }
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, std::io::Error> {
    paths
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        })
        .collect()
}

/// Watches the config file; a valid new config replaces `current`.
pub fn watch_config(
    mut files: FileSet,
    current: Arc<ArcSwap<Config>>,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(contents) = files.changed().await else {
                continue;
            };
            let path = files.paths[0].display().to_string();
            let pinned = current.load().settings().trust_domain.clone();
            match parse_config(&contents[0]).and_then(|config| keeps_trust_domain(config, &pinned))
            {
                Ok(config) => {
                    current.store(Arc::new(config));
                    info!(file = %path, "config reloaded");
                }
                Err(error) => {
                    warn!(file = %path, %error, "new config rejected; the previous config stays in force");
                }
            }
        }
    })
}

/// A config file's contents that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// Not text.
    #[error("the config file is not UTF-8 text: {0}")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// Text the engine's config parser rejects.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The trust domain changed: the CA signs only for the one it started
    /// with, so sidecars injected with the new one would be refused.
    #[error(
        "the trust domain changed from {from} to {to}: the CA signs only for {from}; restart outrigger (with --trust-domain {to} if you set it) to change it"
    )]
    TrustDomainChanged {
        /// The trust domain in force.
        from: String,
        /// The new config's.
        to: String,
    },
}

/// `config` if its trust domain is `pinned` (the one the CA signs for).
pub fn keeps_trust_domain(config: Config, pinned: &str) -> Result<Config, ConfigFileError> {
    let to = &config.settings().trust_domain;
    if to == pinned {
        Ok(config)
    } else {
        Err(ConfigFileError::TrustDomainChanged {
            from: pinned.to_string(),
            to: to.clone(),
        })
    }
}

/// Parses config file contents with the engine's parser.
pub fn parse_config(contents: &[u8]) -> Result<Config, ConfigFileError> {
    let text = std::str::from_utf8(contents).map_err(ConfigFileError::NotUtf8)?;
    Ok(Config::from_yaml(text)?)
}

/// Watches a certificate file and its key file; a valid new pair is served
/// to the next connection.
pub fn watch_certificate(
    mut files: FileSet,
    resolver: Arc<CertResolver>,
    metrics: WebhookMetrics,
    interval: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(contents) = files.changed().await else {
                continue;
            };
            let what = format!(
                "{} / {}",
                files.paths[0].display(),
                files.paths[1].display()
            );
            match ServingCert::from_pem(&contents[0], &contents[1], &what) {
                Ok(cert) => {
                    metrics.set_certificate_expiry(cert.not_after);
                    info!(files = %what, not_after = cert.not_after, "serving certificate reloaded");
                    resolver.swap(cert);
                }
                Err(error) => {
                    warn!(%error, "new certificate/key pair rejected; the previous one is still served");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_may_not_change_the_trust_domain() {
        let same = parse_config(b"meshConfig:\n  trustDomain: cluster.local\n").unwrap();
        assert!(keeps_trust_domain(same, "cluster.local").is_ok());
        let moved = parse_config(b"meshConfig:\n  trustDomain: foo.example\n").unwrap();
        let err = keeps_trust_domain(moved, "cluster.local")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("from cluster.local to foo.example") && err.contains("restart"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn changes_are_reported_once_and_errors_do_not_count_as_content() {
        let dir = std::env::temp_dir().join(format!("outrigger-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.yaml");
        std::fs::write(&file, "a: 1\n").unwrap();
        let (mut set, first) = FileSet::read(vec![file.clone()]).unwrap();
        assert_eq!(first, vec![b"a: 1\n".to_vec()]);
        assert_eq!(set.changed().await, None);
        std::fs::write(&file, "a: 2\n").unwrap();
        assert_eq!(set.changed().await, Some(vec![b"a: 2\n".to_vec()]));
        assert_eq!(set.changed().await, None);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(set.changed().await, None);
        std::fs::write(&file, "a: 2\n").unwrap();
        // Back after an outage: reported again, so a reload happens.
        assert_eq!(set.changed().await, Some(vec![b"a: 2\n".to_vec()]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn config_that_is_not_utf8_is_rejected() {
        let err = parse_config(&[0xff, 0xfe]).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }
}

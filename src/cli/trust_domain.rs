//! One trust domain for the injector and the CA.
//!
//! Sidecars ask for `spiffe://<trust domain>/ns/<ns>/sa/<sa>` with the trust
//! domain the injector renders into them (`meshConfig.trustDomain`, whose
//! default is `cluster.local`; `values.global.trustDomain` where it is set
//! empty); the CA signs only for its own. istiod
//! has one setting for both, so outrigger does too: `--trust-domain`
//! defaults to the injector's, and a different value is refused at start
//! rather than leaving every proxy refused at run time. A reload of the
//! config that changes the trust domain is refused for the same reason
//! (see `webhook::reload`). The offline `ca` commands take the same default
//! from the same `--config` file, so a root or a certificate made by hand
//! is for the mesh's trust domain too.

use std::path::Path;

use outrigger::config::{Config, ConfigError};

/// Why the trust domains cannot be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum TrustDomainError {
    /// The injector's config file does not load.
    #[error("cannot read the trust domain from --config {path}")]
    Config {
        /// The config file.
        path: String,
        /// Why it does not load.
        #[source]
        source: ConfigError,
    },
    /// `--trust-domain` and the injector's trust domain differ.
    #[error(
        "--trust-domain {flag} disagrees with the injector's trust domain {injector} ({origin}): sidecars would ask for spiffe://{injector}/... and the CA would refuse them; drop --trust-domain, or set the same value in both places"
    )]
    Mismatch {
        /// The flag's value.
        flag: String,
        /// The injector's value.
        injector: String,
        /// Where the injector's value comes from.
        origin: String,
    },
}

/// The one trust domain: the injector's (from `config`, the file
/// `--config` names, if any), which `flag` (`--trust-domain`) may repeat but
/// not contradict.
pub fn resolve(flag: Option<&str>, config: Option<&Path>) -> Result<String, TrustDomainError> {
    let (injector, origin) = match config {
        Some(path) => {
            let cfg = Config::load(path).map_err(|source| TrustDomainError::Config {
                path: path.display().to_string(),
                source,
            })?;
            (
                cfg.settings().trust_domain.clone(),
                format!(
                    "meshConfig.trustDomain, else values.global.trustDomain, in {}",
                    path.display()
                ),
            )
        }
        None => (
            Config::default().settings().trust_domain.clone(),
            "the default without --config; set meshConfig.trustDomain in a --config file to change it"
                .to_string(),
        ),
    };
    match flag {
        Some(flag) if flag != injector => Err(TrustDomainError::Mismatch {
            flag: flag.to_string(),
            injector,
            origin,
        }),
        _ => Ok(injector),
    }
}

/// The trust domain for an offline `ca` command: as [`resolve`] when
/// `--config` names the injector's config; without one there is no
/// injector to disagree with, so `--trust-domain` (default `cluster.local`,
/// Istio's) is taken as given.
pub fn resolve_offline(
    flag: Option<&str>,
    config: Option<&Path>,
) -> Result<String, TrustDomainError> {
    match (flag, config) {
        (Some(flag), None) => Ok(flag.to_string()),
        _ => resolve(flag, config),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "outrigger-trust-domain-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_ca_takes_the_injectors_trust_domain() {
        let path = config_file("mesh", "meshConfig:\n  trustDomain: foo.example\n");
        assert_eq!(resolve(None, Some(&path)).unwrap(), "foo.example");
        assert_eq!(
            resolve(Some("foo.example"), Some(&path)).unwrap(),
            "foo.example"
        );
        assert_eq!(resolve(None, None).unwrap(), "cluster.local");
    }

    #[test]
    fn offline_commands_take_the_flag_as_given_without_a_config() {
        assert_eq!(
            resolve_offline(Some("example.org"), None).unwrap(),
            "example.org"
        );
        assert_eq!(resolve_offline(None, None).unwrap(), "cluster.local");
        let path = config_file("offline", "meshConfig:\n  trustDomain: foo.example\n");
        assert_eq!(resolve_offline(None, Some(&path)).unwrap(), "foo.example");
        let err = resolve_offline(Some("example.org"), Some(&path))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("example.org") && err.contains("foo.example"),
            "{err}"
        );
    }

    #[test]
    fn values_global_trust_domain_counts_when_mesh_config_leaves_it_empty() {
        let path = config_file(
            "values",
            "meshConfig:\n  trustDomain: \"\"\nvalues:\n  global:\n    trustDomain: bar.example\n",
        );
        assert_eq!(resolve(None, Some(&path)).unwrap(), "bar.example");
    }

    #[test]
    fn a_flag_that_contradicts_the_injector_is_refused_naming_both() {
        let path = config_file("clash", "meshConfig:\n  trustDomain: foo.example\n");
        let err = resolve(Some("cluster.local"), Some(&path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--trust-domain cluster.local"), "{err}");
        assert!(err.contains("foo.example"), "{err}");
        assert!(err.contains("meshConfig.trustDomain"), "{err}");
        let err = resolve(Some("example.org"), None).unwrap_err().to_string();
        assert!(
            err.contains("example.org") && err.contains("cluster.local"),
            "{err}"
        );
    }
}

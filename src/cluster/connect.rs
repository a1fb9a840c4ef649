//! Reaching the Kubernetes API server: the client is built from
//! `--kubeconfig` if given, else the pod's in-cluster configuration, else the
//! default kubeconfig (`$KUBECONFIG`, `~/.kube/config`). At start-up nothing
//! in-cluster can run without it, so [`connect`] retries with backoff until
//! it works instead of failing the server.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use thiserror::Error;
use tracing::warn;

use super::ClusterArgs;
use super::retry::Backoff;

/// Why a Kubernetes client could not be built (retried by [`connect`]).
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The kubeconfig file could not be read or parsed.
    #[error("reading kubeconfig {path} failed")]
    Kubeconfig {
        /// The --kubeconfig path.
        path: String,
        /// The parser's error.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Neither in-cluster config nor a default kubeconfig was usable.
    #[error("no Kubernetes configuration found (not in a pod, no --kubeconfig, no ~/.kube/config)")]
    Infer(#[source] kube::config::InferConfigError),
    /// The client could not be built from the configuration.
    #[error("building the Kubernetes client failed")]
    Client(#[source] kube::Error),
}

/// Builds the API client once: `--kubeconfig` if given, else in-cluster
/// configuration, else the default kubeconfig.
pub async fn try_connect(args: &ClusterArgs) -> Result<Client, ConnectError> {
    // kube's rustls client uses the process-wide provider: make it ring
    // (the project's provider) unless the server already installed one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig_error = |source| ConnectError::Kubeconfig {
                path: path.display().to_string(),
                source,
            };
            let kubeconfig = Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(kubeconfig_error)?
        }
        None => Config::infer().await.map_err(ConnectError::Infer)?,
    };
    Client::try_from(config).map_err(ConnectError::Client)
}

/// Builds the API client, retrying [`try_connect`] with the controllers'
/// backoff (each failure logged) until it works.
pub async fn connect(args: &ClusterArgs) -> Client {
    let mut backoff = Backoff::default_controller();
    loop {
        match try_connect(args).await {
            Ok(client) => return client,
            Err(error) => {
                let delay = backoff.next_delay();
                warn!(
                    %error,
                    source = ?std::error::Error::source(&error).map(ToString::to_string),
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "cannot reach the Kubernetes API server; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: mesh\ncurrent-context: x\n";

    fn args(extra: &[&str]) -> ClusterArgs {
        let mut argv = vec!["t"];
        argv.extend_from_slice(extra);
        <ClusterArgs as clap::FromArgMatches>::from_arg_matches(
            &<ClusterArgs as clap::Args>::augment_args(clap::Command::new("t"))
                .get_matches_from(argv),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn try_connect_reads_the_given_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let missing = path.display().to_string();
        let Err(err) = try_connect(&args(&["--kubeconfig", &missing])).await else {
            panic!("a missing kubeconfig must be refused");
        };
        assert!(err.to_string().contains(&missing), "{err}");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let Ok(client) = try_connect(&args(&["--kubeconfig", &missing])).await else {
            panic!("a valid kubeconfig must give a client");
        };
        assert_eq!(client.default_namespace(), "mesh");
    }

    /// On a paused clock: the retries' sleeps pass without waiting.
    #[tokio::test(start_paused = true)]
    async fn connect_retries_until_the_kubeconfig_is_usable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let args = args(&["--kubeconfig", &path.display().to_string()]);
        let connecting = tokio::spawn(async move { connect(&args).await });
        // Several failed attempts (backoff 200 ms, 400 ms, 800 ms, ...).
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        assert!(
            !connecting.is_finished(),
            "no kubeconfig yet: still retrying"
        );
        std::fs::write(&path, KUBECONFIG).unwrap();
        let client = connecting.await.unwrap();
        assert_eq!(client.default_namespace(), "mesh");
    }
}

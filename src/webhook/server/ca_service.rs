//! The CA service (`IstioCertificateService` over gRPC, [`crate::ca::grpc`])
//! as a part of `outrigger serve`: started on its own port with the same CA
//! as the rest of the process, and stopped with the webhook.
//!
//! Standalone, the CA is the one in `--ca-dir` and the service issues its
//! own serving certificate from it ([`crate::ca::grpc::run`]). In a cluster,
//! it starts once the shared CA is ready, serves the certificate the
//! cluster controllers issue for the Service (swapped in place on renewal),
//! and authenticates tokens locally against the API server's issuer keys
//! ([`crate::cluster::jwks`], unless `--jwks-file` gives them) and then, as
//! the fallback, with TokenReview, besides the configured authenticators.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::in_cluster::{ClusterFeeds, first};
use super::port::BoundPort;
use crate::ca::CertificateAuthority;
use crate::ca::grpc::auth::{AuthChain, Authenticator};
use crate::ca::grpc::config::ConfigError;
use crate::ca::grpc::metrics::CaMetrics;
use crate::ca::grpc::server::ServerLimits;
use crate::ca::grpc::signer::{AuthoritySigner, CertificateSigner as _, SwappableSigner};
use crate::ca::grpc::{self, CaService, CaServiceConfig};
use crate::cluster::jwks::{self, ClusterJwt, IssuerSource};
use crate::cluster::token_binding::ApiBindingCheck;
use crate::cluster::token_review::{CacheSettings, TokenReviewAuthenticator};
use crate::limits::LimitMetrics;

/// The CA service's part of `outrigger serve`'s options.
#[derive(Debug, Clone)]
pub struct CaServiceOptions {
    /// The gRPC (TLS) address (port 0: any free port).
    pub listen: SocketAddr,
    /// Trust domain, serving names (standalone) and authenticators.
    pub config: CaServiceConfig,
    /// What its clients may hold (connections, streams, messages, requests
    /// in progress, time).
    pub limits: ServerLimits,
}

/// Where the service's CA comes from.
pub enum CaSupply {
    /// Standalone: the CA is loaded already.
    Ready(Arc<CertificateAuthority>),
    /// In a cluster: from the controllers, when they have it.
    Cluster(ClusterFeeds),
}

/// The configured authenticators (client certificates, JWKS, static
/// tokens); built at start-up so that a bad `--static-token-file` or
/// `--jwks-file` stops it with the file's error.
pub fn authenticators(config: &CaServiceConfig) -> Result<AuthChain, ConfigError> {
    config.auth_chain(Vec::new())
}

/// Serves the CA service on `port` until `stop` turns true, with `auth`
/// (from [`authenticators`]; in a cluster, TokenReview joins them). Errors
/// are logged: the webhook keeps serving whatever happens here.
pub async fn run(
    port: BoundPort,
    service: CaServiceOptions,
    auth: AuthChain,
    supply: CaSupply,
    metrics: CaMetrics,
    limit_metrics: LimitMetrics,
    stop: watch::Receiver<bool>,
) {
    let stopped = super::wait_true(stop.clone());
    let CaServiceOptions { config, limits, .. } = service;
    let limits = (limits, limit_metrics);
    let result = match supply {
        CaSupply::Ready(ca) => match listen(port) {
            Ok(listener) => {
                grpc::server::run_limited(listener, config, ca, auth, metrics, stopped, limits)
                    .await
                    .map_err(|e| error_chain(&e))
            }
            Err(message) => Err(message),
        },
        CaSupply::Cluster(feeds) => {
            tokio::select! {
                () = super::wait_true(stop) => return,
                result = run_in_cluster(port, config, feeds, metrics, stopped, limits) => result,
            }
        }
    };
    if let Err(message) = result {
        error!(error = %message, "the CA service stopped with an error");
    }
}

/// Listens on the CA service's port (see `port`: only once the service has
/// a certificate to answer with).
fn listen(port: BoundPort) -> Result<TcpListener, String> {
    let addr = port.local_addr();
    port.listen()
        .map_err(|e| format!("cannot listen on {addr} for the CA service: {e}"))
}

/// The cluster case: waits for the client, the CA and the first serving
/// certificate, then listens and serves, following serving-certificate
/// renewals.
async fn run_in_cluster(
    port: BoundPort,
    config: CaServiceConfig,
    mut feeds: ClusterFeeds,
    metrics: CaMetrics,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
    (limits, limit_metrics): (ServerLimits, LimitMetrics),
) -> Result<(), String> {
    let Some(client) = first(&mut feeds.client).await else {
        return Err("the in-cluster controllers stopped before connecting".into());
    };
    let Some(cluster_ca) = first(&mut feeds.ca).await else {
        return Err("the in-cluster controllers stopped before the CA was ready".into());
    };
    let Some(issued) = first(&mut feeds.serving).await else {
        return Err(
            "the in-cluster controllers stopped before issuing a serving certificate".into(),
        );
    };
    let review: Arc<dyn Authenticator> = Arc::new(TokenReviewAuthenticator::new(
        client.clone(),
        config.audiences.clone(),
        CacheSettings::default(),
    ));
    let (extra, fetcher) = cluster_token_authenticators(&config, client.clone(), review);
    let fetcher = AbortOnDrop(fetcher);
    let mut auth = config.auth_chain(extra).map_err(|e| error_chain(&e))?;
    // Locally verified tokens count only while what they are bound to
    // exists (see `cluster::token_binding`).
    let (binding_check, binding_cache) = ApiBindingCheck::start(client);
    let binding_cache = AbortOnDrop(Some(binding_cache));
    auth.set_binding_check(binding_check);
    let serving = grpc::ServingCert::from_pem(&issued.chain_pem, issued.key_pem.expose())
        .map(Arc::new)
        .map_err(|e| format!("the cluster serving certificate: {e}"))?;
    let tls = grpc::tls_config(Arc::clone(&serving), cluster_ca.root_pem())
        .map_err(|e| format!("the CA service's TLS: {e}"))?;
    let signer = Arc::new(SwappableSigner::new(AuthoritySigner::new(
        cluster_ca.shared_authority(),
        &config.trust_domain,
    )));
    let service = CaService::new(Arc::clone(&signer) as _, auth, metrics.clone());
    let follow = tokio::spawn(follow_serving(feeds.serving, serving));
    let follow_root = tokio::spawn(follow_ca(
        feeds.ca,
        signer,
        config.trust_domain.clone(),
        metrics,
    ));
    info!(auth = %format!("{service:?}"), "CA service starting with the cluster CA");
    let listener = listen(port)?;
    let result =
        grpc::server::serve_limited(listener, tls, service, stopped, limits, limit_metrics)
            .await
            .map_err(|e| error_chain(&e));
    follow.abort();
    follow_root.abort();
    drop(fetcher);
    drop(binding_cache);
    result
}

/// The cluster's token authenticators, in chain order: local JWT first,
/// `review` (TokenReview) as the fallback for tokens it cannot verify. A
/// `--jwks-file` is the local JWT (it wins over fetching, and the config's
/// chain adds it); else a [`ClusterJwt`] fed from the API server, kept fresh
/// by the returned task (abort it with the service).
fn cluster_token_authenticators(
    config: &CaServiceConfig,
    client: kube::Client,
    review: Arc<dyn Authenticator>,
) -> (
    Vec<Arc<dyn Authenticator>>,
    Option<tokio::task::JoinHandle<()>>,
) {
    if config.jwks_file.is_some() {
        return (vec![review], None);
    }
    let jwt = Arc::new(ClusterJwt::new(
        config.jwt_policy(),
        IssuerSource::from_flag(config.jwt_issuer.as_deref()),
    ));
    let fetcher = tokio::spawn(jwks::run(client, Arc::clone(&jwt), jwks::REFRESH_PERIOD));
    let jwt: Arc<dyn Authenticator> = jwt;
    (vec![jwt, review], Some(fetcher))
}

/// Stops the JWKS fetcher whichever way the service ends (even on an early
/// `?` return).
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Signs with each new root the controllers publish (a renewal of the
/// Secret's root: same subject and key), and updates the expiry gauges.
async fn follow_ca(
    mut cas: watch::Receiver<Option<Arc<crate::cluster::authority::ClusterCa>>>,
    signer: Arc<SwappableSigner>,
    trust_domain: String,
    metrics: CaMetrics,
) {
    cas.mark_unchanged();
    while cas.changed().await.is_ok() {
        let Some(cluster_ca) = cas.borrow_and_update().clone() else {
            continue;
        };
        let next = AuthoritySigner::new(cluster_ca.shared_authority(), &trust_domain);
        metrics.set_expiries(next.root_expiry_unix(), next.chain_expiry_unix());
        signer.replace(next);
        info!("CA service signing with the renewed root");
    }
}

/// Swaps each renewed serving certificate into the CA service's TLS.
async fn follow_serving(
    mut serving: watch::Receiver<Option<crate::cluster::authority::IssuedCert>>,
    cert: Arc<grpc::ServingCert>,
) {
    while serving.changed().await.is_ok() {
        let Some(issued) = serving.borrow_and_update().clone() else {
            continue;
        };
        match cert.replace_pem(&issued.chain_pem, issued.key_pem.expose()) {
            Ok(()) => info!(
                not_after_unix = cert.validity().map(|(_, not_after)| not_after),
                "CA service serving certificate renewed"
            ),
            Err(error) => {
                warn!(%error, "renewed serving certificate refused by the CA service; keeping the previous one")
            }
        }
    }
}

/// An error and its causes, `: `-separated (these errors keep the detail in
/// their sources).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;

    fn mock_client() -> kube::Client {
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        kube::Client::new(service, "default")
    }

    fn review(client: &kube::Client) -> Arc<dyn Authenticator> {
        Arc::new(TokenReviewAuthenticator::new(
            client.clone(),
            Vec::new(),
            CacheSettings::default(),
        ))
    }

    #[tokio::test]
    async fn in_a_cluster_fetched_jwt_comes_before_token_review() {
        let config = CaServiceConfig::default();
        let client = mock_client();
        let (extra, fetcher) =
            cluster_token_authenticators(&config, client.clone(), review(&client));
        let names: Vec<_> = extra.iter().map(|a| a.name()).collect();
        assert_eq!(names, vec!["jwt", "token-review"]);
        let fetcher = fetcher.expect("the keys are fetched from the API server");
        fetcher.abort();
        let chain = config.auth_chain(extra).unwrap();
        assert_eq!(
            format!("{chain:?}"),
            r#"["client-cert", "jwt", "token-review"]"#
        );
    }

    #[tokio::test]
    async fn a_jwks_file_wins_over_fetching() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(
            &path,
            r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}"#,
        )
        .unwrap();
        let config = CaServiceConfig {
            jwks_file: Some(path),
            ..CaServiceConfig::default()
        };
        let client = mock_client();
        let (extra, fetcher) =
            cluster_token_authenticators(&config, client.clone(), review(&client));
        assert!(fetcher.is_none(), "no fetcher with --jwks-file");
        let names: Vec<_> = extra.iter().map(|a| a.name()).collect();
        assert_eq!(names, vec!["token-review"]);
        let chain = config.auth_chain(extra).unwrap();
        assert_eq!(
            format!("{chain:?}"),
            r#"["client-cert", "jwt", "token-review"]"#
        );
    }
}

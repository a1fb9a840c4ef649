//! The webhook's serving certificate at start and afterwards: from files
//! (watched by [`crate::webhook::reload`]) or issued by the standalone CA
//! (renewed here); in a cluster it arrives later from the controllers
//! ([`super::in_cluster::follow`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tracing::{info, warn};

use super::{ServeError, TlsSource};
use crate::ca::RootOptions;
use crate::webhook::metrics::WebhookMetrics;
use crate::webhook::reload::FileSet;
use crate::webhook::standalone_ca::{self, StandaloneCa};
use crate::webhook::tls::{CertResolver, ServingCert, TlsError};

/// Validity of a standalone serving certificate; renewed at two thirds.
const STANDALONE_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// Loads (or creates) the standalone CA, writes its root to `bundle_out`
/// and logs it: the `caBundle` a MutatingWebhookConfiguration needs.
pub fn load_standalone(
    dir: &Path,
    root: &RootOptions,
    bundle_out: Option<&Path>,
) -> Result<StandaloneCa, ServeError> {
    let (ca, created) = StandaloneCa::load_or_create(dir, root)?;
    if let Some(out) = bundle_out {
        standalone_ca::write_atomic(out, ca.bundle_pem().as_bytes(), 0o644)?;
    }
    info!(
        ca_dir = %dir.display(),
        created,
        ca_bundle_file = bundle_out.map(|p| p.display().to_string()),
        ca_bundle = %base64::engine::general_purpose::STANDARD.encode(ca.bundle_pem()),
        ca_pem = %ca.bundle_pem(),
        "standalone mode: local CA loaded (ca_bundle is the caBundle value)"
    );
    Ok(ca)
}

/// How the serving certificate is kept fresh.
pub enum Renewal {
    /// Files, watched.
    Files(FileSet),
    /// Re-issued by the standalone CA.
    Standalone {
        /// The CA.
        ca: Box<StandaloneCa>,
        /// The names to serve.
        names: Vec<String>,
    },
    /// The cluster controllers renew it ([`super::in_cluster::follow`] installs it).
    Cluster,
}

/// Loads the first serving certificate into `resolver`, except in a
/// cluster without files, where it comes later from the controllers.
pub fn load_certificate(
    source: &TlsSource,
    standalone: Option<&StandaloneCa>,
    resolver: &CertResolver,
    metrics: &WebhookMetrics,
) -> Result<Renewal, ServeError> {
    match (source, standalone) {
        (TlsSource::Files { cert, key }, _) => {
            let (files, contents) =
                FileSet::read(vec![cert.clone(), key.clone()]).map_err(|source| {
                    TlsError::Read {
                        path: format!("{} / {}", cert.display(), key.display()),
                        source,
                    }
                })?;
            let what = format!("{} / {}", cert.display(), key.display());
            let serving = ServingCert::from_pem(&contents[0], &contents[1], &what)?;
            info!(files = %what, not_after = serving.not_after, "serving certificate loaded");
            metrics.set_certificate_expiry(serving.not_after);
            resolver.swap(serving);
            Ok(Renewal::Files(files))
        }
        (TlsSource::FromCa { dns_names }, Some(ca)) => {
            let serving = ca.issue_serving(dns_names, STANDALONE_VALIDITY)?;
            info!(
                dns_names = ?dns_names,
                not_after = serving.not_after,
                "standalone mode: serving certificate issued by the local CA"
            );
            metrics.set_certificate_expiry(serving.not_after);
            resolver.swap(serving);
            Ok(Renewal::Standalone {
                ca: Box::new(ca.clone()),
                names: dns_names.clone(),
            })
        }
        (TlsSource::FromCa { .. }, None) => Ok(Renewal::Cluster),
    }
}

/// Re-issues the standalone serving certificate once two thirds of its
/// validity have passed, so a long-running standalone server never expires.
pub fn renew_standalone(
    ca: Box<StandaloneCa>,
    names: Vec<String>,
    resolver: Arc<CertResolver>,
    metrics: WebhookMetrics,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Some(current) = resolver.current() else {
                tokio::time::sleep(Duration::from_secs(60)).await;
                continue;
            };
            let lifetime = (current.not_after - current.not_before).max(0);
            let renew_at = current.not_before + lifetime * 2 / 3;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let wait = u64::try_from(renew_at - now).unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(wait.clamp(60, 24 * 3600))).await;
            if time::OffsetDateTime::now_utc().unix_timestamp() < renew_at {
                continue;
            }
            match ca.issue_serving(&names, STANDALONE_VALIDITY) {
                Ok(cert) => {
                    metrics.set_certificate_expiry(cert.not_after);
                    info!(
                        not_after = cert.not_after,
                        "standalone serving certificate renewed"
                    );
                    resolver.swap(cert);
                }
                Err(error) => warn!(%error, "cannot renew the standalone serving certificate"),
            }
        }
    })
}

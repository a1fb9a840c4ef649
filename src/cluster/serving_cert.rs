//! The webhook's (and gRPC port's) own serving certificate, issued by the
//! shared CA for the Service's DNS names and renewed at half its lifetime.
//!
//! Every replica issues its own (no write to the API server, so no lease
//! needed); the API server trusts it through the caBundle
//! ([`super::ca_bundle`]). New certificates are handed to the listeners
//! through a [`ServingCertSink`], which the webhook's TLS layer implements by
//! swapping its certificate resolver: new handshakes get the new
//! certificate, open connections are untouched.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tracing::{info, warn};

use super::authority::{ClusterCa, IssuedCert, renewal_time};
use super::retry::Backoff;

/// The shortest wait between two issuances (guards against a hot loop when a
/// CA close to expiry clamps every certificate's lifetime).
pub const MIN_RENEWAL_DELAY: Duration = Duration::from_secs(5);

/// Where a new serving certificate goes: the listeners' certificate store.
///
/// `install` must be quick and must keep the previous certificate in force
/// when it returns an error (the error is logged and the issuance retried).
pub trait ServingCertSink: Send + Sync {
    /// Installs `cert` (chain PEM, leaf first; PKCS#8 key PEM) for new
    /// connections.
    fn install(&self, cert: &IssuedCert) -> Result<(), Box<dyn Error + Send + Sync>>;
}

impl<F> ServingCertSink for F
where
    F: Fn(&IssuedCert) -> Result<(), Box<dyn Error + Send + Sync>> + Send + Sync,
{
    fn install(&self, cert: &IssuedCert) -> Result<(), Box<dyn Error + Send + Sync>> {
        self(cert)
    }
}

impl ServingCertSink for watch::Sender<Option<IssuedCert>> {
    fn install(&self, cert: &IssuedCert) -> Result<(), Box<dyn Error + Send + Sync>> {
        // Keeps the value even with no receiver, for a later subscriber.
        self.send_replace(Some(cert.clone()));
        Ok(())
    }
}

/// The names the serving certificate covers: `<svc>.<ns>.svc`,
/// `<svc>.<ns>.svc.cluster.local`, then the extra names, without duplicates.
pub fn dns_names(service: &str, namespace: &str, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// How long to wait after issuing `cert` at `now` before renewing it: until
/// half its lifetime, never less than [`MIN_RENEWAL_DELAY`].
pub fn renewal_delay(cert: &IssuedCert, now: SystemTime) -> Duration {
    renewal_time(cert.not_before, cert.not_after, 0.5)
        .duration_since(now)
        .unwrap_or_default()
        .max(MIN_RENEWAL_DELAY)
}

/// Issues the serving certificate for `names` and hands it to `sink`, then
/// again at every half-life, forever. Failures (of the CA or the sink) are
/// logged and retried with backoff; the previous certificate stays in force.
pub async fn run(
    ca: Arc<ClusterCa>,
    names: Vec<String>,
    ttl: Duration,
    sink: Arc<dyn ServingCertSink>,
) {
    let mut backoff = Backoff::default_controller();
    loop {
        let now = SystemTime::now();
        let result = ca
            .issue_serving(&names, ttl, now)
            .map_err(|e| Box::new(e) as Box<dyn Error + Send + Sync>)
            .and_then(|cert| sink.install(&cert).map(|()| cert));
        let delay = match result {
            Ok(cert) => {
                backoff.reset();
                let delay = renewal_delay(&cert, now);
                info!(names = ?names, renew_in_s = delay.as_secs(), "installed a new serving certificate");
                delay
            }
            Err(error) => {
                let delay = backoff.next_delay();
                warn!(names = ?names, error = %error, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "issuing or installing the serving certificate failed; keeping the previous one");
                delay
            }
        };
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_the_service_and_extras_once() {
        assert_eq!(
            dns_names(
                "outrigger",
                "outrigger-system",
                &["outrigger.outrigger-system.svc".into(), "localhost".into()]
            ),
            vec![
                "outrigger.outrigger-system.svc".to_string(),
                "outrigger.outrigger-system.svc.cluster.local".to_string(),
                "localhost".to_string(),
            ]
        );
    }

    #[test]
    fn renewal_is_at_half_life_with_a_floor() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cert = IssuedCert {
            chain_pem: String::new(),
            key_pem: crate::ca::PrivateKeyPem::new(""),
            not_before: start,
            not_after: start + Duration::from_secs(3600),
        };
        assert_eq!(
            renewal_delay(&cert, start + Duration::from_secs(120)),
            Duration::from_secs(1680)
        );
        assert_eq!(
            renewal_delay(&cert, start + Duration::from_secs(3000)),
            MIN_RENEWAL_DELAY
        );
    }
}

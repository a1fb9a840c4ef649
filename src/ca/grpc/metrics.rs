//! The CA service's Prometheus metrics. They live in their own struct so the
//! server owning `/metrics` (`crate::metrics`) only has to call
//! [`CaMetrics::register`] on its registry.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `result` label of `outrigger_ca_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok`, `unauthenticated`, `permission-denied`, `invalid-argument` or `internal`.
    pub result: &'static str,
}

/// `reason` label of `outrigger_ca_authentication_failures_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// An [`AuthError::reason`](super::auth::AuthError::reason).
    pub reason: &'static str,
}

/// The metrics of `IstioCertificateService`.
#[derive(Debug, Clone)]
pub struct CaMetrics {
    requests: Family<ResultLabel, Counter>,
    auth_failures: Family<ReasonLabel, Counter>,
    signing_duration: Histogram,
    root_expiry: Gauge,
    chain_expiry: Gauge,
}

impl Default for CaMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            auth_failures: Family::default(),
            // 50µs .. ~0.8s: P-256 signing is well under a millisecond, RSA
            // 4096 CAs take tens of milliseconds.
            signing_duration: Histogram::new(exponential_buckets(0.000_05, 2.0, 15)),
            root_expiry: Gauge::default(),
            chain_expiry: Gauge::default(),
        }
    }
}

impl CaMetrics {
    /// Fresh, zeroed metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every metric (names get the `outrigger_ca_` prefix here).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "outrigger_ca_requests",
            "CreateCertificate requests by result",
            self.requests.clone(),
        );
        registry.register(
            "outrigger_ca_authentication_failures",
            "Refused CreateCertificate credentials by reason",
            self.auth_failures.clone(),
        );
        registry.register(
            "outrigger_ca_signing_duration_seconds",
            "Time spent verifying and signing one CSR",
            self.signing_duration.clone(),
        );
        registry.register(
            "outrigger_ca_root_expiry_timestamp_seconds",
            "notAfter of the CA's root certificate, Unix seconds",
            self.root_expiry.clone(),
        );
        registry.register(
            "outrigger_ca_chain_expiry_timestamp_seconds",
            "notAfter of the certificate that signs workloads, Unix seconds",
            self.chain_expiry.clone(),
        );
    }

    /// Counts one finished request.
    pub fn request(&self, result: &'static str) {
        self.requests.get_or_create(&ResultLabel { result }).inc();
    }

    /// Counts one refused authentication.
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Records one signing's duration.
    pub fn signing(&self, took: Duration) {
        self.signing_duration.observe(took.as_secs_f64());
    }

    /// Publishes the CA's expiry times (call at start and after rotation).
    pub fn set_expiries(&self, root: Option<i64>, chain: Option<i64>) {
        if let Some(root) = root {
            self.root_expiry.set(root);
        }
        if let Some(chain) = chain {
            self.chain_expiry.set(chain);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_metric_under_its_name() {
        let metrics = CaMetrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.request("ok");
        metrics.request("ok");
        metrics.auth_failure("expired");
        metrics.signing(Duration::from_micros(300));
        metrics.set_expiries(Some(2_000_000_000), Some(1_900_000_000));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "outrigger_ca_requests_total{result=\"ok\"} 2",
            "outrigger_ca_authentication_failures_total{reason=\"expired\"} 1",
            "outrigger_ca_signing_duration_seconds_count 1",
            "outrigger_ca_root_expiry_timestamp_seconds 2000000000",
            "outrigger_ca_chain_expiry_timestamp_seconds 1900000000",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}

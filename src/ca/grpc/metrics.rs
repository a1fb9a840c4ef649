//! The CA service's Prometheus metrics. They live in their own struct so the
//! server owning `/metrics` (`crate::metrics`) only has to call
//! [`CaMetrics::register`] on its registry.
//!
//! Every known `result` and `reason` label value exists at 0 from the start,
//! so that dashboards and alerts (a `rate()` of refusals) see the series
//! before the first request or failure instead of "no data".

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::auth::AuthError;

/// How a `CreateCertificate` request ended: the `result` label of
/// `outrigger_ca_requests_total`, one per gRPC status the service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestResult {
    /// A certificate was issued.
    Ok,
    /// The caller's credentials were missing or refused.
    Unauthenticated,
    /// The caller asked for an identity that is not its own.
    PermissionDenied,
    /// The request (CSR, subject, lifetime) was malformed.
    InvalidArgument,
    /// The CA or an authentication backend failed.
    Internal,
}

impl RequestResult {
    /// Every result, in the order dashboards list them.
    pub const ALL: [RequestResult; 5] = [
        RequestResult::Ok,
        RequestResult::Unauthenticated,
        RequestResult::PermissionDenied,
        RequestResult::InvalidArgument,
        RequestResult::Internal,
    ];

    /// The stable label value.
    pub fn label(self) -> &'static str {
        match self {
            RequestResult::Ok => "ok",
            RequestResult::Unauthenticated => "unauthenticated",
            RequestResult::PermissionDenied => "permission-denied",
            RequestResult::InvalidArgument => "invalid-argument",
            RequestResult::Internal => "internal",
        }
    }
}

/// `result` label of `outrigger_ca_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// A [`RequestResult::label`].
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
        let requests = Family::<ResultLabel, Counter>::default();
        for result in RequestResult::ALL {
            // Creating the series is the point; the guard is dropped at once.
            drop(requests.get_or_create(&ResultLabel {
                result: result.label(),
            }));
        }
        let auth_failures = Family::<ReasonLabel, Counter>::default();
        for reason in AuthError::REASONS {
            drop(auth_failures.get_or_create(&ReasonLabel { reason }));
        }
        Self {
            requests,
            auth_failures,
            // 50µs .. ~0.8s: P-256 signing is well under a millisecond, RSA
            // 4096 CAs take tens of milliseconds.
            signing_duration: Histogram::new(exponential_buckets(0.000_05, 2.0, 15)),
            root_expiry: Gauge::default(),
            chain_expiry: Gauge::default(),
        }
    }
}

impl CaMetrics {
    /// Fresh metrics, every known `result` and `reason` series at 0.
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
    pub fn request(&self, result: RequestResult) {
        self.requests
            .get_or_create(&ResultLabel {
                result: result.label(),
            })
            .inc();
    }

    /// Counts one refused authentication (`reason`: one of
    /// [`AuthError::REASONS`]).
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
        metrics.request(RequestResult::Ok);
        metrics.request(RequestResult::Ok);
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

    #[test]
    fn a_fresh_registry_renders_every_result_and_reason_at_zero() {
        let metrics = CaMetrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for result in [
            "ok",
            "unauthenticated",
            "permission-denied",
            "invalid-argument",
            "internal",
        ] {
            let line = format!("outrigger_ca_requests_total{{result=\"{result}\"}} 0");
            assert!(
                lines.contains(&line.as_str()),
                "missing {line:?} in\n{text}"
            );
        }
        for reason in AuthError::REASONS {
            let line =
                format!("outrigger_ca_authentication_failures_total{{reason=\"{reason}\"}} 0");
            assert!(
                lines.contains(&line.as_str()),
                "missing {line:?} in\n{text}"
            );
        }
        let series = |name: &str| lines.iter().filter(|l| l.starts_with(name)).count();
        assert_eq!(series("outrigger_ca_requests_total{"), 5, "{text}");
        assert_eq!(
            series("outrigger_ca_authentication_failures_total{"),
            AuthError::REASONS.len(),
            "{text}"
        );
    }

    #[test]
    fn counting_one_result_leaves_the_others_at_zero() {
        let metrics = CaMetrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.request(RequestResult::PermissionDenied);
        metrics.auth_failure("wrong-audience");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "outrigger_ca_requests_total{result=\"permission-denied\"} 1",
            "outrigger_ca_requests_total{result=\"ok\"} 0",
            "outrigger_ca_authentication_failures_total{reason=\"wrong-audience\"} 1",
            "outrigger_ca_authentication_failures_total{reason=\"expired\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}

//! The webhook's own metrics: what was admitted, what was skipped and why, how
//! long it took, and when the serving certificate expires.
//!
//! Label values are bounded: kinds outside the injected set are counted as
//! `other`, skip reasons are the engine's stable machine names plus the
//! webhook's own few (see [`crate::webhook::admission`]).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::metrics::MetricsRegistry;
use crate::webhook::admission;

/// How one request ended, as counted in `outrigger_injection_requests_total`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RequestResult {
    /// Allowed with a patch that adds the sidecar.
    Injected,
    /// Allowed with a patch that replaces an outdated injection.
    Reinjected,
    /// Allowed with a patch removing an earlier injection (the pod opted
    /// out).
    Removed,
    /// Allowed unchanged (a skip: see `outrigger_injection_skips_total`).
    Skipped,
    /// Denied: the engine rejected the object (e.g. a bad annotation).
    Denied,
    /// Not an admission review at all: HTTP 4xx.
    Invalid,
    /// Turned away by the concurrency bound or the request timeout: HTTP 503.
    Overloaded,
}

impl RequestResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestResult::Injected => "injected",
            RequestResult::Reinjected => "reinjected",
            RequestResult::Removed => "removed",
            RequestResult::Skipped => "skipped",
            RequestResult::Denied => "denied",
            RequestResult::Invalid => "invalid",
            RequestResult::Overloaded => "overloaded",
        }
    }
}

/// Labels of `outrigger_injection_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    kind: &'static str,
    result: &'static str,
}

/// Labels of `outrigger_injection_skips_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    reason: &'static str,
}

/// Handles to the webhook's metrics; cloning shares them.
#[derive(Debug, Clone)]
pub struct WebhookMetrics {
    requests: Family<RequestLabels, Counter>,
    skips: Family<SkipLabels, Counter>,
    duration: Histogram,
    certificate_expiry: Gauge,
}

impl WebhookMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &MetricsRegistry) -> Self {
        let metrics = WebhookMetrics {
            requests: Family::default(),
            skips: Family::default(),
            // 50 µs .. ~1.6 s: the engine takes well under a millisecond, so
            // the interesting buckets are the small ones.
            duration: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            certificate_expiry: Gauge::default(),
        };
        registry.register(
            "outrigger_injection_requests",
            "Admission requests, by object kind and result",
            metrics.requests.clone(),
        );
        registry.register(
            "outrigger_injection_skips",
            "Admission requests allowed unchanged, by skip reason",
            metrics.skips.clone(),
        );
        registry.register(
            "outrigger_injection_duration_seconds",
            "Time to answer an admission request, from the body read to the answer",
            metrics.duration.clone(),
        );
        registry.register(
            "outrigger_tls_certificate_expiry_timestamp_seconds",
            "Unix time at which the webhook's serving certificate expires",
            metrics.certificate_expiry.clone(),
        );
        // Every skip series exists from the start (at 0), so that rates and
        // alerts see a series before its first skip.
        let engine = crate::inject::SKIP_REASONS.iter();
        for reason in engine.chain(admission::WEBHOOK_SKIP_REASONS.iter()) {
            let _ = metrics.skips.get_or_create(&SkipLabels { reason });
        }
        metrics
    }

    /// Counts one request. `kind` must come from a bounded set (see
    /// [`crate::webhook::admission::kind_label`]).
    pub fn request(&self, kind: &'static str, result: RequestResult) {
        self.requests
            .get_or_create(&RequestLabels {
                kind,
                result: result.as_str(),
            })
            .inc();
    }

    /// Counts one skip by its stable machine name.
    pub fn skip(&self, reason: &'static str) {
        self.skips.get_or_create(&SkipLabels { reason }).inc();
    }

    /// Records how long one admission took.
    pub fn observe_duration(&self, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Records the serving certificate's `notAfter`, in Unix seconds.
    pub fn set_certificate_expiry(&self, not_after_unix: i64) {
        self.certificate_expiry.set(not_after_unix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_skip_reason_is_exported_from_the_start() {
        let registry = MetricsRegistry::new();
        let _metrics = WebhookMetrics::register(&registry);
        let text = registry.encode();
        for reason in crate::inject::SKIP_REASONS
            .iter()
            .chain(admission::WEBHOOK_SKIP_REASONS.iter())
        {
            let series = format!("outrigger_injection_skips_total{{reason=\"{reason}\"}} 0");
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
    }
}

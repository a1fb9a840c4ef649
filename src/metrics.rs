//! The process's one Prometheus registry, shared by every server part.
//!
//! `outrigger serve` runs several parts in one process (the admission webhook,
//! later the CA's gRPC service and the cluster controllers); Prometheus scrapes
//! them all from the monitoring port's `/metrics`. Each part owns its metric
//! handles (atomics, cheap to update on the hot path) and registers them here
//! once at start with [`MetricsRegistry::register`] or
//! [`MetricsRegistry::register_with`]; the lock is only taken to register and
//! to scrape. The text format is OpenMetrics, via `prometheus-client`.

use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry};

/// The `Content-Type` of [`MetricsRegistry::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of `outrigger_build_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Log lines that could not be written, process-wide: logging starts
/// before any registry exists, and every registry shows the same count.
static LOG_LINES_DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Counts one log line that could not be written (and was dropped: see
/// `cli::init_logging`), so that a full log disk shows on `/metrics`.
pub fn log_line_dropped() {
    LOG_LINES_DROPPED.inc();
}

/// The shared registry. Cloning shares it.
#[derive(Clone)]
pub struct MetricsRegistry {
    inner: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRegistry").finish_non_exhaustive()
    }
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRegistry {
    /// A registry holding `outrigger_build_info{version}` (always 1), so that
    /// dashboards can tell which build each replica runs, and
    /// `outrigger_log_lines_dropped_total`.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        registry.register(
            "outrigger_build",
            "Build information of the running outrigger binary",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        registry.register(
            "outrigger_log_lines_dropped",
            "Log lines that could not be written (stderr on a full disk, a closed pipe) and were dropped",
            LOG_LINES_DROPPED.clone(),
        );
        MetricsRegistry {
            inner: Arc::new(Mutex::new(registry)),
        }
    }

    /// Registers one metric under its full name (the `_total` of a counter
    /// and the `_info` of an info metric are appended by the encoder).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.register_with(|registry| registry.register(name, help, metric));
    }

    /// Gives a part the registry itself, for sub-registries or collectors.
    pub fn register_with(&self, f: impl FnOnce(&mut Registry)) {
        let mut registry = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut registry);
    }

    /// Everything registered, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let registry = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn build_info_and_registered_counters_are_encoded() {
        let registry = MetricsRegistry::new();
        let counter = Counter::<u64>::default();
        registry.register("outrigger_test_things", "Things", counter.clone());
        counter.inc_by(3);
        let text = registry.encode();
        assert!(
            text.contains(&format!(
                "outrigger_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(text.contains("outrigger_test_things_total 3"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

//! The in-cluster controllers' Prometheus metrics. The lead registers them in
//! the server's registry next to the webhook's (`src/metrics.rs`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label set of `outrigger_cabundle_patches_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PatchResult {
    /// `success` or `error`.
    pub result: &'static str,
}

/// Counters and gauges of the cluster controllers. Cloning shares the
/// underlying metrics (they are reference counted), so every controller gets
/// a clone.
#[derive(Clone, Debug, Default)]
pub struct ClusterMetrics {
    cabundle_patches: Family<PatchResult, Counter>,
    root_configmap_writes: Counter,
    secret_certificates_issued: Counter,
    leader: Gauge,
}

impl ClusterMetrics {
    /// Registers every metric under its `outrigger_` name.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "outrigger_cabundle_patches",
            "caBundle patches of the MutatingWebhookConfiguration(s), by result",
            self.cabundle_patches.clone(),
        );
        registry.register(
            "outrigger_root_configmap_writes",
            "Writes (create or repair) of the istio-ca-root-cert ConfigMaps",
            self.root_configmap_writes.clone(),
        );
        registry.register(
            "outrigger_secret_certificates_issued",
            "Certificates issued into per-ServiceAccount istio.<sa> Secrets",
            self.secret_certificates_issued.clone(),
        );
        registry.register(
            "outrigger_leader",
            "1 when this replica holds the leader lease and writes, else 0",
            self.leader.clone(),
        );
    }

    /// Counts one caBundle patch attempt.
    pub fn cabundle_patch(&self, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.cabundle_patches
            .get_or_create(&PatchResult { result })
            .inc();
    }

    /// Counts one successful root ConfigMap write.
    pub fn root_configmap_written(&self) {
        self.root_configmap_writes.inc();
    }

    /// Counts one certificate written into a ServiceAccount Secret.
    pub fn secret_certificate_issued(&self) {
        self.secret_certificates_issued.inc();
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Current caBundle patch count for a result (for tests and logs).
    pub fn cabundle_patches(&self, ok: bool) -> u64 {
        let result = if ok { "success" } else { "error" };
        self.cabundle_patches
            .get_or_create(&PatchResult { result })
            .get()
    }

    /// Current root ConfigMap write count.
    pub fn root_configmap_writes(&self) -> u64 {
        self.root_configmap_writes.get()
    }

    /// Current count of certificates written into Secrets.
    pub fn secret_certificates_issued(&self) -> u64 {
        self.secret_certificates_issued.get()
    }

    /// Current leader gauge.
    pub fn leader(&self) -> i64 {
        self.leader.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_the_four_metrics() {
        let metrics = ClusterMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.cabundle_patch(true);
        metrics.set_leader(true);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("outrigger_cabundle_patches_total{result=\"success\"} 1"));
        assert!(text.contains("outrigger_root_configmap_writes_total 0"));
        assert!(text.contains("outrigger_secret_certificates_issued_total 0"));
        assert!(text.contains("outrigger_leader 1"));
    }
}

//! Keeps the root's PEM in `clientConfig.caBundle` of every webhook of the
//! MutatingWebhookConfiguration(s) outrigger serves, so the API server trusts
//! the webhook's self-issued serving certificate without anyone pasting a
//! bundle (the classic `x509: certificate signed by unknown authority`
//! outage).
//!
//! Patched only when the bytes differ, only the webhooks that differ, with
//! the object's resourceVersion as a precondition (a concurrent edit gives
//! 409 and a retry on fresh data). The configurations are watched, so drift
//! made by someone else is repaired as soon as the event arrives.

use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::Api;
use kube::api::Patch;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::current_ca::{self, CurrentCa};
use super::driver::Drive;
use super::error::{ReconcileError, is_not_found};
use super::leader::LeaderGate;
use super::metrics::ClusterMetrics;
use super::watch_health;
use super::writes;

/// What a reconcile of one configuration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleOutcome {
    /// Every webhook already carried the root: nothing written.
    Unchanged,
    /// These webhooks were patched.
    Patched(Vec<String>),
    /// The configuration does not exist (yet); its creation will be watched.
    Absent,
}

/// The names of the webhooks whose caBundle is not exactly `root_pem`.
pub fn stale_webhooks(config: &MutatingWebhookConfiguration, root_pem: &str) -> Vec<String> {
    config
        .webhooks
        .iter()
        .flatten()
        .filter(|w| {
            w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(root_pem.as_bytes())
        })
        .map(|w| w.name.clone())
        .collect()
}

/// The strategic-merge patch (webhooks merge by name) that sets the caBundle
/// of the stale webhooks, guarded by the object's resourceVersion; `None`
/// when nothing differs.
pub fn patch_for_bundle(config: &MutatingWebhookConfiguration, root_pem: &str) -> Option<Value> {
    let stale = stale_webhooks(config, root_pem);
    if stale.is_empty() {
        return None;
    }
    let bundle = k8s_openapi::ByteString(root_pem.as_bytes().to_vec());
    let webhooks: Vec<Value> = stale
        .iter()
        .map(|name| json!({"name": name, "clientConfig": {"caBundle": bundle}}))
        .collect();
    let mut patch = json!({ "webhooks": webhooks });
    if let Some(version) = &config.metadata.resource_version {
        patch["metadata"] = json!({ "resourceVersion": version });
    }
    Some(patch)
}

/// Brings one configuration, as read, to carry `root_pem`.
pub async fn reconcile_config(
    api: &Api<MutatingWebhookConfiguration>,
    gate: &LeaderGate,
    metrics: &ClusterMetrics,
    config: &MutatingWebhookConfiguration,
    root_pem: &str,
) -> Result<BundleOutcome, ReconcileError> {
    let name = config.metadata.name.clone().unwrap_or_default();
    let Some(patch) = patch_for_bundle(config, root_pem) else {
        return Ok(BundleOutcome::Unchanged);
    };
    let stale = stale_webhooks(config, root_pem);
    gate.ensure()?;
    match api
        .patch(&name, &writes::patch_params(), &Patch::Strategic(patch))
        .await
    {
        Ok(_) => {
            metrics.cabundle_patch(true);
            info!(config = %name, webhooks = ?stale, reason = "caBundle differs from the root", "patched caBundle");
            Ok(BundleOutcome::Patched(stale))
        }
        Err(e) => {
            metrics.cabundle_patch(false);
            Err(ReconcileError::api(
                "patch",
                format!("MutatingWebhookConfiguration {name}"),
                e,
            ))
        }
    }
}

/// Reads the configuration `name` and reconciles it.
pub async fn sync_named(
    api: &Api<MutatingWebhookConfiguration>,
    gate: &LeaderGate,
    metrics: &ClusterMetrics,
    name: &str,
    root_pem: &str,
) -> Result<BundleOutcome, ReconcileError> {
    let config = match api.get(name).await {
        Ok(config) => config,
        Err(e) if is_not_found(&e) => {
            warn!(config = %name, "MutatingWebhookConfiguration not found; will patch it when it appears");
            return Ok(BundleOutcome::Absent);
        }
        Err(e) => {
            return Err(ReconcileError::api(
                "get",
                format!("MutatingWebhookConfiguration {name}"),
                e,
            ));
        }
    };
    reconcile_config(api, gate, metrics, &config, root_pem).await
}

/// Names of watched configurations that changed, from watch events of one
/// configuration (deletions need no patch).
pub fn event_keys(event: watcher::Event<MutatingWebhookConfiguration>) -> Option<String> {
    match event {
        watcher::Event::Apply(c) | watcher::Event::InitApply(c) => c.metadata.name,
        _ => None,
    }
}

/// Runs the caBundle controller for `names` until `triggers` ends.
/// `triggers` yields configuration names that may need work (from
/// [`watch_triggers`] in production); a change of `current` patches every
/// configuration at once (no restart, no other read than the one GET per
/// configuration).
pub async fn run_with_triggers(
    api: Api<MutatingWebhookConfiguration>,
    gate: LeaderGate,
    metrics: ClusterMetrics,
    names: Vec<String>,
    current: CurrentCa,
    triggers: impl Stream<Item = String>,
    resync: Duration,
) {
    let reconcile_gate = gate.clone();
    Drive::new("ca-bundle", resync)
        .run(
            gate,
            triggers,
            std::future::ready(()),
            current_ca::changes(&current),
            || {
                let names = names.clone();
                async move { Ok(names) }
            },
            |name| {
                let (api, gate, metrics) = (&api, &reconcile_gate, &metrics);
                let pem = current.borrow().root_pem().to_string();
                async move {
                    sync_named(api, gate, metrics, &name, &pem)
                        .await
                        .map(|_| ())
                }
            },
        )
        .await;
}

/// Watch events of the named configurations, as names to reconcile.
pub fn watch_triggers(
    api: Api<MutatingWebhookConfiguration>,
    names: &[String],
) -> impl Stream<Item = String> + use<> {
    let streams = names.iter().map(|name| {
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        watch_health::watch(api.clone(), cfg, "MutatingWebhookConfigurations")
            .filter_map(|event| async move { event_keys(event) })
            .boxed()
    });
    futures::stream::select_all(streams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::admissionregistration::v1::{MutatingWebhook, WebhookClientConfig};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn config(bundles: &[(&str, Option<&str>)]) -> MutatingWebhookConfiguration {
        MutatingWebhookConfiguration {
            metadata: ObjectMeta {
                name: Some("outrigger-sidecar-injector".into()),
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            webhooks: Some(
                bundles
                    .iter()
                    .map(|(name, bundle)| MutatingWebhook {
                        name: (*name).into(),
                        client_config: WebhookClientConfig {
                            ca_bundle: bundle
                                .map(|b| k8s_openapi::ByteString(b.as_bytes().to_vec())),
                            ..WebhookClientConfig::default()
                        },
                        ..MutatingWebhook::default()
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn equal_bundles_need_no_patch() {
        assert_eq!(
            patch_for_bundle(&config(&[("a", Some("PEM")), ("b", Some("PEM"))]), "PEM"),
            None
        );
    }

    #[test]
    fn only_stale_webhooks_are_patched_with_a_precondition() {
        let patch = patch_for_bundle(
            &config(&[("a", Some("PEM")), ("b", Some("OLD")), ("c", None)]),
            "PEM",
        )
        .unwrap();
        let b64 = serde_json::to_value(k8s_openapi::ByteString(b"PEM".to_vec())).unwrap();
        assert_eq!(
            patch,
            json!({
                "metadata": {"resourceVersion": "7"},
                "webhooks": [
                    {"name": "b", "clientConfig": {"caBundle": b64}},
                    {"name": "c", "clientConfig": {"caBundle": b64}},
                ]
            })
        );
    }

    #[test]
    fn deletions_trigger_nothing() {
        let c = config(&[]);
        assert_eq!(
            event_keys(watcher::Event::Apply(c.clone())),
            Some("outrigger-sidecar-injector".into())
        );
        assert_eq!(event_keys(watcher::Event::Delete(c)), None);
    }
}

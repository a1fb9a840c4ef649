//! Root distribution: the ConfigMap `istio-ca-root-cert` (key
//! `root-cert.pem`, Istio's names) in every namespace except a few system
//! ones, so any workload can mount the mesh's trust root. Created when a
//! namespace appears, repaired when edited or deleted.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, Patch};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use tracing::{debug, info};

use super::driver::drive;
use super::error::{ReconcileError, is_not_found, status_code};
use super::leader::LeaderGate;
use super::metrics::ClusterMetrics;
use super::retry::Backoff;
use super::watch_health;
use super::writes;

/// The ConfigMap's name (Istio's).
pub const ROOT_CONFIGMAP: &str = "istio-ca-root-cert";
/// The key holding the root PEM (Istio's).
pub const ROOT_CERT_KEY: &str = "root-cert.pem";
/// Namespaces that never get the ConfigMap.
pub const EXCLUDED_NAMESPACES: [&str; 3] = ["kube-public", "kube-node-lease", "local-path-storage"];

/// What reconciling one namespace did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootOutcome {
    /// Excluded, gone or terminating: nothing to hold.
    Skipped,
    /// Already right.
    Unchanged,
    /// Was missing; created.
    Created,
    /// Held another value; repaired.
    Repaired,
}

/// What the ConfigMap needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigMapAction {
    /// It does not exist.
    Create,
    /// It exists without the root PEM under its key.
    Repair,
    /// It is right.
    Keep,
}

/// Whether a namespace name is one that never gets the root.
pub fn is_excluded(namespace: &str) -> bool {
    EXCLUDED_NAMESPACES.contains(&namespace)
}

/// Whether the namespace should hold the root now (not excluded, not being
/// deleted: a terminating namespace refuses creates).
pub fn wants_root(namespace: &Namespace) -> bool {
    let name = namespace.metadata.name.as_deref().unwrap_or_default();
    let terminating = namespace.metadata.deletion_timestamp.is_some()
        || namespace.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    !name.is_empty() && !is_excluded(name) && !terminating
}

/// The ConfigMap as outrigger writes it.
pub fn desired_configmap(namespace: &str, root_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(ROOT_CONFIGMAP.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "istio.io/config".to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            ROOT_CERT_KEY.to_string(),
            root_pem.to_string(),
        )])),
        ..ConfigMap::default()
    }
}

/// Decides from the ConfigMap as read (or its absence).
pub fn configmap_action(existing: Option<&ConfigMap>, root_pem: &str) -> ConfigMapAction {
    match existing {
        None => ConfigMapAction::Create,
        Some(cm) => {
            let current = cm.data.as_ref().and_then(|d| d.get(ROOT_CERT_KEY));
            if current.map(String::as_str) == Some(root_pem) {
                ConfigMapAction::Keep
            } else {
                ConfigMapAction::Repair
            }
        }
    }
}

/// Brings `namespace`'s root ConfigMap to hold `root_pem`.
pub async fn reconcile_namespace(
    client: &Client,
    gate: &LeaderGate,
    metrics: &ClusterMetrics,
    namespace: &str,
    root_pem: &str,
) -> Result<RootOutcome, ReconcileError> {
    if is_excluded(namespace) {
        return Ok(RootOutcome::Skipped);
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.get(namespace).await {
        Ok(ns) if wants_root(&ns) => {}
        Ok(_) => return Ok(RootOutcome::Skipped),
        Err(e) if is_not_found(&e) => return Ok(RootOutcome::Skipped),
        Err(e) => {
            return Err(ReconcileError::api(
                "get",
                format!("Namespace {namespace}"),
                e,
            ));
        }
    }
    let object = format!("ConfigMap {namespace}/{ROOT_CONFIGMAP}");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let existing = match api.get(ROOT_CONFIGMAP).await {
        Ok(cm) => Some(cm),
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(ReconcileError::api("get", object, e)),
    };
    match configmap_action(existing.as_ref(), root_pem) {
        ConfigMapAction::Keep => Ok(RootOutcome::Unchanged),
        ConfigMapAction::Create => {
            gate.ensure()?;
            match api
                .create(
                    &writes::post_params(),
                    &desired_configmap(namespace, root_pem),
                )
                .await
            {
                Ok(_) => {
                    metrics.root_configmap_written();
                    info!(
                        namespace,
                        configmap = ROOT_CONFIGMAP,
                        reason = "missing",
                        "created root ConfigMap"
                    );
                    Ok(RootOutcome::Created)
                }
                // The namespace is being deleted (403) or just went (404).
                Err(e) if matches!(status_code(&e), Some(403 | 404)) => {
                    debug!(namespace, error = %e, "namespace refuses the root ConfigMap; skipped");
                    Ok(RootOutcome::Skipped)
                }
                Err(e) => Err(ReconcileError::api("create", object, e)),
            }
        }
        ConfigMapAction::Repair => {
            gate.ensure()?;
            let patch = json!({"data": {ROOT_CERT_KEY: root_pem}});
            match api
                .patch(
                    ROOT_CONFIGMAP,
                    &writes::patch_params(),
                    &Patch::Merge(patch),
                )
                .await
            {
                Ok(_) => {
                    metrics.root_configmap_written();
                    info!(
                        namespace,
                        configmap = ROOT_CONFIGMAP,
                        reason = "root-cert.pem differs from the root",
                        "repaired root ConfigMap"
                    );
                    Ok(RootOutcome::Repaired)
                }
                Err(e) => Err(ReconcileError::api("patch", object, e)),
            }
        }
    }
}

/// The namespaces to hold the root, for a resync.
pub async fn all_namespaces(client: &Client) -> Result<Vec<String>, ReconcileError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| ReconcileError::api("list", "Namespaces", e))?;
    Ok(list
        .items
        .iter()
        .filter(|ns| wants_root(ns))
        .filter_map(|ns| ns.metadata.name.clone())
        .collect())
}

/// The namespace a ConfigMap event asks to look at: a deletion, or a
/// ConfigMap whose root differs. `None` when it is already right.
pub fn configmap_event_key(event: watcher::Event<ConfigMap>, root_pem: &str) -> Option<String> {
    match event {
        watcher::Event::Delete(cm) => cm.metadata.namespace,
        watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) => {
            if configmap_action(Some(&cm), root_pem) == ConfigMapAction::Keep {
                None
            } else {
                cm.metadata.namespace
            }
        }
        _ => None,
    }
}

/// The namespace a Namespace event asks to look at (a new or changed one).
pub fn namespace_event_key(event: watcher::Event<Namespace>) -> Option<String> {
    match event {
        watcher::Event::Apply(ns) | watcher::Event::InitApply(ns) if wants_root(&ns) => {
            ns.metadata.name
        }
        _ => None,
    }
}

/// Watch events of namespaces and of the root ConfigMaps, as namespaces to
/// reconcile.
pub fn watch_triggers(client: &Client, root_pem: &str) -> impl Stream<Item = String> + use<> {
    let namespaces = watch_health::watch(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        "Namespaces",
    )
    .filter_map(|event| async move { namespace_event_key(event) });
    let pem = root_pem.to_string();
    let configmaps = watch_health::watch(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={ROOT_CONFIGMAP}")),
        "root ConfigMaps",
    )
    .filter_map(move |event| futures::future::ready(configmap_event_key(event, &pem)));
    futures::stream::select(namespaces.boxed(), configmaps.boxed())
}

/// Runs the root ConfigMap controller until `triggers` ends.
pub async fn run_with_triggers(
    client: Client,
    gate: LeaderGate,
    metrics: ClusterMetrics,
    root_pem: String,
    triggers: impl Stream<Item = String>,
    resync: Duration,
) {
    let reconcile_gate = gate.clone();
    drive(
        "root-configmaps",
        triggers,
        gate,
        resync,
        Backoff::default_controller(),
        || all_namespaces(&client),
        |namespace| {
            let (client, gate, metrics, pem) = (&client, &reconcile_gate, &metrics, &root_pem);
            async move {
                reconcile_namespace(client, gate, metrics, &namespace, pem)
                    .await
                    .map(|_| ())
            }
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str, terminating: bool) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            status: terminating.then(|| k8s_openapi::api::core::v1::NamespaceStatus {
                phase: Some("Terminating".into()),
                ..Default::default()
            }),
            ..Namespace::default()
        }
    }

    #[test]
    fn excluded_and_terminating_namespaces_get_nothing() {
        assert!(wants_root(&ns("default", false)));
        assert!(!wants_root(&ns("kube-public", false)));
        assert!(!wants_root(&ns("kube-node-lease", false)));
        assert!(!wants_root(&ns("local-path-storage", false)));
        assert!(!wants_root(&ns("app", true)));
        assert!(wants_root(&ns("kube-system", false)));
    }

    #[test]
    fn action_compares_the_root_bytes() {
        let good = desired_configmap("a", "PEM");
        assert_eq!(configmap_action(None, "PEM"), ConfigMapAction::Create);
        assert_eq!(configmap_action(Some(&good), "PEM"), ConfigMapAction::Keep);
        assert_eq!(
            configmap_action(Some(&good), "NEW"),
            ConfigMapAction::Repair
        );
        assert_eq!(
            configmap_action(Some(&ConfigMap::default()), "PEM"),
            ConfigMapAction::Repair
        );
    }

    #[test]
    fn events_that_need_work() {
        let good = desired_configmap("a", "PEM");
        assert_eq!(
            configmap_event_key(watcher::Event::Apply(good.clone()), "PEM"),
            None
        );
        assert_eq!(
            configmap_event_key(watcher::Event::Apply(good.clone()), "NEW"),
            Some("a".into())
        );
        assert_eq!(
            configmap_event_key(watcher::Event::Delete(good), "PEM"),
            Some("a".into())
        );
        assert_eq!(
            namespace_event_key(watcher::Event::Apply(ns("b", false))),
            Some("b".into())
        );
        assert_eq!(
            namespace_event_key(watcher::Event::Apply(ns("kube-public", false))),
            None
        );
        assert_eq!(
            namespace_event_key(watcher::Event::Delete(ns("b", false))),
            None
        );
    }
}

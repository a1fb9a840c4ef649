//! Root distribution: the ConfigMap `istio-ca-root-cert` (key
//! `root-cert.pem`, Istio's names) in every namespace except a few system
//! ones, so any workload can mount the mesh's trust root. Created when a
//! namespace appears, repaired when edited or deleted, rewritten when the
//! root changes.
//!
//! Read from the watch, write to the API: the leader decides from its
//! caches of namespaces and root ConfigMaps, so a resync or an unchanged
//! event costs no request, and a change costs one write per namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Patch;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use tracing::{debug, info};

use super::cached;
use super::current_ca::{self, CurrentCa};
use super::driver::{Drive, while_leading};
use super::error::{ReconcileError, is_conflict, status_code};
use super::leader::LeaderGate;
use super::metrics::ClusterMetrics;
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

/// What the root ConfigMap controller reads instead of the API: the
/// namespaces and the root ConfigMaps, each from its watch.
#[derive(Clone)]
pub struct RootCaches {
    /// Every namespace.
    pub namespaces: Store<Namespace>,
    /// Every ConfigMap named [`ROOT_CONFIGMAP`].
    pub configmaps: Store<ConfigMap>,
}

impl RootCaches {
    /// The namespaces to hold the root now (for a resync: no request).
    pub fn namespaces_wanting_root(&self) -> Vec<String> {
        self.namespaces
            .state()
            .iter()
            .filter(|ns| wants_root(ns))
            .filter_map(|ns| ns.metadata.name.clone())
            .collect()
    }

    fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get(&ObjectRef::new(name))
    }

    fn configmap(&self, namespace: &str) -> Option<Arc<ConfigMap>> {
        self.configmaps
            .get(&ObjectRef::new(ROOT_CONFIGMAP).within(namespace))
    }
}

/// Brings `namespace`'s root ConfigMap to hold `root_pem`, deciding from the
/// caches: no request when it already does, one create or patch when not.
/// A create that meets 409 means the cache was behind: the ConfigMap is read
/// once then, and patched only if it differs.
pub async fn reconcile_namespace(
    client: &Client,
    gate: &LeaderGate,
    metrics: &ClusterMetrics,
    caches: &RootCaches,
    namespace: &str,
    root_pem: &str,
) -> Result<RootOutcome, ReconcileError> {
    if is_excluded(namespace)
        || !caches
            .namespace(namespace)
            .is_some_and(|ns| wants_root(&ns))
    {
        return Ok(RootOutcome::Skipped);
    }
    let object = format!("ConfigMap {namespace}/{ROOT_CONFIGMAP}");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cached = caches.configmap(namespace);
    match configmap_action(cached.as_deref(), root_pem) {
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
                // The cache had not seen it yet: read it once.
                Err(e) if is_conflict(&e) => {
                    let current = api
                        .get(ROOT_CONFIGMAP)
                        .await
                        .map_err(|e| ReconcileError::api("get", object.clone(), e))?;
                    match configmap_action(Some(&current), root_pem) {
                        ConfigMapAction::Keep => Ok(RootOutcome::Unchanged),
                        _ => repair(&api, gate, metrics, namespace, root_pem, object).await,
                    }
                }
                Err(e) => Err(ReconcileError::api("create", object, e)),
            }
        }
        ConfigMapAction::Repair => repair(&api, gate, metrics, namespace, root_pem, object).await,
    }
}

/// Patches the root into an existing ConfigMap (other keys are kept).
async fn repair(
    api: &Api<ConfigMap>,
    gate: &LeaderGate,
    metrics: &ClusterMetrics,
    namespace: &str,
    root_pem: &str,
    object: String,
) -> Result<RootOutcome, ReconcileError> {
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

/// The namespace a ConfigMap event asks to look at (any change: the
/// reconcile compares with the cache and does nothing when it is right).
pub fn configmap_event_key(event: watcher::Event<ConfigMap>) -> Option<String> {
    match event {
        watcher::Event::Delete(cm) | watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) => {
            cm.metadata.namespace
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

/// The watches of namespaces and of the root ConfigMaps: their caches,
/// their events as namespaces to reconcile (the stream must be polled for
/// the caches to fill), and a future that completes once both caches hold
/// their first full listing.
pub fn watch(
    client: &Client,
) -> (
    RootCaches,
    impl Stream<Item = String> + Send + use<>,
    impl Future<Output = ()> + Send + use<>,
) {
    let (namespaces, ns_events) = cached::reflect(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        "Namespaces",
    );
    let (configmaps, cm_events) = cached::reflect(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={ROOT_CONFIGMAP}")),
        "root ConfigMaps",
    );
    let triggers = futures::stream::select(
        ns_events
            .filter_map(|e| futures::future::ready(namespace_event_key(e)))
            .boxed(),
        cm_events
            .filter_map(|e| futures::future::ready(configmap_event_key(e)))
            .boxed(),
    );
    let ready =
        futures::future::join(cached::ready(&namespaces), cached::ready(&configmaps)).map(|_| ());
    (
        RootCaches {
            namespaces,
            configmaps,
        },
        triggers,
        ready,
    )
}

/// Runs the root ConfigMap controller: while this replica leads, watches
/// namespaces and root ConfigMaps and keeps every namespace's ConfigMap on
/// the current root, from the caches (see [`reconcile_namespace`]); a new
/// CA is written everywhere at once, `concurrency` writes at a time.
pub async fn run(
    client: Client,
    gate: LeaderGate,
    metrics: ClusterMetrics,
    current: CurrentCa,
    resync: Duration,
    concurrency: usize,
) {
    while_leading(gate.clone(), || {
        let (caches, triggers, ready) = watch(&client);
        run_with_caches(
            client.clone(),
            gate.clone(),
            metrics.clone(),
            current.clone(),
            caches,
            (triggers, ready),
            Drive {
                concurrency,
                ..Drive::new("root-configmaps", resync)
            },
        )
    })
    .await;
}

/// [`run`] with given caches and their events (tests feed them).
pub async fn run_with_caches(
    client: Client,
    gate: LeaderGate,
    metrics: ClusterMetrics,
    current: CurrentCa,
    caches: RootCaches,
    (triggers, ready): (impl Stream<Item = String>, impl Future<Output = ()>),
    drive: Drive,
) {
    let refresh = current_ca::changes(&current);
    let reconcile_gate = gate.clone();
    drive
        .run(
            gate,
            triggers,
            ready,
            refresh,
            || futures::future::ready(Ok(caches.namespaces_wanting_root())),
            |namespace| {
                let (client, gate, metrics, caches) = (&client, &reconcile_gate, &metrics, &caches);
                let root_pem = current.borrow().root_pem().to_string();
                async move {
                    reconcile_namespace(client, gate, metrics, caches, &namespace, &root_pem)
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
            configmap_event_key(watcher::Event::Apply(good.clone())),
            Some("a".into())
        );
        assert_eq!(
            configmap_event_key(watcher::Event::Delete(good)),
            Some("a".into())
        );
        assert_eq!(configmap_event_key(watcher::Event::Init), None);
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

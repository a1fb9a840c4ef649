//! The API server's side of [`BindingCheck`]: whether the objects a locally
//! verified ServiceAccount token is bound to still exist, so that the local
//! JWT path never accepts a token TokenReview would refuse.
//!
//! - The ServiceAccount is looked up in a cluster-wide, metadata-only watch
//!   cache (name, namespace and UID; labels, annotations and managed fields
//!   dropped): a ServiceAccount costs a few hundred bytes, and a deletion
//!   takes effect within the watch's delay (well under a second on a
//!   healthy API server). Until the cache has listed once, the check says
//!   `Unknown` and TokenReview decides.
//! - The pod (or legacy Secret) a token is bound to is read with one GET
//!   of its metadata per check (a quorum read: exact, never stale). A
//!   cluster-wide pod cache would cost memory in proportion to every pod in
//!   the cluster for a question asked once per certificate (at a proxy's
//!   start and at each renewal), so it is not kept.
//! - A node-bound token without a pod, or a read that fails, is `Unknown`:
//!   TokenReview decides.

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tonic::async_trait;

use super::watch_health::WatchBackoff;

use crate::ca::grpc::auth::binding::{BindingCheck, BindingVerdict, BoundObject, TokenBinding};

/// Checks token bindings against the API server (see the module docs).
pub struct ApiBindingCheck {
    client: kube::Client,
    service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
}

impl std::fmt::Debug for ApiBindingCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiBindingCheck")
            .field("service_accounts", &self.service_accounts.len())
            .finish()
    }
}

impl ApiBindingCheck {
    /// A check whose ServiceAccount cache is fed by the returned task (run
    /// it for as long as the check is used; abort it with the CA service).
    pub fn start(client: kube::Client) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (reader, writer) = reflector::store();
        let api: Api<PartialObjectMeta<ServiceAccount>> = Api::all(client.clone());
        let task = tokio::spawn(async move {
            let stream = kube::runtime::WatchStreamExt::backoff(
                watcher(api, watcher::Config::default()),
                WatchBackoff::default(),
            )
            .modify(|sa| {
                sa.metadata.managed_fields = None;
                sa.metadata.annotations = None;
                sa.metadata.labels = None;
                sa.metadata.owner_references = None;
            });
            reflector::reflector(writer, stream)
                .for_each(|_| futures::future::ready(()))
                .await;
        });
        (Arc::new(Self::with_cache(client, reader)), task)
    }

    /// A check that looks ServiceAccounts up in `service_accounts` (a
    /// reflector's store, fed elsewhere) and bound pods and Secrets up
    /// through `client`.
    pub fn with_cache(
        client: kube::Client,
        service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
    ) -> Self {
        Self {
            client,
            service_accounts,
        }
    }

    fn check_service_account(&self, namespace: &str, bound: &BoundObject) -> BindingVerdict {
        let listed = self.service_accounts.wait_until_ready().now_or_never();
        if !matches!(listed, Some(Ok(()))) {
            return BindingVerdict::Unknown("the ServiceAccount cache has not listed yet".into());
        }
        let key = ObjectRef::new(&bound.name).within(namespace);
        match self.service_accounts.get(&key) {
            None => BindingVerdict::Revoked(format!(
                "serviceaccount {namespace}/{} no longer exists",
                bound.name
            )),
            Some(sa) => compare(
                "serviceaccount",
                namespace,
                bound,
                sa.metadata.uid.as_deref(),
            ),
        }
    }
}

/// The verdict for a bound object found with `uid`.
fn compare(kind: &str, namespace: &str, bound: &BoundObject, uid: Option<&str>) -> BindingVerdict {
    match uid {
        Some(uid) if uid == bound.uid => BindingVerdict::Current,
        Some(uid) => BindingVerdict::Revoked(format!(
            "{kind} {namespace}/{} was deleted and recreated (UID {uid}; the token names {})",
            bound.name, bound.uid
        )),
        None => BindingVerdict::Unknown(format!("{kind} {namespace}/{} has no UID", bound.name)),
    }
}

/// The verdict for a bound object read with one GET of its metadata.
async fn check_by_get<K>(
    api: Api<K>,
    kind: &str,
    namespace: &str,
    bound: &BoundObject,
) -> BindingVerdict
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_metadata_opt(&bound.name).await {
        Ok(None) => BindingVerdict::Revoked(format!(
            "{kind} {namespace}/{} no longer exists",
            bound.name
        )),
        Ok(Some(meta)) => compare(kind, namespace, bound, meta.metadata.uid.as_deref()),
        Err(e) => BindingVerdict::Unknown(format!(
            "cannot read {kind} {namespace}/{}: {e}",
            bound.name
        )),
    }
}

#[async_trait]
impl BindingCheck for ApiBindingCheck {
    async fn check(&self, binding: &TokenBinding) -> BindingVerdict {
        let ns = binding.namespace.as_str();
        let verdict = self.check_service_account(ns, &binding.service_account);
        if verdict != BindingVerdict::Current {
            return verdict;
        }
        if let Some(pod) = &binding.pod {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            return check_by_get(api, "pod", ns, pod).await;
        }
        if let Some(secret) = &binding.secret {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
            return check_by_get(api, "secret", ns, secret).await;
        }
        if binding.node.is_some() {
            return BindingVerdict::Unknown("a node-bound token is checked by TokenReview".into());
        }
        BindingVerdict::Current
    }
}

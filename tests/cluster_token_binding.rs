//! The local JWT path's binding check against a scripted API server: a
//! token is current only while its ServiceAccount (from the watch cache) and
//! its pod (one GET) exist with the UIDs it names; a deleted or recreated
//! one revokes it, as TokenReview would; what cannot be checked is left to
//! TokenReview.

#[path = "cluster_support/scenario.rs"]
mod scenario;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ObjectMeta, PartialObjectMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use outrigger::ca::grpc::auth::binding::{BindingCheck, BindingVerdict, BoundObject, TokenBinding};
use outrigger::cluster::token_binding::ApiBindingCheck;
use scenario::{Scenario, not_found, ok};
use serde_json::json;

fn service_account(namespace: &str, name: &str, uid: &str) -> PartialObjectMeta<ServiceAccount> {
    PartialObjectMeta {
        types: None,
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: Some(uid.into()),
            ..ObjectMeta::default()
        },
        _phantom: Default::default(),
    }
}

/// A listed cache holding `shop/frontend` with UID `sa-1`.
fn listed_cache() -> Store<PartialObjectMeta<ServiceAccount>> {
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitApply(service_account(
        "shop", "frontend", "sa-1",
    )));
    writer.apply_watcher_event(&watcher::Event::InitDone);
    std::mem::forget(writer);
    store
}

fn binding(sa_uid: &str, pod: Option<(&str, &str)>) -> TokenBinding {
    TokenBinding {
        namespace: "shop".into(),
        service_account: BoundObject {
            name: "frontend".into(),
            uid: sa_uid.into(),
        },
        pod: pod.map(|(name, uid)| BoundObject {
            name: name.into(),
            uid: uid.into(),
        }),
        secret: None,
        node: None,
    }
}

fn pod_meta(uid: &str) -> scenario::Reply {
    ok(json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": {"name": "frontend-0", "namespace": "shop", "uid": uid},
    }))
}

fn revoked(verdict: &BindingVerdict, says: &str) -> bool {
    matches!(verdict, BindingVerdict::Revoked(why) if why.contains(says))
}

#[tokio::test]
async fn a_service_account_token_is_current_while_its_service_account_is() {
    let (client, verifier) = Scenario::new().start();
    let check = ApiBindingCheck::with_cache(client, listed_cache());
    assert_eq!(
        check.check(&binding("sa-1", None)).await,
        BindingVerdict::Current
    );
    let recreated = check.check(&binding("sa-0", None)).await;
    assert!(
        revoked(&recreated, "deleted and recreated"),
        "{recreated:?}"
    );
    let mut ghost = binding("sa-1", None);
    ghost.service_account.name = "ghost".into();
    let gone = check.check(&ghost).await;
    assert!(
        revoked(&gone, "serviceaccount shop/ghost no longer exists"),
        "{gone:?}"
    );
    drop(check);
    verifier.finish().await;
}

#[tokio::test]
async fn a_pod_bound_token_is_revoked_with_its_pod() {
    let pod_path = "/api/v1/namespaces/shop/pods/frontend-0";
    let (client, verifier) = Scenario::new()
        .get(pod_path, pod_meta("pod-1"))
        .get(pod_path, pod_meta("pod-2"))
        .get(pod_path, not_found())
        .start();
    let check = ApiBindingCheck::with_cache(client, listed_cache());
    let pod_bound = binding("sa-1", Some(("frontend-0", "pod-1")));
    assert_eq!(check.check(&pod_bound).await, BindingVerdict::Current);
    let replaced = check.check(&pod_bound).await;
    assert!(
        revoked(&replaced, "pod shop/frontend-0 was deleted and recreated"),
        "{replaced:?}"
    );
    let deleted = check.check(&pod_bound).await;
    assert!(
        revoked(&deleted, "pod shop/frontend-0 no longer exists"),
        "{deleted:?}"
    );
    drop(check);
    verifier.finish().await;
}

#[tokio::test]
async fn what_cannot_be_checked_is_left_to_token_review() {
    // Before the cache has listed: no request, no verdict.
    let (client, verifier) = Scenario::new().start();
    let (unlisted, _writer) = reflector::store::<PartialObjectMeta<ServiceAccount>>();
    let unlisted_check = ApiBindingCheck::with_cache(client.clone(), unlisted);
    assert!(matches!(
        unlisted_check.check(&binding("sa-1", None)).await,
        BindingVerdict::Unknown(_)
    ));
    drop(unlisted_check);
    // A node-bound token without a pod.
    let check = ApiBindingCheck::with_cache(client, listed_cache());
    let mut node_bound = binding("sa-1", None);
    node_bound.node = Some(BoundObject {
        name: "node-1".into(),
        uid: "n-1".into(),
    });
    assert!(matches!(
        check.check(&node_bound).await,
        BindingVerdict::Unknown(_)
    ));
    drop(check);
    verifier.finish().await;
}

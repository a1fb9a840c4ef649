//! istiod's `istiod-tls` Secret against a scripted API server: created when
//! missing (a `kubernetes.io/tls` Secret under outrigger's root, named for
//! istiod's Service, written as outrigger), then left alone while current.

#[path = "cluster_support/scenario.rs"]
mod scenario;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use outrigger::cluster::authority::ClusterCa;
use outrigger::cluster::istiod_cert::{self, IstiodAction, IstiodCertConfig};
use outrigger::cluster::leader::LeaderGate;
use scenario::{Reply, Scenario, not_found, ok};
use serde_json::json;

const PATH: &str = "/api/v1/namespaces/istio-system/secrets/istiod-tls";
const COLLECTION: &str = "/api/v1/namespaces/istio-system/secrets";

fn config() -> IstiodCertConfig {
    IstiodCertConfig {
        namespace: "istio-system".into(),
        dns_names: IstiodCertConfig::default_dns_names("istio-system"),
        ttl: Duration::from_secs(3600),
    }
}

#[tokio::test]
async fn a_missing_secret_is_created_then_kept() {
    let ca = ClusterCa::generate("cluster.local").unwrap().0;
    let current =
        istiod_cert::desired_secret(&ca, &config(), std::time::SystemTime::now()).unwrap();
    let (client, verifier) = Scenario::new()
        .get(PATH, not_found())
        .post(
            COLLECTION,
            json!({
                "metadata": {
                    "name": "istiod-tls",
                    "labels": {"app.kubernetes.io/managed-by": "outrigger"},
                    "annotations": {"outrigger.io/istiod-dns-names": "istiod.istio-system.svc,istiod.istio-system.svc.cluster.local"},
                },
                "type": "kubernetes.io/tls",
            }),
            Reply::Echo(201),
        )
        .get(PATH, ok(serde_json::to_value(&current).unwrap()))
        .start();
    let api: Api<Secret> = Api::namespaced(client, "istio-system");
    let gate = LeaderGate::always();
    let first = istiod_cert::reconcile(&api, &gate, &ca, &config())
        .await
        .unwrap();
    assert_eq!(first, IstiodAction::Create);
    let second = istiod_cert::reconcile(&api, &gate, &ca, &config())
        .await
        .unwrap();
    assert_eq!(second, IstiodAction::Keep);
    let seen = verifier.seen();
    let created = &seen[1].2;
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(created["data"][key].is_string(), "{key} missing: {created}");
    }
    drop(api);
    verifier.finish().await;
}

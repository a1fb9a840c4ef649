//! The pod's network and cluster as Istio's injector writes them:
//! `values.global.network` (or the pod's own `topology.istio.io/network`
//! label) labels the pod and sets the proxy's `ISTIO_META_NETWORK`; a
//! configured cluster name and the network come last in the proxy's env
//! (Istio's `overwriteClusterInfo` moves them there, after the template's).

use outrigger::config::Config;
use outrigger::inject::{Context, Outcome, inject, uninject};
use serde_json::{Value, json};

fn config(sets: &[&str]) -> Config {
    let mut b = Config::builder();
    for s in sets {
        b.set(s).expect("set");
    }
    b.build().expect("config")
}

fn pod(labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": labels},
        "spec": {"containers": [{"name": "web", "image": "web:1"}]}
    })
}

fn injected(object: &Value, cfg: &Config) -> Value {
    match inject(object, &Context::default(), cfg).expect("injects") {
        Outcome::Injected { mutated, .. } => mutated,
        Outcome::Skipped { reason } => panic!("skipped: {reason}"),
    }
}

/// The proxy's env var names, in order.
fn env_names(pod: &Value) -> Vec<String> {
    let proxy = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| pod["spec"][*f].as_array())
        .flatten()
        .find(|c| c["name"] == "istio-proxy")
        .expect("proxy");
    proxy["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or("").to_string())
        .collect()
}

fn env_value(pod: &Value, name: &str) -> Option<String> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|f| pod["spec"][*f].as_array())
        .flatten()
        .find(|c| c["name"] == "istio-proxy")?["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn the_configured_network_labels_the_pod_and_comes_last_in_the_proxys_env() {
    let cfg = config(&[
        "values.global.network=net-east",
        "meshConfig.defaultConfig.proxyMetadata.DNS_CAPTURE=true",
    ]);
    let out = injected(&pod(json!({"app": "web"})), &cfg);
    assert_eq!(
        out["metadata"]["labels"]["topology.istio.io/network"],
        "net-east"
    );
    assert_eq!(
        env_value(&out, "ISTIO_META_NETWORK").as_deref(),
        Some("net-east")
    );
    let names = env_names(&out);
    assert_eq!(
        names.last().map(String::as_str),
        Some("ISTIO_META_NETWORK"),
        "{names:?}"
    );
    // The cluster keeps its place in the template when not configured.
    let cluster = names.iter().position(|n| n == "ISTIO_META_CLUSTER_ID");
    let node = names.iter().position(|n| n == "ISTIO_META_NODE_NAME");
    assert_eq!(cluster.map(|c| c + 1), node, "{names:?}");
}

#[test]
fn the_pods_own_network_label_wins() {
    let cfg = config(&["values.global.network=net-east"]);
    let out = injected(
        &pod(json!({"app": "web", "topology.istio.io/network": "net-west"})),
        &cfg,
    );
    assert_eq!(
        out["metadata"]["labels"]["topology.istio.io/network"],
        "net-west"
    );
    assert_eq!(
        env_value(&out, "ISTIO_META_NETWORK").as_deref(),
        Some("net-west")
    );
    // Without any network, neither the label nor the env var.
    let plain = injected(&pod(json!({"app": "web"})), &Config::default());
    assert!(plain["metadata"]["labels"]["topology.istio.io/network"].is_null());
    assert_eq!(env_value(&plain, "ISTIO_META_NETWORK"), None);
}

#[test]
fn a_configured_cluster_name_moves_to_the_end_before_the_network() {
    let cfg = config(&[
        "values.global.network=net-east",
        "values.global.multiCluster.clusterName=east-1",
    ]);
    let out = injected(&pod(json!({"app": "web"})), &cfg);
    let names = env_names(&out);
    assert_eq!(
        names[names.len() - 2..],
        ["ISTIO_META_CLUSTER_ID", "ISTIO_META_NETWORK"],
        "{names:?}"
    );
    assert_eq!(
        env_value(&out, "ISTIO_META_CLUSTER_ID").as_deref(),
        Some("east-1")
    );
}

#[test]
fn uninject_takes_the_network_label_off_but_keeps_the_pods_own() {
    let cfg = config(&["values.global.network=net-east"]);
    for labels in [
        json!({"app": "web"}),
        json!({"app": "web", "topology.istio.io/network": "net-west"}),
    ] {
        let original = pod(labels);
        let out = injected(&original, &cfg);
        assert_eq!(uninject(&out, &cfg), Some(original));
    }
}

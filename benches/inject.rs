//! Injection cost beside the cost of merely reading and writing the object.
//!
//! The target: injecting an object (decision + mutation + patch, one
//! call to `outrigger::inject::inject`) costs at most 4x a serde_json parse
//! and serialize of the same object. Two objects, built here in code:
//! - `deployment`: a typical Deployment, 3 containers with liveness,
//!   readiness and startup probes, ports, resources, 30 env vars in all;
//! - `pod-2000-env`: a Pod whose one container has 2,000 env vars (the
//!   patch and the sidecar's pod-port and app-container bookkeeping must not
//!   degrade with object size).
//!
//! Beside them, for scale, parse+serialize of the injected object (larger
//! than the input: the proxy container, its env, the volumes) and the
//! webhook's per-request path (parse, inject, serialize the patch).
//!
//! Run: `cargo bench --bench inject -- --warm-up-time 1 --measurement-time 3`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use outrigger::config::Config;
use outrigger::inject::{Context, Outcome, inject};
use serde_json::{Value, json};

fn env(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(
            |i| json!({"name": format!("{prefix}_{i}"), "value": format!("value-{i}-of-{prefix}")}),
        )
        .collect()
}

fn app_container(name: &str, port: u16, env_vars: usize) -> Value {
    json!({
        "name": name,
        "image": format!("registry.example.com/shop/{name}:1.4.2"),
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env(&name.to_uppercase(), env_vars),
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"}
        },
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": port}, "periodSeconds": 5},
        "startupProbe": {"tcpSocket": {"port": port}, "failureThreshold": 30},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/shop"}]
    })
}

/// A typical Deployment: 3 containers, probes, 30 env vars.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "checkout",
            "namespace": "shop",
            "labels": {"app": "checkout", "version": "v3"},
            "annotations": {"deployment.kubernetes.io/revision": "7"}
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "checkout"}},
            "template": {
                "metadata": {
                    "labels": {"app": "checkout", "version": "v3"},
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9102"}
                },
                "spec": {
                    "serviceAccountName": "checkout",
                    "containers": [
                        app_container("checkout", 8080, 10),
                        app_container("cache", 6379, 10),
                        app_container("metrics", 9102, 10)
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": "checkout-config"}}]
                }
            }
        }
    })
}

/// A Pod with one container holding 2,000 env vars.
fn big_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "batch-worker", "namespace": "shop", "labels": {"app": "batch"}},
        "spec": {"containers": [app_container("worker", 8080, 2000)]}
    })
}

fn bench_object(c: &mut Criterion, name: &str, object: &Value) {
    let ctx = Context {
        namespace: Some("shop".into()),
        namespace_labels: Some(BTreeMap::from([(
            "istio-injection".to_owned(),
            "enabled".to_owned(),
        )])),
    };
    let cfg = Config::default();
    // Measure an injection, never a skip.
    let mutated = match inject(object, &ctx, &cfg) {
        Ok(Outcome::Injected { mutated, .. }) => mutated,
        Ok(Outcome::Skipped { reason }) => panic!("{name} fixture was skipped: {reason}"),
        Err(err) => panic!("{name} fixture was rejected: {err}"),
    };
    let text = serde_json::to_string(object).expect("a JSON value serializes");
    let injected_text = serde_json::to_string(&mutated).expect("a JSON value serializes");

    let mut group = c.benchmark_group(name);
    group.bench_function("inject", |b| {
        b.iter(|| inject(black_box(object), black_box(&ctx), black_box(&cfg)))
    });
    group.bench_function("parse+serialize", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_str(black_box(&text)).expect("valid JSON");
            serde_json::to_string(&value).expect("serializes")
        })
    });
    // For scale: the injected object is larger than the input.
    group.bench_function("parse+serialize-injected", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_str(black_box(&injected_text)).expect("valid JSON");
            serde_json::to_string(&value).expect("serializes")
        })
    });
    // What the webhook does per request, for context: parse, inject,
    // serialize the patch.
    group.bench_function("parse+inject+patch-json", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_str(black_box(&text)).expect("valid JSON");
            match inject(&value, &ctx, &cfg) {
                Ok(Outcome::Injected { patch, .. }) => serde_json::to_string(&patch).ok(),
                _ => None,
            }
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_object(c, "deployment", &deployment());
    bench_object(c, "pod-2000-env", &big_pod());
}

criterion_group!(inject_benches, benches);
criterion_main!(inject_benches);

//! The request `bench/webhook` posts, shared by the load generator
//! (`bench/webhook_load.rs`) and the in-process benchmark
//! (`benches/admit.rs`), so that both measure the very same review.

use serde_json::{Value, json};

/// A typical Deployment as the API server sends it in a CREATE review.
pub fn deployment(opted_out: bool) -> Value {
    let mut template_annotations =
        json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9090"});
    if opted_out {
        template_annotations["sidecar.istio.io/inject"] = json!("false");
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "checkout",
            "namespace": "shop",
            "labels": {"app": "checkout", "version": "v3", "team": "payments"},
            "annotations": {"deployment.kubernetes.io/revision": "1"}
        },
        "spec": {
            "replicas": 3,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "checkout"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {
                    "labels": {"app": "checkout", "version": "v3"},
                    "annotations": template_annotations
                },
                "spec": {
                    "serviceAccountName": "checkout",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {"runAsNonRoot": true, "fsGroup": 2000},
                    "containers": [{
                        "name": "checkout",
                        "image": "registry.example.com/shop/checkout:3.14.1",
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["--port=8080", "--metrics-port=9090", "--log-level=info"],
                        "ports": [
                            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
                        ],
                        "env": [
                            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "checkout-db", "key": "url"}}},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                            {"name": "CART_SERVICE", "value": "cart.shop.svc.cluster.local:8080"},
                            {"name": "PAYMENT_SERVICE", "value": "payment.shop.svc.cluster.local:8080"}
                        ],
                        "resources": {
                            "requests": {"cpu": "250m", "memory": "256Mi"},
                            "limits": {"cpu": "1", "memory": "512Mi"}
                        },
                        "readinessProbe": {
                            "httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
                            "initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 1,
                            "successThreshold": 1, "failureThreshold": 3
                        },
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                            "initialDelaySeconds": 15, "periodSeconds": 20, "timeoutSeconds": 1,
                            "successThreshold": 1, "failureThreshold": 3
                        },
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/checkout", "readOnly": true},
                            {"name": "tmp", "mountPath": "/tmp"}
                        ],
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"
                    }],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "checkout-config", "defaultMode": 420}},
                        {"name": "tmp", "emptyDir": {}}
                    ]
                }
            }
        }
    })
}

pub fn review(opted_out: bool) -> Vec<u8> {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "7c1ab3f2-5d0e-4f7b-9a38-2b8e6c4d1f90",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "checkout",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": deployment(opted_out),
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-client-side-apply"}
        }
    });
    serde_json::to_vec(&review).expect("serializable")
}

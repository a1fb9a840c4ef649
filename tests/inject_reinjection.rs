//! Re-injection and leaving: an object an earlier injection marked is
//! re-injected when injecting now would give something else (a new proxy
//! tag, resources, revision, holdApplicationUntilProxyStarts), in one
//! patch that gives exactly what a first injection gives now, the user's
//! own `istio-proxy` settings kept; it is `already-injected` only when
//! nothing would change. Every level of a workload (Deployment ->
//! ReplicaSet -> Pod, CronJob -> Job -> Pod) sees one status record and is
//! injected once; a workload another controller keeps (a Deployment's
//! ReplicaSet) is never rewritten, even when outdated, so its owner never
//! sees a template it did not write. `uninject(inject(x)) == x` on every
//! fixture.

mod support;

use outrigger::config::Config;
use outrigger::inject::{Context, Outcome, inject, uninject};
use serde_json::{Value, json};
use support::fixtures::fixtures;

fn config(sets: &[&str]) -> Config {
    let mut cfg = Config::builder();
    for s in sets {
        cfg.set(s).unwrap_or_else(|e| panic!("--set {s}: {e}"));
    }
    cfg.build().expect("config")
}

fn ctx() -> Context {
    Context {
        namespace: Some("shop".into()),
        namespace_labels: None,
    }
}

/// The injected object, or a panic saying what happened instead.
fn injected(
    object: &Value,
    cfg: &Config,
) -> (Value, outrigger::inject::Decision, json_patch::Patch) {
    match inject(object, &ctx(), cfg) {
        Ok(Outcome::Injected {
            mutated,
            decision,
            patch,
        }) => (mutated, decision, patch),
        other => panic!("expected an injection, got {other:?}"),
    }
}

fn skip_name(object: &Value, cfg: &Config) -> String {
    match inject(object, &ctx(), cfg) {
        Ok(Outcome::Skipped { reason }) => reason.name().to_string(),
        other => panic!("expected a skip, got {other:?}"),
    }
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "version": "v2"}},
                "spec": {
                    "containers": [{
                        "name": "web",
                        "image": "example.com/web:2.1",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                        "livenessProbe": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 2}
                    }]
                }
            }
        }
    })
}

/// Re-injecting `before`'s injection under `after`'s settings: one patch
/// that gives exactly a first injection under `after`, and says `change`.
fn reinjects(before: &[&str], after: &[&str], change: &str) {
    let original = deployment();
    let (old, _, _) = injected(&original, &config(before));
    let now = config(after);
    let (again, decision, patch) = injected(&old, &now);
    let (fresh, _, _) = injected(&original, &now);
    assert_eq!(again, fresh, "re-injection differs from a first injection");
    let said = decision
        .reinjected
        .expect("the decision says it re-injected");
    assert!(said.contains(change), "{said:?} does not say {change:?}");
    let mut applied = old.clone();
    json_patch::patch(&mut applied, &patch).expect("the patch applies");
    assert_eq!(applied, fresh, "the patch gives the re-injected object");
    // And once re-injected, nothing more to do.
    assert_eq!(skip_name(&again, &now), "already-injected");
}

#[test]
fn a_new_proxy_tag_is_a_re_injection_naming_both_images() {
    reinjects(
        &["values.global.tag=1.26.0"],
        &["values.global.tag=1.28.0"],
        "proxy image docker.io/istio/proxyv2:1.26.0 -> docker.io/istio/proxyv2:1.28.0",
    );
}

#[test]
fn new_proxy_resources_are_a_re_injection() {
    reinjects(
        &[],
        &["values.global.proxy.resources.requests.cpu=250m"],
        "proxy resources",
    );
}

#[test]
fn a_new_revision_is_a_re_injection() {
    reinjects(
        &[],
        &["values.revision=canary"],
        "revision default -> canary",
    );
}

#[test]
fn hold_application_until_proxy_starts_is_a_re_injection_both_ways() {
    // With classic sidecars the proxy goes first and holds the app with a
    // postStart hook; native sidecars start first anyway.
    let classic = "values.pilot.env.ENABLE_NATIVE_SIDECARS=false";
    let hold = "values.global.proxy.holdApplicationUntilProxyStarts=true";
    reinjects(&[classic], &[classic, hold], "container order");
    reinjects(&[classic, hold], &[classic], "container order");
}

#[test]
fn a_changed_injected_volume_is_named_as_the_change() {
    let cfg = config(&[]);
    let (mut deploy, _, _) = injected(&deployment(), &cfg);
    let volumes = deploy["spec"]["template"]["spec"]["volumes"]
        .as_array_mut()
        .unwrap();
    let data = volumes
        .iter_mut()
        .find(|v| v["name"] == "istio-data")
        .unwrap();
    *data = json!({"name": "istio-data", "hostPath": {"path": "/tmp"}});
    let (_, decision, _) = injected(&deploy, &cfg);
    assert_eq!(decision.reinjected.as_deref(), Some("volumes"));
}

/// Seen on a real API server: a Deployment's template annotated
/// `sidecar.istio.io/inject: "false"` after it was injected kept its
/// sidecar in every new pod; in Istio the next pods have none.
#[test]
fn opting_out_after_an_injection_removes_it() {
    let cfg = config(&[]);
    for (field, name) in [
        ("annotations", "pod-annotation-opt-out"),
        ("labels", "pod-label-opt-out"),
    ] {
        let (injected_deploy, _, _) = injected(&deployment(), &cfg);
        let mut opted_out = injected_deploy.clone();
        opted_out["spec"]["template"]["metadata"][field]["sidecar.istio.io/inject"] =
            json!("false");
        let (removed, decision, patch) = injected(&opted_out, &cfg);
        assert!(decision.removed, "{decision:?}");
        assert_eq!(decision.rule_name, name);
        let mut want = deployment();
        want["spec"]["template"]["metadata"][field]["sidecar.istio.io/inject"] = json!("false");
        assert_eq!(removed, want, "exactly the user's Deployment, opt-out kept");
        let mut patched = opted_out.clone();
        json_patch::patch(&mut patched, &patch).unwrap();
        assert_eq!(patched, removed);
        // Once removed, it is an ordinary opt-out.
        assert_eq!(skip_name(&removed, &cfg), name);
    }

    // In a List, the removal is counted apart from the injections.
    let (injected_deploy, _, _) = injected(&deployment(), &cfg);
    let mut opted_out = injected_deploy;
    opted_out["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] =
        json!("false");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [deployment(), opted_out]});
    let (_, decision, _) = injected(&list, &cfg);
    assert_eq!(
        decision.rule,
        "1 of 2 List items get the sidecar, 1 lose an earlier one (they opt out)"
    );
}

#[test]
fn an_unchanged_injection_is_already_injected() {
    let cfg = config(&[]);
    let (once, _, _) = injected(&deployment(), &cfg);
    assert_eq!(skip_name(&once, &cfg), "already-injected");
}

#[test]
fn the_users_istio_proxy_settings_survive_re_injection() {
    let mut original = deployment();
    original["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "name": "istio-proxy",
            "image": "auto",
            "env": [{"name": "MY_PROXY_SETTING", "value": "kept"}],
            "resources": {"limits": {"memory": "1Gi"}}
        }));
    let (old, _, _) = injected(&original, &config(&["values.global.tag=1.26.0"]));
    let now = config(&["values.global.tag=1.28.0"]);
    let (again, decision, _) = injected(&old, &now);
    assert!(decision.reinjected.is_some());
    let (fresh, _, _) = injected(&original, &now);
    assert_eq!(again, fresh);
    let proxy = again["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "istio-proxy")
        .expect("the proxy");
    assert_eq!(proxy["image"], "docker.io/istio/proxyv2:1.28.0");
    assert_eq!(proxy["resources"]["limits"]["memory"], "1Gi");
    assert!(
        proxy["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "MY_PROXY_SETTING"),
        "the user's env var is kept"
    );
    assert!(
        again["spec"]["template"]["metadata"]["annotations"]["proxy.istio.io/overrides"]
            .as_str()
            .is_some_and(|o| o.contains("MY_PROXY_SETTING")),
        "the override record is kept"
    );
}

#[test]
fn a_re_apply_of_the_original_probes_gets_them_rewritten_again() {
    let cfg = config(&[]);
    let original = deployment();
    let (injected_once, _, _) = injected(&original, &cfg);
    // `kubectl apply` of the unchanged manifest: the app container's
    // probes are the user's again; everything else injection added stays.
    let mut applied = injected_once.clone();
    let web = applied["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == "web")
        .unwrap();
    let user_web = &original["spec"]["template"]["spec"]["containers"][0];
    web["readinessProbe"] = user_web["readinessProbe"].clone();
    web["livenessProbe"] = user_web["livenessProbe"].clone();
    assert_ne!(applied, injected_once);
    let (again, decision, _) = injected(&applied, &cfg);
    assert_eq!(again, injected_once, "the probes are rewritten again");
    let said = decision.reinjected.expect("a re-injection");
    assert!(said.contains("app probes"), "{said}");
}

/// What the API server and the ServiceAccount plugin add to a pod before
/// mutating webhooks see it: defaults, and a token volume mounted in every
/// container.
fn as_admitted(mut spec: Value) -> Value {
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs {
                c["terminationMessagePath"] = json!("/dev/termination-log");
                c["terminationMessagePolicy"] = json!("File");
                let mounts = c
                    .as_object_mut()
                    .unwrap()
                    .entry("volumeMounts")
                    .or_insert(json!([]));
                mounts.as_array_mut().unwrap().push(json!({
                    "name": "kube-api-access-x7k2p",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    "readOnly": true
                }));
            }
        }
    }
    // A volume without a source (Istio's grpc-agent template writes
    // `emptyDir:` with no value) is defaulted to an empty emptyDir.
    for volume in spec["volumes"].as_array_mut().unwrap() {
        let volume = volume.as_object_mut().unwrap();
        volume.retain(|_, v| !v.is_null());
        if volume.len() == 1 {
            volume.insert("emptyDir".into(), json!({}));
        }
    }
    spec["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "kube-api-access-x7k2p", "projected": {"sources": []}}));
    spec["dnsPolicy"] = json!("ClusterFirst");
    spec
}

const REPLICA_SET: (&str, &str, &str) = ("apps/v1", "ReplicaSet", "web-7d9c8b6f5");

/// The pod a controller (`apiVersion`, `kind`, `name`) creates from
/// `template`, as the API server admits it (see [`as_admitted`]).
fn pod_made_by(template: &Value, (api_version, kind, name): (&str, &str, &str)) -> Value {
    let mut metadata = template["metadata"].clone();
    metadata["generateName"] = json!(format!("{name}-"));
    metadata["namespace"] = json!("shop");
    metadata["ownerReferences"] =
        json!([{"apiVersion": api_version, "kind": kind, "name": name, "controller": true}]);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": as_admitted(template["spec"].clone()),
    })
}

#[test]
fn deployment_replicaset_and_pod_are_injected_once() {
    let cfg = config(&[]);
    let (deploy, _, _) = injected(&deployment(), &cfg);
    let mut template = deploy["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!("7d9c8b6f5");
    let replicaset = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-7d9c8b6f5",
            "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": true}]
        },
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}
    });
    assert_eq!(skip_name(&replicaset, &cfg), "controlled-by-owner");
    let pod = pod_made_by(&template, REPLICA_SET);
    assert_eq!(skip_name(&pod, &cfg), "already-injected");
}

/// Seen on a real API server: after a proxy upgrade, `kubectl scale` of an
/// injected Deployment made its controller UPDATE the ReplicaSet; the
/// webhook re-injected the ReplicaSet's template, which then matched none
/// of the Deployment's, so the controller created another ReplicaSet, which
/// was injected in turn (34 ReplicaSets in 10 s, without end). The same
/// churn came from a Deployment that was not selected (no labels of its
/// own) whose pod template carries `sidecar.istio.io/inject: "true"`.
#[test]
fn an_upgrade_never_rewrites_a_deployments_replicaset_only_its_new_pods() {
    let (deploy, _, _) = injected(&deployment(), &config(&["values.global.tag=1.26.0"]));
    let upgraded = config(&["values.global.tag=1.28.0"]);
    let mut template = deploy["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!("7d9c8b6f5");
    let owned_by_deployment =
        json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": true}]);
    let replicaset = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-7d9c8b6f5", "namespace": "shop", "ownerReferences": owned_by_deployment},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template}
    });
    assert_eq!(skip_name(&replicaset, &upgraded), "controlled-by-owner");

    // Not selected at the Deployment, selected at its template: the
    // ReplicaSet is left to the Deployment all the same.
    let mut plain = deployment()["spec"]["template"].clone();
    plain["metadata"]["labels"]["sidecar.istio.io/inject"] = json!("true");
    let mut fresh = replicaset.clone();
    fresh["spec"]["template"] = plain;
    assert_eq!(skip_name(&fresh, &upgraded), "controlled-by-owner");

    // What the ReplicaSet's controller creates is injected as it is now.
    let pod = pod_made_by(&replicaset["spec"]["template"], REPLICA_SET);
    let (_, decision, _) = injected(&pod, &upgraded);
    assert!(decision.reinjected.is_some(), "{decision:?}");
}

#[test]
fn a_replicaset_of_its_own_is_injected_like_any_workload() {
    let mut replicaset = deployment();
    replicaset["kind"] = json!("ReplicaSet");
    let (_, decision, _) = injected(&replicaset, &config(&[]));
    assert_eq!(decision.rule_name, "policy");
    // An owner that is not the controller (garbage collection only) does
    // not keep the template.
    replicaset["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}]);
    injected(&replicaset, &config(&[]));
}

/// Seen on a real API server: the grpc-agent template's volumes without a
/// source (`emptyDir:`, as Istio writes them) come back defaulted to
/// `emptyDir: {}`, and every pod of an injected Deployment was re-injected.
#[test]
fn every_built_in_templates_pod_is_injected_once() {
    let cfg = config(&[]);
    for templates in ["sidecar", "gateway", "grpc-agent", "grpc-simple"] {
        let mut deploy = deployment();
        deploy["spec"]["template"]["metadata"]["annotations"] =
            json!({"inject.istio.io/templates": templates});
        let (deploy, _, _) = injected(&deploy, &cfg);
        let mut pod = pod_made_by(&deploy["spec"]["template"], REPLICA_SET);
        pod["metadata"]["labels"]["pod-template-hash"] = json!("7d9c8b6f5");
        match inject(&pod, &ctx(), &cfg) {
            Ok(Outcome::Skipped { reason }) => {
                assert_eq!(reason.name(), "already-injected", "{templates}")
            }
            Ok(Outcome::Injected { decision, .. }) => {
                panic!("{templates}: re-injected: {:?}", decision.reinjected)
            }
            Err(e) => panic!("{templates}: {e}"),
        }
    }
}

#[test]
fn cronjob_job_and_pod_are_injected_once() {
    let cfg = config(&[]);
    let cronjob = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "shop"},
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "report", "image": "example.com/report:1"}]
            }}}}
        }
    });
    let (cron, _, _) = injected(&cronjob, &cfg);
    let template = &cron["spec"]["jobTemplate"]["spec"]["template"];
    assert!(
        template["metadata"]["annotations"]["sidecar.istio.io/status"].is_string(),
        "the status record is on the pod template, which every Job and pod copies"
    );
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "report-29412345",
            "namespace": "shop",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "report", "controller": true}]
        },
        "spec": cron["spec"]["jobTemplate"]["spec"].clone(),
    });
    assert_eq!(skip_name(&job, &cfg), "controlled-by-owner");
    let mut pod = pod_made_by(template, ("batch/v1", "Job", "report-29412345"));
    pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] = json!("report-29412345");
    assert_eq!(skip_name(&pod, &cfg), "already-injected");
}

#[test]
fn a_pod_from_an_outdated_template_gets_the_current_sidecar() {
    let (deploy, _, _) = injected(&deployment(), &config(&["values.global.tag=1.26.0"]));
    let template = &deploy["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    metadata["name"] = json!("web-1");
    metadata["namespace"] = json!("shop");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                     "spec": as_admitted(template["spec"].clone())});
    let (_, decision, _) = injected(&pod, &config(&["values.global.tag=1.28.0"]));
    assert!(decision.reinjected.unwrap().contains(":1.28.0"));
}

/// `x` as uninject gives it back: a probe's named port comes back as its
/// number (the record keeps only the number), and the user's own
/// `istio-proxy` resources in canonical quantities (`3000m` as `3`: the
/// override record keeps them so).
fn as_given_back(mut x: Value) -> Value {
    let Some(kind) = x["kind"].as_str().map(str::to_string) else {
        return x;
    };
    if kind == "List" {
        if let Some(Value::Array(items)) = x.get_mut("items") {
            for item in items.iter_mut() {
                *item = as_given_back(item.take());
            }
        }
        return x;
    }
    let Some((_, spec_ptr)) = outrigger::inject::pod_location(&kind) else {
        return x;
    };
    let Some(spec) = x.pointer_mut(spec_ptr) else {
        return x;
    };
    for list in ["containers", "initContainers"] {
        let Some(Value::Array(cs)) = spec.get_mut(list) else {
            continue;
        };
        for c in cs {
            if c["name"] == "istio-proxy"
                && let Some(Value::Object(res)) = c.get_mut("resources")
            {
                for q in res.values_mut().filter_map(Value::as_object_mut) {
                    for v in q.values_mut() {
                        if let Some(text) = v.as_str().map(str::to_string) {
                            *v = Value::String(outrigger::inject::quantity::canonical(&text));
                        }
                    }
                }
            }
            let ports = c["ports"].clone();
            for member in ["livenessProbe", "readinessProbe", "startupProbe"] {
                for action in ["httpGet", "tcpSocket", "grpc"] {
                    if let Some(Value::String(name)) =
                        c.pointer(&format!("/{member}/{action}/port")).cloned()
                        && let Some(n) = ports
                            .as_array()
                            .into_iter()
                            .flatten()
                            .find(|p| p["name"] == *name)
                    {
                        c[member][action]["port"] = n["containerPort"].clone();
                    }
                }
            }
        }
    }
    x
}

#[test]
fn uninject_gives_back_every_fixture() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for f in fixtures() {
        let Ok(Outcome::Injected { mutated, .. }) = inject(&f.object, &Context::default(), &f.cfg)
        else {
            continue;
        };
        // A fixture that arrives injected is given back without it.
        if uninject(&f.object, &f.cfg).is_some() {
            continue;
        }
        checked += 1;
        let Some(plain) = uninject(&mutated, &f.cfg) else {
            problems.push(format!("{}: uninject found no status record", f.name));
            continue;
        };
        if plain != f.object && plain != as_given_back(f.object.clone()) {
            problems.push(format!(
                "{}: uninject(inject(x)) != x:\n  got  {}\n  want {}",
                f.name,
                serde_json::to_string(&plain).unwrap(),
                serde_json::to_string(&f.object).unwrap()
            ));
        }
    }
    assert!(checked >= 60, "only {checked} fixtures checked");
    assert!(
        problems.is_empty(),
        "{} of {checked}:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

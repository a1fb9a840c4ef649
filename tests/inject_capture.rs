//! `config.trafficCapture: outrigger`: the injected `istio-init` container
//! runs `outrigger iptables` from outrigger's image with the capture flags
//! Istio's template gives `istio-iptables`, and those args, read back by
//! `outrigger iptables`' own parser, plan the rules the preview can show.

use outrigger::config::Config;
use outrigger::inject::{Context, Outcome, inject};
use outrigger::iptables::{Family, plan_for_init_args};
use serde_json::{Value, json};

fn pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "example.com/app:1",
            "ports": [{"containerPort": 8080}]}]}
    })
}

fn config(sets: &[&str]) -> Config {
    let mut cfg = Config::builder();
    for s in sets {
        cfg.set(s).expect("valid --set");
    }
    cfg.build().expect("a complete configuration")
}

fn init_container(object: &Value, cfg: &Config) -> Value {
    match inject(object, &Context::default(), cfg).expect("injects") {
        Outcome::Injected { mutated, .. } => mutated["spec"]["initContainers"]
            .as_array()
            .expect("init containers")
            .iter()
            .find(|c| c["name"] == "istio-init")
            .expect("an istio-init container")
            .clone(),
        Outcome::Skipped { reason } => panic!("skipped: {reason}"),
    }
}

fn args(c: &Value) -> Vec<String> {
    c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

const OUTRIGGER: &[&str] = &[
    "config.trafficCapture=outrigger",
    "values.global.proxy_init.image=registry.example.com/outrigger:0.1.0",
];

#[test]
fn outrigger_capture_keeps_istios_flags_and_security_context() {
    let object = pod(json!({"traffic.sidecar.istio.io/excludeInboundPorts": "9000"}));
    let istio = init_container(&object, &Config::default());
    let ours = init_container(&object, &config(OUTRIGGER));
    assert_eq!(ours["image"], "registry.example.com/outrigger:0.1.0");
    assert!(ours.get("command").is_none(), "the image's entrypoint runs");
    let (istio_args, our_args) = (args(&istio), args(&ours));
    assert_eq!(istio_args[0], "istio-iptables");
    assert_eq!(our_args[0], "iptables");
    assert_eq!(istio_args[1..], our_args[1..]);
    assert_eq!(istio["securityContext"], ours["securityContext"]);
    assert_eq!(ours["securityContext"]["runAsUser"], 0);
    assert_eq!(
        ours["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN", "NET_RAW"])
    );
}

#[test]
fn a_bare_image_name_goes_under_hub_and_tag() {
    let cfg = config(&[
        "config.trafficCapture=outrigger",
        "values.global.hub=ghcr.io/example",
        "values.global.tag=0.2.0",
        "values.global.proxy_init.image=outrigger",
    ]);
    let object = pod(json!({"sidecar.istio.io/proxyImage": "example.com/proxy:1"}));
    let c = init_container(&object, &cfg);
    assert_eq!(c["image"], "ghcr.io/example/outrigger:0.2.0");
}

#[test]
fn init_args_plan_the_default_capture_rules() {
    let c = init_container(&pod(json!({})), &config(OUTRIGGER));
    let args = args(&c);
    let plan = plan_for_init_args(&args[1..], None).expect("outrigger iptables accepts the args");
    let nat = plan.rules.restore_text(Family::V4);
    for rule in [
        "-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN",
        "-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN",
        "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN",
        "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
    ] {
        assert!(nat.contains(rule), "missing {rule:?} in:\n{nat}");
    }
}

#[test]
fn annotations_reach_the_planned_rules() {
    let object = pod(json!({
        "traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8",
        "traffic.sidecar.istio.io/excludeOutboundPorts": "5432",
        "traffic.sidecar.istio.io/excludeInboundPorts": "9000",
    }));
    let c = init_container(&object, &config(OUTRIGGER));
    let plan = plan_for_init_args(&args(&c)[1..], None).expect("accepted");
    let nat = plan.rules.restore_text(Family::V4);
    for rule in [
        "-A ISTIO_INBOUND -p tcp --dport 9000 -j RETURN",
        "-A ISTIO_OUTPUT -d 10.0.0.0/8 -j ISTIO_REDIRECT",
        "--dport 5432 -j RETURN",
    ] {
        assert!(nat.contains(rule), "missing {rule:?} in:\n{nat}");
    }
    assert!(
        !nat.contains("-A ISTIO_OUTPUT -j ISTIO_REDIRECT"),
        "only 10.0.0.0/8 is redirected:\n{nat}"
    );
}

#[test]
fn a_refused_flag_names_its_annotation() {
    let object = pod(json!({"proxy.istio.io/config": "interceptionMode: MAGIC"}));
    let ok = inject(&object, &Context::default(), &Config::default());
    assert!(ok.is_ok(), "istio-iptables mode passes the mode through");
    let err = inject(&object, &Context::default(), &config(OUTRIGGER)).expect_err("refused");
    let msg = err.to_string();
    assert!(msg.contains("proxy.istio.io/config"), "{msg}");
    assert!(
        msg.contains("-m/--istio-inbound-interception-mode"),
        "{msg}"
    );
}

#[test]
fn a_refused_config_value_names_its_key() {
    let mut sets = OUTRIGGER.to_vec();
    sets.push("values.global.proxy.excludeInterfaces=!eth0");
    let err = inject(&pod(json!({})), &Context::default(), &config(&sets)).expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("values.global.proxy.excludeInterfaces"),
        "{msg}"
    );
    assert!(msg.contains("\"!eth0\""), "{msg}");
}

#[test]
fn cni_keeps_istios_validation_container() {
    let mut sets = OUTRIGGER.to_vec();
    sets.push("values.istio_cni.enabled=true");
    let out = inject(&pod(json!({})), &Context::default(), &config(&sets)).expect("injects");
    let Outcome::Injected { mutated, .. } = out else {
        panic!("skipped")
    };
    let v = &mutated["spec"]["initContainers"][0];
    assert_eq!(v["name"], "istio-validation");
    assert_eq!(v["args"][0], "istio-iptables");
    assert_eq!(v["image"], "docker.io/istio/proxyv2:1.26.0");
}

#[test]
fn unknown_capture_mode_is_a_config_error_naming_the_key() {
    let err = Config::builder()
        .set("config.trafficCapture=nftables")
        .expect_err("refused");
    let msg = err.to_string();
    assert!(msg.contains("config.trafficCapture"), "{msg}");
    assert!(msg.contains("istio-iptables or outrigger"), "{msg}");
}

//! Istio's install key space: Istio's own profiles and chart values load,
//! keys that do not affect injection are accepted and listed as ignored,
//! typos are refused with the closest key, and values of another type than
//! Istio's (or out of range) are refused.

mod support;

use outrigger::config::Config;
use support::requires;

fn values_file(text: &str) -> Result<Config, String> {
    let mut cfg = Config::builder();
    cfg.merge_values_yaml(text).map_err(|e| e.to_string())?;
    cfg.build().map_err(|e| e.to_string())
}

#[test]
fn every_istio_profile_and_the_discovery_chart_values_load() {
    let Some(dir) = requires::shared("istio", "loading Istio's install profiles") else {
        return;
    };
    let mut loaded = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let cfg = values_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            loaded.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                cfg,
            ));
        }
    }
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "profile-default.yaml",
        "profile-demo.yaml",
        "profile-openshift.yaml",
        "istio-discovery-values.yaml",
    ] {
        assert!(names.contains(&expected), "{expected} not among {names:?}");
    }
    let (_, default) = loaded
        .iter()
        .find(|(n, _)| n == "profile-default.yaml")
        .unwrap();
    let ignored: Vec<&str> = default.ignored_keys().collect();
    assert!(ignored.contains(&"values.defaultRevision"), "{ignored:?}");
    // What the profile says of images is what istioctl would use.
    assert_eq!(default.settings().hub, "registry.istio.io/testing");
    assert_eq!(default.settings().tag, "latest");
    let (_, openshift) = loaded
        .iter()
        .find(|(n, _)| n == "profile-openshift.yaml")
        .unwrap();
    let ignored: Vec<&str> = openshift.ignored_keys().collect();
    assert_eq!(
        ignored,
        ["components.cni.namespace", "values.global.platform"]
    );
    // The profile installs the CNI plugin (spec.components.cni.enabled):
    // its pods get istio-validation, as istioctl's would.
    assert!(openshift.settings().cni_enabled);
    assert!(!default.settings().cni_enabled);
}

fn sets(assignments: &[&str]) -> Result<Config, outrigger::config::ConfigError> {
    let mut b = Config::builder();
    for a in assignments {
        b.set(a)?;
    }
    b.build()
}

#[test]
fn cni_is_enabled_as_istioctl_users_write_it() {
    for way in [
        "components.cni.enabled=true",
        "values.pilot.cni.enabled=true",
        "values.cni.enabled=true",
        "values.istio_cni.enabled=true",
    ] {
        assert!(sets(&[way]).unwrap().settings().cni_enabled, "{way}");
    }
    assert!(!sets(&[]).unwrap().settings().cni_enabled);
    // What the template reads wins over what istioctl sets it from.
    let off = sets(&[
        "components.cni.enabled=true",
        "values.pilot.cni.enabled=false",
    ])
    .unwrap();
    assert!(!off.settings().cni_enabled);
    // Other components' keys are Istio's, accepted and ignored.
    let cfg = sets(&[
        "components.pilot.enabled=true",
        "components.cni.namespace=kube-system",
    ])
    .unwrap();
    let ignored: Vec<&str> = cfg.ignored_keys().collect();
    assert_eq!(ignored, ["components.cni.namespace", "components.pilot"]);
}

#[test]
fn the_cni_provider_is_default_or_multus() {
    use outrigger::config::CniProvider;
    assert_eq!(
        sets(&[]).unwrap().settings().cni_provider,
        CniProvider::Default
    );
    for way in [
        "values.cni.provider=multus",
        "values.pilot.cni.provider=multus",
    ] {
        assert_eq!(
            sets(&[way]).unwrap().settings().cni_provider,
            CniProvider::Multus,
            "{way}"
        );
    }
    let err = sets(&["values.cni.provider=calico"])
        .expect_err("refused")
        .to_string();
    assert!(err.contains("values.cni.provider"), "{err}");
    assert!(err.contains("default or multus"), "{err}");
}

#[test]
fn a_typo_under_components_is_refused_with_the_closest_key() {
    let err = sets(&["components.cni.enabeld=true"])
        .expect_err("refused")
        .to_string();
    assert!(err.contains("components.cni.enabled"), "{err}");
}

#[test]
fn istio_keys_injection_does_not_read_are_accepted_and_listed() {
    let cfg = Config::from_yaml(
        "values:\n  global:\n    podDNSSearchNamespaces: [a, b]\n    hub: example.com/istio\n  gateways:\n    istio-ingressgateway:\n      autoscaleMax: 3\nmeshConfig:\n  accessLogFile: /dev/stdout\n  outboundTrafficPolicy:\n    mode: REGISTRY_ONLY\n",
    )
    .unwrap();
    assert_eq!(cfg.settings().hub, "example.com/istio");
    let ignored: Vec<&str> = cfg.ignored_keys().collect();
    assert_eq!(
        ignored,
        [
            "meshConfig.accessLogFile",
            "meshConfig.outboundTrafficPolicy",
            "values.gateways",
            "values.global.podDNSSearchNamespaces",
        ]
    );
}

#[test]
fn a_typo_is_refused_with_the_closest_key() {
    for (text, path, suggestion) in [
        (
            "values:\n  global:\n    hubb: x\n",
            "values.global.hubb",
            "values.global.hub",
        ),
        (
            "meshConfig:\n  accesLogFile: /dev/stdout\n",
            "meshConfig.accesLogFile",
            "meshConfig.accessLogFile",
        ),
        (
            "values:\n  global:\n    proxy:\n      statusport: 15020\n",
            "values.global.proxy.statusport",
            "values.global.proxy.statusPort",
        ),
        // Deep inside a subtree injection ignores, still checked.
        (
            "values:\n  gateways:\n    istio-ingressgateway:\n      autoscaleMaxx: 3\n",
            "values.gateways.istio-ingressgateway.autoscaleMaxx",
            "values.gateways.istio-ingressgateway.autoscaleMax",
        ),
        (
            "config:\n  polcy: enabled\n",
            "config.polcy",
            "config.policy",
        ),
    ] {
        let err = Config::from_yaml(text).unwrap_err().to_string();
        assert!(
            err.contains(&format!("`{path}`: did you mean `{suggestion}`?")),
            "{err}"
        );
    }
    let err = Config::from_yaml("values:\n  global:\n    zzzzzz: 1\n")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("did you mean"), "{err}");
    assert!(err.contains("`values.global.zzzzzz`"), "{err}");
}

#[test]
fn values_of_another_type_than_istios_are_refused_naming_key_and_form() {
    for (text, path, expected) in [
        (
            "values:\n  global:\n    hub: 42\n",
            "values.global.hub",
            "a string",
        ),
        (
            "values:\n  global:\n    proxy:\n      statusPort: 99999999\n",
            "values.global.proxy.statusPort",
            "an integer from 0 to 65535",
        ),
        (
            "values:\n  global:\n    proxy:\n      statusPort: -5\n",
            "values.global.proxy.statusPort",
            "an integer from 0 to 65535",
        ),
        (
            "meshConfig:\n  defaultConfig:\n    concurrency: abc\n",
            "meshConfig.defaultConfig.concurrency",
            "an integer",
        ),
        (
            "meshConfig:\n  defaultConfig:\n    proxyAdminPort: 70000\n",
            "meshConfig.defaultConfig.proxyAdminPort",
            "an integer from 0 to 65535",
        ),
        (
            "meshConfig:\n  defaultConfig:\n    drainDuration: soon\n",
            "meshConfig.defaultConfig.drainDuration",
            "a duration",
        ),
        (
            "meshConfig:\n  defaultConfig:\n    interceptionMode: REDIRCT\n",
            "meshConfig.defaultConfig.interceptionMode",
            "one of REDIRECT, TPROXY, NONE",
        ),
        (
            "values:\n  global:\n    proxy:\n      readinessFailureThreshold: -1\n",
            "values.global.proxy.readinessFailureThreshold",
            "an integer from 0",
        ),
        (
            "values:\n  global:\n    imagePullSecrets: one\n",
            "values.global.imagePullSecrets",
            "a list",
        ),
        (
            "meshConfig:\n  enablePrometheusMerge: maybe\n",
            "meshConfig.enablePrometheusMerge",
            "true or false",
        ),
    ] {
        let err = Config::from_yaml(text).unwrap_err().to_string();
        assert!(err.contains(&format!("`{path}`")), "{err}");
        assert!(err.contains(expected), "{text}: {err}");
    }
    // The checks hold for what injection ignores too, and for --values.
    let err =
        values_file("gateways:\n  istio-ingressgateway:\n    autoscaleMax: lots\n").unwrap_err();
    assert!(
        err.contains("values.gateways.istio-ingressgateway.autoscaleMax"),
        "{err}"
    );
}

#[test]
fn set_takes_text_where_istio_expects_a_string() {
    let mut cfg = Config::builder();
    cfg.set("values.global.proxy.excludeInboundPorts=15020")
        .unwrap();
    cfg.set("values.global.hub=42").unwrap();
    cfg.set("meshConfig.defaultConfig.concurrency=2").unwrap();
    let cfg = cfg.build().unwrap();
    assert_eq!(cfg.settings().exclude_inbound_ports, "15020");
    assert_eq!(cfg.settings().hub, "42");
    assert_eq!(cfg.settings().proxy_config["concurrency"], 2);
    // A list given as text names the list form --set takes.
    let err = Config::builder()
        .set("values.global.imagePullSecrets=a,b")
        .unwrap_err()
        .to_string();
    assert!(err.contains("{a,b}"), "{err}");
    let mut cfg = Config::builder();
    cfg.set("values.global.imagePullSecrets={a,b}").unwrap();
    assert_eq!(
        cfg.build().unwrap().settings().image_pull_secrets,
        ["a", "b"]
    );
    let err = Config::builder()
        .set("values.global.proxy.statusPort=99999999")
        .unwrap_err()
        .to_string();
    assert!(err.contains("an integer from 0 to 65535"), "{err}");
}

#[test]
fn an_istio_operator_spec_is_read_as_istioctl_reads_it() {
    let cfg = values_file(
        "kind: IstioOperator\nspec:\n  hub: op.example.com\n  tag: 1.28.0\n  revision: canary\n  profile: minimal\n  components:\n    pilot:\n      enabled: true\n  values:\n    global:\n      tag: 1.28.1\n",
    )
    .unwrap();
    assert_eq!(cfg.settings().hub, "op.example.com");
    assert_eq!(cfg.settings().tag, "1.28.1", "values win over spec.tag");
    assert_eq!(cfg.settings().revision, "canary");
    let err = values_file("kind: IstioOperator\nspec:\n  valuez: {}\n").unwrap_err();
    assert!(err.contains("spec.valuez"), "{err}");
    assert!(err.contains("meshConfig"), "{err}");
}

#[test]
fn chart_values_are_read_as_the_chart_reads_them() {
    let cfg = values_file(
        "_internal_defaults_do_not_set:\n  env:\n    ENABLE_NATIVE_SIDECARS: false\n  autoscaleMax: 5\n  global:\n    hub: chart.example.com\n  meshConfig:\n    trustDomain: chart.example\n",
    )
    .unwrap();
    assert!(!cfg.settings().native_sidecars);
    assert_eq!(cfg.settings().hub, "chart.example.com");
    assert_eq!(cfg.settings().trust_domain, "chart.example");
    assert!(cfg.ignored_keys().any(|k| k == "values.pilot.autoscaleMax"));
}

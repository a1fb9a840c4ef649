//! The injector's configuration: Istio's defaults, Istio's key space,
//! `--set` and `--values` overrides, and errors that name the key.

use outrigger::config::{Config, ConfigBuilder, ConfigError, Policy, TrafficCapture};

#[test]
fn defaults_are_istios() {
    let cfg = Config::default();
    let s = cfg.settings();
    assert_eq!(s.proxy_image, "proxyv2");
    assert_eq!(s.status_port, 15020);
    assert_eq!(s.include_ip_ranges, "*");
    assert_eq!(s.include_inbound_ports, "*");
    assert_eq!(s.token_audience, "istio-ca");
    assert_eq!(s.istio_namespace, "istio-system");
    assert_eq!(s.trust_domain, "cluster.local");
    assert_eq!(s.readiness_failure_threshold, 4);
    assert_eq!(s.readiness_period, 15);
    assert!(s.native_sidecars, "native sidecars are on by default");
    assert!(s.rewrite_probes);
    assert!(s.enable_prometheus_merge);
    assert_eq!(s.policy, Policy::Enabled);
    assert!(s.proxy_config.is_empty());
    assert_eq!(s.traffic_capture, TrafficCapture::IstioIptables);
}

const OUTRIGGER_CAPTURE: &str = "config:\n  trafficCapture: outrigger\nvalues:\n  global:\n    proxy_init:\n      image: registry.example.com/outrigger:0.1.0\n";

#[test]
fn traffic_capture_is_an_outrigger_config_key() {
    let cfg = Config::from_yaml(OUTRIGGER_CAPTURE).unwrap();
    assert_eq!(cfg.settings().traffic_capture, TrafficCapture::Outrigger);
    assert_eq!(
        cfg.settings().init_image,
        "registry.example.com/outrigger:0.1.0"
    );
    let err = Config::from_yaml("values:\n  trafficCapture: outrigger\n").unwrap_err();
    assert!(err.to_string().contains("values.trafficCapture"), "{err}");
}

#[test]
fn set_uses_istio_install_value_paths() {
    let mut cfg = Config::builder();
    cfg.set("values.global.hub=registry.example.com/istio")
        .unwrap();
    cfg.set("values.global.proxy.statusPort=123").unwrap();
    cfg.set("values.pilot.env.ENABLE_NATIVE_SIDECARS=false")
        .unwrap();
    cfg.set("meshConfig.defaultConfig.drainDuration=23s")
        .unwrap();
    cfg.set("values.global.imagePullSecrets={a,b}").unwrap();
    cfg.set("config.policy=disabled").unwrap();
    let cfg = cfg.build().unwrap();
    let s = cfg.settings();
    assert_eq!(s.hub, "registry.example.com/istio");
    assert_eq!(s.status_port, 123);
    assert!(!s.native_sidecars);
    assert_eq!(s.proxy_config["drainDuration"], "23s");
    assert_eq!(s.image_pull_secrets, ["a", "b"]);
    assert_eq!(s.policy, Policy::Disabled);
}

#[test]
fn null_removes_a_default() {
    let mut cfg = Config::builder();
    cfg.set("values.global.proxy.resources.limits.memory=null")
        .unwrap();
    let cfg = cfg.build().unwrap();
    let limits = &cfg.settings().resources["limits"];
    assert!(limits.get("memory").is_none(), "{limits}");
    assert!(limits.get("cpu").is_some(), "{limits}");
}

#[test]
fn config_file_has_values_mesh_config_and_config() {
    let cfg = Config::from_yaml(
        r#"
values:
  global:
    tag: "1.2.3"
    proxy:
      logLevel: debug
meshConfig:
  trustDomain: example.org
  defaultConfig:
    holdApplicationUntilProxyStarts: true
    proxyMetadata:
      ANY_NAME: value
config:
  policy: enabled
  neverInjectSelector:
  - matchLabels: {skip: "yes"}
  injectedAnnotations:
    example.com/injected: "true"
"#,
    )
    .unwrap();
    let s = cfg.settings();
    assert_eq!(s.tag, "1.2.3");
    assert_eq!(s.log_level, "debug");
    assert_eq!(s.trust_domain, "example.org");
    assert_eq!(s.proxy_config["holdApplicationUntilProxyStarts"], true);
    assert_eq!(s.never_inject.len(), 1);
    assert_eq!(s.injected_annotations["example.com/injected"], "true");
}

#[test]
fn values_file_may_be_plain_values_or_an_istio_operator() {
    let mut cfg = Config::builder();
    cfg.merge_values_yaml("global:\n  hub: plain.example.com\n")
        .unwrap();
    assert_eq!(cfg.build().unwrap().settings().hub, "plain.example.com");
    cfg.merge_values_yaml(
        "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  meshConfig:\n    trustDomain: op.example\n  values:\n    global:\n      hub: op.example.com\n",
    )
    .unwrap();
    let cfg = cfg.build().unwrap();
    assert_eq!(cfg.settings().hub, "op.example.com");
    assert_eq!(cfg.settings().trust_domain, "op.example");
}

#[test]
fn unknown_keys_are_errors_naming_the_path() {
    for (text, path) in [
        ("values:\n  global:\n    hubb: x\n", "values.global.hubb"),
        (
            "meshConfig:\n  defaultConfig:\n    drainDurationn: 1s\n",
            "meshConfig.defaultConfig.drainDurationn",
        ),
        ("config:\n  polic: enabled\n", "config.polic"),
        ("valuez: {}\n", "valuez"),
    ] {
        let err = Config::from_yaml(text).unwrap_err().to_string();
        assert!(err.contains(&format!("`{path}`")), "{err}");
    }
    let mut cfg = Config::builder();
    let err = cfg
        .set("values.global.proxy.nope=1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("values.global.proxy.nope"), "{err}");
    let err = cfg
        .merge_values_yaml("kind: IstioOperator\nspec:\n  values:\n    global:\n      nope: 1\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("values.global.nope"), "{err}");
}

#[test]
fn bad_values_name_the_key_value_and_form() {
    let mut cfg = Config::builder();
    let err = cfg
        .set("values.global.proxy.statusPort=abc")
        .unwrap_err()
        .to_string();
    assert!(err.contains("values.global.proxy.statusPort"), "{err}");
    assert!(err.contains("abc"), "{err}");
    assert!(err.contains("an integer"), "{err}");
    let err = cfg.set("config.policy=sometimes").unwrap_err().to_string();
    assert!(err.contains("enabled or disabled"), "{err}");
    let err = Config::from_yaml(
        "config:\n  alwaysInjectSelector:\n  - matchExpressions:\n    - {key: a, operator: Maybe}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("config.alwaysInjectSelector[0]"), "{err}");
    assert!(err.contains("In, NotIn, Exists or DoesNotExist"), "{err}");
    let err = cfg.set("no-equals-sign").unwrap_err().to_string();
    assert!(err.contains("path=value"), "{err}");
    assert!(Config::from_yaml("values: [").is_err());
}

#[test]
fn a_failed_override_changes_nothing() {
    let mut cfg = Config::builder();
    cfg.set("values.global.hub=first").unwrap();
    let before = cfg.clone();
    assert!(cfg.set("values.global.proxy.statusPort=notaport").is_err());
    assert!(
        cfg.merge_values_yaml("global:\n  hub: second\n  unknownKey: 1\n")
            .is_err()
    );
    assert_eq!(cfg, before);
}

#[test]
fn load_reads_a_file_and_names_it_when_missing() {
    let dir = std::env::temp_dir().join(format!("outrigger-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.yaml");
    std::fs::write(&file, "values:\n  global:\n    tag: from-file\n").unwrap();
    assert_eq!(Config::load(&file).unwrap().settings().tag, "from-file");
    let missing = dir.join("missing.yaml");
    let err = Config::load(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.yaml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The refusal of `config.trafficCapture: outrigger` with an init image that
/// is not outrigger's: it names both keys and what to set.
fn assert_capture_refusal(err: &ConfigError, image: &str) {
    assert!(
        matches!(err, ConfigError::CaptureImage { image: i } if i == image),
        "{err:?}"
    );
    let msg = err.to_string();
    for part in [
        "config.trafficCapture is outrigger",
        &format!("values.global.proxy_init.image is {image:?}"),
        "set values.global.proxy_init.image to outrigger's image",
        "or set config.trafficCapture to istio-iptables",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
}

#[test]
fn outrigger_capture_with_istios_init_image_is_refused() {
    // Left at the default, Istio's proxyv2.
    let err = Config::from_yaml("config:\n  trafficCapture: outrigger\n").unwrap_err();
    assert_capture_refusal(&err, "proxyv2");
    // Istio's proxy image written out in full, removed, or emptied.
    for (image, configured) in [
        (
            "docker.io/istio/proxyv2:1.26.0",
            "docker.io/istio/proxyv2:1.26.0",
        ),
        ("null", ""),
        ("\"\"", ""),
    ] {
        let text = format!(
            "config:\n  trafficCapture: outrigger\nvalues:\n  global:\n    proxy_init:\n      image: {image}\n"
        );
        let err = Config::from_yaml(&text).unwrap_err();
        assert_capture_refusal(&err, configured);
    }
    // The same through the builder, whatever layer chose outrigger.
    let mut layers = Config::builder();
    layers.set("config.trafficCapture=outrigger").unwrap();
    assert_capture_refusal(&layers.build().unwrap_err(), "proxyv2");
    let mut layers = Config::builder();
    layers
        .merge_values_yaml("config:\n  trafficCapture: outrigger\n")
        .unwrap();
    assert_capture_refusal(&layers.build().unwrap_err(), "proxyv2");
}

#[test]
fn the_init_image_check_comes_after_every_layer() {
    // The config file chooses outrigger capture; --set names the image.
    let mut layers = ConfigBuilder::from_yaml("config:\n  trafficCapture: outrigger\n").unwrap();
    layers
        .set("values.global.proxy_init.image=registry.example.com/outrigger:0.1.0")
        .unwrap();
    let cfg = layers.build().unwrap();
    assert_eq!(cfg.settings().traffic_capture, TrafficCapture::Outrigger);
    assert_eq!(
        cfg.settings().init_image,
        "registry.example.com/outrigger:0.1.0"
    );
    // An IstioOperator names the image (a bare name, under hub and tag);
    // --set chooses outrigger capture.
    let mut layers = Config::builder();
    layers
        .merge_values_yaml(
            "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  values:\n    global:\n      proxy_init:\n        image: outrigger\n",
        )
        .unwrap()
        .set("config.trafficCapture=outrigger")
        .unwrap();
    assert_eq!(layers.build().unwrap().settings().init_image, "outrigger");
    // A later layer that puts Istio's image back is refused at the end.
    let mut layers = ConfigBuilder::from_yaml(OUTRIGGER_CAPTURE).unwrap();
    layers
        .set("values.global.proxy_init.image=proxyv2")
        .unwrap();
    assert_capture_refusal(&layers.build().unwrap_err(), "proxyv2");
    // A later layer that goes back to istio-iptables needs no outrigger image.
    let mut layers = ConfigBuilder::from_yaml(OUTRIGGER_CAPTURE).unwrap();
    layers
        .set("values.global.proxy_init.image=proxyv2")
        .unwrap()
        .set("config.trafficCapture=istio-iptables")
        .unwrap();
    assert_eq!(
        layers.build().unwrap().settings().traffic_capture,
        TrafficCapture::IstioIptables
    );
}

#[test]
fn load_refuses_an_outrigger_capture_file_without_outriggers_image() {
    let dir = std::env::temp_dir().join(format!("outrigger-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.yaml");
    std::fs::write(&file, "config:\n  trafficCapture: outrigger\n").unwrap();
    let err = Config::load(&file).unwrap_err();
    assert_capture_refusal(&err, "proxyv2");
    std::fs::write(&file, OUTRIGGER_CAPTURE).unwrap();
    assert_eq!(
        Config::load(&file).unwrap().settings().traffic_capture,
        TrafficCapture::Outrigger
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

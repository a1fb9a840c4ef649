//! The injector's configuration: Istio's defaults, Istio's key space,
//! `--set` and `--values` overrides, and errors that name the key.

use outrigger::config::{Config, Policy};

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
}

#[test]
fn set_uses_istio_install_value_paths() {
    let mut cfg = Config::default();
    cfg.set("values.global.hub=registry.example.com/istio")
        .unwrap();
    cfg.set("values.global.proxy.statusPort=123").unwrap();
    cfg.set("values.pilot.env.ENABLE_NATIVE_SIDECARS=false")
        .unwrap();
    cfg.set("meshConfig.defaultConfig.drainDuration=23s")
        .unwrap();
    cfg.set("values.global.imagePullSecrets={a,b}").unwrap();
    cfg.set("config.policy=disabled").unwrap();
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
    let mut cfg = Config::default();
    cfg.set("values.global.proxy.resources.limits.memory=null")
        .unwrap();
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
    let mut cfg = Config::default();
    cfg.merge_values_yaml("global:\n  hub: plain.example.com\n")
        .unwrap();
    assert_eq!(cfg.settings().hub, "plain.example.com");
    cfg.merge_values_yaml(
        "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  meshConfig:\n    trustDomain: op.example\n  values:\n    global:\n      hub: op.example.com\n",
    )
    .unwrap();
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
    let mut cfg = Config::default();
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
    let mut cfg = Config::default();
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
    let mut cfg = Config::default();
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

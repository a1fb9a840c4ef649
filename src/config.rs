//! The injector's configuration, in Istio's own key space, so that Istio
//! users can reuse what they already have:
//!
//! - `values:` the injection-related subset of Istio's install values
//!   (`global.hub`, `global.proxy.*`, `pilot.env.ENABLE_NATIVE_SIDECARS`, ...);
//! - `meshConfig:` the mesh config fields injection reads (`defaultConfig`
//!   ProxyConfig fields, `trustDomain`, `inboundTrafficPolicy`, ...);
//! - `components:` IstioOperator's `spec.components`, as `istioctl` users
//!   write them (`--set components.cni.enabled=true`); only
//!   `components.cni.enabled` affects injection;
//! - `config:` outrigger's own keys, which Istio's key space has no place
//!   for: the webhook's policy (`policy`, `neverInjectSelector`,
//!   `alwaysInjectSelector`, `injectedAnnotations`) and `trafficCapture`.
//!
//! `config.trafficCapture` says what the injected `istio-init` container
//! runs to install the traffic-capture rules:
//!
//! - `istio-iptables` (default): Istio's `istio-iptables`, from the image
//!   `values.global.proxy_init.image` names (Istio's `proxyv2` by default),
//!   exactly as Istio's injection template renders it;
//! - `outrigger`: `outrigger iptables` from outrigger's own image, so that
//!   pods need no Istio image to start. `values.global.proxy_init.image` must
//!   then name outrigger's image (whose entrypoint is
//!   `/usr/local/bin/outrigger`); a configuration that leaves it at Istio's
//!   `proxyv2` (or empty) is refused once every layer is applied
//!   ([`ConfigBuilder::build`]). A name containing `/` is used as it is,
//!   any other name becomes `<values.global.hub>/<name>:<values.global.tag>`,
//!   and `sidecar.istio.io/proxyImage` does not replace it. The container's
//!   args are `iptables` followed by the very capture flags `istio-iptables`
//!   would get, with the same security context (root, NET_ADMIN and
//!   NET_RAW); `--log_as_json`, which is not a capture flag, is left out.
//!   Flags that `outrigger iptables` would refuse make injection fail with
//!   an error naming the annotation (or config key) they came from, so that
//!   no pod gets an init container that cannot start. With CNI on
//!   (`components.cni.enabled`, see [`CNI_ENABLED_KEYS`]) the CNI plugin
//!   captures traffic and the
//!   `istio-validation` container runs Istio's validation from the proxy's
//!   image (`values.global.proxy.image`), since `proxy_init.image` then
//!   names outrigger's.
//!
//! Defaults are Istio's (see `config/defaults.yaml`, which also lists the
//! keys injection reads). Every other key of Istio's install key space
//! (`config/istio_keys.tsv`: IstioOperator values and meshConfig) is
//! accepted and ignored, so that Istio's own profiles and chart values load;
//! [`Config::ignored_keys`] lists them. A key in neither is refused with its
//! path and the closest known key; a value of another type than Istio's (a
//! number where Istio expects a string, a port out of range) is refused. The configuration is parsed and resolved into
//! [`Settings`] once, when it is loaded or changed, so that the engine reads
//! plain fields on every admission. A [`Config`] is always complete: the
//! checks of keys that only work together have passed.

mod builder;
mod derived;
mod schema;
mod selector;
mod settings;
mod templates;
mod tree;

use std::path::Path;

use serde_json::Value;

pub use builder::ConfigBuilder;
pub use derived::Derived;
pub use selector::{LabelSelector, SelectorError};
pub use settings::{
    CNI_ENABLED_KEYS, CNI_PROVIDER_KEYS, CniProvider, PROXY_CONFIG_FIELDS, Policy, Settings,
    TrafficCapture,
};
pub use templates::{BUILT_IN_TEMPLATES, DEFAULT_TEMPLATES_KEY, TEMPLATES_KEY, UserTemplates};

/// The injector's configuration: Istio's defaults with the user's overrides
/// on top, resolved once into [`Settings`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `{values, meshConfig, config}` merged over the defaults.
    tree: Value,
    /// The resolved form the engine reads.
    settings: Settings,
    /// What the engine derives from these settings, made on first use.
    derived: Derived,
    /// Istio keys the layers gave that injection does not read.
    ignored: std::collections::BTreeSet<String>,
}

/// A configuration file or override that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML.
    #[error("config is not valid YAML: {source}")]
    Yaml {
        /// Why.
        #[source]
        source: serde_yaml::Error,
    },
    /// A key that neither Istio's install values, its mesh config nor
    /// outrigger's own config has: a typo, most likely.
    #[error("unknown config key `{path}`{}", match suggestion {
        Some(s) => format!(": did you mean `{s}`?"),
        None => " (not a key of Istio's install values or mesh config, nor of outrigger's config)".to_string(),
    })]
    UnknownKey {
        /// The key's full path, dot-separated.
        path: String,
        /// The closest known key, when one is close.
        suggestion: Option<String>,
    },
    /// A value of the wrong shape.
    #[error("config key `{path}` has an invalid value {value}: expected {expected}")]
    InvalidValue {
        /// The key's full path.
        path: String,
        /// The value, as given.
        value: String,
        /// The accepted form.
        expected: String,
    },
    /// Any other invalid configuration (kept from the original contract).
    #[error("invalid config: {0}")]
    Invalid(String),
    /// `config.trafficCapture: outrigger` with an init image that is not
    /// outrigger's: the injected `istio-init` container could not start.
    #[error(
        "config.trafficCapture is outrigger, but values.global.proxy_init.image is {image:?}, which is not outrigger's image (Istio's proxyv2, its default, has no outrigger binary), so injected pods could not start: set values.global.proxy_init.image to outrigger's image (a reference such as registry.example.com/outrigger:0.1.0, or a name under values.global.hub and values.global.tag), or set config.trafficCapture to istio-iptables"
    )]
    CaptureImage {
        /// `values.global.proxy_init.image` as configured.
        image: String,
    },
    /// A template of `values.sidecarInjectorWebhook.templates` that does
    /// not parse: its name, line and what is wrong.
    #[error("config key `values.sidecarInjectorWebhook.templates` holds a broken {source}")]
    Template {
        /// Which template, where, and why.
        #[source]
        source: crate::template::TemplateError,
    },
    /// A `--set` argument that is not `path=value`.
    #[error("--set {0:?}: expected path=value, e.g. values.global.hub=docker.io/istio")]
    BadAssignment(String),
}

impl Default for Config {
    fn default() -> Self {
        let tree = tree::defaults().clone();
        // The built-in defaults always resolve; a failure here is a defect in
        // defaults.yaml that every test would reveal.
        let settings = Settings::resolve(&tree).unwrap_or_else(|e| {
            panic!("built-in config defaults do not resolve: {e}");
        });
        Config {
            tree,
            settings,
            derived: Derived::default(),
            ignored: Default::default(),
        }
    }
}

impl Config {
    /// Parses a whole configuration document (YAML with top-level `values`,
    /// `meshConfig` and `config`) and checks it as one layer: the document
    /// must be complete on its own.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        ConfigBuilder::from_yaml(text)?.build()
    }

    /// Reads, parses and checks a whole configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        ConfigBuilder::load(path)?.build()
    }

    /// A builder for layering `--config`, `--values` and `--set` over the
    /// defaults, checked once every layer is on.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::new()
    }

    /// The resolved settings the engine reads.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What the engine derives from these settings (its compiled
    /// template), kept with them.
    pub fn derived(&self) -> &Derived {
        &self.derived
    }

    /// The keys of Istio's install key space this configuration sets that
    /// do not affect injection (accepted so that Istio's profiles load,
    /// and ignored), each subtree once, sorted.
    pub fn ignored_keys(&self) -> impl Iterator<Item = &str> {
        self.ignored.iter().map(String::as_str)
    }
}

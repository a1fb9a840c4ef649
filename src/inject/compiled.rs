//! The template compiled once per configuration. For a pod without tuning
//! annotations (no `sidecar.istio.io/*` key but `sidecar.istio.io/inject`,
//! and no `proxy.istio.io/*`, `traffic.sidecar.istio.io/*`,
//! `[readiness.]status.sidecar.istio.io/*` or `prometheus.istio.io/*`
//! key: nothing [`validate`](super::annotations::validate) would check),
//! with a named workload and app containers, what the template adds is the same
//! text from pod to pod but for a few values: the pod's ports, its app
//! containers, its workload, its service account, and the env vars
//! post-processing gives the proxy. So the direct path renders the
//! template once, through the very same code, with those values left as
//! [`Hole`]s, keeps each added item as text, and per pod only fills the
//! holes.
//!
//! The invariants and mutation tests hold the direct path, compiled or
//! not, to the Value engine's patch byte for byte.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::inputs;
use super::node::{Hole, Node};
use super::patch_json::Out;
use super::pipeline::{PodSettings, pod_settings};
use super::probes::APP_PROBERS_ENV;
use super::prometheus::PROMETHEUS_ENV;
use super::sidecar::{self, Inputs, Status};
use super::workload::Workload;
use crate::config::{Config, Settings};

/// One item the template adds (a container, a volume, a pull secret), as
/// text with holes.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its name.
    pub name: String,
    /// Its JSON text, holes left out.
    text: Vec<u8>,
    /// The holes, by offset in `text`.
    holes: Vec<(usize, Hole)>,
}

/// The values a pod fills a compiled template's holes with.
pub struct PodValues<'a> {
    /// `ISTIO_META_POD_PORTS`.
    pub pod_ports: String,
    /// `ISTIO_META_APP_CONTAINERS`.
    pub app_containers: String,
    /// `ISTIO_META_WORKLOAD_NAME`.
    pub workload_name: &'a str,
    /// `ISTIO_META_OWNER`.
    pub owner: String,
    /// The `istio-certs` volume's secret.
    pub certs_secret: String,
    /// The env vars post-processing adds to the proxy.
    pub extra_env: Vec<Node<'static>>,
}

impl Item {
    /// Writes the item with the pod's values in its holes.
    pub fn write(&self, values: &PodValues, out: &mut Out) {
        let mut at = 0;
        for &(offset, hole) in &self.holes {
            out.put_slice(&self.text[at..offset]);
            match hole {
                Hole::PodPorts => out.string(&values.pod_ports),
                Hole::AppContainers => out.string(&values.app_containers),
                Hole::WorkloadName => out.string(values.workload_name),
                Hole::Owner => out.string(&values.owner),
                Hole::CertsSecret => out.string(&values.certs_secret),
                Hole::ExtraEnv => {
                    for env in &values.extra_env {
                        out.put_slice(b",");
                        env.write(out);
                    }
                }
            }
            at = offset;
        }
        out.put_slice(&self.text[at..]);
    }
}

/// The compiled template of one configuration.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Init containers, in the template's order.
    pub init_containers: Vec<Item>,
    /// Containers.
    pub containers: Vec<Item>,
    /// Volumes.
    pub volumes: Vec<Item>,
    /// Image pull secrets.
    pub image_pull_secrets: Vec<Item>,
    /// What an untuned pod gets (`sidecar.istio.io/status`).
    pub status: Status,
    /// `status` in its annotation's JSON form.
    pub status_json: String,
    /// `status_json` as the patch carries it: a JSON string, quoted and
    /// escaped once here rather than in every patch.
    pub status_text: Vec<u8>,
    /// What an untuned pod's settings are.
    pub pod_settings: PodSettings<'static>,
}

/// Whether an annotation tunes what the template renders, so that a pod
/// carrying it is rendered on its own rather than from the compiled
/// template.
pub fn tunes(key: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        "sidecar.istio.io/",
        "proxy.istio.io/",
        "traffic.sidecar.istio.io/",
        "status.sidecar.istio.io/",
        "readiness.status.sidecar.istio.io/",
        "prometheus.istio.io/",
    ];
    (PREFIXES.iter().any(|p| key.starts_with(p)) && key != "sidecar.istio.io/inject")
        || key == "istio.io/reroute-virtual-interfaces"
}

impl Compiled {
    /// Compiles the template of `s`, or `None` when it cannot be: the
    /// template fails to render (every pod then gets the same error from
    /// the Value engine), or ProxyConfig's `proxyMetadata` sets an env var
    /// post-processing sets too (it is then replaced in place).
    pub fn of(s: &Settings) -> Option<Compiled> {
        let none = BTreeMap::new();
        let settings = pod_settings(s, &none).ok()?;
        let spec = Value::Object(Map::new());
        let workload = Workload {
            name: String::new(),
            namespace: String::new(),
            kind: String::new(),
            api_version: String::new(),
        };
        let rendered = sidecar::render(&Inputs {
            s,
            annotations: &none,
            labels: &none,
            spec: &spec,
            workload: &workload,
            proxy_config: &settings.proxy_config,
            native: settings.native,
            hold: settings.hold,
            resources: inputs::resources(s, &none),
            compile: true,
        })
        .ok()?;
        let sets_extra = |c: &Node| match c.get("env") {
            Some(Node::List(env)) => env.iter().any(|e| {
                let name = e.str_of("name");
                name == Some(APP_PROBERS_ENV) || name == Some(PROMETHEUS_ENV)
            }),
            _ => false,
        };
        if rendered
            .init_containers
            .iter()
            .chain(&rendered.containers)
            .any(sets_extra)
        {
            return None;
        }
        let items = |nodes: &[Node]| nodes.iter().map(item).collect();
        let status_json = rendered.status.to_json();
        Some(Compiled {
            init_containers: items(&rendered.init_containers),
            containers: items(&rendered.containers),
            volumes: items(&rendered.volumes),
            image_pull_secrets: items(&rendered.image_pull_secrets),
            status_text: json_string(&status_json),
            status_json,
            status: rendered.status,
            pod_settings: PodSettings {
                proxy_config: std::borrow::Cow::Owned(settings.proxy_config.into_owned()),
                native: settings.native,
                hold: settings.hold,
                target_port: settings.target_port,
            },
        })
    }
}

fn item(node: &Node) -> Item {
    let mut out = Out::with_capacity(1024);
    node.write(&mut out);
    let (text, holes) = out.into_parts();
    Item {
        name: node.str_of("name").unwrap_or("").to_string(),
        text,
        holes,
    }
}

/// The compiled template of `cfg`, made on its first use and kept with
/// it (`None` when its settings cannot be compiled).
pub fn of_config(cfg: &Config) -> Option<&Compiled> {
    cfg.derived()
        .get_or_init(|| Compiled::of(cfg.settings()))
        .and_then(Option::as_ref)
}

/// `s` as a JSON string: what [`Out::string`] writes.
fn json_string(s: &str) -> Vec<u8> {
    let mut out = Out::with_capacity(s.len() + 16);
    out.string(s);
    out.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_validated_annotation_tunes() {
        for name in super::super::annotations::validated() {
            if name != "sidecar.istio.io/inject" {
                assert!(tunes(name), "{name} is validated but not a tuning key");
            }
        }
        assert!(!tunes("sidecar.istio.io/inject"));
        assert!(!tunes("prometheus.io/port"));
        assert!(tunes("istio.io/reroute-virtual-interfaces"));
    }

    #[test]
    fn prepare_compiles_the_template_before_any_admission() {
        let cfg = crate::config::Config::default();
        assert_eq!(format!("{:?}", cfg.derived()), "Derived(empty)");
        super::super::prepare(&cfg);
        assert_eq!(format!("{:?}", cfg.derived()), "Derived(made)");
        assert!(of_config(&cfg).is_some());
    }

    #[test]
    fn the_default_template_compiles_with_its_holes() {
        let cfg = crate::config::Config::default();
        let compiled = Compiled::of(cfg.settings()).expect("the defaults compile");
        let proxy = compiled
            .init_containers
            .iter()
            .chain(&compiled.containers)
            .find(|i| i.name == sidecar::PROXY_NAME)
            .expect("a proxy");
        let holes: Vec<Hole> = proxy.holes.iter().map(|(_, h)| *h).collect();
        assert_eq!(
            holes,
            [
                Hole::PodPorts,
                Hole::AppContainers,
                Hole::WorkloadName,
                Hole::Owner,
                Hole::ExtraEnv
            ]
        );
        assert_eq!(compiled.status, status_of_defaults());
    }

    fn status_of_defaults() -> Status {
        Status {
            init_containers: vec!["istio-init".into(), "istio-proxy".into()],
            containers: Vec::new(),
            volumes: [
                "workload-socket",
                "credential-socket",
                "workload-certs",
                "istio-envoy",
                "istio-data",
                "istio-podinfo",
                "istio-token",
                "istiod-ca-cert",
                "istio-ca-crl",
            ]
            .map(String::from)
            .to_vec(),
            image_pull_secrets: Vec::new(),
            revision: "default".into(),
        }
    }
}

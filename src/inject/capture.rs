//! The traffic-capture init container under `config.trafficCapture:
//! outrigger`: `outrigger iptables` from outrigger's own image, given the
//! capture flags Istio's template would give `istio-iptables`.
//!
//! The flags are checked with `outrigger iptables`' own parser and
//! validation ([`crate::iptables::outrigger_init_args`]) while injecting, so
//! that a pod never gets an init container that would refuse to start; a
//! refusal names the annotation (or configuration key) the flag came from.

use super::InjectError;
use super::sidecar::Inputs;
use crate::iptables::{InitArgsError, outrigger_init_args};

/// Flags of Istio's init container that are not about capture and that
/// `outrigger iptables` does not take.
const NOT_CAPTURE_FLAGS: &[&str] = &["--log_as_json"];

/// Where a capture flag's value comes from: the pod annotations that set it
/// (first match wins) and the configuration key that is its default.
struct Source {
    short: &'static str,
    annotations: &'static [&'static str],
    config: &'static str,
}

const SOURCES: &[Source] = &[
    Source {
        short: "-i",
        annotations: &["traffic.sidecar.istio.io/includeOutboundIPRanges"],
        config: "values.global.proxy.includeIPRanges",
    },
    Source {
        short: "-x",
        annotations: &["traffic.sidecar.istio.io/excludeOutboundIPRanges"],
        config: "values.global.proxy.excludeIPRanges",
    },
    Source {
        short: "-b",
        annotations: &["traffic.sidecar.istio.io/includeInboundPorts"],
        config: "values.global.proxy.includeInboundPorts",
    },
    Source {
        short: "-d",
        annotations: &[
            "traffic.sidecar.istio.io/excludeInboundPorts",
            "status.sidecar.istio.io/port",
        ],
        config: "values.global.proxy.excludeInboundPorts",
    },
    Source {
        short: "-q",
        annotations: &["traffic.sidecar.istio.io/includeOutboundPorts"],
        config: "values.global.proxy.includeOutboundPorts",
    },
    Source {
        short: "-o",
        annotations: &["traffic.sidecar.istio.io/excludeOutboundPorts"],
        config: "values.global.proxy.excludeOutboundPorts",
    },
    Source {
        short: "-k",
        annotations: &[
            "istio.io/reroute-virtual-interfaces",
            "traffic.sidecar.istio.io/kubevirtInterfaces",
        ],
        config: "",
    },
    Source {
        short: "-c",
        annotations: &["traffic.sidecar.istio.io/excludeInterfaces"],
        config: "values.global.proxy.excludeInterfaces",
    },
    Source {
        short: "-m",
        annotations: &["sidecar.istio.io/interceptionMode", "proxy.istio.io/config"],
        config: "meshConfig.defaultConfig.interceptionMode",
    },
    Source {
        short: "-u",
        annotations: &[],
        config: "the runAsUser of the pod's own istio-proxy container",
    },
];

/// The image of the capture init container: `values.global.proxy_init.image`
/// as Istio resolves image names (containing `/`: as it is; else under
/// `values.global.hub` with `values.global.tag`). The proxy image annotation
/// does not apply: it names a proxy image, which has no `outrigger` binary.
pub fn image(i: &Inputs) -> String {
    let name = &i.s.init_image;
    if name.contains('/') {
        name.clone()
    } else {
        format!("{}/{}:{}", i.s.hub, name, i.s.tag)
    }
}

/// The args of the init container running `outrigger iptables`, from the
/// args Istio's template gives `istio-iptables` (`istio_args`, starting
/// with `istio-iptables`).
pub fn outrigger_args(istio_args: &[String], i: &Inputs) -> Result<Vec<String>, InjectError> {
    let capture = istio_args
        .iter()
        .filter(|a| !NOT_CAPTURE_FLAGS.contains(&a.as_str()));
    outrigger_init_args(capture).map_err(|e| refusal(&e, i))
}

/// The refusal as an injection error naming where the refused value came
/// from.
fn refusal(err: &InitArgsError, i: &Inputs) -> InjectError {
    const WHY: &str = "config.trafficCapture is outrigger, and outrigger iptables refuses it";
    let InitArgsError::Config(e) = err else {
        return InjectError(format!(
            "{WHY}: the traffic-capture arguments do not parse: {}",
            first_line(&err.to_string())
        ));
    };
    let source = SOURCES
        .iter()
        .find(|s| e.flag.split('/').next() == Some(s.short));
    if let Some(source) = source {
        for name in source.annotations {
            if let Some(value) = i.annotations.get(*name) {
                return InjectError::annotation(
                    name,
                    value,
                    &format!("{} ({WHY} as {})", e.expected, e.flag),
                );
            }
        }
        if !source.config.is_empty() {
            return InjectError(format!("{WHY} (from {}): {e}", source.config));
        }
    }
    InjectError(format!("{WHY}: {e}"))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

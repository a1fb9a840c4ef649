//! What injection adds when Istio's CNI plugin captures traffic, and the
//! pod's network, as Istio's sidecar template and injector give them:
//!
//! - the annotations the CNI plugin reads the capture settings from
//!   (`sidecar.istio.io/interceptionMode`, the `traffic.sidecar.istio.io/*`
//!   ports and ranges), since it has no init container's args to read;
//! - with the `multus` provider, the Multus network attachment
//!   `default/istio-cni` in `k8s.v1.cni.cncf.io/networks`, appended to the
//!   networks the pod already asks for (Istio's `appendMultusNetwork`);
//! - the `topology.istio.io/network` label and the proxy's
//!   `ISTIO_META_NETWORK`, from the pod's own label else
//!   `values.global.network`.
//!
//! See <https://istio.io/latest/docs/setup/additional-setup/cni/>.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::InjectError;
use super::inputs::Inputs;
use crate::config::{CniProvider, Settings};

/// The Multus annotation: the networks a pod is attached to.
pub const MULTUS_NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
/// Istio's CNI plugin as a Multus network attachment, `<namespace>/<name>`.
pub const ISTIO_CNI_NETWORK: &str = "default/istio-cni";
/// The label that names the pod's network (multi-network meshes).
pub const NETWORK_LABEL: &str = "topology.istio.io/network";

/// The annotations the template adds for the CNI plugin, in key order;
/// none without CNI. Fails on a `k8s.v1.cni.cncf.io/networks` that is
/// neither Multus' comma-separated form nor its JSON form.
pub fn annotations(i: &Inputs) -> Result<Vec<(&'static str, String)>, InjectError> {
    let s = i.s;
    if !s.cni_enabled {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    if s.cni_provider == CniProvider::Multus {
        let existing = i.annotations.get(MULTUS_NETWORKS).map(String::as_str);
        let networks =
            append_multus_network(existing.unwrap_or(""), ISTIO_CNI_NETWORK).map_err(|form| {
                InjectError::annotation(MULTUS_NETWORKS, existing.unwrap_or(""), form)
            })?;
        out.push((MULTUS_NETWORKS, networks));
    }
    out.push((
        "sidecar.istio.io/interceptionMode",
        i.interception_mode().to_string(),
    ));
    for (key, default) in [
        (
            "traffic.sidecar.istio.io/includeOutboundIPRanges",
            &s.include_ip_ranges,
        ),
        (
            "traffic.sidecar.istio.io/excludeOutboundIPRanges",
            &s.exclude_ip_ranges,
        ),
    ] {
        let value = i.anno(key, default);
        if !value.is_empty() {
            out.push((key, value.to_string()));
        }
    }
    out.push((
        "traffic.sidecar.istio.io/includeInboundPorts",
        i.anno(
            "traffic.sidecar.istio.io/includeInboundPorts",
            &s.include_inbound_ports,
        )
        .to_string(),
    ));
    out.push((
        "traffic.sidecar.istio.io/excludeInboundPorts",
        exclude_inbound_port(
            &i.status_port(),
            i.anno(
                "traffic.sidecar.istio.io/excludeInboundPorts",
                &s.exclude_inbound_ports,
            ),
        ),
    ));
    for (key, default) in [
        (
            "traffic.sidecar.istio.io/includeOutboundPorts",
            &s.include_outbound_ports,
        ),
        (
            "traffic.sidecar.istio.io/excludeOutboundPorts",
            &s.exclude_outbound_ports,
        ),
    ] {
        if i.annotations.contains_key(key) || !default.is_empty() {
            out.push((key, i.anno(key, default).to_string()));
        }
    }
    out.sort_by_key(|(k, _)| *k);
    Ok(out)
}

/// Istio's `excludeInboundPort`: the excluded inbound ports with the
/// status port added, unless it is already among them (then the list is
/// given back as written) or is `0` or empty.
pub fn exclude_inbound_port(status_port: &str, excluded: &str) -> String {
    let port = status_port.trim();
    if port.is_empty() || port == "0" {
        return excluded.to_string();
    }
    let mut out: Vec<&str> = Vec::new();
    for p in excluded.split(',') {
        if p == port {
            return excluded.to_string();
        }
        let p = p.trim();
        if !p.is_empty() {
            out.push(p);
        }
    }
    out.push(port);
    out.join(",")
}

/// Adds `network` (`<namespace>/<name>`) to a `k8s.v1.cni.cncf.io/networks`
/// value, as Istio's `appendMultusNetwork` does: the network alone when
/// there are none; in the JSON form (a list of `{"name", "namespace"}`)
/// one more element; in the comma-separated form `, <network>` at the end;
/// unchanged when the pod already asks for it. A JSON list that does not
/// parse is refused (Istio leaves it as it is, and the pod then starts
/// without the plugin); the error is the accepted form. An empty JSON list
/// gets the one element without a leading comma (Istio's text would not
/// be JSON).
pub fn append_multus_network(existing: &str, network: &str) -> Result<String, &'static str> {
    const FORM: &str = "Multus networks: a comma-separated list of [<namespace>/]<name>, \
         or a JSON list of objects with a \"name\" and an optional \"namespace\"";
    if existing.is_empty() {
        return Ok(network.to_string());
    }
    let (namespace, name) = network.split_once('/').unwrap_or(("", network));
    if let Some(close) = existing.rfind(']') {
        let list: Vec<Map<String, Value>> = serde_json::from_str(existing).map_err(|_| FORM)?;
        let present = list.iter().any(|n| {
            n.get("name").and_then(Value::as_str) == Some(name)
                && n.get("namespace").and_then(Value::as_str).unwrap_or("") == namespace
        });
        if present {
            return Ok(existing.to_string());
        }
        let element = if namespace.is_empty() {
            format!("{{\"name\": \"{name}\"}}")
        } else {
            format!("{{\"name\": \"{name}\", \"namespace\": \"{namespace}\"}}")
        };
        let separator = if list.is_empty() { "" } else { ", " };
        return Ok(format!(
            "{}{separator}{element}{}",
            &existing[..close],
            &existing[close..]
        ));
    }
    if existing.split(',').any(|n| n.trim() == network) {
        return Ok(existing.to_string());
    }
    Ok(format!("{existing}, {network}"))
}

/// A `k8s.v1.cni.cncf.io/networks` value without what
/// [`append_multus_network`] added: `None` when nothing else is left.
pub fn remove_multus_network(value: &str, network: &str) -> Option<String> {
    if value == network {
        return None;
    }
    let (namespace, name) = network.split_once('/').unwrap_or(("", network));
    let element = format!("{{\"name\": \"{name}\", \"namespace\": \"{namespace}\"}}");
    for added in [format!(", {element}"), element, format!(", {network}")] {
        if let Some(at) = value.rfind(&added) {
            let rest = &value[at + added.len()..];
            if rest.is_empty() || rest == "]" {
                return Some(format!("{}{rest}", &value[..at]));
            }
        }
    }
    Some(value.to_string())
}

/// The pod's network: its own `topology.istio.io/network` label (even
/// empty) else `values.global.network`; empty when neither names one.
pub fn network<'a>(s: &'a Settings, labels: &'a BTreeMap<String, String>) -> &'a str {
    labels.get(NETWORK_LABEL).unwrap_or(&s.network)
}

/// Takes off the CNI annotations [`annotations`] would have set on a pod
/// without its own (a value the user wrote that happens to be the same is
/// taken off too, and injection puts it back), and the Multus network it
/// appended. `mode` is the interception mode injection used.
pub fn uninject(annos: &mut Map<String, Value>, s: &Settings, mode: &str) {
    if !s.cni_enabled {
        return;
    }
    if let Some(Value::String(networks)) = annos.get(MULTUS_NETWORKS)
        && s.cni_provider == CniProvider::Multus
    {
        match remove_multus_network(networks, ISTIO_CNI_NETWORK) {
            Some(rest) => {
                annos.insert(MULTUS_NETWORKS.into(), Value::String(rest));
            }
            None => {
                annos.remove(MULTUS_NETWORKS);
            }
        }
    }
    let status_port = annos
        .get("status.sidecar.istio.io/port")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| s.status_port.to_string());
    let defaults = [
        ("sidecar.istio.io/interceptionMode", mode.to_string()),
        (
            "traffic.sidecar.istio.io/includeOutboundIPRanges",
            s.include_ip_ranges.clone(),
        ),
        (
            "traffic.sidecar.istio.io/excludeOutboundIPRanges",
            s.exclude_ip_ranges.clone(),
        ),
        (
            "traffic.sidecar.istio.io/includeInboundPorts",
            s.include_inbound_ports.clone(),
        ),
        (
            "traffic.sidecar.istio.io/excludeInboundPorts",
            exclude_inbound_port(&status_port, &s.exclude_inbound_ports),
        ),
        (
            "traffic.sidecar.istio.io/includeOutboundPorts",
            s.include_outbound_ports.clone(),
        ),
        (
            "traffic.sidecar.istio.io/excludeOutboundPorts",
            s.exclude_outbound_ports.clone(),
        ),
    ];
    for (key, injected) in defaults {
        if annos.get(key).and_then(Value::as_str) == Some(injected.as_str()) {
            annos.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_istio_cni_network_is_appended_to_each_form() {
        let net = ISTIO_CNI_NETWORK;
        assert_eq!(append_multus_network("", net).unwrap(), net);
        assert_eq!(
            append_multus_network("alt_cni", net).unwrap(),
            "alt_cni, default/istio-cni"
        );
        assert_eq!(
            append_multus_network(r#"[{"name": "alt_cni"}]"#, net).unwrap(),
            r#"[{"name": "alt_cni"}, {"name": "istio-cni", "namespace": "default"}]"#
        );
        assert_eq!(
            append_multus_network("[]", net).unwrap(),
            r#"[{"name": "istio-cni", "namespace": "default"}]"#
        );
    }

    #[test]
    fn a_network_already_asked_for_is_not_added_twice() {
        let net = ISTIO_CNI_NETWORK;
        for existing in [
            "alt_cni, default/istio-cni",
            "default/istio-cni,alt_cni",
            r#"[{"name": "istio-cni", "namespace": "default"}]"#,
        ] {
            assert_eq!(append_multus_network(existing, net).unwrap(), existing);
        }
        // Another namespace's istio-cni is another network.
        assert_eq!(
            append_multus_network(r#"[{"name": "istio-cni"}]"#, net).unwrap(),
            r#"[{"name": "istio-cni"}, {"name": "istio-cni", "namespace": "default"}]"#
        );
    }

    #[test]
    fn a_json_list_that_does_not_parse_is_refused_with_the_form() {
        for bad in ["[{\"name\": ]", "[\"alt_cni\"]", "alt]"] {
            let form = append_multus_network(bad, ISTIO_CNI_NETWORK).expect_err(bad);
            assert!(form.contains("JSON list of objects"), "{form}");
        }
    }

    #[test]
    fn removing_gives_back_what_was_there_before() {
        for before in [
            "alt_cni",
            r#"[{"name": "alt_cni"}]"#,
            "[]",
            "a, b",
            "default/istio-cni,alt_cni",
        ] {
            let after = append_multus_network(before, ISTIO_CNI_NETWORK).unwrap();
            assert_eq!(
                remove_multus_network(&after, ISTIO_CNI_NETWORK).as_deref(),
                Some(before),
                "{after}"
            );
        }
        assert_eq!(
            remove_multus_network(ISTIO_CNI_NETWORK, ISTIO_CNI_NETWORK),
            None
        );
    }

    #[test]
    fn the_status_port_is_excluded_once() {
        assert_eq!(exclude_inbound_port("15020", ""), "15020");
        assert_eq!(exclude_inbound_port("15020", "80, 81"), "80,81,15020");
        assert_eq!(exclude_inbound_port("15020", "80,15020"), "80,15020");
        assert_eq!(exclude_inbound_port("0", "80"), "80");
        assert_eq!(exclude_inbound_port("", " 80"), " 80");
    }
}

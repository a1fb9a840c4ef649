//! Istio's Prometheus metrics merge: the proxy serves the app's metrics
//! merged with its own on the status port, so the pod's `prometheus.io/*`
//! annotations point there and the app's own settings move to the proxy's
//! `ISTIO_PROMETHEUS_ANNOTATIONS`.

use std::collections::BTreeMap;

use super::annotations::MERGE_METRICS;
use super::gojson;
use super::node::Node;
use super::sidecar;
use crate::config::Settings;

/// `prometheus.io/scrape`.
pub const PROMETHEUS_SCRAPE: &str = "prometheus.io/scrape";
/// `prometheus.io/path`.
pub const PROMETHEUS_PATH: &str = "prometheus.io/path";
/// `prometheus.io/port`.
pub const PROMETHEUS_PORT: &str = "prometheus.io/port";
/// The proxy's env var with the app's own scrape settings.
pub const PROMETHEUS_ENV: &str = "ISTIO_PROMETHEUS_ANNOTATIONS";
/// `prometheus.istio.io/scrape-targets`: consumed into the proxy's env.
pub const SCRAPE_TARGETS: &str = "prometheus.istio.io/scrape-targets";

/// Istio's Prometheus merge: the proxy serves merged metrics on the status
/// port; the app's own scrape settings move to `ISTIO_PROMETHEUS_ANNOTATIONS`.
pub fn prometheus_merge(
    s: &Settings,
    annos: &mut BTreeMap<String, String>,
    target_port: &str,
    env: &mut Vec<Node<'static>>,
) {
    let scrape_off = annos
        .get(PROMETHEUS_SCRAPE)
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    let merge_off = annos.get(MERGE_METRICS).is_some_and(|v| v == "false");
    if scrape_off || merge_off || !s.enable_prometheus_merge {
        return;
    }
    if annos.get(PROMETHEUS_PORT).map(String::as_str) == Some(target_port) {
        return;
    }
    let get = |k: &str| annos.get(k).cloned().unwrap_or_default();
    let (mut scrape, mut path, mut port) = (
        get(PROMETHEUS_SCRAPE),
        get(PROMETHEUS_PATH),
        get(PROMETHEUS_PORT),
    );
    let targets: Vec<(String, String)> = annos
        .get(SCRAPE_TARGETS)
        .map(|t| {
            t.split(',')
                .filter_map(|item| {
                    let item = item.trim();
                    let (p, path) = item.split_once(':').unwrap_or((item, ""));
                    (!p.is_empty()).then(|| (p.to_string(), path.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some((p, pa)) = targets.first() {
        if port.is_empty() {
            port = p.clone();
        }
        if path.is_empty() {
            path = pa.clone();
        }
        if scrape.is_empty() {
            scrape = "true".into();
        }
    }
    if !(scrape.is_empty() && path.is_empty() && port.is_empty()) {
        env.push(sidecar::env(
            PROMETHEUS_ENV,
            annotations_json(&scrape, &path, &port, &targets),
        ));
    }
    annos.insert(PROMETHEUS_PORT.into(), target_port.into());
    annos.insert(PROMETHEUS_PATH.into(), "/stats/prometheus".into());
    annos.insert(PROMETHEUS_SCRAPE.into(), "true".into());
}

/// `ISTIO_PROMETHEUS_ANNOTATIONS`: the app's own scrape settings, as
/// Istio's Go struct writes them (unset members left out).
fn annotations_json(scrape: &str, path: &str, port: &str, targets: &[(String, String)]) -> String {
    let mut text = String::with_capacity(64);
    text.push('{');
    for (k, v) in [("scrape", scrape), ("path", path), ("port", port)] {
        if !v.is_empty() {
            if text.len() > 1 {
                text.push(',');
            }
            text.push('"');
            text.push_str(k);
            text.push_str("\":");
            gojson::push_string(&mut text, v);
        }
    }
    if !targets.is_empty() {
        if text.len() > 1 {
            text.push(',');
        }
        text.push_str("\"targets\":[");
        for (i, (p, pa)) in targets.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str("{\"port\":");
            gojson::push_string(&mut text, p);
            text.push_str(",\"path\":");
            gojson::push_string(&mut text, pa);
            text.push('}');
        }
        text.push(']');
    }
    text.push('}');
    text
}

#[cfg(test)]
mod tests {
    use super::annotations_json;

    #[test]
    fn the_apps_settings_are_written_in_go_field_order_without_unset_members() {
        assert_eq!(
            annotations_json("true", "", "9090", &[]),
            r#"{"scrape":"true","port":"9090"}"#
        );
        let targets = [
            ("9090".to_string(), "/m".to_string()),
            ("9091".to_string(), String::new()),
        ];
        assert_eq!(
            annotations_json("", "/m", "", &targets),
            r#"{"path":"/m","targets":[{"port":"9090","path":"/m"},{"port":"9091","path":""}]}"#
        );
    }

    #[test]
    fn values_are_escaped_as_json_strings() {
        assert_eq!(
            annotations_json("", "/a\"b", "", &[]),
            r#"{"path":"/a\"b"}"#
        );
    }
}

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

/// Whether Prometheus reads annotation `name` as `canonical`: it makes a
/// label name of each (`strutil.SanitizeLabelName`: every character but a
/// letter, a digit and `_` becomes `_`), so `prometheus.io/scrape`,
/// `prometheus.io.scrape` and `prometheus-io/scrape` all read as
/// `prometheus_io_scrape`, and Istio's merge reads them alike.
fn reads_as(name: &str, canonical: &str) -> bool {
    fn label(c: char) -> char {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }
    name.chars().map(label).eq(canonical.chars().map(label))
}

/// The value of the annotation Prometheus reads as `canonical`: the
/// canonical spelling first, else the first other spelling in key order
/// (Istio takes whichever its map gives first).
fn read<'a>(annos: &'a BTreeMap<String, String>, canonical: &str) -> Option<&'a String> {
    annos.get(canonical).or_else(|| {
        annos
            .iter()
            .find(|(k, _)| reads_as(k, canonical))
            .map(|(_, v)| v)
    })
}

/// Go's `strconv.ParseBool`.
fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Whether the pod's scrape annotation, in any spelling Prometheus reads
/// (`prometheus.io/scrape`, `prometheus.io.scrape`, ...), lets it be
/// scraped: yes unless one of them is a false boolean (Istio's
/// `getPrometheusScrape`; a value that is not a boolean is passed over).
fn scrape_allowed(annos: &BTreeMap<String, String>) -> bool {
    let canonical = annos.get(PROMETHEUS_SCRAPE).into_iter();
    let others = annos
        .iter()
        .filter(|(k, _)| k.as_str() != PROMETHEUS_SCRAPE && reads_as(k, PROMETHEUS_SCRAPE))
        .map(|(_, v)| v);
    canonical
        .chain(others)
        .find_map(|v| go_bool(v))
        .unwrap_or(true)
}

/// Istio's Prometheus merge: the proxy serves merged metrics on the status
/// port; the app's own scrape settings move to `ISTIO_PROMETHEUS_ANNOTATIONS`.
/// The `prometheus.io` annotations are read in every spelling Prometheus
/// reads (see [`reads_as`]), and all of them are replaced.
pub fn prometheus_merge(
    s: &Settings,
    annos: &mut BTreeMap<String, String>,
    target_port: &str,
    env: &mut Vec<Node<'static>>,
) {
    let merge_off = annos.get(MERGE_METRICS).is_some_and(|v| v == "false");
    if !scrape_allowed(annos) || merge_off || !s.enable_prometheus_merge {
        return;
    }
    if read(annos, PROMETHEUS_PORT).map(String::as_str) == Some(target_port) {
        return;
    }
    let get = |k: &str| read(annos, k).cloned().unwrap_or_default();
    let (mut scrape, mut path, mut port) = (
        get(PROMETHEUS_SCRAPE),
        get(PROMETHEUS_PATH),
        get(PROMETHEUS_PORT),
    );
    let targets: Vec<(String, String)> = read(annos, SCRAPE_TARGETS)
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
    annos.retain(|k, _| {
        ![
            PROMETHEUS_SCRAPE,
            PROMETHEUS_PATH,
            PROMETHEUS_PORT,
            SCRAPE_TARGETS,
        ]
        .iter()
        .any(|c| reads_as(k, c))
    });
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
    use super::*;

    fn annos(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_spelling_prometheus_reads_can_opt_out() {
        for key in [
            "prometheus.io/scrape",
            "prometheus.io.scrape",
            "prometheus-io/scrape",
            "prometheus_io_scrape",
        ] {
            for no in ["false", "False", "0", "f"] {
                assert!(!scrape_allowed(&annos(&[(key, no)])), "{key}: {no}");
            }
            assert!(scrape_allowed(&annos(&[(key, "true")])), "{key}");
        }
        // Not a boolean: passed over, as Go's ParseBool fails on it.
        assert!(scrape_allowed(&annos(&[("prometheus.io.scrape", "nope")])));
        assert!(!scrape_allowed(&annos(&[
            ("prometheus.io.scrape", "nope"),
            ("prometheus.io/scrape", "false"),
        ])));
        assert!(scrape_allowed(&annos(&[(
            "prometheus.io.scrapes",
            "false"
        )])));
    }

    #[test]
    fn every_spelling_is_merged_and_replaced_by_the_canonical_ones() {
        let cfg = crate::config::Config::default();
        let mut a = annos(&[("prometheus.io.port", "9090"), ("prometheus-io/path", "/m")]);
        let mut env = Vec::new();
        prometheus_merge(cfg.settings(), &mut a, "15020", &mut env);
        assert_eq!(
            a,
            annos(&[
                ("prometheus.io/path", "/stats/prometheus"),
                ("prometheus.io/port", "15020"),
                ("prometheus.io/scrape", "true"),
            ])
        );
        let env: Vec<serde_json::Value> = env.into_iter().map(Node::into_value).collect();
        assert_eq!(
            env,
            [serde_json::json!({
                "name": PROMETHEUS_ENV,
                "value": r#"{"path":"/m","port":"9090"}"#
            })]
        );
    }

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

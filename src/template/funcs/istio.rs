//! The functions Istio's injector registers for its templates
//! (`pkg/kube/inject/template.go`), over JSON values.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{int, need, print, s, string_map, to_json, to_yaml};

fn omit_nil(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k, omit_nil(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.into_iter()
                .filter(|x| !x.is_null())
                .map(omit_nil)
                .collect(),
        ),
        other => other,
    }
}

/// The ports of `containers` (UDP and SCTP left out), comma-separated;
/// the proxy's own with `with_proxy`.
fn container_ports(containers: &Value, with_proxy: bool) -> String {
    let mut parts = Vec::new();
    for c in containers.as_array().into_iter().flatten() {
        if !with_proxy && c.get("name").and_then(Value::as_str) == Some("istio-proxy") {
            continue;
        }
        for p in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("");
            if proto == "UDP" || proto == "SCTP" {
                continue;
            }
            if let Some(port) = p.get("containerPort") {
                parts.push(s(port));
            }
        }
    }
    parts.join(",")
}

fn exclude_inbound_port(port: &Value, excluded: &str) -> String {
    let port = s(port).trim().to_string();
    if port.is_empty() || port == "0" {
        return excluded.to_string();
    }
    let mut out = Vec::new();
    for p in excluded.split(',') {
        if p == port {
            return excluded.to_string();
        }
        let p = p.trim();
        if !p.is_empty() {
            out.push(p.to_string());
        }
    }
    out.push(port);
    out.join(",")
}

fn append_multus_network(existing: &str, network: &str) -> String {
    if existing.is_empty() {
        return network.to_string();
    }
    if let Some(i) = existing.rfind(']') {
        let Ok(nets) = serde_json::from_str::<Vec<Map<String, Value>>>(existing) else {
            return existing.to_string();
        };
        let (ns, name) = match network.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => ("", network),
        };
        let present = nets.iter().any(|n| {
            n.get("name").and_then(Value::as_str) == Some(name)
                && n.get("namespace").and_then(Value::as_str).unwrap_or("") == ns
        });
        if present {
            return existing.to_string();
        }
        let entry = if ns.is_empty() {
            format!(", {{\"name\": \"{name}\"}}")
        } else {
            format!(", {{\"name\": \"{name}\", \"namespace\": \"{ns}\"}}")
        };
        return format!("{}{entry}{}", &existing[..i], &existing[i..]);
    }
    if existing.split(',').any(|n| n.trim() == network) {
        return existing.to_string();
    }
    format!("{existing}, {network}")
}

/// Go's `time.Duration.String()` of a number of seconds.
fn go_duration(secs: f64) -> String {
    if secs == 0.0 {
        return "0s".into();
    }
    let neg = secs < 0.0;
    let mut rest = secs.abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if rest < 1.0 {
        let (unit, scale) = if rest < 1e-6 {
            ("ns", 1e9)
        } else if rest < 1e-3 {
            ("µs", 1e6)
        } else {
            ("ms", 1e3)
        };
        let _ = write!(out, "{}{unit}", trim_float(rest * scale));
        return out;
    }
    let hours = (rest / 3600.0).floor();
    rest -= hours * 3600.0;
    let mins = (rest / 60.0).floor();
    rest -= mins * 60.0;
    if hours > 0.0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0.0 || mins > 0.0 {
        let _ = write!(out, "{mins}m");
    }
    let _ = write!(out, "{}s", trim_float(rest));
    out
}

fn trim_float(f: f64) -> String {
    let t = format!("{:.9}", f);
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn format_duration(v: &Value) -> String {
    match v {
        Value::String(t) => match humantime::parse_duration(t) {
            Ok(d) => go_duration(d.as_secs_f64()),
            Err(_) => t.clone(),
        },
        Value::Object(m) => {
            let secs = m.get("seconds").map(|x| int(x).unwrap_or(0)).unwrap_or(0) as f64;
            let nanos = m.get("nanos").map(|x| int(x).unwrap_or(0)).unwrap_or(0) as f64;
            go_duration(secs + nanos / 1e9)
        }
        Value::Number(n) => go_duration(n.as_f64().unwrap_or(0.0)),
        _ => "0s".into(),
    }
}

fn otel_resource_attributes(args: &[Value]) -> String {
    let mesh = &args[0];
    let enriched = mesh
        .get("extensionProviders")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("opentelemetry"))
        .any(|o| {
            o.get("serviceAttributeEnrichment").and_then(Value::as_str)
                == Some("OTEL_SEMANTIC_CONVENTIONS")
        });
    if !enriched {
        return String::new();
    }
    let annotations = &args[1];
    let labels = &args[2];
    let namespace = s(&args[3]);
    let containers = args[4].as_array().cloned().unwrap_or_default();
    let get = |m: &Value, k: &str| m.get(k).map(s).filter(|v| !v.is_empty());
    let mut attrs = Vec::new();
    if let Some(v) = get(annotations, "resource.opentelemetry.io/service.namespace") {
        attrs.push(format!("service.namespace={v}"));
    } else if !namespace.is_empty() {
        attrs.push(format!("service.namespace={namespace}"));
    }
    if let Some(v) = get(annotations, "resource.opentelemetry.io/service.version")
        .or_else(|| get(labels, "app.kubernetes.io/version"))
    {
        attrs.push(format!("service.version={v}"));
    } else if let [only] = containers.as_slice() {
        let image = only.get("image").map(s).unwrap_or_default();
        let (image, digest) = match image.split_once('@') {
            Some((i, d)) => (i.to_string(), d.to_string()),
            None => (image, String::new()),
        };
        let slash = image.rfind('/').map(|i| i as i64).unwrap_or(-1);
        let tag = match image.rfind(':') {
            Some(c) if c as i64 > slash => image[c + 1..].to_string(),
            _ => String::new(),
        };
        let version = match (tag.is_empty(), digest.is_empty()) {
            (false, false) => format!("{tag}@{digest}"),
            (true, false) => digest,
            (false, true) => tag,
            (true, true) => String::new(),
        };
        if !version.is_empty() {
            attrs.push(format!("service.version={version}"));
        }
    }
    if let Some(v) = get(annotations, "resource.opentelemetry.io/service.instance.id") {
        attrs.push(format!("service.instance.id={v}"));
    } else if let Some(first) = containers.first() {
        let name = first.get("name").map(s).unwrap_or_default();
        attrs.push(format!(
            "service.instance.id={namespace}.$(POD_NAME).{name}"
        ));
    }
    attrs.join(",")
}

/// Calls one of Istio's functions: `None` when `name` is not one.
pub(super) fn call(name: &str, a: &[Value]) -> Result<Option<Value>, String> {
    let str_of = |i: usize| a.get(i).map(s).unwrap_or_default();
    Ok(Some(match name {
        "formatDuration" => Value::String(a.first().map(format_duration).unwrap_or_default()),
        "isset" => {
            need(a, 2, name)?;
            Value::Bool(a[0].as_object().is_some_and(|m| m.contains_key(&str_of(1))))
        }
        "excludeInboundPort" => {
            need(a, 2, name)?;
            Value::String(exclude_inbound_port(&a[0], &str_of(1)))
        }
        "includeInboundPorts" => {
            Value::String(container_ports(a.first().unwrap_or(&Value::Null), true))
        }
        "applicationPorts" => {
            Value::String(container_ports(a.first().unwrap_or(&Value::Null), false))
        }
        "kubevirtInterfaces" | "excludeInterfaces" => Value::String(str_of(0)),
        "annotation" => {
            need(a, 3, name)?;
            match a[0].get("annotations").and_then(|m| m.get(str_of(1))) {
                Some(v) => Value::String(s(v)),
                None => Value::String(print(&a[2])),
            }
        }
        "valueOrDefault" => {
            need(a, 2, name)?;
            match &a[0] {
                Value::Null => a[1].clone(),
                Value::String(t) if t.is_empty() => a[1].clone(),
                v => v.clone(),
            }
        }
        "toJSON" => Value::String(match a.first() {
            None | Some(Value::Null) => "{}".into(),
            Some(v) => to_json(&Value::Object(string_map(v))),
        }),
        "fromJSON" => serde_json::from_str(&str_of(0)).unwrap_or(Value::String("{}".into())),
        "structToJSON" | "protoToJSON" => Value::String(match a.first() {
            None | Some(Value::Null) => "{}".into(),
            Some(v) => to_json(v),
        }),
        "toYaml" => Value::String(a.first().map(to_yaml).unwrap_or_default()),
        "directory" => {
            let p = str_of(0);
            Value::String(match p.rfind('/') {
                Some(i) => p[..=i].to_string(),
                None => String::new(),
            })
        }
        "appendMultusNetwork" => {
            need(a, 2, name)?;
            Value::String(append_multus_network(&str_of(0), &str_of(1)))
        }
        "env" => a.get(1).cloned().unwrap_or(Value::String(String::new())),
        "omit" => {
            need(a, 1, name)?;
            let drop: Vec<String> = a[1..].iter().map(s).collect();
            let mut m = string_map(&a[0]);
            m.retain(|k, _| !drop.contains(k));
            Value::Object(m)
        }
        "strdict" => {
            let mut m = Map::new();
            for pair in a.chunks(2) {
                m.insert(
                    s(&pair[0]),
                    Value::String(pair.get(1).map(s).unwrap_or_default()),
                );
            }
            Value::Object(m)
        }
        "mergeMaps" | "toJsonMap" => {
            let mut m = Map::new();
            for x in a {
                m.extend(string_map(x));
            }
            if name == "toJsonMap" {
                Value::String(to_json(&Value::Object(m)))
            } else if a.is_empty() {
                Value::Null
            } else {
                Value::Object(m)
            }
        }
        "omitNil" => omit_nil(a.first().cloned().unwrap_or(Value::Null)),
        "otelResourceAttributes" => {
            need(a, 5, name)?;
            Value::String(otel_resource_attributes(a))
        }
        _ => return Ok(None),
    }))
}

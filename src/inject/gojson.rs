//! JSON written in the field order of Kubernetes' Go types, for the values
//! Istio stores as JSON strings (`proxy.istio.io/overrides`,
//! `ISTIO_KUBE_APP_PROBERS`, `ISTIO_META_POD_PORTS`): consumers compare
//! these strings, so the order must be Istio's, not alphabetical.

use std::fmt::Write;

use serde_json::{Map, Value};

/// The Go type a JSON object stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    /// Field order unknown: keys sorted.
    Any,
    /// `corev1.Container`.
    Container,
    /// `corev1.ContainerPort`.
    Port,
    /// `corev1.Probe` / Istio's app prober.
    Probe,
    /// `corev1.HTTPGetAction`.
    HttpGet,
    /// `corev1.TCPSocketAction`.
    TcpSocket,
    /// `corev1.GRPCAction`.
    Grpc,
    /// `corev1.Lifecycle`.
    Lifecycle,
    /// `corev1.SecurityContext`.
    SecurityContext,
    /// `corev1.ResourceRequirements`.
    Resources,
    /// `corev1.VolumeMount`.
    VolumeMount,
    /// `corev1.EnvVar`.
    Env,
}

fn fields(ty: Ty) -> &'static [(&'static str, Ty)] {
    use Ty::*;
    match ty {
        Any => &[],
        Container => &[
            ("name", Any),
            ("image", Any),
            ("command", Any),
            ("args", Any),
            ("workingDir", Any),
            ("ports", Port),
            ("envFrom", Any),
            ("env", Env),
            ("resources", Resources),
            ("resizePolicy", Any),
            ("restartPolicy", Any),
            ("volumeMounts", VolumeMount),
            ("volumeDevices", Any),
            ("livenessProbe", Probe),
            ("readinessProbe", Probe),
            ("startupProbe", Probe),
            ("lifecycle", Lifecycle),
            ("terminationMessagePath", Any),
            ("terminationMessagePolicy", Any),
            ("imagePullPolicy", Any),
            ("securityContext", SecurityContext),
            ("stdin", Any),
            ("stdinOnce", Any),
            ("tty", Any),
        ],
        Port => &[
            ("name", Any),
            ("hostPort", Any),
            ("containerPort", Any),
            ("protocol", Any),
            ("hostIP", Any),
        ],
        Probe => &[
            ("exec", Any),
            ("httpGet", HttpGet),
            ("tcpSocket", TcpSocket),
            ("grpc", Grpc),
            ("initialDelaySeconds", Any),
            ("timeoutSeconds", Any),
            ("periodSeconds", Any),
            ("successThreshold", Any),
            ("failureThreshold", Any),
            ("terminationGracePeriodSeconds", Any),
        ],
        HttpGet => &[
            ("path", Any),
            ("port", Any),
            ("host", Any),
            ("scheme", Any),
            ("httpHeaders", Any),
        ],
        TcpSocket => &[("port", Any), ("host", Any)],
        Grpc => &[("port", Any), ("service", Any)],
        Lifecycle => &[
            ("postStart", Probe),
            ("preStop", Probe),
            ("stopSignal", Any),
        ],
        SecurityContext => &[
            ("capabilities", Any),
            ("privileged", Any),
            ("seLinuxOptions", Any),
            ("windowsOptions", Any),
            ("runAsUser", Any),
            ("runAsGroup", Any),
            ("runAsNonRoot", Any),
            ("readOnlyRootFilesystem", Any),
            ("allowPrivilegeEscalation", Any),
            ("procMount", Any),
            ("seccompProfile", Any),
            ("appArmorProfile", Any),
        ],
        Resources => &[("limits", Any), ("requests", Any), ("claims", Any)],
        VolumeMount => &[
            ("name", Any),
            ("readOnly", Any),
            ("recursiveReadOnly", Any),
            ("mountPath", Any),
            ("subPath", Any),
            ("mountPropagation", Any),
            ("subPathExpr", Any),
        ],
        Env => &[("name", Any), ("value", Any), ("valueFrom", Any)],
    }
}

/// Writes `v` as compact JSON, objects in the field order of `ty`
/// (unknown fields after, sorted).
pub fn to_string(v: &Value, ty: Ty) -> String {
    let mut out = String::new();
    write(&mut out, v, ty);
    out
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it
/// (without a temporary `Value` or `String` when nothing needs escaping).
pub fn push_string(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&Value::String(s.to_owned()).to_string());
    } else {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// Appends a scalar (or any value) as compact JSON.
fn push_scalar(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => push_string(out, s),
        Value::Number(n) => {
            // Integers as serde_json writes them (through `itoa`), without
            // the formatting machinery; floats through its `Display`.
            let mut buffer = itoa::Buffer::new();
            if let Some(u) = n.as_u64() {
                out.push_str(buffer.format(u));
            } else if let Some(i) = n.as_i64() {
                out.push_str(buffer.format(i));
            } else {
                // Writing to a String cannot fail.
                let _ = write!(out, "{n}");
            }
        }
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Null => out.push_str("null"),
        other => out.push_str(&other.to_string()),
    }
}

/// Appends `v` as compact JSON, objects in the field order of `ty`.
pub fn write(out: &mut String, v: &Value, ty: Ty) {
    match v {
        Value::Object(map) => write_object(out, map, ty, None),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item, ty);
            }
            out.push(']');
        }
        scalar => push_scalar(out, scalar),
    }
}

/// Appends `map` as a compact JSON object in the field order of `ty`
/// (unknown fields after, sorted), with `replace`'s value for its key, a
/// field of `ty`, in place of the map's own (or added, if the map has
/// none): the object as it would be with that one field set, without
/// copying the map to set it.
///
/// One pass over the map ranks its fields by their place in `ty`, and a
/// stable sort of the ranks gives the order: no lookup per known field.
pub fn write_object(
    out: &mut String,
    map: &Map<String, Value>,
    ty: Ty,
    replace: Option<(&str, &Value)>,
) {
    const ROOM: usize = 16;
    let known = fields(ty);
    debug_assert!(replace.is_none_or(|(key, _)| known.iter().any(|(n, _)| *n == key)));
    let rank = |key: &str| known.iter().position(|(n, _)| *n == key);
    // A field: its place in `ty` (`known.len()` for one `ty` does not
    // list), its name, its value.
    let mut stack = [(0, "", &Value::Null); ROOM];
    let mut heap = Vec::new();
    let fields = if map.len() < ROOM {
        &mut stack[..]
    } else {
        heap.resize(map.len() + 1, (0, "", &Value::Null));
        &mut heap[..]
    };
    let mut n = 0;
    let mut replaced = false;
    for (k, v) in map {
        let place = rank(k);
        let v = match replace {
            Some((key, new)) if key == k => {
                replaced = true;
                new
            }
            _ => v,
        };
        fields[n] = (place.unwrap_or(known.len()), k.as_str(), v);
        n += 1;
    }
    if let Some((key, new)) = replace
        && !replaced
    {
        fields[n] = (rank(key).unwrap_or(known.len()), key, new);
        n += 1;
    }
    let fields = &mut fields[..n];
    // Stable: unknown fields keep the map's (sorted) order.
    fields.sort_by_key(|&(place, _, _)| place);
    out.push('{');
    for (i, &(place, k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(out, k);
        out.push(':');
        write(out, v, known.get(place).map_or(Ty::Any, |(_, t)| *t));
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::{Ty, push_string, to_string, write_object};
    use serde_json::{Value, json};

    #[test]
    fn fields_come_in_go_order_then_unknown_ones_sorted() {
        let port = json!({"zeta": 1, "protocol": "TCP", "alpha": [2], "containerPort": 80, "name": "http"});
        assert_eq!(
            to_string(&port, Ty::Port),
            r#"{"name":"http","containerPort":80,"protocol":"TCP","alpha":[2],"zeta":1}"#
        );
        // Nested objects take their own field's type.
        let probe =
            json!({"timeoutSeconds": 1, "httpGet": {"scheme": "HTTP", "path": "/", "port": 8}});
        assert_eq!(
            to_string(&probe, Ty::Probe),
            r#"{"httpGet":{"path":"/","port":8,"scheme":"HTTP"},"timeoutSeconds":1}"#
        );
        // More fields than the writer keeps on its stack.
        let many: serde_json::Map<String, Value> = (0..40)
            .map(|i| (format!("k{i:02}"), json!(i)))
            .chain([("name".to_string(), json!("n"))])
            .collect();
        let text = to_string(&Value::Object(many), Ty::Port);
        assert!(
            text.starts_with(r#"{"name":"n","k00":0,"k01":1,"#),
            "{text}"
        );
        assert!(text.ends_with(r#""k39":39}"#), "{text}");
    }

    #[test]
    fn a_replaced_field_takes_its_own_place_present_or_not() {
        let with_port = |get: Value, port: Value| {
            let mut out = String::new();
            write_object(
                &mut out,
                get.as_object().unwrap(),
                Ty::HttpGet,
                Some(("port", &port)),
            );
            out
        };
        assert_eq!(
            with_port(
                json!({"scheme": "HTTPS", "port": "http", "path": "/p"}),
                json!(8080)
            ),
            r#"{"path":"/p","port":8080,"scheme":"HTTPS"}"#
        );
        assert_eq!(
            with_port(json!({"scheme": "HTTPS", "path": "/p"}), json!(1)),
            r#"{"path":"/p","port":1,"scheme":"HTTPS"}"#
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_does() {
        for s in [
            "plain",
            "a\"b",
            "back\\slash",
            "line\nfeed",
            "\u{1}ctl",
            "ünï",
            "",
        ] {
            let mut out = String::new();
            push_string(&mut out, s);
            assert_eq!(out, Value::String(s.into()).to_string());
        }
    }
}

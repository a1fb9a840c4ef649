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
            // Writing to a String cannot fail.
            let _ = write!(out, "{n}");
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
pub fn write_object(
    out: &mut String,
    map: &Map<String, Value>,
    ty: Ty,
    replace: Option<(&str, &Value)>,
) {
    let known = fields(ty);
    debug_assert!(replace.is_none_or(|(key, _)| known.iter().any(|(n, _)| *n == key)));
    out.push('{');
    let mut first = true;
    let mut emit = |out: &mut String, k: &str, val: &Value, t: Ty| {
        if !first {
            out.push(',');
        }
        first = false;
        push_string(out, k);
        out.push(':');
        write(out, val, t);
    };
    for (name, t) in known {
        let val = match replace {
            Some((key, val)) if key == *name => Some(val),
            _ => map.get(*name),
        };
        if let Some(val) = val {
            emit(out, name, val, *t);
        }
    }
    for (k, val) in map {
        if !known.iter().any(|(n, _)| n == k) {
            emit(out, k, val, Ty::Any);
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::push_string;
    use serde_json::Value;

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

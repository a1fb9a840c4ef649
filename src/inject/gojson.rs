//! JSON written in the field order of Kubernetes' Go types, for the values
//! Istio stores as JSON strings (`proxy.istio.io/overrides`,
//! `ISTIO_KUBE_APP_PROBERS`, `ISTIO_META_POD_PORTS`): consumers compare
//! these strings, so the order must be Istio's, not alphabetical.

use serde_json::Value;

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

fn write(out: &mut String, v: &Value, ty: Ty) {
    match v {
        Value::Object(map) => {
            out.push('{');
            let known = fields(ty);
            let mut first = true;
            let mut emit = |out: &mut String, k: &str, val: &Value, t: Ty| {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&Value::String(k.to_string()).to_string());
                out.push(':');
                write(out, val, t);
            };
            for (name, t) in known {
                if let Some(val) = map.get(*name) {
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
        scalar => out.push_str(&scalar.to_string()),
    }
}

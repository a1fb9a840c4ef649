//! The in-cluster flags of `outrigger serve` ([`ClusterArgs`], flattened
//! into the serve command) and how they resolve against the pod's
//! environment (in-cluster detection, the namespace file), as plain
//! functions tests feed directly.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Where a pod's own namespace is mounted.
pub const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
/// The namespace when neither the flag nor the namespace file says.
pub const DEFAULT_NAMESPACE: &str = "outrigger-system";

/// Whether `outrigger serve` talks to the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterMode {
    /// When running in a pod (KUBERNETES_SERVICE_HOST set) or given --kubeconfig.
    Auto,
    /// Always (fails over to retries if the API server cannot be reached).
    Enabled,
    /// Never: standalone mode.
    Disabled,
}

/// In-cluster operation flags of `outrigger serve`.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Whether to run the in-cluster controllers (CA Secret, serving
    /// certificate, caBundle, root ConfigMaps, certificate Secrets).
    #[arg(long, value_enum, default_value = "auto")]
    pub cluster_mode: ClusterMode,

    /// Kubeconfig to reach the API server; default: in-cluster config, then
    /// $KUBECONFIG / ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// A plugged-in CA in Istio's cacerts layout (ca-cert.pem, ca-key.pem,
    /// cert-chain.pem, root-cert.pem); default: the Secret istio-ca-secret.
    #[arg(long, value_name = "DIR")]
    pub cacerts_dir: Option<PathBuf>,

    /// outrigger's namespace; default: the pod's namespace file, else
    /// outrigger-system.
    #[arg(long)]
    pub namespace: Option<String>,

    /// The Service in front of the webhook (its DNS names go in the serving
    /// certificate).
    #[arg(long, default_value = "outrigger")]
    pub service_name: String,

    /// MutatingWebhookConfiguration(s) whose caBundle is kept (repeatable).
    #[arg(
        long = "webhook-config-name",
        default_value = "outrigger-sidecar-injector"
    )]
    pub webhook_config_names: Vec<String>,

    /// Extra DNS names (or IPs) for the serving certificate (repeatable).
    #[arg(long = "extra-dns-name")]
    pub extra_dns_names: Vec<String>,

    /// Lifetime of the self-issued serving certificate (renewed at half).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub serving_cert_ttl: Duration,

    /// SPIFFE trust domain of every workload identity: the CA service's
    /// certificates, the `istio.<sa>` Secrets, and the Organization of a new
    /// root. Default: the injector's (`meshConfig.trustDomain` of
    /// `--config`, `cluster.local` by default), which sidecars ask for; a
    /// different value is refused at start.
    #[arg(long)]
    pub trust_domain: Option<String>,

    /// istiod's namespace: when given, the lease holder keeps istiod's
    /// serving certificate (for xDS, chained to outrigger's root) in the
    /// Secret `istiod-tls` there, which Istio's istiod chart mounts.
    #[arg(long, value_name = "NAMESPACE")]
    pub istiod_namespace: Option<String>,

    /// A DNS name of istiod for its certificate (repeatable; default:
    /// `istiod.<istiod namespace>.svc` and `.svc.cluster.local`; add
    /// `istiod-<revision>.<namespace>.svc` per revision).
    #[arg(long = "istiod-dns-name", value_name = "NAME")]
    pub istiod_dns_names: Vec<String>,

    /// Lifetime of istiod's certificate (renewed at half).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub istiod_cert_ttl: Duration,

    /// Lifetime of the certificates in `istio.<sa>` Secrets.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub secret_ttl: Duration,

    /// Renew an `istio.<sa>` certificate when less than this fraction of its
    /// lifetime is left (0 < ratio < 1).
    #[arg(long, default_value_t = 0.5, value_parser = parse_ratio)]
    pub secret_renew_ratio: f64,

    /// Renew the self-signed root in the CA Secret (same subject and key)
    /// when less than this fraction of its lifetime is left; 0 turns it off
    /// (0 <= ratio < 1). Every replica watches the Secret and publishes a
    /// new root it finds there at once.
    #[arg(long, default_value_t = crate::cluster::root_renewal::DEFAULT_RENEW_RATIO, value_parser = parse_ratio_or_off)]
    pub root_renew_ratio: f64,

    /// How often every object is re-checked even without events (against
    /// the watch caches: a resync with nothing to fix sends no request).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync_period: Duration,

    /// How many writes one controller has in flight at once when it fans
    /// out (a new root to every namespace, a Secret per ServiceAccount);
    /// 1 to 1024.
    #[arg(long, default_value_t = crate::cluster::driver::DEFAULT_CONCURRENCY, value_parser = parse_concurrency)]
    pub write_concurrency: usize,

    /// Elect one writer among the replicas with a Lease (disable only with
    /// a single replica).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Name of the leader-election Lease in outrigger's namespace.
    #[arg(long, default_value = "outrigger-leader")]
    pub lease_name: String,

    /// How long a lease is valid without renewal (a new leader takes over
    /// within this; at once when the leader shuts down gracefully).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,

    /// How long the leader keeps writing when renewals fail.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub lease_renew_deadline: Duration,

    /// How often to try to acquire or renew the lease.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub lease_retry_period: Duration,

    /// This replica's identity in the lease; default: $POD_NAME, else $HOSTNAME.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
}

/// Parses a write concurrency: a whole number from 1 to 1024.
pub fn parse_concurrency(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number of writes in flight from 1 to 1024, got {text:?}"
        )),
    }
}

/// Parses a renew ratio: a number strictly between 0 and 1.
pub fn parse_ratio(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| {
        format!("{text:?} is not a number; expected a ratio between 0 and 1, e.g. 0.5")
    })?;
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(format!(
            "{text} is out of range; expected a ratio strictly between 0 and 1, e.g. 0.5"
        ))
    }
}

/// Parses a renew ratio that may be 0 (off): 0 <= ratio < 1.
pub fn parse_ratio_or_off(text: &str) -> Result<f64, String> {
    if text.parse::<f64>().is_ok_and(|value| value == 0.0) {
        return Ok(0.0);
    }
    parse_ratio(text).map_err(|e| e.replace("strictly between 0 and 1", "from 0 (off) to below 1"))
}

impl ClusterArgs {
    /// Whether to run in-cluster, given whether the process runs in a pod.
    pub fn wants_cluster(&self, in_pod: bool) -> bool {
        match self.cluster_mode {
            ClusterMode::Enabled => true,
            ClusterMode::Disabled => false,
            ClusterMode::Auto => in_pod || self.kubeconfig.is_some(),
        }
    }

    /// outrigger's namespace from the flag, else the namespace file's
    /// contents, else the default.
    pub fn resolve_namespace(&self, namespace_file: Option<&str>) -> String {
        self.namespace
            .clone()
            .or_else(|| {
                namespace_file
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
            })
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
    }

    /// The lease identity from the flag, else `hostname`, else a fixed name
    /// (leader election then still works with one replica).
    pub fn resolve_identity(&self, hostname: Option<&str>) -> String {
        self.pod_name
            .clone()
            .or_else(|| hostname.filter(|h| !h.is_empty()).map(String::from))
            .unwrap_or_else(|| "outrigger".to_string())
    }

    /// The trust domain: `--trust-domain` as resolved at start (see
    /// `outrigger serve`), else Istio's default.
    pub fn trust_domain(&self) -> &str {
        self.trust_domain
            .as_deref()
            .unwrap_or(crate::ca::identity::DEFAULT_TRUST_DOMAIN)
    }

    /// What to issue for istiod, when `--istiod-namespace` asks for it.
    pub fn istiod_cert(&self) -> Option<crate::cluster::istiod_cert::IstiodCertConfig> {
        let namespace = self.istiod_namespace.clone()?;
        let dns_names = if self.istiod_dns_names.is_empty() {
            crate::cluster::istiod_cert::IstiodCertConfig::default_dns_names(&namespace)
        } else {
            self.istiod_dns_names.clone()
        };
        Some(crate::cluster::istiod_cert::IstiodCertConfig {
            namespace,
            dns_names,
            ttl: self.istiod_cert_ttl,
        })
    }

    /// Checks what clap cannot: lease timings, the trust domain, names.
    pub fn validate(&self) -> Result<(), String> {
        if self.leader_elect
            && !(self.lease_retry_period < self.lease_renew_deadline
                && self.lease_renew_deadline < self.lease_duration)
        {
            return Err(format!(
                "lease timings must satisfy --lease-retry-period ({:?}) < --lease-renew-deadline ({:?}) < --lease-duration ({:?})",
                self.lease_retry_period, self.lease_renew_deadline, self.lease_duration
            ));
        }
        if let Some(trust_domain) = &self.trust_domain {
            crate::ca::identity::validate_trust_domain(trust_domain)
                .map_err(|e| format!("--trust-domain: {e}"))?;
        }
        if self.istiod_namespace.as_deref() == Some("") {
            return Err("--istiod-namespace must not be empty".to_string());
        }
        if self.istiod_dns_names.iter().any(String::is_empty) {
            return Err("--istiod-dns-name must not be empty".to_string());
        }
        if self.webhook_config_names.iter().any(String::is_empty) {
            return Err("--webhook-config-name must not be empty".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        cluster: ClusterArgs,
    }

    fn parse(args: &[&str]) -> Result<ClusterArgs, clap::Error> {
        let mut argv = vec!["outrigger"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| c.cluster)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.webhook_config_names, vec!["outrigger-sidecar-injector"]);
        assert_eq!(a.service_name, "outrigger");
        assert_eq!(a.secret_renew_ratio, 0.5);
        assert_eq!(a.root_renew_ratio, 0.2);
        assert_eq!(a.lease_duration, Duration::from_secs(15));
        assert!(a.leader_elect);
        assert!(a.validate().is_ok());
        assert!(a.wants_cluster(true));
        assert!(!a.wants_cluster(false));
        assert_eq!(a.resolve_namespace(None), "outrigger-system");
        assert_eq!(a.resolve_namespace(Some("mesh\n")), "mesh");
        assert_eq!(a.resolve_identity(Some("pod-1")), "pod-1");
    }

    #[test]
    fn repeatable_and_explicit_flags() {
        let a = parse(&[
            "--webhook-config-name",
            "a",
            "--webhook-config-name",
            "b",
            "--namespace",
            "ns",
            "--extra-dns-name",
            "x.example",
            "--cluster-mode",
            "disabled",
            "--kubeconfig",
            "/k",
            "--secret-renew-ratio",
            "0.3",
            "--leader-elect",
            "false",
        ])
        .unwrap();
        assert_eq!(a.webhook_config_names, vec!["a", "b"]);
        assert_eq!(a.resolve_namespace(Some("file")), "ns");
        assert_eq!(a.extra_dns_names, vec!["x.example"]);
        assert!(!a.wants_cluster(true));
        assert_eq!(a.secret_renew_ratio, 0.3);
        assert!(!a.leader_elect);
    }

    #[test]
    fn root_renewal_can_be_turned_off_but_not_set_out_of_range() {
        assert_eq!(
            parse(&["--root-renew-ratio", "0"])
                .unwrap()
                .root_renew_ratio,
            0.0
        );
        assert_eq!(
            parse(&["--root-renew-ratio", "0.25"])
                .unwrap()
                .root_renew_ratio,
            0.25
        );
        for bad in ["1", "-0.1", "x"] {
            let flag = format!("--root-renew-ratio={bad}");
            let err = parse(&[&flag]).unwrap_err().to_string();
            assert!(err.contains("--root-renew-ratio"), "{bad}: {err}");
            assert!(
                err.contains("from 0 (off) to below 1") || err.contains("not a number"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn bad_values_are_named() {
        let err = parse(&["--secret-renew-ratio", "1.5"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("strictly between 0 and 1"), "{err}");
        let err = parse(&["--lease-duration", "soon"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--lease-duration"), "{err}");
        let a = parse(&["--lease-duration", "5s"]).unwrap();
        assert!(a.validate().unwrap_err().contains("--lease-renew-deadline"));
        let a = parse(&["--trust-domain", "Not A Domain!"]).unwrap();
        assert!(a.validate().unwrap_err().starts_with("--trust-domain: "));
    }
}

//! istiod's serving certificate, issued by outrigger's CA into the Secret
//! istiod's own chart already mounts.
//!
//! Proxies take their certificates from outrigger and their configuration
//! (xDS) from istiod; they verify istiod's serving certificate against the
//! root they trust, outrigger's. Istio's istiod chart mounts an optional
//! Secret `istiod-tls` (`tls.crt`, `tls.key`) at
//! `/var/run/secrets/istiod/tls` and the `istio-ca-root-cert` ConfigMap at
//! `/var/run/secrets/istiod/ca`, and istiod serves with them when they are
//! there (the way cert-manager's istio-csr plugs in). So the lease holder
//! keeps `istiod-tls` in istiod's namespace: created when missing, replaced
//! when the root, the DNS names or the lifetime call for it (at half its
//! lifetime), repaired when edited or deleted. A Secret of that name that
//! outrigger did not write (another issuer's) is left alone, with a warning.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::runtime::watcher;
use tracing::{info, warn};

use super::authority::ClusterCa;
use super::driver::Drive;
use super::error::{ReconcileError, is_not_found};
use super::leader::LeaderGate;
use super::watch_health;
use super::writes;

/// The Secret istiod's chart mounts (cert-manager istio-csr's name too).
pub const ISTIOD_SECRET: &str = "istiod-tls";
/// The label that marks the Secret as outrigger's to replace.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "outrigger");
/// The annotation recording the DNS names the certificate was issued for.
pub const NAMES_ANNOTATION: &str = "outrigger.io/istiod-dns-names";
/// Renew when less than this fraction of the lifetime is left.
pub const RENEW_RATIO: f64 = 0.5;

/// What to issue, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct IstiodCertConfig {
    /// istiod's namespace.
    pub namespace: String,
    /// The DNS names istiod is reached by (its Service, per revision).
    pub dns_names: Vec<String>,
    /// The certificate's lifetime.
    pub ttl: Duration,
}

impl IstiodCertConfig {
    /// istiod's DNS names in `namespace` when none are given: the
    /// `istiod` Service's, as proxies dial it (`istiod.<ns>.svc`).
    pub fn default_dns_names(namespace: &str) -> Vec<String> {
        vec![
            format!("istiod.{namespace}.svc"),
            format!("istiod.{namespace}.svc.cluster.local"),
        ]
    }
}

/// What the lease holder does with the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IstiodAction {
    /// None exists: create it.
    Create,
    /// Outrigger's Secret is stale: replace it, for this reason.
    Replace(&'static str),
    /// Outrigger's Secret is current.
    Keep,
    /// Another issuer's Secret: leave it.
    Foreign,
}

fn data<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|v| std::str::from_utf8(&v.0).ok())
}

/// Decides what `existing` needs for `names` and a lifetime of `ttl` under
/// `ca` at `now`. Renewal is due when less than half of `ttl` is left: the
/// certificate's own notBefore is backdated for clock skew, so a lifetime
/// read from it would call a short-lived certificate stale the moment it
/// is issued (seen on a real API server as a replace loop with a 2-minute
/// TTL).
pub fn istiod_action(
    existing: Option<&Secret>,
    ca: &ClusterCa,
    names: &[String],
    ttl: Duration,
    now: SystemTime,
) -> IstiodAction {
    let Some(secret) = existing else {
        return IstiodAction::Create;
    };
    let ours = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1);
    if !ours {
        return IstiodAction::Foreign;
    }
    let (Some(chain), Some(_key), Some(root)) = (
        data(secret, "tls.crt"),
        data(secret, "tls.key"),
        data(secret, "ca.crt"),
    ) else {
        return IstiodAction::Replace("tls.crt, tls.key or ca.crt is missing");
    };
    if root.trim() != ca.root_pem().trim() {
        return IstiodAction::Replace("the root changed");
    }
    let recorded = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NAMES_ANNOTATION));
    if recorded.map(String::as_str) != Some(names.join(",").as_str()) {
        return IstiodAction::Replace("the DNS names changed");
    }
    match ca.check_chain(chain, now) {
        Err(_) => IstiodAction::Replace("tls.crt does not verify against the root"),
        Ok(leaf)
            if leaf.not_after.duration_since(now).unwrap_or_default()
                < ttl.mul_f64(RENEW_RATIO) =>
        {
            IstiodAction::Replace("half its lifetime is gone")
        }
        Ok(_) => IstiodAction::Keep,
    }
}

/// The Secret as outrigger writes it: a `kubernetes.io/tls` Secret with the
/// chain (leaf first), its key, and the root as `ca.crt`.
pub fn desired_secret(
    ca: &ClusterCa,
    config: &IstiodCertConfig,
    now: SystemTime,
) -> Result<Secret, ReconcileError> {
    let issued = ca
        .issue_serving(&config.dns_names, config.ttl, now)
        .map_err(|source| ReconcileError::Issue {
            object: format!("Secret {}/{ISTIOD_SECRET}", config.namespace),
            source,
        })?;
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(ISTIOD_SECRET.to_string()),
            namespace: Some(config.namespace.clone()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_string(),
                MANAGED_BY.1.to_string(),
            )])),
            annotations: Some(BTreeMap::from([(
                NAMES_ANNOTATION.to_string(),
                config.dns_names.join(","),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_string()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_string(), bytes(&issued.chain_pem)),
            ("tls.key".to_string(), bytes(issued.key_pem.expose())),
            ("ca.crt".to_string(), bytes(ca.root_pem())),
        ])),
        ..Secret::default()
    })
}

/// Reads the Secret and brings it to what [`istiod_action`] decides.
pub async fn reconcile(
    api: &Api<Secret>,
    gate: &LeaderGate,
    ca: &ClusterCa,
    config: &IstiodCertConfig,
) -> Result<IstiodAction, ReconcileError> {
    let object = format!("Secret {}/{ISTIOD_SECRET}", config.namespace);
    let existing = match api.get(ISTIOD_SECRET).await {
        Ok(secret) => Some(secret),
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(ReconcileError::api("get", object, e)),
    };
    let now = SystemTime::now();
    let action = istiod_action(existing.as_ref(), ca, &config.dns_names, config.ttl, now);
    match action {
        IstiodAction::Keep => {}
        IstiodAction::Foreign => {
            warn!(secret = %object, "a Secret outrigger did not write holds istiod's certificate; left alone (delete it to let outrigger issue one)");
        }
        IstiodAction::Create => {
            let desired = desired_secret(ca, config, now)?;
            gate.ensure()?;
            api.create(&writes::post_params(), &desired)
                .await
                .map_err(|e| ReconcileError::api("create", object.clone(), e))?;
            info!(secret = %object, names = ?config.dns_names, "issued istiod's serving certificate");
        }
        IstiodAction::Replace(reason) => {
            let mut desired = desired_secret(ca, config, now)?;
            desired.metadata.resource_version = existing.and_then(|s| s.metadata.resource_version);
            gate.ensure()?;
            api.replace(ISTIOD_SECRET, &writes::post_params(), &desired)
                .await
                .map_err(|e| ReconcileError::api("replace", object.clone(), e))?;
            info!(secret = %object, reason, "renewed istiod's serving certificate");
        }
    }
    Ok(action)
}

/// Events on the one Secret, as reconcile triggers.
pub fn watch_triggers(api: Api<Secret>) -> impl Stream<Item = ()> + use<> {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={ISTIOD_SECRET}"));
    watch_health::watch(api, cfg, "istiod's Secret").filter_map(|event| async move {
        matches!(event, watcher::Event::Apply(_) | watcher::Event::Delete(_)).then_some(())
    })
}

/// Keeps the Secret current while this replica leads: on every event on
/// it, on taking the lease, and every `resync` or quarter of the
/// certificate's lifetime, whichever is shorter (so that renewal, due at
/// half the lifetime, is never late by more than a quarter of it).
pub async fn run(
    client: kube::Client,
    gate: LeaderGate,
    ca: std::sync::Arc<ClusterCa>,
    config: IstiodCertConfig,
    resync: Duration,
) {
    let api: Api<Secret> = Api::namespaced(client, &config.namespace);
    let triggers = watch_triggers(api.clone()).map(|()| ISTIOD_SECRET);
    Drive::new("istiod-cert", resync.min(config.ttl / 4))
        .run(
            gate.clone(),
            triggers,
            std::future::ready(()),
            futures::stream::empty(),
            || async { Ok(vec![ISTIOD_SECRET]) },
            |_| {
                let (api, gate, ca, config) = (&api, &gate, &ca, &config);
                async move { reconcile(api, gate, ca, config).await.map(|_| ()) }
            },
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IstiodCertConfig {
        IstiodCertConfig {
            namespace: "istio-system".into(),
            dns_names: IstiodCertConfig::default_dns_names("istio-system"),
            ttl: Duration::from_secs(24 * 3600),
        }
    }

    fn ca() -> ClusterCa {
        ClusterCa::generate("cluster.local").unwrap().0
    }

    #[test]
    fn a_missing_secret_is_created_and_a_fresh_one_kept() {
        let (ca, cfg, now) = (ca(), config(), SystemTime::now());
        assert_eq!(
            istiod_action(None, &ca, &cfg.dns_names, cfg.ttl, now),
            IstiodAction::Create
        );
        let secret = desired_secret(&ca, &cfg, now).unwrap();
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(
            istiod_action(Some(&secret), &ca, &cfg.dns_names, cfg.ttl, now),
            IstiodAction::Keep
        );
        // The chain verifies against the root it carries, for istiod's names.
        let leaf = ca
            .check_chain(data(&secret, "tls.crt").unwrap(), now)
            .unwrap();
        assert!(leaf.not_after > now);
        assert_eq!(data(&secret, "ca.crt").unwrap(), ca.root_pem());
    }

    #[test]
    fn a_stale_secret_is_replaced_saying_why() {
        let (ca, cfg, now) = (ca(), config(), SystemTime::now());
        let secret = desired_secret(&ca, &cfg, now).unwrap();
        let later = now + Duration::from_secs(13 * 3600);
        assert_eq!(
            istiod_action(Some(&secret), &ca, &cfg.dns_names, cfg.ttl, later),
            IstiodAction::Replace("half its lifetime is gone")
        );
        let other = super::tests::ca();
        assert_eq!(
            istiod_action(Some(&secret), &other, &cfg.dns_names, cfg.ttl, now),
            IstiodAction::Replace("the root changed")
        );
        let names = vec!["istiod-canary.istio-system.svc".to_string()];
        assert_eq!(
            istiod_action(Some(&secret), &ca, &names, cfg.ttl, now),
            IstiodAction::Replace("the DNS names changed")
        );
        let mut emptied = secret.clone();
        emptied.data.as_mut().unwrap().remove("tls.key");
        assert_eq!(
            istiod_action(Some(&emptied), &ca, &cfg.dns_names, cfg.ttl, now),
            IstiodAction::Replace("tls.crt, tls.key or ca.crt is missing")
        );
    }

    #[test]
    fn a_short_lived_certificate_is_kept_until_half_its_ttl() {
        // notBefore is backdated for clock skew: a 2-minute certificate must
        // not count as half-spent the moment it is issued.
        let ca = ca();
        let cfg = IstiodCertConfig {
            ttl: Duration::from_secs(120),
            ..config()
        };
        let now = SystemTime::now();
        let secret = desired_secret(&ca, &cfg, now).unwrap();
        assert_eq!(
            istiod_action(Some(&secret), &ca, &cfg.dns_names, cfg.ttl, now),
            IstiodAction::Keep
        );
        assert_eq!(
            istiod_action(
                Some(&secret),
                &ca,
                &cfg.dns_names,
                cfg.ttl,
                now + Duration::from_secs(61)
            ),
            IstiodAction::Replace("half its lifetime is gone")
        );
    }

    #[test]
    fn another_issuers_secret_is_left_alone() {
        let (ca, cfg, now) = (ca(), config(), SystemTime::now());
        let mut foreign = desired_secret(&ca, &cfg, now).unwrap();
        foreign.metadata.labels = Some(BTreeMap::from([(
            MANAGED_BY.0.to_string(),
            "cert-manager".to_string(),
        )]));
        assert_eq!(
            istiod_action(Some(&foreign), &ca, &cfg.dns_names, cfg.ttl, now),
            IstiodAction::Foreign
        );
    }
}

//! Keeping the self-signed root in the CA Secret from expiring, and every
//! replica on the Secret's current root.
//!
//! Every replica watches `istio-ca-secret` (one object, by name). When the
//! Secret's root is no longer the one this replica loaded (the leader
//! renewed it, or an operator ran `outrigger ca renew-root` and applied
//! it), the replica takes the new one as soon as the watch reports it
//! ([`RootCheck::Changed`]) and the controllers publish it (ConfigMaps,
//! caBundle, serving certificate) without restarting. Every resync, the
//! leader also checks the Secret as last seen (no read); when it finds less
//! than the
//! configured share of the root's lifetime left, it renews it
//! ([`crate::ca::renew`]: same subject, key and key identifier, so every
//! certificate already issued keeps verifying and the roll-out order does
//! not matter) and writes it back on the condition that the Secret has not
//! changed since it was read.
//!
//! A root that is not self-signed (a plugged-in intermediate stored in the
//! Secret) cannot be renewed here; that is logged, and nothing is written.

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::runtime::watcher;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::authority::{CaMaterial, needs_renewal, to_system_time};
use super::ca_secret::{CA_SECRET_NAME, CaSecretError, desired_ca_secret, material_from_secret};
use super::error::is_conflict;
use super::leader::LeaderGate;
use super::watch_health;
use super::writes;
use crate::ca::renew::renew_root;

/// Renew the root when less than this share of its lifetime is left (the
/// value Istio's self-signed CA uses).
pub const DEFAULT_RENEW_RATIO: f64 = 0.2;

/// What one check of the CA Secret found.
#[derive(Debug)]
pub enum RootCheck {
    /// The Secret holds the root this replica uses, and it is not due.
    Unchanged,
    /// The Secret holds another root than this replica's: take it.
    Changed(CaMaterial),
    /// This replica (the leader) renewed the root and wrote it.
    Renewed(CaMaterial),
}

/// When a certificate's validity period is: from its PEM.
fn validity(cert_pem: &str) -> Option<(SystemTime, SystemTime)> {
    let block = pem::parse(cert_pem).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).ok()?;
    let at = |t: x509_parser::time::ASN1Time| to_system_time(t.timestamp());
    Some((
        at(cert.validity().not_before),
        at(cert.validity().not_after),
    ))
}

/// Whether `cert_pem` has less than `ratio` of its lifetime left at `now`
/// (an unreadable certificate is never due: loading it would have failed
/// first). A ratio of 0 never renews.
pub fn renewal_due(cert_pem: &str, now: SystemTime, ratio: f64) -> bool {
    if ratio <= 0.0 {
        return false;
    }
    validity(cert_pem).is_some_and(|(from, to)| needs_renewal(from, to, now, ratio))
}

/// One check of the CA Secret, as the watch last reported it, against
/// `current_cert` (the root this replica uses): see the module
/// documentation. Makes no request unless it renews. Errors are the API's
/// or a malformed Secret; the caller tries again at the next event or
/// resync.
pub async fn check(
    api: &Api<Secret>,
    secret: &Secret,
    namespace: &str,
    current_cert: &str,
    gate: &LeaderGate,
    ratio: f64,
    now: SystemTime,
) -> Result<RootCheck, CaSecretError> {
    let api_err = |action, source| CaSecretError::Api {
        action,
        namespace: namespace.to_string(),
        source,
    };
    let material = material_from_secret(secret, namespace)?;
    if material.ca_cert.trim() != current_cert.trim() {
        info!(
            namespace,
            secret = CA_SECRET_NAME,
            "the CA Secret holds a new root; taking it"
        );
        return Ok(RootCheck::Changed(material));
    }
    let Some((from, to)) = validity(&material.ca_cert) else {
        return Ok(RootCheck::Unchanged);
    };
    if !gate.is_leader() || ratio <= 0.0 || !needs_renewal(from, to, now, ratio) {
        return Ok(RootCheck::Unchanged);
    }
    // The renewed root lives as long as the old one was meant to.
    let lifetime = to.duration_since(from).unwrap_or_default();
    let renewed = match renew_root(&material, lifetime, OffsetDateTime::from(now)) {
        Ok(renewed) => renewed,
        Err(e) => {
            warn!(
                namespace,
                secret = CA_SECRET_NAME,
                error = %e,
                "the root is due for renewal but cannot be renewed here"
            );
            return Ok(RootCheck::Unchanged);
        }
    };
    let mut desired = desired_ca_secret(namespace, &renewed);
    // Written only over the Secret as read: another writer in between wins.
    desired.metadata.resource_version = secret.metadata.resource_version.clone();
    if gate.ensure().is_err() {
        return Ok(RootCheck::Unchanged);
    }
    match api
        .replace(CA_SECRET_NAME, &writes::post_params(), &desired)
        .await
    {
        Ok(_) => {
            info!(
                namespace,
                secret = CA_SECRET_NAME,
                reason = "less than the renewal share of its lifetime left",
                "renewed the root CA certificate (same subject and key)"
            );
            Ok(RootCheck::Renewed(renewed))
        }
        // Someone else wrote first: their root is read at the next check.
        Err(e) if is_conflict(&e) => Ok(RootCheck::Unchanged),
        Err(e) => Err(api_err("update", e)),
    }
}

/// Follows the CA Secret until its watch ends (in production: never): at
/// every event on it, and every `period` (renewal), [`check`]s it as last
/// seen against the root in use, starting with `current_cert`. A new root
/// (changed elsewhere, or renewed here) is handed to `publish`, which
/// returns whether it was taken; a taken root becomes the one in use.
/// Errors are logged and tried again at the next event or period.
pub async fn follow(
    api: Api<Secret>,
    namespace: String,
    mut current_cert: String,
    gate: LeaderGate,
    ratio: f64,
    period: Duration,
    mut publish: impl FnMut(CaMaterial) -> bool,
) {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={CA_SECRET_NAME}"));
    let mut events = std::pin::pin!(watch_health::watch(api.clone(), cfg, "CA Secret"));
    let mut latest: Option<Secret> = None;
    let mut renewal_check = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    renewal_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(watcher::Event::Apply(secret) | watcher::Event::InitApply(secret)) => {
                    latest = Some(secret);
                }
                Some(_) => continue,
                None => return,
            },
            _ = renewal_check.tick() => {}
        }
        let Some(secret) = latest.as_ref() else {
            continue;
        };
        match check(
            &api,
            secret,
            &namespace,
            &current_cert,
            &gate,
            ratio,
            SystemTime::now(),
        )
        .await
        {
            Ok(RootCheck::Changed(material) | RootCheck::Renewed(material)) => {
                let cert = material.ca_cert.clone();
                if publish(material) {
                    current_cert = cert;
                }
            }
            Ok(RootCheck::Unchanged) => {}
            Err(e) => warn!(
                namespace = %namespace,
                error = %e,
                "checking the CA Secret's root failed; trying again at its next change or resync"
            ),
        }
    }
}

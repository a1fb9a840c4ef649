//! One writer among the replicas: leader election with a
//! `coordination.k8s.io/v1` Lease, and the [`LeaderGate`] every controller
//! checks before each write.
//!
//! Every replica serves the webhook and the CA; only the lease holder writes
//! (caBundle, ConfigMaps, Secrets). The holder renews every retry period; a
//! replica that sees the lease unchanged for a whole lease duration takes it
//! over (expiry is judged from when this replica last saw the record change,
//! as client-go does, so clocks need not agree). Losing the lease, or failing
//! to renew it for the renew deadline, turns the gate off at once.
//!
//! On a graceful shutdown the holder gives the lease up, as client-go's
//! `ReleaseOnCancel` does ([`Elector::step_down`]): it closes its gate, then
//! writes the lease with no holder and a one-second duration, conditioned
//! on the version it last wrote, so that another replica takes over at its
//! next round instead of waiting out the lease duration.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::ResourceExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::error::{ReconcileError, is_conflict, is_not_found};
use super::metrics::ClusterMetrics;
use super::writes;

/// Read side of the leadership flag: cheap to clone, checked before every
/// write.
#[derive(Debug, Clone)]
pub struct LeaderGate {
    rx: watch::Receiver<bool>,
}

/// Write side of the leadership flag, held by the election loop (or a test).
#[derive(Debug)]
pub struct LeaderSwitch {
    tx: watch::Sender<bool>,
}

impl LeaderSwitch {
    /// Sets whether this replica may write.
    pub fn set(&self, leader: bool) {
        self.tx.send_if_modified(|current| {
            let changed = *current != leader;
            *current = leader;
            changed
        });
    }
}

impl LeaderGate {
    /// A switch and its gate, starting as `leader`.
    pub fn manual(leader: bool) -> (LeaderSwitch, LeaderGate) {
        let (tx, rx) = watch::channel(leader);
        (LeaderSwitch { tx }, LeaderGate { rx })
    }

    /// A gate that is always open (leader election disabled: one replica).
    pub fn always() -> Self {
        let (switch, gate) = Self::manual(true);
        // The receiver keeps the last value after the sender is gone.
        drop(switch);
        gate
    }

    /// Whether this replica holds the lease now.
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// `Ok` when this replica may write now, else [`ReconcileError::NotLeader`].
    pub fn ensure(&self) -> Result<(), ReconcileError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(ReconcileError::NotLeader)
        }
    }

    /// Waits until this replica leads (returns at once if it does). If the
    /// election loop is gone, this waits forever: nobody can grant the lease.
    pub async fn wait_leader(&mut self) {
        if self.rx.wait_for(|leader| *leader).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Waits for the next change of leadership and returns the new value.
    pub async fn changed(&mut self) -> bool {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        *self.rx.borrow_and_update()
    }
}

/// How the lease is named and timed.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Lease name (`outrigger-leader` by default).
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the holder keeps writing without a successful renewal.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

/// What to do with the lease as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No lease exists: create it holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Another holder let it expire (or none is set): take it over.
    TakeOver,
    /// Another replica holds a live lease.
    Follow {
        /// The current holder.
        holder: String,
    },
}

/// Decides from the lease as read and how long its record has stayed
/// unchanged in this replica's eyes.
pub fn decide(
    lease: Option<&Lease>,
    me: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> LeaseDecision {
    let Some(lease) = lease else {
        return LeaseDecision::Create;
    };
    let spec = lease.spec.as_ref();
    let holder = spec
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default();
    if holder == me {
        return LeaseDecision::Renew;
    }
    if holder.is_empty() {
        return LeaseDecision::TakeOver;
    }
    let duration = spec
        .and_then(|s| s.lease_duration_seconds)
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(default_duration);
    if unchanged_for >= duration {
        LeaseDecision::TakeOver
    } else {
        LeaseDecision::Follow { holder }
    }
}

/// The lease as this replica writes it when holding it.
pub fn held_lease(previous: Option<&Lease>, cfg: &LeaseConfig, acquiring: bool) -> Lease {
    let now = MicroTime(Timestamp::now());
    let mut lease = previous.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let mut spec = lease.spec.take().unwrap_or_else(LeaseSpec::default);
    if acquiring {
        if previous.is_some() {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        } else {
            spec.lease_transitions = Some(0);
        }
        spec.acquire_time = Some(now.clone());
    }
    spec.holder_identity = Some(cfg.identity.clone());
    spec.lease_duration_seconds =
        Some(i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(i32::MAX));
    spec.renew_time = Some(now);
    lease.spec = Some(spec);
    lease
}

/// The lease as the holder writes it to give it up: no holder, a
/// one-second duration, renew and acquire times now, the transition count
/// and the version of `held` kept (so the write fails if anyone changed the
/// lease since).
pub fn released_lease(held: &Lease) -> Lease {
    let now = MicroTime(Timestamp::now());
    let mut lease = held.clone();
    let mut spec = lease.spec.take().unwrap_or_default();
    spec.holder_identity = Some(String::new());
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now.clone());
    spec.acquire_time = Some(now);
    lease.spec = Some(spec);
    lease
}

/// State of one replica's election between rounds.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    observed: Option<(String, Instant)>,
    /// The lease as the API server returned it after this replica's last
    /// successful acquire or renewal, while this replica leads.
    held: Option<Lease>,
}

impl Elector {
    /// An elector for the lease `cfg.name` in the namespace of `api`.
    pub fn new(api: Api<Lease>, cfg: LeaseConfig) -> Self {
        Self {
            api,
            cfg,
            observed: None,
            held: None,
        }
    }

    /// One round: read the lease and acquire, renew or follow. `Ok(true)`
    /// when this replica holds the lease after the round.
    pub async fn round(&mut self) -> Result<bool, ReconcileError> {
        let object = format!("Lease {}", self.cfg.name);
        let lease = match self.api.get(&self.cfg.name).await {
            Ok(lease) => Some(lease),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(ReconcileError::api("get", object, e)),
        };
        let now = Instant::now();
        let version = lease
            .as_ref()
            .and_then(|l| l.metadata.resource_version.clone())
            .unwrap_or_default();
        let unchanged_for = match &self.observed {
            Some((seen, since)) if *seen == version => now.duration_since(*since),
            _ => {
                self.observed = Some((version, now));
                Duration::ZERO
            }
        };
        let decision = decide(
            lease.as_ref(),
            &self.cfg.identity,
            unchanged_for,
            self.cfg.lease_duration,
        );
        let result = match &decision {
            LeaseDecision::Follow { .. } => {
                self.held = None;
                return Ok(false);
            }
            LeaseDecision::Create => {
                let desired = held_lease(None, &self.cfg, true);
                self.api.create(&writes::post_params(), &desired).await
            }
            LeaseDecision::Renew => {
                let desired = held_lease(lease.as_ref(), &self.cfg, false);
                self.api
                    .replace(&self.cfg.name, &writes::post_params(), &desired)
                    .await
            }
            LeaseDecision::TakeOver => {
                let desired = held_lease(lease.as_ref(), &self.cfg, true);
                self.api
                    .replace(&self.cfg.name, &writes::post_params(), &desired)
                    .await
            }
        };
        match result {
            Ok(written) => {
                if decision != LeaseDecision::Renew {
                    info!(lease = %self.cfg.name, identity = %self.cfg.identity, ?decision, "acquired the leader lease");
                }
                self.observed = Some((written.resource_version().unwrap_or_default(), now));
                self.held = Some(written);
                Ok(true)
            }
            // Someone else created or updated it first: they lead.
            Err(e) if is_conflict(&e) => {
                self.held = None;
                Ok(false)
            }
            Err(e) => Err(ReconcileError::api("write", object, e)),
        }
    }

    /// Runs the election forever, driving `switch` (and the `outrigger_leader`
    /// gauge). Renewal failures keep the lease only until the renew deadline.
    pub async fn run(mut self, switch: LeaderSwitch, metrics: ClusterMetrics) {
        self.campaign(&switch, &metrics).await;
    }

    /// [`Elector::run`] on a borrowed elector: runs until dropped, after which
    /// [`Elector::step_down`] can give the lease up.
    pub async fn campaign(&mut self, switch: &LeaderSwitch, metrics: &ClusterMetrics) {
        let mut last_held: Option<Instant> = None;
        // Logged once when rounds start failing and once when they succeed
        // again, not every retry period of an outage.
        let mut failing = false;
        loop {
            let leading = match self.round().await {
                Ok(held) => {
                    if std::mem::take(&mut failing) {
                        info!(lease = %self.cfg.name, "leader election reaches the API server again");
                    }
                    if held {
                        last_held = Some(Instant::now());
                    } else {
                        last_held = None;
                    }
                    held
                }
                Err(error) => {
                    if std::mem::replace(&mut failing, true) {
                        debug!(lease = %self.cfg.name, error = %error, "leader election round failed again; retrying");
                    } else {
                        warn!(lease = %self.cfg.name, error = %error, "leader election round failed; retrying every retry period until the API server answers");
                    }
                    last_held.is_some_and(|t| t.elapsed() < self.cfg.renew_deadline)
                }
            };
            if leading != *switch.tx.borrow() {
                if leading {
                    info!(lease = %self.cfg.name, identity = %self.cfg.identity, "leading: writes enabled");
                } else {
                    warn!(lease = %self.cfg.name, identity = %self.cfg.identity, "lost the lease: writes stopped");
                }
            }
            if !leading {
                // Past the renew deadline: whatever was held is no longer ours
                // to release.
                self.held = None;
            }
            switch.set(leading);
            metrics.set_leader(leading);
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Gives the lease up if this replica holds it: one write of
    /// [`released_lease`], conditioned on the version last written.
    /// `Ok(true)` when released; `Ok(false)` when there was nothing to
    /// release (not the holder, or another replica holds it now). Sends
    /// nothing when not the holder.
    ///
    /// A conflict reads the lease once: on a loaded API server a renewal
    /// cut off by the shutdown (answered 504) may still have been applied,
    /// so the lease moved on yet is still ours, and is released at its new
    /// version instead of leaving the next leader to wait it out.
    pub async fn release(&mut self) -> Result<bool, ReconcileError> {
        let Some(held) = self.held.take() else {
            return Ok(false);
        };
        let object = format!("Lease {}", self.cfg.name);
        match self.write_released(&held).await {
            Err(e) if is_conflict(&e) => {}
            Ok(released) => return Ok(released),
            Err(e) => return Err(ReconcileError::api("release", object.clone(), e)),
        }
        let current = match self.api.get(&self.cfg.name).await {
            Ok(current) => current,
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(ReconcileError::api("get", object.clone(), e)),
        };
        let holder = current
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref());
        if holder != Some(self.cfg.identity.as_str()) {
            return Ok(false);
        }
        match self.write_released(&current).await {
            Err(e) if is_conflict(&e) => Ok(false),
            Ok(released) => Ok(released),
            Err(e) => Err(ReconcileError::api("release", object.clone(), e)),
        }
    }

    /// One conditioned write of [`released_lease`] of `held`.
    async fn write_released(&mut self, held: &Lease) -> Result<bool, kube::Error> {
        let written = self
            .api
            .replace(
                &self.cfg.name,
                &writes::post_params(),
                &released_lease(held),
            )
            .await?;
        self.observed = Some((
            written.resource_version().unwrap_or_default(),
            Instant::now(),
        ));
        Ok(true)
    }

    /// The graceful end of leadership: closes the gate (no controller may
    /// write once the lease is given up) and the `outrigger_leader` gauge,
    /// then [`Elector::release`]s the lease. Call once the controllers'
    /// loops are stopped.
    pub async fn step_down(&mut self, switch: &LeaderSwitch, metrics: &ClusterMetrics) {
        switch.set(false);
        metrics.set_leader(false);
        match self.release().await {
            Ok(true) => {
                info!(lease = %self.cfg.name, identity = %self.cfg.identity, "released the leader lease")
            }
            Ok(false) => {}
            Err(error) => {
                warn!(lease = %self.cfg.name, error = %error, "cannot release the leader lease; it expires on its own")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, secs: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(secs),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        let d = Duration::from_secs(15);
        assert_eq!(decide(None, "a", Duration::ZERO, d), LeaseDecision::Create);
        assert_eq!(
            decide(Some(&lease("a", 15)), "a", Duration::ZERO, d),
            LeaseDecision::Renew
        );
        assert_eq!(
            decide(Some(&lease("b", 15)), "a", Duration::from_secs(14), d),
            LeaseDecision::Follow { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&lease("b", 15)), "a", Duration::from_secs(15), d),
            LeaseDecision::TakeOver
        );
        assert_eq!(
            decide(Some(&lease("", 15)), "a", Duration::ZERO, d),
            LeaseDecision::TakeOver
        );
    }

    #[test]
    fn takeover_counts_a_transition() {
        let cfg = LeaseConfig {
            name: "l".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        };
        let mut old = lease("b", 15);
        old.spec.as_mut().unwrap().lease_transitions = Some(3);
        let taken = held_lease(Some(&old), &cfg, true);
        let spec = taken.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert!(spec.acquire_time.is_some());
        let renewed = held_lease(Some(&lease("me", 15)), &cfg, false)
            .spec
            .unwrap();
        assert_eq!(renewed.acquire_time, None);
    }

    #[test]
    fn gate_follows_switch() {
        let (switch, gate) = LeaderGate::manual(false);
        assert!(matches!(gate.ensure(), Err(ReconcileError::NotLeader)));
        switch.set(true);
        assert!(gate.ensure().is_ok());
        assert!(LeaderGate::always().is_leader());
    }
}

//! The thin IO loop shared by the controllers: keys arrive from watch
//! events, a periodic resync, a change of CA and the moment this replica
//! becomes leader; each key is reconciled, a bounded number at once;
//! failures are retried per key with backoff, so one failing object never
//! holds up the others and no error stops the loop.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::error::ReconcileError;
use super::leader::LeaderGate;
use super::retry::Backoff;

/// Keys waiting for a retry, each with its own backoff.
#[derive(Debug)]
pub struct RetryQueue<K: Ord> {
    items: BTreeMap<K, (Instant, Backoff)>,
    template: Backoff,
}

impl<K: Ord + Clone> RetryQueue<K> {
    /// An empty queue whose keys back off like `template`.
    pub fn new(template: Backoff) -> Self {
        Self {
            items: BTreeMap::new(),
            template,
        }
    }

    /// Records a failure of `key` at `now`; returns the delay before its retry.
    pub fn failed(&mut self, key: K, now: Instant) -> Duration {
        let entry = self
            .items
            .entry(key)
            .or_insert_with(|| (now, self.template.clone()));
        let delay = entry.1.next_delay();
        entry.0 = now + delay;
        delay
    }

    /// Forgets `key` after a success (or when it no longer needs work).
    pub fn succeeded(&mut self, key: &K) {
        self.items.remove(key);
    }

    /// When the earliest retry is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.items.values().map(|(due, _)| *due).min()
    }

    /// The keys due at `now` (they stay queued until they succeed).
    pub fn due(&self, now: Instant) -> Vec<K> {
        self.items
            .iter()
            .filter(|(_, (due, _))| *due <= now)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Drops every key (leadership lost: the next leader starts afresh).
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Number of keys waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// How many reconciles of one controller run at once by default: enough to
/// keep a fan-out (a new root to every namespace, a Secret per account)
/// above 400 objects/s against one API server on two cores (measured: the
/// README's "At scale"), few enough to stay well inside the API server's
/// default in-flight limits (`--max-requests-inflight` 400,
/// `--max-mutating-requests-inflight` 200, shared by every client) with
/// both fanning-out controllers writing at once. kube's client has no
/// request rate limit of its own; this is the limit.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// How a controller's loop runs (see [`Drive::run`]).
#[derive(Debug, Clone)]
pub struct Drive {
    /// The controller's name, in logs.
    pub controller: &'static str,
    /// How often every key is reconciled again.
    pub resync: Duration,
    /// How a failing key backs off.
    pub backoff: Backoff,
    /// How many reconciles run at once (at least one).
    pub concurrency: usize,
}

impl Drive {
    /// A loop for `controller` with the default backoff and concurrency.
    pub fn new(controller: &'static str, resync: Duration) -> Self {
        Self {
            controller,
            resync,
            backoff: Backoff::default_controller(),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// Runs a controller until `triggers` ends (in production: never).
    ///
    /// - nothing is reconciled before `ready` completes (the caches hold
    ///   their first full listing): events until then are dropped, as the
    ///   first resync covers them;
    /// - every key from `triggers` is reconciled while this replica leads
    ///   (followers drop events and do no requests); keys already waiting
    ///   are taken together, up to a few batches' worth;
    /// - every `resync`, whenever `refresh` yields (the CA changed) and
    ///   whenever this replica becomes leader, the keys from `all_keys` are
    ///   reconciled (repairs anything a missed event left);
    /// - at most `concurrency` reconciles run at once;
    /// - a failing key is retried with backoff; [`ReconcileError::NotLeader`]
    ///   is not a failure (the new leader does the work).
    pub async fn run<K, S, Rd, Rf, R, RF, A, AF>(
        self,
        mut gate: LeaderGate,
        triggers: S,
        ready: Rd,
        refresh: Rf,
        mut all_keys: A,
        mut reconcile: R,
    ) where
        K: Ord + Clone + Display,
        S: Stream<Item = K>,
        Rd: Future<Output = ()>,
        Rf: Stream<Item = ()>,
        R: FnMut(K) -> RF,
        RF: Future<Output = Result<(), ReconcileError>>,
        A: FnMut() -> AF,
        AF: Future<Output = Result<Vec<K>, ReconcileError>>,
    {
        let Self {
            controller,
            resync,
            backoff,
            concurrency,
        } = self;
        let concurrency = concurrency.max(1);
        let mut triggers = std::pin::pin!(triggers.fuse());
        let mut refresh = std::pin::pin!(refresh.fuse());
        let mut ready = std::pin::pin!(ready);
        let mut is_ready = false;
        let mut list_backoff = backoff.clone();
        let mut queue = RetryQueue::new(backoff);
        let mut next_resync = Instant::now();
        let mut ended = false;
        while !ended {
            let retry_at = queue.next_due().unwrap_or(next_resync).min(next_resync);
            // Biased: leadership first, then readiness and refreshes, then
            // due retries and resyncs (they are only ready when due, so
            // events cannot starve), then events. This also makes the order
            // of requests deterministic for tests.
            let mut keys: Vec<K> = tokio::select! {
                biased;
                leading = gate.changed() => {
                    if !leading {
                        queue.clear();
                        continue;
                    }
                    next_resync = Instant::now();
                    continue;
                }
                () = &mut ready, if !is_ready => {
                    is_ready = true;
                    next_resync = Instant::now();
                    continue;
                }
                Some(()) = refresh.next() => {
                    next_resync = Instant::now();
                    continue;
                }
                () = tokio::time::sleep_until(retry_at), if is_ready => {
                    let now = Instant::now();
                    let mut keys = queue.due(now);
                    if now >= next_resync {
                        next_resync = now + resync;
                        if gate.is_leader() {
                            match all_keys().await {
                                Ok(all) => {
                                    keys.extend(all);
                                    list_backoff.reset();
                                }
                                Err(error) => {
                                    let delay = list_backoff.next_delay();
                                    next_resync = now + delay;
                                    warn!(controller, error = %error, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "listing objects to resync failed; will retry");
                                }
                            }
                        }
                    }
                    keys
                }
                key = triggers.next() => match key {
                    Some(key) => {
                        let mut keys = vec![key];
                        // Take what else is waiting, so a burst of events
                        // is reconciled concurrently too.
                        while keys.len() < concurrency * 4 {
                            match triggers.next().now_or_never() {
                                Some(Some(key)) => keys.push(key),
                                Some(None) => {
                                    ended = true;
                                    break;
                                }
                                None => break,
                            }
                        }
                        if !is_ready {
                            continue;
                        }
                        keys
                    }
                    None => return,
                },
            };
            // A follower does no work at all (not even reads): the leader
            // does it, and this replica resyncs everything if it takes over.
            if !gate.is_leader() {
                queue.clear();
                continue;
            }
            keys.sort();
            keys.dedup();
            let results: Vec<(K, Result<(), ReconcileError>)> = futures::stream::iter(keys)
                .map(|key| {
                    let work = reconcile(key.clone());
                    async move { (key, work.await) }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            for (key, result) in results {
                match result {
                    Ok(()) => queue.succeeded(&key),
                    Err(ReconcileError::NotLeader) => {
                        debug!(controller, key = %key, "not the leader; left to the lease holder");
                        queue.succeeded(&key);
                    }
                    Err(error) => {
                        let delay = queue.failed(key.clone(), Instant::now());
                        warn!(controller, key = %key, error = %error, source = ?std::error::Error::source(&error).map(ToString::to_string), retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "reconcile failed; will retry");
                    }
                }
            }
        }
    }
}

/// Runs what `start` returns only while this replica leads: nothing (no
/// watch, no cache) while it follows; started afresh on taking the lease,
/// and dropped (watches closed, caches freed) on losing it, so a follower
/// holds no more than it needs to take over. Returns when the started
/// future returns.
pub async fn while_leading<F, Fut>(mut gate: LeaderGate, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        gate.wait_leader().await;
        let lost = async {
            let mut gate = gate.clone();
            while gate.changed().await {}
        };
        tokio::select! {
            () = start() => return,
            () = lost => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_queue_backs_off_per_key() {
        let mut q = RetryQueue::new(Backoff::new(Duration::from_secs(1), Duration::from_secs(8)));
        let t0 = Instant::now();
        assert_eq!(q.failed("a", t0), Duration::from_secs(1));
        assert_eq!(q.failed("a", t0), Duration::from_secs(2));
        assert_eq!(q.failed("b", t0), Duration::from_secs(1));
        assert_eq!(q.next_due(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(q.due(t0 + Duration::from_secs(1)), vec!["b"]);
        q.succeeded(&"b");
        assert_eq!(q.len(), 1);
        q.clear();
        assert!(q.is_empty());
    }
}

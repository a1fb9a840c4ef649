//! How the controllers' watches ride out an API server that goes away.
//!
//! - **Bounded backoff.** kube's default watcher backoff grows to 30 s and
//!   is reset only after two quiet minutes, so after an outage a watch that
//!   expired (`410 Gone`, "too old resource version") waited up to 30 s more
//!   before relisting: a corrupted caBundle took 75 s to repair after a
//!   6-minute outage on a real API server. Here a watch error waits 0.5 s,
//!   doubling to at most [`MAX_DELAY`], and the delay starts over at the
//!   first event that arrives: an expired watch is relisted within a second,
//!   a down API server is retried every few seconds, no faster.
//! - **One log line per change of state.** The first error of a watch that
//!   was working is logged once at WARN ("lost"); further errors while it is
//!   down are DEBUG; the first event after that is logged once at INFO
//!   ("back"). An outage no longer writes hundreds of ERROR lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::watcher;
use tracing::{debug, info, warn};

use super::retry::Backoff;

/// The first delay after a watch error.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest delay between two attempts while the API server is away.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// The watchers' backoff (see the module docs).
#[derive(Debug, Clone)]
pub struct WatchBackoff(Backoff);

impl Default for WatchBackoff {
    fn default() -> Self {
        Self(Backoff::new(FIRST_DELAY, MAX_DELAY))
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.0.next_delay())
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.0.reset();
    }
}

/// Whether one watch is working, logged on each change (see the module docs).
#[derive(Debug, Clone)]
pub struct WatchHealth {
    what: &'static str,
    down: Arc<AtomicBool>,
}

impl WatchHealth {
    /// A working watch of `what` (e.g. "Namespaces").
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the last thing seen was an error.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// The watch yielded `result`: the event, if it is one; a change of
    /// state is logged once.
    pub fn observe<K>(&self, result: Result<K, watcher::Error>) -> Option<K> {
        match result {
            Ok(event) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    info!(watch = self.what, "watch is back; relisted");
                }
                Some(event)
            }
            Err(error) => {
                if self.down.swap(true, Ordering::Relaxed) {
                    debug!(watch = self.what, %error, "watch still failing; retrying");
                } else {
                    warn!(watch = self.what, %error, max_retry_delay_s = MAX_DELAY.as_secs(), "lost the watch; retrying until the API server answers");
                }
                None
            }
        }
    }
}

/// `watcher(api, cfg)` with the bounded backoff, its errors logged once per
/// change of state, and only its events passed on.
pub fn watch<K>(
    api: kube::Api<K>,
    cfg: watcher::Config,
    what: &'static str,
) -> impl Stream<Item = watcher::Event<K>> + Send + use<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let health = WatchHealth::new(what);
    kube::runtime::WatchStreamExt::backoff(watcher(api, cfg), WatchBackoff::default())
        .filter_map(move |result| futures::future::ready(health.observe(result)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_is_bounded_and_starts_over() {
        use kube::runtime::utils::Backoff as _;
        let mut backoff = WatchBackoff::default();
        let delays: Vec<u64> = (&mut backoff)
            .take(6)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![500, 1000, 2000, 4000, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next(), Some(FIRST_DELAY));
    }

    #[test]
    fn state_changes_are_seen_once() {
        let health = WatchHealth::new("Things");
        assert_eq!(health.observe::<u8>(Ok(1)), Some(1));
        assert!(!health.is_down());
        let gone = || Err(watcher::Error::NoResourceVersion);
        assert_eq!(health.observe::<u8>(gone()), None);
        assert!(health.is_down());
        assert_eq!(health.observe::<u8>(gone()), None);
        assert!(health.is_down());
        assert_eq!(health.observe::<u8>(Ok(2)), Some(2));
        assert!(!health.is_down());
    }
}

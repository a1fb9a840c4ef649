//! Capped exponential backoff for the controllers' retries: API errors (409,
//! 500, timeouts) are logged and tried again later, never fatal; and
//! `until_ok`, the retry loop of the start-up steps.

use std::time::Duration;

use tracing::warn;

/// Exponential backoff between `base` and `max`, doubling on each failure and
/// back to `base` after a success. Deterministic (no jitter) so tests can
/// drive it with a paused clock; replicas desynchronise through their
/// different start times and the lease.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff starting at `base` and never waiting longer than `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            next: base,
        }
    }

    /// The controllers' default: 200 ms doubling up to 30 s.
    pub fn default_controller() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(30))
    }

    /// The delay to wait now, and doubles the next one.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the base delay after a success.
    pub fn reset(&mut self) {
        self.next = self.base;
    }
}

/// Retries `attempt` with the controllers' backoff until it succeeds,
/// logging each failure with `what`. For the start-up steps nothing can run
/// without (connecting, loading the CA).
pub(crate) async fn until_ok<T, E, F, Fut>(what: &'static str, mut attempt: F) -> T
where
    E: std::error::Error,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::default_controller();
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => {
                let delay = backoff.next_delay();
                warn!(
                    step = what,
                    error = %error,
                    source = ?std::error::Error::source(&error).map(ToString::to_string),
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "in-cluster start-up step failed; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}

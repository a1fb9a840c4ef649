//! The webhook's CPU-bound work (parsing, injection) runs here, on a few
//! blocking threads, not on the async workers: so `/healthz`, `/readyz`,
//! the CA service and the accept loops keep answering however busy the
//! webhook is, and the request timeout ([`crate::webhook::overload`]) can
//! answer 503 while a job still runs.
//!
//! At most `workers` jobs run at once and `max_queued` more wait; past that
//! a request is refused with 503 at once, so that the API server retries
//! another replica instead of queueing behind a burst. A job whose request
//! timed out keeps its worker until it finishes: the pool never runs more
//! than `workers` jobs, and what one job may cost is bounded by the parse
//! limits ([`crate::inject::bounded_yaml`]).

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::limits::{Limit, LimitMetrics, Listener};
use crate::webhook::error::ApiError;

/// The pool; cloning shares it.
#[derive(Debug, Clone)]
pub struct Workers {
    /// Jobs running or waiting (`workers + max_queued`).
    admitted: Arc<Semaphore>,
    /// Jobs running.
    running: Arc<Semaphore>,
    metrics: LimitMetrics,
}

impl Workers {
    /// `workers` jobs at once (at least one), `max_queued` more waiting.
    pub fn new(workers: usize, max_queued: usize, metrics: LimitMetrics) -> Self {
        let workers = workers.max(1);
        Workers {
            admitted: Arc::new(Semaphore::new(workers.saturating_add(max_queued))),
            running: Arc::new(Semaphore::new(workers)),
            metrics,
        }
    }

    /// Runs `job` on a blocking thread once a worker is free, or refuses
    /// at once (503) when every worker is busy and the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let Ok(admitted) = self.admitted.clone().try_acquire_owned() else {
            self.metrics.trip(Listener::Webhook, Limit::Queue);
            return Err(ApiError::Unavailable(
                "every worker is busy and the queue is full (--workers, --max-queued); retry",
            ));
        };
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Unavailable("the webhook is shutting down"))?;
        let done = tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            job()
        });
        done.await.map_err(|error| {
            tracing::error!(%error, "a webhook job panicked; answered 500");
            ApiError::Internal
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_full_pool_refuses_at_once_and_takes_jobs_again_when_free() {
        let workers = Workers::new(1, 1, LimitMetrics::default());
        let (release, wait) = mpsc::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(wait));
        let blocking = |wait: Arc<std::sync::Mutex<mpsc::Receiver<()>>>| {
            move || {
                let _ = wait.lock().unwrap().recv_timeout(Duration::from_secs(30));
            }
        };
        let running = tokio::spawn({
            let workers = workers.clone();
            let job = blocking(wait.clone());
            async move { workers.run(job).await }
        });
        let queued = tokio::spawn({
            let workers = workers.clone();
            let job = blocking(wait.clone());
            async move { workers.run(job).await }
        });
        // Both permits of "admitted" taken: the third is refused at once.
        while workers.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = workers.run(|| ()).await.unwrap_err();
        assert_eq!(
            refused.status(),
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(refused.to_string().contains("--workers"), "{refused}");
        release.send(()).unwrap();
        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
        assert_eq!(workers.run(|| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_panicking_job_is_a_500_not_a_crash() {
        let workers = Workers::new(1, 0, LimitMetrics::default());
        let err = workers.run(|| panic!("boom")).await.unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(workers.run(|| 1).await.unwrap(), 1);
    }
}

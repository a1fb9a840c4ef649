//! A connection's stream, guarded: it holds the listener's connection
//! permit for as long as the connection lives, records when a byte last
//! moved, and (for the CA service, whose connections tonic drives) closes
//! the stream itself once it has been idle for too long. The webhook and
//! monitoring listeners drive their hyper connections themselves and close
//! an idle one gracefully instead (see `crate::webhook::server`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use super::{Limit, LimitMetrics, Listener};

/// When a byte last moved on a connection; cloning shares it.
#[derive(Debug, Clone)]
pub struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When a byte last moved (or the connection opened).
    pub fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Closes the stream after `timeout` without traffic.
struct IdleClose {
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    metrics: LimitMetrics,
    listener: Listener,
}

/// A stream that holds its listener's connection permit and records its
/// activity.
pub struct Guarded<S> {
    inner: S,
    activity: Activity,
    idle: Option<IdleClose>,
    _permit: OwnedSemaphorePermit,
}

impl<S> Guarded<S> {
    /// Guards `inner`, holding `permit` until the stream is dropped.
    pub fn new(inner: S, permit: OwnedSemaphorePermit) -> Self {
        Guarded {
            inner,
            activity: Activity::default(),
            idle: None,
            _permit: permit,
        }
    }

    /// Makes the stream fail (and so the connection close) once no byte
    /// has moved for `timeout`, counting it as a trip of [`Limit::Idle`].
    pub fn close_when_idle(
        mut self,
        timeout: Duration,
        metrics: LimitMetrics,
        listener: Listener,
    ) -> Self {
        self.idle = Some(IdleClose {
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            metrics,
            listener,
        });
        self
    }

    /// The stream's activity record, for a driver that closes idle
    /// connections itself.
    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    /// The guarded stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Whether the stream has been idle for its timeout; if not yet,
    /// arranges to be woken when it might be.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let last = self.activity.last();
        let Some(idle) = &mut self.idle else {
            return false;
        };
        loop {
            let deadline = last + idle.timeout;
            if Instant::now() >= deadline {
                idle.metrics.trip(idle.listener, Limit::Idle);
                return true;
            }
            if idle.sleep.deadline() != deadline {
                idle.sleep.as_mut().reset(deadline);
            }
            if idle.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending if this.idle_expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for longer than the idle timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            this.activity.touch();
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Guarded<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Semaphore;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_fails_after_the_timeout_and_releases_its_permit() {
        let permits = Arc::new(Semaphore::new(1));
        let (client, server) = tokio::io::duplex(64);
        let permit = permits.clone().try_acquire_owned().unwrap();
        let metrics = LimitMetrics::default();
        let mut guarded = Guarded::new(server, permit).close_when_idle(
            Duration::from_secs(5),
            metrics,
            Listener::Ca,
        );
        let mut client = client;
        client.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        guarded.read_exact(&mut byte).await.unwrap();
        let started = Instant::now();
        let error = guarded.read(&mut byte).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(
            permits.available_permits(),
            0,
            "held while the stream lives"
        );
        drop(guarded);
        assert_eq!(permits.available_permits(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_keeps_a_stream_open() {
        let permits = Arc::new(Semaphore::new(1));
        let (mut client, server) = tokio::io::duplex(64);
        let permit = permits.clone().try_acquire_owned().unwrap();
        let mut guarded = Guarded::new(server, permit).close_when_idle(
            Duration::from_secs(5),
            LimitMetrics::default(),
            Listener::Ca,
        );
        let writer = tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                client.write_all(b"x").await.unwrap();
            }
            client
        });
        let mut bytes = [0u8; 4];
        guarded.read_exact(&mut bytes).await.unwrap();
        let _client = writer.await.unwrap();
        let started = Instant::now();
        let error = guarded.read(&mut bytes).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}

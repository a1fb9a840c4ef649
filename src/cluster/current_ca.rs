//! The CA every controller uses now, as a `tokio::sync::watch` channel.
//!
//! A new root in the CA Secret (renewed by the leader, or written by an
//! operator) is an event, not a restart: [`crate::cluster::root_renewal`]
//! sends the new CA here, and each controller reads the channel at every
//! reconcile and resyncs from its caches when it changes. Nothing is
//! re-listed, so a new root costs one write per object that holds it.

use std::future::Future;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::watch;

use super::authority::ClusterCa;

/// Read side: the CA to use now (cheap to clone).
pub type CurrentCa = watch::Receiver<Arc<ClusterCa>>;

/// A CA that never changes (a `cacerts` directory, or a test): the value
/// stays readable after the sender is dropped, and [`changes`] ends at once.
pub fn fixed(ca: Arc<ClusterCa>) -> CurrentCa {
    watch::channel(ca).1
}

/// One item per change of the CA after the one seen now; ends when the
/// sender is gone.
pub fn changes(current: &CurrentCa) -> impl Stream<Item = ()> + Send + use<> {
    let mut rx = current.clone();
    rx.mark_unchanged();
    futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    })
}

/// Runs `start(ca)` with the current CA, and again with each new one (the
/// previous run dropped). For the loops whose whole work is the CA itself
/// (the serving certificate, istiod's Secret): they list nothing, so
/// starting them again costs at most a read of one object. Returns when a
/// run returns.
pub async fn restart_on_change<F, Fut>(mut current: CurrentCa, mut start: F)
where
    F: FnMut(Arc<ClusterCa>) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let ca = Arc::clone(&current.borrow_and_update());
        tokio::select! {
            () = start(ca) => return,
            // A fixed CA (sender gone) disables this branch: the run goes on.
            Ok(()) = current.changed() => {}
        }
    }
}

//! Watch caches (kube-runtime reflectors) the controllers decide from, so
//! that "what exists now" is answered without a request.
//!
//! Each cache is filled by its watch while the returned event stream is
//! polled (the controller's loop polls it for its triggers), keeps objects
//! without their `managedFields` (they are most of an object's size and
//! no controller reads them), and is dropped with the stream: a follower,
//! which starts no watch, holds none.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::watch_health;

/// A cache of the objects `api` and `cfg` select, and the watch events that
/// fill it (see the module docs). `what` names the watch in logs.
pub fn reflect<K>(
    api: Api<K>,
    cfg: watcher::Config,
    what: &'static str,
) -> (
    Store<K>,
    impl Stream<Item = watcher::Event<K>> + Send + use<K>,
)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store();
    let events = watch_health::watch(api, cfg, what).map(|event| {
        Ok::<_, watcher::Error>(event.modify(|object| object.managed_fields_mut().clear()))
    });
    let events =
        reflector::reflector(writer, events).filter_map(|event| futures::future::ready(event.ok()));
    (store, events)
}

/// Completes once `store` holds its watch's first full listing (or its
/// watch is gone, when nothing will ever fill it).
pub fn ready<K>(store: &Store<K>) -> impl Future<Output = ()> + Send + use<K>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    let store = store.clone();
    async move {
        let _ = store.wait_until_ready().await;
    }
}

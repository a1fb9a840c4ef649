//! Watch caches filled from JSON, as a controller's reflectors would hold
//! them after their first listing, for reconcile tests without watches.
#![allow(dead_code)]

use std::hash::Hash;

use kube::Resource;
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A ready cache holding `objects`.
pub fn store<K>(objects: Vec<Value>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let mut writer = Writer::<K>::default();
    writer.apply_watcher_event(&Event::Init);
    for object in objects {
        let object: K = serde_json::from_value(object).expect("a valid object");
        writer.apply_watcher_event(&Event::InitApply(object));
    }
    writer.apply_watcher_event(&Event::InitDone);
    writer.as_reader()
}

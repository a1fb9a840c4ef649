//! Istio's container order after injection.

use serde_json::Value;

use super::sidecar::{CORE_DUMP_NAME, INIT_NAME, PROXY_NAME, VALIDATION_NAME};

fn name_of(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or("")
}

enum Place {
    First,
    Last,
}

fn move_item<T>(list: &mut Vec<T>, name_of: impl Fn(&T) -> &str, name: &str, place: Place) {
    if let Some(i) = list.iter().position(|c| name_of(c) == name) {
        let c = list.remove(i);
        match place {
            Place::First => list.insert(0, c),
            Place::Last => list.push(c),
        }
    }
}

/// Istio's container order: the proxy last among containers (first when the
/// app waits for it); with a native sidecar, capture then proxy first among
/// init containers, else capture last.
pub fn reorder(pod: &mut Value, hold: bool) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(Value::Array(cs)) = spec.get_mut("containers") {
        order_containers(cs, name_of, hold);
    }
    if let Some(Value::Array(init)) = spec.get_mut("initContainers") {
        order_init_containers(init, name_of);
    }
}

/// [`reorder`]'s rule for the containers of a pod, by name.
pub fn order_containers<T>(cs: &mut Vec<T>, name_of: impl Fn(&T) -> &str, hold: bool) {
    let place = if hold { Place::First } else { Place::Last };
    move_item(cs, name_of, PROXY_NAME, place);
}

/// [`reorder`]'s rule for the init containers of a pod, by name.
pub fn order_init_containers<T>(init: &mut Vec<T>, name_of: impl Fn(&T) -> &str) {
    if init.iter().any(|c| name_of(c) == PROXY_NAME) {
        for n in [CORE_DUMP_NAME, PROXY_NAME, VALIDATION_NAME, INIT_NAME] {
            move_item(init, &name_of, n, Place::First);
        }
    } else {
        for n in [CORE_DUMP_NAME, VALIDATION_NAME, INIT_NAME] {
            move_item(init, &name_of, n, Place::Last);
        }
    }
}

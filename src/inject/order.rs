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

fn move_container(list: &mut Vec<Value>, name: &str, place: Place) {
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
        move_container(
            cs,
            PROXY_NAME,
            if hold { Place::First } else { Place::Last },
        );
    }
    if let Some(Value::Array(init)) = spec.get_mut("initContainers") {
        if init.iter().any(|c| name_of(c) == PROXY_NAME) {
            for n in [CORE_DUMP_NAME, PROXY_NAME, VALIDATION_NAME, INIT_NAME] {
                move_container(init, n, Place::First);
            }
        } else {
            for n in [CORE_DUMP_NAME, VALIDATION_NAME, INIT_NAME] {
                move_container(init, n, Place::Last);
            }
        }
    }
}

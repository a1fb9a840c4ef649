//! The app probes' rewrite on the direct path: decided on the pod's own
//! containers ([`Plan`], shared with the Value engine), and written as the
//! very operations the engine's diff gives for it, without copying a
//! container, rewriting the copy or diffing it.
//!
//! What the diff gives for a redirected handler: the handler loses
//! `tcpSocket` and `grpc`, so when it has either, the whole handler is
//! replaced (the diff replaces an object that loses a key); otherwise only
//! its `httpGet` changes, and the diff goes into it: replaced whole if it
//! has a key the new one lacks (`host`, `httpHeaders`, an HTTPS `scheme`
//! dropped...), else a `replace` per changed member, then an `add` per new
//! one, in key order. A lifecycle's handlers are visited in key order
//! under `lifecycle`.

use serde_json::{Map, Value};

use super::super::patch_json::Out;
use super::super::probes::{Leaf, Plan, Redirected, redirected_get};
use super::ops::Ops;

/// The action kinds a redirected handler loses.
const DROPPED: [&str; 2] = ["grpc", "tcpSocket"];

/// Writes the operations that redirect the handlers of the pod's item
/// `index` of `list` (`item`), now at index `j` of the list at `list_ptr`.
pub fn write(
    plan: &Plan,
    (list, index, item): (&str, usize, &Value),
    list_ptr: &str,
    j: usize,
    ops: &mut Ops,
) {
    let mut ptr = String::with_capacity(list_ptr.len() + 48);
    for r in plan
        .redirected
        .iter()
        .filter(|r| r.list == list && r.index == index)
    {
        let member = item.get(r.member);
        let handler = match r.hook {
            None => member,
            Some(hook) => member.and_then(|m| m.get(hook)),
        };
        // The plan was made on this very item: the handler is there.
        let Some(Value::Object(handler)) = handler else {
            continue;
        };
        ptr.clear();
        ptr.push_str(list_ptr);
        ptr.push('/');
        ptr.push_str(itoa::Buffer::new().format(j));
        ptr.push('/');
        ptr.push_str(r.member);
        if let Some(hook) = r.hook {
            ptr.push('/');
            ptr.push_str(hook);
        }
        handler_ops(&ptr, handler, r, plan.status_port, ops);
    }
}

/// The operations that turn `handler`, at `ptr`, into its redirection.
fn handler_ops(
    ptr: &str,
    handler: &Map<String, Value>,
    r: &Redirected,
    status_port: i64,
    ops: &mut Ops,
) {
    let get = redirected_get(&r.path, status_port, r.https);
    if DROPPED.iter().any(|k| handler.contains_key(*k)) {
        ops.op("replace", ptr, |out| {
            let mut members: Vec<(&str, Option<&Value>)> = handler
                .iter()
                .filter(|(k, _)| !DROPPED.contains(&k.as_str()) && k.as_str() != "httpGet")
                .map(|(k, v)| (k.as_str(), Some(v)))
                .collect();
            let at = members.partition_point(|(k, _)| *k < "httpGet");
            members.insert(at, ("httpGet", None));
            out.object(members, |out, v| match v {
                Some(v) => out.value(v),
                None => write_get(out, get.clone()),
            });
        });
        return;
    }
    let get_ptr = [ptr, "/httpGet"].concat();
    match handler.get("httpGet") {
        Some(Value::Object(old)) => get_ops(&get_ptr, old, get, ops),
        Some(_) => ops.op("replace", &get_ptr, |out| write_get(out, get)),
        None => ops.op("add", &get_ptr, |out| write_get(out, get)),
    }
}

/// The operations that turn the handler's `httpGet`, `old`, at `ptr`, into
/// `get`.
fn get_ops<'a>(
    ptr: &str,
    old: &Map<String, Value>,
    get: impl Iterator<Item = (&'static str, Leaf<'a>)> + Clone,
    ops: &mut Ops,
) {
    let new = |key: &str| get.clone().find(|(k, _)| *k == key).map(|(_, leaf)| leaf);
    if old.keys().any(|k| new(k).is_none()) {
        ops.op("replace", ptr, |out| write_get(out, get.clone()));
        return;
    }
    for (key, value) in old {
        // Every key is in the new one (checked above).
        let Some(leaf) = new(key) else { continue };
        let same = match leaf {
            Leaf::Str(s) => value.as_str() == Some(s),
            Leaf::Int(n) => value.as_i64() == Some(n),
        };
        if !same {
            ops.op("replace", &[ptr, "/", key].concat(), |out| {
                write_leaf(out, leaf)
            });
        }
    }
    for (key, leaf) in get.clone() {
        if !old.contains_key(key) {
            ops.op("add", &[ptr, "/", key].concat(), |out| {
                write_leaf(out, leaf)
            });
        }
    }
}

/// A redirected `httpGet`, as serde_json writes it.
fn write_get<'a>(out: &mut Out, get: impl Iterator<Item = (&'static str, Leaf<'a>)>) {
    out.object(get, write_leaf);
}

fn write_leaf(out: &mut Out, leaf: Leaf) {
    match leaf {
        Leaf::Str(s) => out.string(s),
        Leaf::Int(n) => out.integer(n),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::super::probes::Plan;
    use super::super::ops::Ops;

    /// The operations that redirect the probes of an `app` container with
    /// these members, at index 0 of `/spec/containers`.
    fn ops_for(members: Value) -> Value {
        let mut container =
            json!({"name": "app", "ports": [{"name": "http", "containerPort": 8080}]});
        for (k, v) in members.as_object().unwrap() {
            container[k] = v.clone();
        }
        let spec = json!({ "containers": [container] });
        let plan = Plan::of(&spec, 15020);
        let mut ops = Ops::new();
        let item = ("containers", 0, &spec["containers"][0]);
        super::write(&plan, item, "/spec/containers", 0, &mut ops);
        serde_json::from_slice(&ops.finish()).unwrap()
    }

    #[test]
    fn an_http_get_with_members_the_new_one_lacks_is_replaced_whole() {
        let ops = ops_for(json!({
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "periodSeconds": 5}
        }));
        assert_eq!(
            ops,
            json!([{"op": "replace", "path": "/spec/containers/0/livenessProbe/httpGet",
                    "value": {"path": "/app-health/app/livez", "port": 15020}}])
        );
    }

    #[test]
    fn members_of_an_http_get_are_replaced_then_new_ones_added_in_key_order() {
        let ops =
            ops_for(json!({"readinessProbe": {"httpGet": {"port": 8080, "scheme": "HTTPS"}}}));
        assert_eq!(
            ops,
            json!([
                {"op": "replace", "path": "/spec/containers/0/readinessProbe/httpGet/port", "value": 15020},
                {"op": "replace", "path": "/spec/containers/0/readinessProbe/httpGet/scheme", "value": "HTTP"},
                {"op": "add", "path": "/spec/containers/0/readinessProbe/httpGet/path", "value": "/app-health/app/readyz"}
            ])
        );
    }

    #[test]
    fn a_handler_that_loses_an_action_is_replaced_whole_lifecycle_hooks_in_key_order() {
        let ops = ops_for(json!({
            "lifecycle": {"preStop": {"tcpSocket": {"port": 8080}}, "postStart": {"httpGet": {"path": "/up", "port": 8080}}},
            "startupProbe": {"grpc": {"port": 8080}, "failureThreshold": 30}
        }));
        assert_eq!(
            ops,
            json!([
                {"op": "replace", "path": "/spec/containers/0/lifecycle/postStart/httpGet/path", "value": "/app-lifecycle/app/poststartz"},
                {"op": "replace", "path": "/spec/containers/0/lifecycle/postStart/httpGet/port", "value": 15020},
                {"op": "replace", "path": "/spec/containers/0/lifecycle/preStop",
                 "value": {"httpGet": {"path": "/app-lifecycle/app/prestopz", "port": 15020}}},
                {"op": "replace", "path": "/spec/containers/0/startupProbe",
                 "value": {"failureThreshold": 30, "httpGet": {"path": "/app-health/app/startupz", "port": 15020}}}
            ])
        );
    }
}

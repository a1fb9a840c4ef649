//! Shrinking a disagreement `inject_paths` found: configuration features
//! dropped, the default context tried, and the object's nodes removed one
//! at a time while `inject` and `inject_patch` still disagree, so that the
//! report shows a small case. Included by path by tests/inject_paths.rs
//! only.

use outrigger::inject::Context;
use serde_json::Value;

use crate::configurations::{Feature, build};
use crate::{Failure, Tally, check_pair};

/// One step into a JSON value: a key or an index.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// The path of every node of `v` but the root.
fn node_paths(v: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(Step::Key(k.clone()));
                out.push(prefix.clone());
                node_paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(l) => {
            for (i, child) in l.iter().enumerate() {
                prefix.push(Step::Index(i));
                out.push(prefix.clone());
                node_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// `v` without the node at `path` (not the root).
fn without(v: &Value, path: &[Step]) -> Option<Value> {
    let (last, parent) = path.split_last()?;
    let mut copy = v.clone();
    let node = parent.iter().try_fold(&mut copy, |node, step| match step {
        Step::Key(k) => node.get_mut(k.as_str()),
        Step::Index(i) => node.get_mut(*i),
    })?;
    match (node, last) {
        (Value::Object(m), Step::Key(k)) => {
            m.remove(k);
        }
        (Value::Array(l), Step::Index(i)) if *i < l.len() => {
            l.remove(*i);
        }
        _ => return None,
    }
    Some(copy)
}

/// A disagreement made small: the fewest features, the default context if
/// it still disagrees there, and the fewest nodes of the object found
/// (greedily) that still disagree.
pub struct Shrunk {
    /// The features left, as indexes into the feature list.
    pub features: Vec<usize>,
    /// The context left.
    pub ctx: Context,
    /// The object left.
    pub object: Value,
    /// The disagreement the shrunk case shows.
    pub problem: String,
}

/// Shrinks `f`, found under `features`.
pub fn shrink(all: &[Feature], f: &Failure, features: &[usize]) -> Shrunk {
    let fails = |features: &[usize], object: &Value, ctx: &Context| -> Option<String> {
        let cfg = build(all, features)?;
        check_pair(object, ctx, &cfg, &mut Tally::default()).err()
    };
    let mut s = Shrunk {
        features: features.to_vec(),
        ctx: f.ctx.clone(),
        object: f.object.clone(),
        problem: String::new(),
    };
    match fails(&s.features, &s.object, &s.ctx) {
        Some(p) => s.problem = p,
        None => {
            s.problem = format!("(does not reproduce alone) {}", f.problem);
            return s;
        }
    }
    if let Some(p) = fails(&s.features, &s.object, &Context::default()) {
        (s.ctx, s.problem) = (Context::default(), p);
    }
    let mut i = 0;
    while i < s.features.len() {
        let mut fewer = s.features.clone();
        fewer.remove(i);
        match fails(&fewer, &s.object, &s.ctx) {
            Some(p) => (s.features, s.problem) = (fewer, p),
            None => i += 1,
        }
    }
    let mut attempts = 0;
    'outer: loop {
        let mut paths = Vec::new();
        node_paths(&s.object, &mut Vec::new(), &mut paths);
        for path in paths {
            // The kind says where the pod is: keep it.
            if matches!(path.as_slice(), [Step::Key(k)] if k == "kind") {
                continue;
            }
            attempts += 1;
            if attempts > 3000 {
                break 'outer;
            }
            if let Some(smaller) = without(&s.object, &path)
                && let Some(p) = fails(&s.features, &smaller, &s.ctx)
            {
                (s.object, s.problem) = (smaller, p);
                continue 'outer;
            }
        }
        break;
    }
    s
}

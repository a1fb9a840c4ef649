//! A small stateful Kubernetes API server for counting what the cluster
//! controllers ask: objects are stored by path, lists and gets answer from
//! them, creates/replaces/merge patches/deletes change them (with
//! resource versions, 404 and 409 as the API server gives them), and open
//! watches receive ADDED/MODIFIED/DELETED events for every change, the
//! controllers' own writes and a test's alike. Field selectors
//! `metadata.name=`, `metadata.namespace=` and `type=` are honoured.
//!
//! Every request is logged ([`FakeApi::requests`]) so a test can count
//! reads, writes, lists and watches. Like the scripted [`super::scenario`],
//! it refuses a write without `fieldManager=outrigger` (400, recorded:
//! [`FakeApi::assert_clean`]).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::channel::mpsc;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::client::Body;
use serde_json::{Value, json};

type Reply = Response<UnsyncBoxBody<Bytes, Infallible>>;
type EventSender = mpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>;

/// One request as the fake API server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// GET, POST, PUT, PATCH, DELETE.
    pub method: String,
    /// The URL path.
    pub path: String,
    /// The URL query, as sent.
    pub query: String,
}

impl Seen {
    /// A watch (GET with `watch=true`).
    pub fn is_watch(&self) -> bool {
        self.method == "GET" && self.query.split('&').any(|p| p == "watch=true")
    }

    /// A read that is not a watch: a GET of one object or a list.
    pub fn is_read(&self) -> bool {
        self.method == "GET" && !self.is_watch()
    }

    /// A list (GET of a collection, not a watch).
    pub fn is_list(&self) -> bool {
        self.is_read() && split(&self.path).is_some_and(|(_, segs)| segs.len() % 2 == 1)
    }

    /// A create, replace, patch or delete.
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

struct Watch {
    prefix: String,
    collection: Vec<String>,
    selector: Vec<(String, String)>,
    tx: EventSender,
}

#[derive(Default)]
struct World {
    objects: BTreeMap<String, Value>,
    version: u64,
    log: Vec<Seen>,
    watches: Vec<Watch>,
    violations: Vec<String>,
}

/// The fake API server (cheap to clone; clones share the world).
#[derive(Clone, Default)]
pub struct FakeApi {
    world: Arc<Mutex<World>>,
}

impl FakeApi {
    /// An empty API server.
    pub fn new() -> Self {
        Self::default()
    }

    /// A client wired to this server, served by a spawned task that ends
    /// when every clone of the client is gone.
    pub fn client(&self) -> kube::Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Reply>();
        let world = Arc::clone(&self.world);
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().to_string();
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let reply = serve(&world, method, path, query, body);
                send.send_response(reply);
            }
        });
        kube::Client::new(service, "default")
    }

    /// Stores `object` (or replaces it) as another writer would, and tells
    /// the watches. Its path follows from apiVersion, kind and metadata.
    pub fn apply(&self, object: Value) {
        let path = path_of(&object);
        let mut world = self.world.lock().unwrap();
        let kind = if world.objects.contains_key(&path) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        store(&mut world, &path, object, kind);
    }

    /// The object at `path`, if any.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.world.lock().unwrap().objects.get(path).cloned()
    }

    /// Every object whose path starts with `prefix`.
    pub fn objects_under(&self, prefix: &str) -> Vec<(String, Value)> {
        let world = self.world.lock().unwrap();
        world
            .objects
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.world.lock().unwrap().log.clone()
    }

    /// Panics if a write lacked `fieldManager=outrigger`.
    pub fn assert_clean(&self) {
        let world = self.world.lock().unwrap();
        assert!(
            world.violations.is_empty(),
            "API server contract violated: {:?}",
            world.violations
        );
    }
}

/// The API path of an object (`/api/v1/namespaces/ns/configmaps/name`).
pub fn path_of(object: &Value) -> String {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let prefix = if api_version == "v1" {
        "/api/v1".to_string()
    } else {
        format!("/apis/{api_version}")
    };
    let resource = format!("{}s", object["kind"].as_str().expect("kind").to_lowercase());
    let name = object["metadata"]["name"].as_str().expect("metadata.name");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{resource}/{name}"),
        None => format!("{prefix}/{resource}/{name}"),
    }
}

/// `/api/v1` or `/apis/<group>/<version>`, and the segments after it.
fn split(path: &str) -> Option<(String, Vec<String>)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (prefix, rest) = match *parts.first()? {
        "api" if parts.len() >= 2 => (format!("/api/{}", parts[1]), &parts[2..]),
        "apis" if parts.len() >= 3 => (format!("/apis/{}/{}", parts[1], parts[2]), &parts[3..]),
        _ => return None,
    };
    Some((prefix, rest.iter().map(|s| s.to_string()).collect()))
}

/// Whether the object at `object` (segments) is in `collection`.
fn member(collection: &[String], object: &[String]) -> bool {
    match (collection, object) {
        ([res], [r, _]) => r == res,
        ([res], [n, _, r, _]) => n == "namespaces" && r == res,
        ([n, ns, res], [n2, ns2, r, _]) => n == "namespaces" && n2 == n && ns2 == ns && r == res,
        _ => false,
    }
}

fn decode(text: &str) -> String {
    text.replace("%3D", "=")
        .replace("%3d", "=")
        .replace("%2C", ",")
        .replace("%2c", ",")
        .replace("%2F", "/")
        .replace("%2f", "/")
}

fn selector(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("fieldSelector="))
        .flat_map(|s| {
            decode(s)
                .split(',')
                .filter_map(|t| {
                    t.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn selected(object: &Value, selector: &[(String, String)]) -> bool {
    selector.iter().all(|(field, want)| {
        let got = match field.as_str() {
            "metadata.name" => &object["metadata"]["name"],
            "metadata.namespace" => &object["metadata"]["namespace"],
            "type" => &object["type"],
            _ => return true,
        };
        got.as_str() == Some(want.as_str())
    })
}

fn full(status: u16, value: &Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(value).unwrap())).boxed_unsync())
        .unwrap()
}

fn status(code: u16, reason: &str) -> Reply {
    full(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("fake {reason}"), "reason": reason, "code": code}),
    )
}

/// Stores `object` at `path` with a new resource version and tells the
/// watches (`kind`: ADDED, MODIFIED).
fn store(world: &mut World, path: &str, mut object: Value, kind: &str) -> Value {
    world.version += 1;
    object["metadata"]["resourceVersion"] = json!(world.version.to_string());
    if object["metadata"]["uid"].is_null() {
        object["metadata"]["uid"] = json!(format!("uid-{}", world.version));
    }
    world.objects.insert(path.to_string(), object.clone());
    notify(world, path, &object, kind);
    object
}

fn notify(world: &mut World, path: &str, object: &Value, kind: &str) {
    let Some((prefix, segs)) = split(path) else {
        return;
    };
    let line = format!("{}\n", json!({"type": kind, "object": object}));
    world.watches.retain(|w| {
        if w.prefix != prefix || !member(&w.collection, &segs) || !selected(object, &w.selector) {
            return !w.tx.is_closed();
        }
        w.tx.unbounded_send(Ok(Frame::data(Bytes::from(line.clone()))))
            .is_ok()
    });
}

/// JSON merge patch, except that arrays of objects with a `name` merge by
/// name (as a strategic merge patch of webhooks does).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (key, value) in p {
                if value.is_null() {
                    t.remove(key);
                } else {
                    merge(t.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (Value::Array(t), Value::Array(p))
            if p.iter().all(|v| v.get("name").is_some()) && !p.is_empty() =>
        {
            for item in p {
                match t.iter_mut().find(|x| x.get("name") == item.get("name")) {
                    Some(existing) => merge(existing, item),
                    None => t.push(item.clone()),
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn serve(world: &Mutex<World>, method: String, path: String, query: String, body: Value) -> Reply {
    let mut world = world.lock().unwrap();
    world.log.push(Seen {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
    });
    let Some((prefix, segs)) = split(&path) else {
        return status(404, "NotFound");
    };
    let is_collection = segs.len() % 2 == 1;
    if method != "GET"
        && method != "DELETE"
        && !query
            .split('&')
            .any(|pair| pair == "fieldManager=outrigger")
    {
        world.violations.push(format!(
            "{method} {path}: a write without fieldManager=outrigger"
        ));
        return status(400, "BadRequest");
    }
    match method.as_str() {
        "GET" if query.split('&').any(|p| p == "watch=true") => {
            let (tx, rx) = mpsc::unbounded();
            world.watches.push(Watch {
                prefix,
                collection: segs,
                selector: selector(&query),
                tx,
            });
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(StreamBody::new(rx).boxed_unsync())
                .unwrap()
        }
        "GET" if is_collection => {
            let wanted = selector(&query);
            let items: Vec<Value> = world
                .objects
                .iter()
                .filter(|(p, v)| {
                    split(p).is_some_and(|(pre, s)| pre == prefix && member(&segs, &s))
                        && selected(v, &wanted)
                })
                .map(|(_, v)| v.clone())
                .collect();
            full(
                200,
                &json!({"apiVersion": "v1", "kind": "List",
                    "metadata": {"resourceVersion": world.version.to_string()}, "items": items}),
            )
        }
        "GET" => match world.objects.get(&path) {
            Some(v) => full(200, v),
            None => status(404, "NotFound"),
        },
        "POST" if is_collection => {
            let name = body["metadata"]["name"].as_str().unwrap_or_default();
            let target = format!("{path}/{name}");
            if world.objects.contains_key(&target) {
                return status(409, "AlreadyExists");
            }
            let mut object = body.clone();
            if segs.len() == 3 {
                object["metadata"]["namespace"] = json!(segs[1]);
            }
            let stored = store(&mut world, &target, object, "ADDED");
            full(201, &stored)
        }
        "PUT" => {
            let Some(current) = world.objects.get(&path) else {
                return status(404, "NotFound");
            };
            let asked = &body["metadata"]["resourceVersion"];
            if !asked.is_null() && *asked != current["metadata"]["resourceVersion"] {
                return status(409, "Conflict");
            }
            let mut object = body.clone();
            object["metadata"]["uid"] = current["metadata"]["uid"].clone();
            let stored = store(&mut world, &path, object, "MODIFIED");
            full(200, &stored)
        }
        "PATCH" => {
            let Some(current) = world.objects.get(&path).cloned() else {
                return status(404, "NotFound");
            };
            let asked = &body["metadata"]["resourceVersion"];
            if !asked.is_null() && *asked != current["metadata"]["resourceVersion"] {
                return status(409, "Conflict");
            }
            let mut object = current;
            merge(&mut object, &body);
            let stored = store(&mut world, &path, object, "MODIFIED");
            full(200, &stored)
        }
        "DELETE" => match world.objects.remove(&path) {
            Some(object) => {
                notify(&mut world, &path, &object, "DELETED");
                full(200, &object)
            }
            None => status(404, "NotFound"),
        },
        _ => status(405, "MethodNotAllowed"),
    }
}

impl FakeApi {
    /// How many watches are open now (a dropped watch closes its stream).
    pub fn open_watches(&self) -> usize {
        let world = self.world.lock().unwrap();
        world.watches.iter().filter(|w| !w.tx.is_closed()).count()
    }
}

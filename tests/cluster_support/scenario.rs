//! A scripted Kubernetes API server for the cluster controllers' tests.
//!
//! A [`Scenario`] lists, in order, the requests the code under test must
//! make (method, path, and the parts of the body that matter) and what the
//! API server answers each. [`Scenario::start`] gives a `kube::Client` wired
//! to a tower-test mock and a [`Verifier`]; any request out of script, or any
//! request after the script ran out, fails the test with what was asked.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

/// What the fake API server answers.
pub enum Reply {
    /// A status and a JSON body.
    Json(u16, Value),
    /// The request's own body (with a resourceVersion set), as a create or
    /// replace would return it.
    Echo(u16),
    /// A transport failure (a timeout or reset connection).
    Transport,
    /// Runs `hook` (e.g. flips leadership) just before giving `reply`.
    After(Box<dyn FnOnce() + Send>, Box<Reply>),
}

/// One expected request and its answer.
pub struct Exchange {
    method: &'static str,
    path: String,
    query: Option<String>,
    served_as: Option<&'static str>,
    body: Option<Value>,
    reply: Reply,
}

/// The ordered script of a test.
#[derive(Default)]
pub struct Scenario {
    exchanges: Vec<Exchange>,
}

impl Scenario {
    /// An empty script: the code under test must make no request at all.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, method: &'static str, path: &str, body: Option<Value>, reply: Reply) -> Self {
        self.exchanges.push(Exchange {
            method,
            path: path.to_string(),
            query: None,
            served_as: None,
            body,
            reply,
        });
        self
    }

    /// Expects a GET of `path`.
    pub fn get(self, path: &str, reply: Reply) -> Self {
        self.push("GET", path, None, reply)
    }

    /// Expects a GET of `path` that the API server serves only as
    /// `media_type`: as a real API server does, a request whose `Accept`
    /// header allows neither it nor `*/*` is answered 406 Not Acceptable
    /// (and fails the script).
    pub fn get_served_as(mut self, path: &str, media_type: &'static str, reply: Reply) -> Self {
        self = self.get(path, reply);
        if let Some(last) = self.exchanges.last_mut() {
            last.served_as = Some(media_type);
        }
        self
    }

    /// Expects a GET of `path` whose query contains `query`.
    pub fn get_query(mut self, path: &str, query: &str, reply: Reply) -> Self {
        self = self.push("GET", path, None, reply);
        if let Some(last) = self.exchanges.last_mut() {
            last.query = Some(query.to_string());
        }
        self
    }

    /// Expects a POST to `path` whose JSON body contains `body`.
    pub fn post(self, path: &str, body: Value, reply: Reply) -> Self {
        self.push("POST", path, Some(body), reply)
    }

    /// Expects a PUT to `path` whose JSON body contains `body`.
    pub fn put(self, path: &str, body: Value, reply: Reply) -> Self {
        self.push("PUT", path, Some(body), reply)
    }

    /// Expects a PATCH of `path` whose JSON body contains `body`.
    pub fn patch(self, path: &str, body: Value, reply: Reply) -> Self {
        self.push("PATCH", path, Some(body), reply)
    }

    /// Starts the fake API server.
    pub fn start(self) -> (kube::Client, Verifier) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            for (step, exchange) in self.exchanges.into_iter().enumerate() {
                let Some((request, send)) = handle.next_request().await else {
                    return Err(format!(
                        "step {step}: the client went away; still expected {} {}",
                        exchange.method, exchange.path
                    ));
                };
                let method = request.method().to_string();
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let accept = request
                    .headers()
                    .get(http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .map_err(|e| format!("step {step}: reading body: {e}"))?;
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes)
                        .map_err(|e| format!("step {step}: body is not JSON: {e}"))?
                };
                log.lock()
                    .unwrap()
                    .push((method.clone(), path.clone(), body.clone()));
                if method != exchange.method || path != exchange.path {
                    return Err(format!(
                        "step {step}: expected {} {}, got {method} {path} (query {query}) body {body}",
                        exchange.method, exchange.path
                    ));
                }
                if let Some(media_type) = exchange.served_as
                    && !accepts(&accept, media_type)
                {
                    send.send_response(response(
                        406,
                        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "message": format!("only the following media types are accepted: {media_type}"),
                            "reason": "NotAcceptable", "code": 406}),
                    ));
                    return Err(format!(
                        "step {step}: {method} {path}: Accept {accept:?} does not allow {media_type}, which is all the API server serves there (406)"
                    ));
                }
                if matches!(method.as_str(), "POST" | "PUT" | "PATCH")
                    && !query
                        .split('&')
                        .any(|pair| pair == "fieldManager=outrigger")
                {
                    return Err(format!(
                        "step {step}: {method} {path}: a write without fieldManager=outrigger (query {query:?})"
                    ));
                }
                if let Some(q) = &exchange.query
                    && !query.contains(q.as_str())
                {
                    return Err(format!(
                        "step {step}: {method} {path}: query {query} lacks {q}"
                    ));
                }
                if let Some(expected) = &exchange.body
                    && let Err(at) = contains(&body, expected, "")
                {
                    return Err(format!(
                        "step {step}: {method} {path}: body differs at {at}\n expected (subset): {expected}\n got: {body}"
                    ));
                }
                let mut reply = exchange.reply;
                while let Reply::After(hook, inner) = reply {
                    hook();
                    reply = *inner;
                }
                match reply {
                    Reply::After(..) => unreachable!("unwrapped above"),
                    Reply::Json(status, value) => send.send_response(response(status, &value)),
                    Reply::Echo(status) => {
                        let mut value = body;
                        value["metadata"]["resourceVersion"] = json!("1000");
                        send.send_response(response(status, &value));
                    }
                    Reply::Transport => send.send_error(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "scripted timeout",
                    )),
                }
            }
            // Script done: the only acceptable end is the client going away.
            match handle.next_request().await {
                None => Ok(()),
                Some((request, _)) => Err(format!(
                    "unexpected request after the script: {} {}",
                    request.method(),
                    request.uri()
                )),
            }
        });
        let client = kube::Client::new(service, "default");
        (client, Verifier { task, seen })
    }
}

/// Checks, once every client clone is dropped, that the script was followed.
pub struct Verifier {
    task: tokio::task::JoinHandle<Result<(), String>>,
    seen: Arc<Mutex<Vec<(String, String, Value)>>>,
}

impl Verifier {
    /// Requests seen so far: method, path, body.
    pub fn seen(&self) -> Vec<(String, String, Value)> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits for the fake server to finish; panics with the first deviation.
    /// Drop every `Client` and `Api` first.
    pub async fn finish(self) {
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => panic!("API server script violated: {message}"),
            Err(e) => panic!("API server task failed: {e}"),
        }
    }
}

/// Whether an `Accept` header allows `media_type`, as the API server's
/// content negotiation decides it (parameters such as `q` ignored).
fn accepts(accept: &str, media_type: &str) -> bool {
    accept.trim().is_empty()
        || accept.split(',').any(|range| {
            let range = range.split(';').next().unwrap_or("").trim();
            range == media_type || range == "*/*"
        })
}

fn response(status: u16, value: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(value).unwrap()))
        .unwrap()
}

/// `Ok` when `actual` contains everything in `expected` (objects: a subset
/// of keys; arrays: same length, element-wise; scalars: equal).
fn contains(actual: &Value, expected: &Value, at: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, value) in e {
                let here = format!("{at}/{key}");
                match a.get(key) {
                    Some(inner) => contains(inner, value, &here)?,
                    None if value.is_null() => {}
                    None => return Err(here),
                }
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => {
            for (i, (x, y)) in a.iter().zip(e).enumerate() {
                contains(x, y, &format!("{at}/{i}"))?;
            }
            Ok(())
        }
        (a, e) if a == e => Ok(()),
        _ => Err(at.to_string()),
    }
}

/// An API error answer in the server's `Status` form.
pub fn status(code: u16, reason: &str) -> Reply {
    Reply::Json(
        code,
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": format!("scripted {reason}"),
            "reason": reason,
            "code": code,
        }),
    )
}

/// 404 NotFound.
pub fn not_found() -> Reply {
    status(404, "NotFound")
}

/// 409 AlreadyExists / Conflict.
pub fn conflict() -> Reply {
    status(409, "AlreadyExists")
}

/// 500 InternalError.
pub fn internal_error() -> Reply {
    status(500, "InternalError")
}

/// 200 with an object.
pub fn ok(value: Value) -> Reply {
    Reply::Json(200, value)
}

//! A MOCKED Kubernetes API server for the speaker's Kubernetes-mode tests: no real API server can
//! run on this machine, so a `tower-test` mock stands behind a real `kube::Client` (the approach
//! of lb-ipam's controller tests), answering like the API server does for what the speaker uses:
//! paginated lists and long-running watches (events since a `resourceVersion`, held open until
//! something changes), server-side apply (PATCH) on objects and `/status`, GET and DELETE. Tests
//! put and delete objects through [`FakeApi`], inject error codes per collection, and read every
//! request back.

#![allow(dead_code, unreachable_pub, reason = "shared by several test binaries")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub mod objects;

/// Collections the speaker watches.
pub const CLUSTER_CONFIGS: &str = "/apis/herald.io/v1alpha1/bgpclusterconfigs";
pub const PEER_CONFIGS: &str = "/apis/herald.io/v1alpha1/bgppeerconfigs";
pub const ADVERTISEMENTS: &str = "/apis/herald.io/v1alpha1/bgpadvertisements";
pub const OVERRIDES: &str = "/apis/herald.io/v1alpha1/bgpnodeconfigoverrides";
pub const L2_POLICIES: &str = "/apis/herald.io/v1alpha1/l2announcementpolicies";
pub const NODE_STATUSES: &str = "/apis/herald.io/v1alpha1/bgpnodestatuses";
pub const NODES: &str = "/api/v1/nodes";
pub const SERVICES: &str = "/api/v1/services";
pub const ENDPOINT_SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";
pub const SECRETS: &str = "/api/v1/namespaces/herald-system/secrets";
pub const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/herald-system/leases";

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

#[derive(Default)]
struct World {
    rv: u64,
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    log: BTreeMap<String, Vec<(u64, &'static str, Value)>>,
    errors: BTreeMap<String, u16>,
    seen: Vec<Seen>,
}

impl World {
    fn key(obj: &Value) -> String {
        let meta = &obj["metadata"];
        match meta["namespace"].as_str() {
            Some(ns) => format!("{ns}/{}", meta["name"].as_str().unwrap_or_default()),
            None => meta["name"].as_str().unwrap_or_default().to_owned(),
        }
    }

    fn put(&mut self, collection: &str, mut obj: Value) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let key = Self::key(&obj);
        let objects = self.objects.entry(collection.to_owned()).or_default();
        let kind = if objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        objects.insert(key, obj.clone());
        self.log
            .entry(collection.to_owned())
            .or_default()
            .push((self.rv, kind, obj.clone()));
        obj
    }

    fn delete(&mut self, collection: &str, key: &str) -> Option<Value> {
        let mut obj = self.objects.get_mut(collection)?.remove(key)?;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.log
            .entry(collection.to_owned())
            .or_default()
            .push((self.rv, "DELETED", obj.clone()));
        Some(obj)
    }
}

/// The mock API server.
pub struct FakeApi {
    world: Arc<Mutex<World>>,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

fn status(code: u16, reason: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("mock: {reason}"), "reason": reason, "code": code
    });
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).expect("json")))
        .expect("response")
}

fn ok(body: &Value) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("response")
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Splits `/apis/g/v/[namespaces/ns/]plural/name[/status]` into (collection, key, is_status),
/// where the collection is the namespaced path when the request named a namespace.
fn split_object_path(path: &str) -> Option<(String, String, bool)> {
    let (rest, is_status) = match path.strip_suffix("/status") {
        Some(r) => (r, true),
        None => (path, false),
    };
    let (collection, name) = rest.rsplit_once('/')?;
    let key = match collection.split_once("/namespaces/") {
        Some((_, tail)) => {
            let ns = tail.split('/').next()?;
            format!("{ns}/{name}")
        }
        None => name.to_owned(),
    };
    Some((collection.to_owned(), key, is_status))
}

/// The cluster-wide collection a namespaced collection's objects also appear in.
fn all_namespaces(collection: &str) -> Option<String> {
    let (prefix, tail) = collection.split_once("/namespaces/")?;
    let plural = tail.split_once('/')?.1;
    Some(format!("{prefix}/{plural}"))
}

impl FakeApi {
    /// Starts the mock; returns a client talking to it.
    pub fn start() -> (kube::Client, Self) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let world = Arc::new(Mutex::new(World::default()));
        let changed = Arc::new(Notify::new());
        let (w, c) = (world.clone(), changed.clone());
        let task = tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (w, c) = (w.clone(), c.clone());
                tokio::spawn(async move {
                    let response = Self::answer(w, c, req).await;
                    send.send_response(response);
                });
            }
        });
        (
            kube::Client::new(service, "default"),
            Self {
                world,
                changed,
                task,
            },
        )
    }

    async fn answer(
        world: Arc<Mutex<World>>,
        changed: Arc<Notify>,
        req: Request<Body>,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.expect("request body");
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().unwrap_or_default().to_owned();
        let method = parts.method.to_string();
        {
            let mut w = world.lock().expect("lock");
            w.seen.push(Seen {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                content_type: parts
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                body: body.clone(),
            });
        }
        let injected = {
            let w = world.lock().expect("lock");
            w.errors
                .iter()
                .find(|(prefix, _)| path.starts_with(prefix.as_str()))
                .map(|(_, code)| *code)
        };
        if let Some(code) = injected {
            return status(code, if code == 403 { "Forbidden" } else { "NotFound" });
        }
        match method.as_str() {
            "GET" if query_param(&query, "watch") == Some("true") => {
                let since: u64 = query_param(&query, "resourceVersion")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                loop {
                    let notified = changed.notified();
                    let lines: Vec<u8> = {
                        let w = world.lock().expect("lock");
                        // An error injected while the watch is open ends it: the API server
                        // closes watches (timeouts, restarts) and the next one is refused.
                        if let Some(code) = w
                            .errors
                            .iter()
                            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
                            .map(|(_, code)| *code)
                        {
                            return status(
                                code,
                                if code == 403 { "Forbidden" } else { "NotFound" },
                            );
                        }
                        w.log
                            .get(&path)
                            .map(|log| {
                                log.iter()
                                    .filter(|(rv, _, _)| *rv > since)
                                    .flat_map(|(_, kind, obj)| {
                                        let mut line = serde_json::to_vec(
                                            &json!({"type": kind, "object": obj}),
                                        )
                                        .expect("json");
                                        line.push(b'\n');
                                        line
                                    })
                                    .collect()
                            })
                            .unwrap_or_default()
                    };
                    if !lines.is_empty() {
                        return Response::builder()
                            .status(200)
                            .header("content-type", "application/json")
                            .body(Body::from(lines))
                            .expect("response");
                    }
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return ok(&Value::Null).map(|_| Body::from(Vec::new()));
                    }
                }
            }
            "GET" => {
                let w = world.lock().expect("lock");
                if let Some(items) = w.objects.get(&path) {
                    let items: Vec<&Value> = items.values().collect();
                    return ok(&json!({
                        "apiVersion": "v1", "kind": "List",
                        "metadata": {"resourceVersion": w.rv.to_string()},
                        "items": items,
                    }));
                }
                if let Some((collection, key, _)) = split_object_path(&path)
                    && let Some(obj) = w.objects.get(&collection).and_then(|c| c.get(&key))
                {
                    return ok(obj);
                }
                // An empty collection (lists of collections nobody filled).
                ok(&json!({
                    "apiVersion": "v1", "kind": "List",
                    "metadata": {"resourceVersion": w.rv.to_string()}, "items": [],
                }))
            }
            "PATCH" => {
                let Some((collection, key, is_status)) = split_object_path(&path) else {
                    return status(404, "NotFound");
                };
                let mut w = world.lock().expect("lock");
                let existing = w
                    .objects
                    .get(&collection)
                    .and_then(|c| c.get(&key))
                    .cloned();
                let merged = match (existing, is_status) {
                    (None, true) => return status(404, "NotFound"),
                    (None, false) => body.clone(),
                    (Some(mut obj), true) => {
                        obj["status"] = body["status"].clone();
                        obj
                    }
                    (Some(mut obj), false) => {
                        if let (Some(o), Some(b)) = (obj.as_object_mut(), body.as_object()) {
                            for (k, v) in b {
                                if k != "status" {
                                    o.insert(k.clone(), v.clone());
                                }
                            }
                        }
                        obj
                    }
                };
                let mut merged = merged;
                if let Some(ns) = key.split_once('/').map(|(ns, _)| ns.to_owned()) {
                    merged["metadata"]["namespace"] = json!(ns);
                }
                let stored = w.put(&collection, merged.clone());
                if let Some(all) = all_namespaces(&collection) {
                    w.put(&all, merged);
                }
                drop(w);
                changed.notify_waiters();
                ok(&stored)
            }
            "DELETE" => {
                let Some((collection, key, _)) = split_object_path(&path) else {
                    return status(404, "NotFound");
                };
                let mut w = world.lock().expect("lock");
                let gone = w.delete(&collection, &key);
                if let Some(all) = all_namespaces(&collection) {
                    w.delete(&all, &key);
                }
                drop(w);
                changed.notify_waiters();
                match gone {
                    Some(obj) => ok(&obj),
                    None => status(404, "NotFound"),
                }
            }
            _ => status(405, "MethodNotAllowed"),
        }
    }

    /// Creates or replaces an object in `collection` (watchers see ADDED/MODIFIED).
    pub fn put(&self, collection: &str, obj: Value) {
        self.world.lock().expect("lock").put(collection, obj);
        self.changed.notify_waiters();
    }

    /// Deletes an object (`name` or `namespace/name`) from `collection`.
    pub fn delete(&self, collection: &str, key: &str) {
        self.world.lock().expect("lock").delete(collection, key);
        self.changed.notify_waiters();
    }

    /// The stored object, if any.
    pub fn get(&self, collection: &str, key: &str) -> Option<Value> {
        self.world
            .lock()
            .expect("lock")
            .objects
            .get(collection)
            .and_then(|c| c.get(key))
            .cloned()
    }

    /// Answers every request under `prefix` with `code` (403, 404), or stops doing so.
    pub fn fail(&self, prefix: &str, code: Option<u16>) {
        let mut w = self.world.lock().expect("lock");
        match code {
            Some(c) => {
                w.errors.insert(prefix.to_owned(), c);
            }
            None => {
                w.errors.remove(prefix);
            }
        }
        drop(w);
        self.changed.notify_waiters();
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.world.lock().expect("lock").seen.clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear_seen(&self) {
        self.world.lock().expect("lock").seen.clear();
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Collects the output of the tracing events of the current thread (see [`Logs::capture`]), so
/// tests can count log lines.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Logs {
    /// Captures this thread's INFO-and-above events until the guard is dropped.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }

    /// How many times `needle` was logged.
    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}

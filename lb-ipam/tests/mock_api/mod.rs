//! A MOCKED Kubernetes API server for lb-ipam's controller tests: no real API server can run on
//! this machine, so a `tower-test` mock stands in for it behind a real `kube::Client`. It records
//! every request (method, path, query, content type, JSON body), answers LISTs from what the test
//! gave it, holds every WATCH open until the test sends an event, and answers a server-side apply
//! (PATCH) with the applied object, as the API server does. It keeps `coordination.k8s.io`
//! Leases as the API server does for leader election: create (409 if present), get, and update
//! only with the current `resourceVersion` (409 otherwise). Several clients can share one mock
//! ([`MockApi::client`]), each seen under its own number and each able to be cut off
//! ([`MockApi::partition`]: every request then gets 503). Anything else gets a 404 Status.

#![allow(dead_code, unreachable_pub, reason = "shared by several test binaries")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use kube::client::Body;
use lb_ipam::controller::SERVICE_CONDITION;
use serde_json::{Value, json};
use tower_test::mock::SendResponse;

/// Generous: CI machines are loaded.
const WAIT: Duration = Duration::from_secs(60);

/// One request the mock API server received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which client sent it (0: the one [`MockApi::start`] returned).
    pub client: usize,
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    /// LIST answers by collection path.
    lists: BTreeMap<String, Value>,
    /// Open WATCH requests, by path, not answered yet.
    watches: Vec<(String, SendResponse<Response<Body>>)>,
    /// Leases by object path.
    leases: BTreeMap<String, Value>,
    /// Last resourceVersion handed out.
    version: u64,
    /// Clients whose requests fail with 503.
    partitioned: Vec<usize>,
    /// Clients handed out so far.
    clients: usize,
}

/// The mock server task and what it has seen; the task stops on drop.
pub struct MockApi {
    state: Arc<Mutex<State>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl MockApi {
    /// A server that answers LISTs of `lists` (collection path → list object).
    pub fn start(lists: &[(&str, Value)]) -> (kube::Client, Self) {
        let state = Arc::new(Mutex::new(State {
            lists: lists
                .iter()
                .map(|(path, list)| ((*path).to_owned(), list.clone()))
                .collect(),
            ..State::default()
        }));
        let mut api = Self {
            state,
            tasks: Vec::new(),
        };
        let client = api.client();
        (client, api)
    }

    /// Another client of the same server (its requests are seen under the next number).
    pub fn client(&mut self) -> kube::Client {
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let shared = self.state.clone();
        let id = {
            let mut st = shared.lock().expect("lock");
            st.clients += 1;
            st.clients - 1
        };
        self.tasks.push(tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.expect("request body");
                let seen = Seen {
                    client: id,
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().unwrap_or_default().to_owned(),
                    content_type: parts
                        .headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                let mut st = shared.lock().expect("lock");
                st.seen.push(seen.clone());
                if st.partitioned.contains(&id) {
                    send.send_response(status_response(503));
                    continue;
                }
                if seen.path.contains("/leases") {
                    send.send_response(st.lease_request(&seen));
                    continue;
                }
                let answer = match seen.method.as_str() {
                    "GET" if seen.query.contains("watch=true") => {
                        st.watches.push((seen.path, send));
                        continue;
                    }
                    "GET" => st.lists.get(&seen.path).cloned(),
                    "PATCH" => Some(applied(&seen)),
                    _ => None,
                };
                send.send_response(match answer {
                    Some(a) => json_response(&serde_json::to_vec(&a).expect("json")),
                    None => status_response(404),
                });
            }
        }));
        kube::Client::new(mock, "default")
    }

    /// Cuts client `id` off: its requests still arrive (and are seen) but fail with 503.
    pub fn partition(&self, id: usize) {
        self.state.lock().expect("lock").partitioned.push(id);
    }

    /// The Lease at `path`, if any.
    pub fn lease(&self, path: &str) -> Option<Value> {
        self.state.lock().expect("lock").leases.get(path).cloned()
    }

    /// Every request so far, taken out (the next call sees only newer ones).
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().expect("lock").seen)
    }

    /// Every request so far, left in place.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("lock").seen.clone()
    }

    /// Waits until some PATCH seen so far satisfies `pred`, and returns it.
    pub async fn wait_for_patch(&self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self
                .seen()
                .into_iter()
                .find(|s| s.method == "PATCH" && pred(s))
            {
                return s;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Answers the open WATCH on the collection whose path ends with `collection` with one
    /// MODIFIED event; that stream then ends and the watcher opens a new watch, held open.
    pub async fn send_modified(&self, collection: &str, object: Value) {
        let deadline = Instant::now() + WAIT;
        let send = loop {
            {
                let mut st = self.state.lock().expect("lock");
                if let Some(i) = st.watches.iter().position(|(p, _)| p.ends_with(collection)) {
                    break st.watches.remove(i).1;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the {collection} watch never opened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut line =
            serde_json::to_vec(&json!({"type": "MODIFIED", "object": object})).expect("event");
        line.push(b'\n');
        send.send_response(json_response(&line));
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl State {
    /// Create, get or compare-and-swap update of a Lease, as the API server does them.
    fn lease_request(&mut self, seen: &Seen) -> Response<Body> {
        let name_of = |v: &Value| {
            v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let (path, exists) = match seen.method.as_str() {
            "POST" => {
                let path = format!("{}/{}", seen.path, name_of(&seen.body));
                let exists = self.leases.contains_key(&path);
                (path, exists)
            }
            _ => (seen.path.clone(), self.leases.contains_key(&seen.path)),
        };
        let current_version = |st: &Self| st.leases[&path]["metadata"]["resourceVersion"].clone();
        match seen.method.as_str() {
            "GET" if exists => {
                json_response(&serde_json::to_vec(&self.leases[&path]).expect("json"))
            }
            "POST" if exists => status_response(409),
            "PUT"
                if exists && current_version(self) != seen.body["metadata"]["resourceVersion"] =>
            {
                status_response(409)
            }
            "POST" | "PUT" if seen.method == "POST" || exists => {
                self.version += 1;
                let mut object = seen.body.clone();
                object["metadata"]["resourceVersion"] = json!(self.version.to_string());
                self.leases.insert(path, object.clone());
                json_response(&serde_json::to_vec(&object).expect("json"))
            }
            _ => status_response(404),
        }
    }
}

/// The addresses a Service status patch puts in `status.loadBalancer.ingress`.
pub fn ingress(s: &Seen) -> Vec<String> {
    s.body["status"]["loadBalancer"]["ingress"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["ip"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Status, reason and message of the controller's condition in a Service status patch (empty
/// strings where absent).
pub fn condition(s: &Seen) -> (String, String, String) {
    let c = s.body["status"]["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == SERVICE_CONDITION))
        .cloned()
        .unwrap_or(Value::Null);
    (
        c["status"].as_str().unwrap_or_default().to_owned(),
        c["reason"].as_str().unwrap_or_default().to_owned(),
        c["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The object a server-side apply leaves: the applied one. A pool's status patch lacks `spec`,
/// which the type requires, so an empty one is added as the real object would have it.
fn applied(seen: &Seen) -> Value {
    let mut answer = seen.body.clone();
    if seen.path.contains("/loadbalancerippools/")
        && let Some(obj) = answer.as_object_mut()
    {
        obj.entry("spec").or_insert(json!({"blocks": []}));
    }
    answer
}

fn status_response(code: u16) -> Response<Body> {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        _ => "ServiceUnavailable",
    };
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": format!("mock answer {code}"), "reason": reason, "code": code});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).expect("json")))
        .expect("response")
}

fn json_response(body: &[u8]) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("response")
}

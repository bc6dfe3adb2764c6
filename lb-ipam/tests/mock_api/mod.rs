//! A MOCKED Kubernetes API server for lb-ipam's controller tests: no real API server can run on
//! this machine, so a `tower-test` mock stands in for it behind a real `kube::Client`. It records
//! every request (method, path, query, content type, JSON body), answers LISTs from what the test
//! gave it, holds every WATCH open until the test sends an event, and answers a server-side apply
//! (PATCH) with the applied object, as the API server does. Anything else gets a 404 Status.

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
}

/// The mock server task and what it has seen; the task stops on drop.
pub struct MockApi {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl MockApi {
    /// A server that answers LISTs of `lists` (collection path → list object).
    pub fn start(lists: &[(&str, Value)]) -> (kube::Client, Self) {
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let state = Arc::new(Mutex::new(State {
            lists: lists
                .iter()
                .map(|(path, list)| ((*path).to_owned(), list.clone()))
                .collect(),
            ..State::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.expect("request body");
                let seen = Seen {
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
                let answer = match seen.method.as_str() {
                    "GET" if seen.query.contains("watch=true") => {
                        st.watches.push((seen.path, send));
                        continue;
                    }
                    "GET" => st.lists.get(&seen.path).cloned(),
                    "PATCH" => Some(applied(&seen)),
                    _ => None,
                };
                let answer = answer.unwrap_or_else(|| {
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})
                });
                send.send_response(json_response(&serde_json::to_vec(&answer).expect("json")));
            }
        });
        (kube::Client::new(mock, "default"), Self { state, task })
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
        self.task.abort();
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

fn json_response(body: &[u8]) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("response")
}

//! The controller's watch loop (`controller::run`) against a MOCKED Kubernetes API server: no
//! real API server can run on this machine, so a `tower-test` mock stands in for it behind a real
//! `kube::Client`. The mock answers the initial LIST of Services, pools and Namespaces, holds
//! every WATCH open (answering one only when the test says so, with a pool edit), and echoes
//! server-side-apply PATCHes. Checks that `run` syncs once its caches are ready and syncs again
//! after a watch event, without reshuffling.

#![cfg(feature = "kubernetes")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use k8s_openapi::api::core::v1::{Service, ServiceSpec as K8sServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::client::Body;
use lb_ipam::controller::SERVICE_CONDITION;
use lb_ipam::crd::{IpBlock, LoadBalancerIPPool, LoadBalancerIPPoolSpec};
use serde_json::{Value, json};
use tower_test::mock::SendResponse;

/// A request the mock received: method, path, query and JSON body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    body: Value,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    /// Open WATCH requests, by path, not answered yet.
    watches: Vec<(String, SendResponse<Response<Body>>)>,
}

struct MockApi {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

fn pool(cidr: &str, resource_version: &str) -> Value {
    let mut p = LoadBalancerIPPool::new(
        "p",
        LoadBalancerIPPoolSpec {
            blocks: vec![IpBlock {
                cidr: Some(cidr.into()),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    p.metadata.resource_version = Some(resource_version.into());
    p.metadata.creation_timestamp = Some(lb_ipam::controller::now());
    serde_json::to_value(&p).expect("pool json")
}

fn service() -> Value {
    let s = Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(K8sServiceSpec {
            type_: Some("LoadBalancer".into()),
            ..Default::default()
        }),
        status: None,
    };
    serde_json::to_value(&s).expect("service json")
}

fn json_response(v: &Value) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).expect("json")))
        .expect("response")
}

impl MockApi {
    fn start() -> (kube::Client, Self) {
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.expect("request body");
                let seen = Seen {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().unwrap_or_default().to_owned(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                let mut st = shared.lock().expect("lock");
                st.seen.push(seen.clone());
                if seen.method == "GET" && seen.query.contains("watch=true") {
                    st.watches.push((seen.path, send));
                    continue;
                }
                let answer = match (seen.method.as_str(), seen.path.as_str()) {
                    ("GET", "/api/v1/services") => json!({
                        "apiVersion": "v1", "kind": "ServiceList",
                        "metadata": {"resourceVersion": "1"}, "items": [service()],
                    }),
                    ("GET", "/api/v1/namespaces") => json!({
                        "apiVersion": "v1", "kind": "NamespaceList",
                        "metadata": {"resourceVersion": "1"}, "items": [],
                    }),
                    ("GET", "/apis/herald.io/v1alpha1/loadbalancerippools") => json!({
                        "apiVersion": "herald.io/v1alpha1", "kind": "LoadBalancerIPPoolList",
                        "metadata": {"resourceVersion": "1"}, "items": [pool("10.0.0.0/24", "1")],
                    }),
                    ("PATCH", path) => {
                        // The real server returns the whole object; a pool needs its spec.
                        let mut answer = seen.body.clone();
                        if path.contains("/loadbalancerippools/")
                            && let Some(obj) = answer.as_object_mut()
                        {
                            obj.entry("spec").or_insert(json!({"blocks": []}));
                        }
                        answer
                    }
                    _ => {
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})
                    }
                };
                send.send_response(json_response(&answer));
            }
        });
        (kube::Client::new(mock, "default"), Self { state, task })
    }

    /// Waits (generously: CI machines are loaded) until `pred` holds for the PATCHes seen.
    async fn wait_for_patch(&self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self
                .state
                .lock()
                .expect("lock")
                .seen
                .iter()
                .find(|s| s.method == "PATCH" && pred(s))
            {
                return s.clone();
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Answers the open pool WATCH with one MODIFIED event; the stream then ends and the
    /// watcher opens a new watch, which stays open.
    async fn send_pool_event(&self, object: Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let send = loop {
            {
                let mut st = self.state.lock().expect("lock");
                if let Some(i) = st
                    .watches
                    .iter()
                    .position(|(p, _)| p.ends_with("/loadbalancerippools"))
                {
                    break st.watches.remove(i).1;
                }
            }
            assert!(Instant::now() < deadline, "the pool watch never opened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut line =
            serde_json::to_vec(&json!({"type": "MODIFIED", "object": object})).expect("event");
        line.push(b'\n');
        send.send_response(
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from(line))
                .expect("response"),
        );
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Aborts the spawned controller even when an assertion fails.
struct AbortOnDrop(tokio::task::JoinHandle<lb_ipam::Result<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn ingress(s: &Seen) -> Vec<String> {
    s.body["status"]["loadBalancer"]["ingress"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["ip"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn reason(s: &Seen) -> String {
    s.body["status"]["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == SERVICE_CONDITION))
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn run_syncs_after_listing_and_again_after_a_pool_edit() {
    let (client, api) = MockApi::start();
    let _run = AbortOnDrop(tokio::spawn(lb_ipam::controller::run(
        client,
        Duration::from_millis(20),
    )));
    const STATUS: &str = "/api/v1/namespaces/shop/services/web/status";

    // Caches ready -> first pass: the service gets the pool's first address.
    let first = api
        .wait_for_patch("the first service status", |s| s.path == STATUS)
        .await;
    assert_eq!(ingress(&first), ["10.0.0.1"]);
    assert!(first.query.contains("fieldManager=herald-lb-ipam"));
    api.wait_for_patch("the pool status", |s| {
        s.path == "/apis/herald.io/v1alpha1/loadbalancerippools/p/status"
    })
    .await;
    {
        let st = api.state.lock().expect("lock");
        for list in [
            "/api/v1/services",
            "/api/v1/namespaces",
            "/apis/herald.io/v1alpha1/loadbalancerippools",
        ] {
            assert!(
                st.seen
                    .iter()
                    .any(|s| s.method == "GET" && s.path == list && !s.query.contains("watch")),
                "no LIST of {list}"
            );
        }
    }

    // A watch event moves the pool away: the address is reported lost, never moved.
    api.send_pool_event(pool("10.0.1.0/24", "2")).await;
    let lost = api
        .wait_for_patch("the lost-address status", |s| {
            s.path == STATUS && reason(s) == "AddressLost"
        })
        .await;
    assert_eq!(ingress(&lost), Vec::<String>::new());
    let st = api.state.lock().expect("lock");
    let patches: Vec<&Seen> = st.seen.iter().filter(|s| s.path == STATUS).collect();
    assert!(
        patches.iter().all(|s| {
            let ips = ingress(s);
            ips.is_empty() || ips == ["10.0.0.1"]
        }),
        "the service was given another address: {patches:#?}"
    );
}

//! The controller's watch loop (`controller::run`) against a MOCKED Kubernetes API server: no
//! real API server can run on this machine, so a `tower-test` mock stands in for it behind a real
//! `kube::Client`. The mock answers the initial LIST of Services, pools and Namespaces, holds
//! every WATCH open (answering one only when the test says so, with a pool edit), and echoes
//! server-side-apply PATCHes. Checks that `run` syncs once its caches are ready and syncs again
//! after a watch event, without reshuffling; and that with leader election (`run_elected`, two
//! replicas on one mock) only the Lease holder ever writes status: a crashed leader is replaced
//! after the lease, and a leader cut off from the API server stops writing before the standby
//! starts.

#![cfg(feature = "kubernetes")]

use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServiceSpec as K8sServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use lb_ipam::controller::{Health, LeaderConfig, LeaderTiming};
use lb_ipam::crd::{IpBlock, LoadBalancerIPPool, LoadBalancerIPPoolSpec};
use serde_json::{Value, json};

mod mock_api;
use mock_api::{MockApi, Seen, condition, ingress};

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

/// Aborts the spawned controller even when an assertion fails.
struct AbortOnDrop(tokio::task::JoinHandle<lb_ipam::Result<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lists() -> [(&'static str, Value); 3] {
    [
        (
            "/api/v1/services",
            json!({"apiVersion": "v1", "kind": "ServiceList",
                   "metadata": {"resourceVersion": "1"}, "items": [service()]}),
        ),
        (
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "NamespaceList",
                   "metadata": {"resourceVersion": "1"}, "items": []}),
        ),
        (
            "/apis/herald.io/v1alpha1/loadbalancerippools",
            json!({"apiVersion": "herald.io/v1alpha1", "kind": "LoadBalancerIPPoolList",
                   "metadata": {"resourceVersion": "1"}, "items": [pool("10.0.0.0/24", "1")]}),
        ),
    ]
}

const STATUS: &str = "/api/v1/namespaces/shop/services/web/status";

#[tokio::test]
async fn run_syncs_after_listing_and_again_after_a_pool_edit() {
    let (client, api) = MockApi::start(&lists());
    let _run = AbortOnDrop(tokio::spawn(lb_ipam::controller::run(
        client,
        Duration::from_millis(20),
    )));

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
        let seen = api.seen();
        for list in [
            "/api/v1/services",
            "/api/v1/namespaces",
            "/apis/herald.io/v1alpha1/loadbalancerippools",
        ] {
            assert!(
                seen.iter()
                    .any(|s| s.method == "GET" && s.path == list && !s.query.contains("watch")),
                "no LIST of {list}"
            );
        }
    }

    // A watch event moves the pool away: the address is reported lost, never moved.
    api.send_modified("/loadbalancerippools", pool("10.0.1.0/24", "2"))
        .await;
    let lost = api
        .wait_for_patch("the lost-address status", |s| {
            s.path == STATUS && condition(s).1 == "AddressLost"
        })
        .await;
    assert_eq!(ingress(&lost), Vec::<String>::new());
    let seen = api.seen();
    let patches: Vec<&Seen> = seen.iter().filter(|s| s.path == STATUS).collect();
    assert!(
        patches.iter().all(|s| {
            let ips = ingress(s);
            ips.is_empty() || ips == ["10.0.0.1"]
        }),
        "the service was given another address: {patches:#?}"
    );
}

/// Short timers so the tests take seconds: a 2 s lease, 1.2 s renew deadline, 0.2 s tries.
fn elected(client: kube::Client, identity: &str) -> AbortOnDrop {
    let leader = LeaderConfig {
        namespace: "herald-system".into(),
        identity: identity.into(),
        timing: LeaderTiming {
            lease: Duration::from_secs(2),
            renew_deadline: Duration::from_millis(1200),
            retry: Duration::from_millis(200),
        },
    };
    AbortOnDrop(tokio::spawn(async move {
        lb_ipam::controller::run_elected(
            client,
            Duration::from_millis(20),
            &Health::default(),
            leader,
        )
        .await
    }))
}

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/herald-system/leases/herald-lb-ipam";

/// Status writes (services and pools) by `client`, in arrival order.
fn status_writes(api: &MockApi, client: usize) -> Vec<Seen> {
    api.seen()
        .into_iter()
        .filter(|s| s.client == client && s.method == "PATCH" && s.path.ends_with("/status"))
        .collect()
}

#[tokio::test]
async fn only_the_lease_holder_writes_and_a_crashed_leader_is_replaced() {
    let (a_client, mut api) = MockApi::start(&lists());
    let b_client = api.client();
    let a = elected(a_client, "a");
    api.wait_for_patch("a's first status write", |s| {
        s.client == 0 && s.path == STATUS
    })
    .await;
    let _b = elected(b_client, "b");
    // Three leases long: b stands by, a keeps renewing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        status_writes(&api, 1).is_empty(),
        "the standby wrote status"
    );
    let lease = api.lease(LEASE).expect("the lease exists");
    assert_eq!(lease["spec"]["holderIdentity"], "a", "{lease}");
    assert!(
        api.seen().iter().any(|s| s.client == 1 && s.path == LEASE),
        "b never looked at the lease"
    );

    // a crashes (nothing released): b takes over once the lease has run out, and allocates.
    drop(a);
    let taken = api
        .wait_for_patch("b's first status write", |s| {
            s.client == 1 && s.path == STATUS
        })
        .await;
    assert_eq!(
        ingress(&taken),
        ["10.0.0.1"],
        "the same address: it lives in Service status"
    );
    let lease = api.lease(LEASE).expect("the lease exists");
    assert_eq!(lease["spec"]["holderIdentity"], "b", "{lease}");
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_server_stops_writing_before_the_standby_starts() {
    let (a_client, mut api) = MockApi::start(&lists());
    let b_client = api.client();
    let _a = elected(a_client, "a");
    api.wait_for_patch("a's first status write", |s| {
        s.client == 0 && s.path == STATUS
    })
    .await;
    let _b = elected(b_client, "b");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // a loses the API server, then a pool edit reaches it over its open watch: its patches
    // fail (503) and it retries them with back-off, as long as it still believes it leads.
    api.partition(0);
    api.send_modified("/loadbalancerippools", pool("10.0.1.0/24", "2"))
        .await;
    let first_b = api
        .wait_for_patch("b's first status write", |s| {
            s.client == 1 && s.path == STATUS
        })
        .await;
    // Long enough for a's back-off (0.5, 1, 2, 4 s) to try again if it were still writing.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let seen = api.seen();
    let b_started = seen
        .iter()
        .position(|s| s.client == 1 && s.method == "PATCH" && s.path == first_b.path)
        .expect("b's write is in the log");
    let late: Vec<&Seen> = seen[b_started..]
        .iter()
        .filter(|s| s.client == 0 && s.method == "PATCH" && s.path.ends_with("/status"))
        .collect();
    assert!(late.is_empty(), "a wrote after b had started: {late:#?}");
    assert!(
        seen.iter().any(|s| s.client == 0
            && s.method == "PATCH"
            && s.path == STATUS
            && condition(s).1 == "AddressLost"),
        "a never tried to write the pool edit while it led (the test proves nothing)"
    );
}

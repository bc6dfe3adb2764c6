//! The controller's watch loop (`controller::run`) against a MOCKED Kubernetes API server: no
//! real API server can run on this machine, so a `tower-test` mock stands in for it behind a real
//! `kube::Client`. The mock answers the initial LIST of Services, pools and Namespaces, holds
//! every WATCH open (answering one only when the test says so, with a pool edit), and echoes
//! server-side-apply PATCHes. Checks that `run` syncs once its caches are ready and syncs again
//! after a watch event, without reshuffling.

#![cfg(feature = "kubernetes")]

use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServiceSpec as K8sServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
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

#[tokio::test]
async fn run_syncs_after_listing_and_again_after_a_pool_edit() {
    let (client, api) = MockApi::start(&[
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
    ]);
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

//! Controller scenarios against a MOCKED Kubernetes API server: no real API server can run on
//! this machine, so a `tower-test` mock stands in for it behind a real `kube::Client`. The mock
//! records every request (method, path, query, content type, JSON body) and answers like the
//! API server does for a server-side apply (it returns the applied object). Scenarios: create,
//! update, delete, restart, pool edit, conflicting pools, foreign load-balancer class.

#![cfg(feature = "kubernetes")]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServiceSpec as K8sServiceSpec, ServiceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use lb_ipam::controller::Controller;
use lb_ipam::crd::{IpBlock, LoadBalancerIPPool, LoadBalancerIPPoolSpec, LoadBalancerIPPoolStatus};

mod mock_api;
use mock_api::{MockApi, Seen, condition, ingress};

fn time(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).expect("timestamp"))
}

fn svc(ns: &str, name: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(K8sServiceSpec {
            type_: Some("LoadBalancer".into()),
            ..Default::default()
        }),
        status: None,
    }
}

fn pool(name: &str, cidr: &str, created: i64, priority: Option<u32>) -> LoadBalancerIPPool {
    let mut p = LoadBalancerIPPool::new(
        name,
        LoadBalancerIPPoolSpec {
            blocks: vec![IpBlock {
                cidr: Some(cidr.into()),
                ..Default::default()
            }],
            priority,
            ..Default::default()
        },
    );
    p.metadata.creation_timestamp = Some(time(created));
    p
}

/// Feeds applied status patches back into the objects, as the watch cache would.
fn apply(services: &mut [Service], pools: &mut [LoadBalancerIPPool], seen: &[Seen]) {
    for s in seen {
        let name = s.body["metadata"]["name"].as_str().expect("name");
        if s.path.starts_with("/api/v1/") {
            let ns = s.body["metadata"]["namespace"].as_str().expect("namespace");
            let target = services
                .iter_mut()
                .find(|x| {
                    x.metadata.name.as_deref() == Some(name)
                        && x.metadata.namespace.as_deref() == Some(ns)
                })
                .expect("patched service exists");
            let status: ServiceStatus =
                serde_json::from_value(s.body["status"].clone()).expect("status");
            target.status = Some(status);
        } else {
            let target = pools
                .iter_mut()
                .find(|x| x.metadata.name.as_deref() == Some(name))
                .expect("patched pool exists");
            let status: LoadBalancerIPPoolStatus =
                serde_json::from_value(s.body["status"].clone()).expect("pool status");
            target.status = Some(status);
        }
    }
}

trait AssertOk {
    fn assert_ok(self);
}

impl AssertOk for lb_ipam::controller::SyncReport {
    fn assert_ok(self) {
        assert!(self.failed.is_empty(), "patches failed: {:?}", self.failed);
    }
}

fn no_namespaces() -> BTreeMap<String, BTreeMap<String, String>> {
    BTreeMap::new()
}

#[tokio::test]
async fn create_writes_ingress_and_condition_by_server_side_apply() {
    let (client, api) = MockApi::start(&[]);
    let mut ctl = Controller::new(client);
    let mut services = vec![svc("shop", "web")];
    let mut pools = vec![pool("p", "10.0.0.0/24", 1, None)];
    ctl.sync(&services, &pools, &no_namespaces(), &time(100))
        .await
        .expect("sync")
        .assert_ok();
    let seen = api.take();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    let s = &seen[0];
    assert_eq!(s.method, "PATCH");
    assert_eq!(s.path, "/api/v1/namespaces/shop/services/web/status");
    assert!(
        s.query.contains("fieldManager=herald-lb-ipam"),
        "{}",
        s.query
    );
    assert!(s.query.contains("force=true"), "{}", s.query);
    assert_eq!(s.content_type, "application/apply-patch+yaml");
    assert_eq!(ingress(s), ["10.0.0.1"]);
    assert_eq!(condition(s).0, "True");
    assert_eq!(
        s.body["status"]["conditions"][0]["lastTransitionTime"],
        "1970-01-01T00:01:40Z"
    );
    let p = &seen[1];
    assert_eq!(
        p.path,
        "/apis/herald.io/v1alpha1/loadbalancerippools/p/status"
    );
    assert_eq!(p.body["status"]["used"], "1");
    assert_eq!(p.body["status"]["total"], "254");
    assert_eq!(p.body["status"]["conditions"][0]["status"], "False");

    // Once the cache shows our writes, a further pass has nothing to do.
    apply(&mut services, &mut pools, &seen);
    ctl.sync(&services, &pools, &no_namespaces(), &time(200))
        .await
        .expect("sync")
        .assert_ok();
    assert!(api.take().is_empty(), "second pass must be idempotent");
}

#[tokio::test]
async fn update_to_a_requested_address_moves_the_service_explicitly() {
    let (client, api) = MockApi::start(&[]);
    let mut ctl = Controller::new(client);
    let mut services = vec![svc("shop", "web")];
    let mut pools = vec![pool("p", "10.0.0.0/24", 1, None)];
    ctl.sync(&services, &pools, &no_namespaces(), &time(100))
        .await
        .expect("sync")
        .assert_ok();
    apply(&mut services, &mut pools, &api.take());
    services[0].metadata.annotations = Some(BTreeMap::from([(
        "lbipam.cilium.io/ips".to_owned(),
        "10.0.0.50".to_owned(),
    )]));
    ctl.sync(&services, &pools, &no_namespaces(), &time(200))
        .await
        .expect("sync")
        .assert_ok();
    let seen = api.take();
    assert_eq!(
        seen.len(),
        1,
        "only the service changes; pool counts stay: {seen:#?}"
    );
    assert_eq!(ingress(&seen[0]), ["10.0.0.50"]);
    // The condition stayed True, so its transition time is kept.
    assert_eq!(
        seen[0].body["status"]["conditions"][0]["lastTransitionTime"],
        "1970-01-01T00:01:40Z"
    );
}

#[tokio::test]
async fn delete_frees_the_address_for_a_waiting_service() {
    let (client, api) = MockApi::start(&[]);
    let mut ctl = Controller::new(client);
    let mut services = vec![svc("a", "s1"), svc("a", "s2"), svc("a", "s3")];
    let mut pools = vec![pool("p", "10.0.0.0/30", 1, None)];
    ctl.sync(&services, &pools, &no_namespaces(), &time(100))
        .await
        .expect("sync")
        .assert_ok();
    let seen = api.take();
    assert_eq!(ingress(&seen[0]), ["10.0.0.1"]);
    assert_eq!(ingress(&seen[1]), ["10.0.0.2"]);
    assert!(ingress(&seen[2]).is_empty());
    assert_eq!(condition(&seen[2]).1, "PoolExhausted");
    apply(&mut services, &mut pools, &seen);

    services.remove(0);
    ctl.sync(&services, &pools, &no_namespaces(), &time(200))
        .await
        .expect("sync")
        .assert_ok();
    let seen = api.take();
    let s3 = seen
        .iter()
        .find(|s| s.path.ends_with("/services/s3/status"))
        .expect("s3 patched");
    assert_eq!(ingress(s3), ["10.0.0.1"]);
    assert_eq!(condition(s3).0, "True");
    assert!(
        !seen.iter().any(|s| s.path.ends_with("/services/s2/status")),
        "s2 keeps its address untouched"
    );
}

#[tokio::test]
async fn restart_rebuilds_from_status_without_reshuffling() {
    let (client, api) = MockApi::start(&[]);
    let mut first = Controller::new(client.clone());
    let mut services = vec![svc("a", "m"), svc("a", "z")];
    let mut pools = vec![pool("p", "10.0.0.0/24", 1, None)];
    first
        .sync(&services, &pools, &no_namespaces(), &time(100))
        .await
        .expect("sync")
        .assert_ok();
    apply(&mut services, &mut pools, &api.take());
    drop(first);

    // A new service whose name sorts first appears while the controller is down.
    services.insert(0, svc("a", "0-new"));
    let mut restarted = Controller::new(client);
    restarted
        .sync(&services, &pools, &no_namespaces(), &time(300))
        .await
        .expect("sync")
        .assert_ok();
    let seen = api.take();
    let services_patched: Vec<&str> = seen
        .iter()
        .filter(|s| s.path.starts_with("/api/v1/"))
        .map(|s| s.body["metadata"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        services_patched,
        ["0-new"],
        "existing services must not be touched"
    );
    assert_eq!(ingress(&seen[0]), ["10.0.0.3"]);
}

#[tokio::test]
async fn pool_edit_reports_a_lost_address_and_never_moves_it() {
    let (client, api) = MockApi::start(&[]);
    let mut ctl = Controller::new(client.clone());
    let mut services = vec![svc("a", "web")];
    let mut pools = vec![pool("p", "10.0.0.0/24", 1, None)];
    ctl.sync(&services, &pools, &no_namespaces(), &time(100))
        .await
        .expect("sync")
        .assert_ok();
    apply(&mut services, &mut pools, &api.take());

    pools[0].spec.blocks[0].cidr = Some("10.0.1.0/24".into());
    pools[0].metadata.generation = Some(2);
    ctl.sync(&services, &pools, &no_namespaces(), &time(200))
        .await
        .expect("sync")
        .assert_ok();
    let seen = api.take();
    let web = &seen[0];
    assert!(
        ingress(web).is_empty(),
        "address must be released, not replaced"
    );
    let (status, reason, message) = condition(web);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "AddressLost"));
    assert!(message.contains("10.0.0.1"), "{message}");
    apply(&mut services, &mut pools, &seen);

    // Even a restarted controller (no memory) keeps the service waiting for its address.
    let mut restarted = Controller::new(client);
    restarted
        .sync(&services, &pools, &no_namespaces(), &time(300))
        .await
        .expect("sync")
        .assert_ok();
    assert!(
        api.take().is_empty(),
        "restart must not reassign a lost address"
    );

    // Putting the block back restores the same address.
    pools[0].spec.blocks[0].cidr = Some("10.0.0.0/24".into());
    restarted
        .sync(&services, &pools, &no_namespaces(), &time(400))
        .await
        .expect("sync")
        .assert_ok();
    let seen = api.take();
    assert_eq!(ingress(&seen[0]), ["10.0.0.1"]);
    assert_eq!(condition(&seen[0]).0, "True");
}

#[tokio::test]
async fn newer_overlapping_pool_is_marked_conflicting() {
    let (client, api) = MockApi::start(&[]);
    let mut ctl = Controller::new(client);
    let services = vec![svc("a", "web")];
    let pools = vec![
        // Newer, preferred by priority, but overlapping the older pool: it must allocate nothing.
        pool("b-new", "10.0.0.0/25", 2, Some(0)),
        pool("a-old", "10.0.0.0/24", 1, None),
    ];
    ctl.sync(&services, &pools, &no_namespaces(), &time(100))
        .await
        .expect("sync")
        .assert_ok();
    let seen = api.take();
    assert_eq!(ingress(&seen[0]), ["10.0.0.1"]);
    let new = seen
        .iter()
        .find(|s| s.path.ends_with("/loadbalancerippools/b-new/status"))
        .expect("b-new status");
    let cond = &new.body["status"]["conditions"][0];
    assert_eq!(cond["type"], "herald.io/PoolConflict");
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["reason"], "Overlap");
    assert!(
        cond["message"]
            .as_str()
            .unwrap_or_default()
            .contains("a-old")
    );
    let old = seen
        .iter()
        .find(|s| s.path.ends_with("/loadbalancerippools/a-old/status"))
        .expect("a-old status");
    assert_eq!(old.body["status"]["conditions"][0]["status"], "False");
    assert_eq!(old.body["status"]["used"], "1");
}

#[tokio::test]
async fn foreign_class_is_ignored_and_a_service_leaving_us_is_released() {
    let (client, api) = MockApi::start(&[]);
    let mut ctl = Controller::new(client);
    let mut foreign = svc("a", "other");
    if let Some(spec) = foreign.spec.as_mut() {
        spec.load_balancer_class = Some("example.com/lb".into());
    }
    let mut services = vec![foreign, svc("a", "web")];
    let mut pools = vec![pool("p", "10.0.0.0/24", 1, None)];
    ctl.sync(&services, &pools, &no_namespaces(), &time(100))
        .await
        .expect("sync")
        .assert_ok();
    let seen = api.take();
    assert!(!seen.iter().any(|s| s.path.contains("/services/other/")));
    apply(&mut services, &mut pools, &seen);

    if let Some(spec) = services[1].spec.as_mut() {
        spec.type_ = Some("ClusterIP".into());
    }
    ctl.sync(&services, &pools, &no_namespaces(), &time(200))
        .await
        .expect("sync")
        .assert_ok();
    let seen = api.take();
    let web = seen
        .iter()
        .find(|s| s.path.ends_with("/services/web/status"))
        .expect("web released");
    assert_eq!(
        web.body["status"],
        serde_json::json!({}),
        "empty apply gives our fields up"
    );
}

#[tokio::test]
async fn namespace_selector_uses_namespace_labels() {
    let (client, api) = MockApi::start(&[]);
    let mut ctl = Controller::new(client);
    let services = vec![svc("prod", "web"), svc("dev", "web")];
    let mut p = pool("prod-only", "10.0.0.0/24", 1, None);
    p.spec.namespace_selector = Some(lb_ipam::LabelSelector {
        match_labels: BTreeMap::from([("env".to_owned(), "production".to_owned())]),
        ..Default::default()
    });
    let namespaces = BTreeMap::from([
        (
            "prod".to_owned(),
            BTreeMap::from([("env".to_owned(), "production".to_owned())]),
        ),
        (
            "dev".to_owned(),
            BTreeMap::from([("env".to_owned(), "dev".to_owned())]),
        ),
    ]);
    ctl.sync(&services, &[p], &namespaces, &time(100))
        .await
        .expect("sync")
        .assert_ok();
    let seen = api.take();
    let dev = seen
        .iter()
        .find(|s| s.path == "/api/v1/namespaces/dev/services/web/status")
        .expect("dev");
    let prod = seen
        .iter()
        .find(|s| s.path == "/api/v1/namespaces/prod/services/web/status")
        .expect("prod");
    assert_eq!(ingress(prod), ["10.0.0.1"]);
    assert!(ingress(dev).is_empty());
    assert_eq!(condition(dev).1, "NoMatchingPool");
}

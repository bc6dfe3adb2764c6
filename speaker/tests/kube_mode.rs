//! Kubernetes-mode scenarios against a MOCKED API server (`kube_api`): no real Kubernetes API
//! server can run on this machine, so these tests exercise the real kube-rs client, reflectors,
//! watch handling, server-side apply and Lease calls against a mock that answers as the API
//! server does. What they pin: CR changes become the expected BGP/L2 desired state; Secret
//! rotation changes one peer's MD5 key and nothing else; deleted services are withdrawn; a
//! missing CRD or a forbidden resource is reported once while the rest keeps working; one that
//! turns unreadable after a good listing keeps its last objects (fail static) until it heals;
//! `BGPNodeStatus` is written by server-side apply at a bounded rate; the L2 membership store
//! keeps one Lease per node.

#![cfg(feature = "kubernetes")]

mod kube_api;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arp_responder::election::MembershipStore;
use kube_api::objects::*;
use kube_api::*;
use serde_json::json;
use speaker::advertise;

use speaker::sources::kube::crd::BGPNodeStatusStatus;
use speaker::sources::kube::reconcile;
use speaker::sources::kube::status::{Offer, StatusWriter};
use speaker::sources::kube::{Desired, Identity, KeyFiles, LeaseStore, SourceConfig};
use tokio::sync::watch;

fn identity() -> Identity {
    Identity {
        node_name: "node1".into(),
        namespace: "herald-system".into(),
        external_ips: Default::default(),
    }
}

/// The objects of a small cluster: two nodes, one cluster config with two peers (one with MD5),
/// their peer configs, one advertisement, one LoadBalancer service with an endpoint on node1.
fn seed(api: &FakeApi) {
    seed_two_tors(api);
    api.put(
        ENDPOINT_SLICES,
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "web-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": ["10.244.1.10"], "nodeName": "node1", "conditions": {"ready": true}}]}),
    );
}

fn start_source(
    client: kube::Client,
) -> (
    watch::Receiver<Option<Desired>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = watch::channel(None);
    let cfg = SourceConfig {
        identity: identity(),
        debounce: Duration::from_millis(20),
    };
    (
        rx,
        tokio::spawn(speaker::sources::kube::run(client, cfg, tx)),
    )
}

/// Waits (up to 20 s) for a desired state satisfying `pred`.
async fn wait_for(
    rx: &mut watch::Receiver<Option<Desired>>,
    what: &str,
    pred: impl Fn(&Desired) -> bool,
) -> Desired {
    let result = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(d) = rx.borrow_and_update().as_ref()
                && pred(d)
            {
                return d.clone();
            }
            if rx.changed().await.is_err() {
                panic!("source stopped while waiting for {what}");
            }
        }
    })
    .await;
    match result {
        Ok(d) => d,
        Err(_) => panic!(
            "timed out waiting for {what}; last: {:#?}",
            rx.borrow().as_ref().map(|d| &d.problems)
        ),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn prefixes_to(d: &Desired, peer: &str) -> Vec<String> {
    advertise::local_routes(&d.config, &reconcile::service_state(d))
        .get(&ip(peer))
        .map(|r| r.keys().map(ToString::to_string).collect())
        .unwrap_or_default()
}

fn hold_time(d: &Desired, peer: &str) -> Option<u16> {
    d.config
        .bgp
        .as_ref()?
        .peers
        .iter()
        .find(|p| p.name.as_deref() == Some(peer))
        .map(|p| p.timers.hold_time_seconds.0)
}

#[tokio::test]
async fn cr_changes_become_the_expected_desired_state() {
    let (client, api) = FakeApi::start();
    seed(&api);
    let (mut rx, task) = start_source(client);
    let d = wait_for(&mut rx, "the first desired state", |d| {
        d.config.bgp.is_some()
    })
    .await;
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(d.config.node.router_id.to_string(), "10.0.1.2");
    assert_eq!(hold_time(&d, "tor1"), Some(9));
    assert_eq!(
        prefixes_to(&d, "10.0.1.1"),
        ["10.200.0.10/32", "10.244.1.0/24"]
    );

    // Editing the BGPPeerConfig changes the peer's timers.
    api.put(PEER_CONFIGS, peer_config("plain", 30, None));
    let d = wait_for(&mut rx, "hold time 30", |d| {
        hold_time(d, "tor1") == Some(30)
    })
    .await;
    assert_eq!(
        prefixes_to(&d, "10.0.1.1").len(),
        2,
        "advertisements unchanged"
    );

    // Relabelling the node out of the selector removes BGP from this node.
    let mut off = node("node1", "10.0.1.2", "10.244.1.0/24");
    off["metadata"]["labels"]["bgp"] = json!("off");
    api.put(NODES, off);
    wait_for(&mut rx, "no BGP on node1", |d| d.config.bgp.is_none()).await;

    // An L2AnnouncementPolicy adds the L2 desired state with this node eligible.
    api.put(
        L2_POLICIES,
        json!({"apiVersion": "herald.io/v1alpha1", "kind": "L2AnnouncementPolicy",
               "metadata": {"name": "l2"}, "spec": {"loadBalancerIPs": true, "interfaces": ["^eth1$"]}}),
    );
    let d = wait_for(&mut rx, "an L2 config", |d| d.l2.is_some()).await;
    let l2 = d.l2.expect("l2");
    assert_eq!(l2.services.len(), 1);
    assert_eq!(l2.services[0].ips, vec![ip("10.200.0.10")]);
    assert_eq!(l2.interfaces.include, ["^eth1$"]);
    task.abort();
}

#[tokio::test]
async fn secret_rotation_changes_only_that_peers_key() {
    let (client, api) = FakeApi::start();
    seed(&api);
    let (mut rx, task) = start_source(client);
    let before = wait_for(&mut rx, "both peers", |d| {
        d.config.bgp.as_ref().is_some_and(|b| b.peers.len() == 2)
    })
    .await;
    assert_eq!(before.md5_keys[&ip("10.0.9.1")].0, b"first-key");
    assert!(!before.md5_keys.contains_key(&ip("10.0.1.1")));

    api.put(SECRETS, secret("second-key"));
    let after = wait_for(&mut rx, "the rotated key", |d| {
        d.md5_keys
            .get(&ip("10.0.9.1"))
            .is_some_and(|k| k.0 == b"second-key")
    })
    .await;
    // Only the key changed: both peers' configurations are otherwise identical.
    assert_eq!(before.config, after.config);

    // Once materialised as password files (what the BGP instance compares on reload), the
    // rotated peer's file changes and the unrelated peer's configuration does not.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = KeyFiles::new(dir.path().join("md5"));
    let (mut c1, mut c2) = (before.config.clone(), after.config.clone());
    files.apply(&mut c1, &before.md5_keys).expect("keys before");
    files.apply(&mut c2, &after.md5_keys).expect("keys after");
    let (p1, p2) = (
        &c1.bgp.as_ref().expect("bgp").peers,
        &c2.bgp.as_ref().expect("bgp").peers,
    );
    let tor1 = |ps: &[speaker::config::PeerConfig]| {
        ps.iter()
            .find(|p| p.name.as_deref() == Some("tor1"))
            .cloned()
    };
    let tor2 = |ps: &[speaker::config::PeerConfig]| {
        ps.iter()
            .find(|p| p.name.as_deref() == Some("tor2"))
            .cloned()
    };
    assert_eq!(tor1(p1), tor1(p2), "unrelated peer untouched");
    let (old, new) = (tor2(p1).expect("tor2"), tor2(p2).expect("tor2"));
    assert_ne!(old.password_file, new.password_file);
    let new_file = new.password_file.expect("key file");
    assert_eq!(std::fs::read(new_file).expect("read"), b"second-key");

    // A deleted Secret takes the signed peer out (with a problem), not the other one.
    api.delete(SECRETS, "herald-system/tor-auth");
    let d = wait_for(&mut rx, "signed peer removed", |d| {
        d.config.bgp.as_ref().is_some_and(|b| b.peers.len() == 1)
    })
    .await;
    assert_eq!(
        d.config.bgp.expect("bgp").peers[0].name.as_deref(),
        Some("tor1")
    );
    assert!(
        d.problems.iter().any(|p| p.contains("tor-auth not found")),
        "{:?}",
        d.problems
    );
    task.abort();
}

#[tokio::test]
async fn deleted_service_is_withdrawn() {
    let (client, api) = FakeApi::start();
    seed(&api);
    api.put(SERVICES, service("api", "10.200.0.11"));
    let (mut rx, task) = start_source(client);
    let d = wait_for(&mut rx, "two service routes", |d| {
        d.config.bgp.is_some() && prefixes_to(d, "10.0.1.1").len() == 3
    })
    .await;
    assert!(prefixes_to(&d, "10.0.1.1").contains(&"10.200.0.11/32".to_owned()));

    api.delete(SERVICES, "shop/api");
    let d = wait_for(&mut rx, "the deleted service withdrawn", |d| {
        prefixes_to(d, "10.0.1.1").len() == 2
    })
    .await;
    assert_eq!(
        prefixes_to(&d, "10.0.1.1"),
        ["10.200.0.10/32", "10.244.1.0/24"]
    );
    assert!(!d.allocations.keys().any(|k| k.name == "api"));

    // Losing its LoadBalancer address (status cleared by lb-ipam) withdraws it too.
    let mut web = service("web", "10.200.0.10");
    web["status"] = json!({});
    api.put(SERVICES, web);
    let d = wait_for(&mut rx, "web withdrawn", |d| {
        prefixes_to(d, "10.0.1.1").len() == 1
    })
    .await;
    assert_eq!(prefixes_to(&d, "10.0.1.1"), ["10.244.1.0/24"]);
    task.abort();
}

#[tokio::test]
async fn missing_crd_and_forbidden_resource_are_reported_once_and_the_rest_works() {
    let (logs, _guard) = Logs::capture();

    let (client, api) = FakeApi::start();
    seed(&api);
    api.fail(ADVERTISEMENTS, Some(404));
    api.fail(L2_POLICIES, Some(403));
    let (mut rx, task) = start_source(client);
    let d = wait_for(&mut rx, "a desired state despite the failures", |d| {
        d.config.bgp.is_some()
    })
    .await;
    assert_eq!(
        d.config.bgp.as_ref().expect("bgp").peers.len(),
        2,
        "BGP keeps working"
    );
    assert_eq!(
        prefixes_to(&d, "10.0.1.1"),
        Vec::<String>::new(),
        "no advertisements readable"
    );
    let crd = d
        .problems
        .iter()
        .filter(|p| {
            p.contains("bgpadvertisements.herald.io: CustomResourceDefinition not installed")
        })
        .count();
    let rbac = d
        .problems
        .iter()
        .filter(|p| p.contains("l2announcementpolicies.herald.io: forbidden (403)"))
        .count();
    assert_eq!((crd, rbac), (1, 1), "{:?}", d.problems);

    // The watches keep retrying (with back-off) without reporting again.
    let retried = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let lists = api
                .seen()
                .iter()
                .filter(|s| s.path == ADVERTISEMENTS)
                .count();
            if lists >= 3 {
                return lists;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the watcher retries");
    assert!(retried >= 3);
    let text = logs.text();
    assert_eq!(
        text.matches("CustomResourceDefinition not installed")
            .count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("forbidden (403)").count(), 1, "{text}");

    // Installing the CRD heals the resource: the advertisements apply and the problem goes.
    api.fail(ADVERTISEMENTS, None);
    let d = wait_for(&mut rx, "advertisements after the CRD appears", |d| {
        prefixes_to(d, "10.0.1.1").len() == 2
    })
    .await;
    assert!(
        d.problems.iter().all(|p| !p.contains("bgpadvertisements")),
        "{:?}",
        d.problems
    );
    assert_eq!(
        d.problems.len(),
        1,
        "the RBAC problem remains: {:?}",
        d.problems
    );
    task.abort();
}

/// Asserts that every desired state published during `period` satisfies `pred`.
async fn holds_for(
    rx: &mut watch::Receiver<Option<Desired>>,
    period: Duration,
    what: &str,
    pred: impl Fn(&Desired) -> bool,
) {
    let end = tokio::time::Instant::now() + period;
    loop {
        if let Some(d) = rx.borrow_and_update().as_ref() {
            assert!(
                pred(d),
                "{what}: {:?} {:?}",
                prefixes_to(d, "10.0.1.1"),
                d.problems
            );
        }
        if tokio::time::timeout_at(end, rx.changed()).await.is_err() {
            return;
        }
    }
}

/// Fail static: a collection that turns unreadable (`code`) after a good listing keeps its last
/// objects in use and reports the collection and the status; readable again, the problem goes and
/// changes apply again.
async fn unreadable_after_listing_keeps_the_last_objects(
    collection: &str,
    code: u16,
    problem: &str,
) {
    let (logs, _guard) = Logs::capture();
    let (client, api) = FakeApi::start();
    seed(&api);
    let (mut rx, task) = start_source(client);
    let routes = ["10.200.0.10/32", "10.244.1.0/24"];
    wait_for(&mut rx, "the service announced", |d| {
        prefixes_to(d, "10.0.1.1") == routes
    })
    .await;

    api.fail(collection, Some(code));
    let d = wait_for(&mut rx, "the problem reported", |d| {
        d.problems.iter().any(|p| p.contains(problem))
    })
    .await;
    assert_eq!(prefixes_to(&d, "10.0.1.1"), routes, "{:?}", d.problems);
    assert!(
        d.problems
            .iter()
            .any(|p| p.contains(problem) && p.contains("keeping the last listed objects")),
        "{:?}",
        d.problems
    );
    holds_for(
        &mut rx,
        Duration::from_secs(3),
        "the service stays announced",
        |d| prefixes_to(d, "10.0.1.1") == routes && d.problems.iter().any(|p| p.contains(problem)),
    )
    .await;
    assert_eq!(logs.count(problem), 1, "{}", logs.text());

    api.fail(collection, None);
    let d = wait_for(&mut rx, "the problem cleared", |d| d.problems.is_empty()).await;
    assert_eq!(prefixes_to(&d, "10.0.1.1"), routes);
    assert_eq!(logs.count("resource readable again"), 1, "{}", logs.text());

    // Watched again: a deleted service is withdrawn.
    api.delete(SERVICES, "shop/web");
    wait_for(&mut rx, "the deleted service withdrawn", |d| {
        prefixes_to(d, "10.0.1.1") == ["10.244.1.0/24"]
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn services_forbidden_after_listing_keep_their_routes_until_readable_again() {
    unreadable_after_listing_keeps_the_last_objects(SERVICES, 403, "services: forbidden (403)")
        .await;
}

#[tokio::test]
async fn advertisements_crd_gone_after_listing_keeps_its_routes_until_readable_again() {
    unreadable_after_listing_keeps_the_last_objects(
        ADVERTISEMENTS,
        404,
        "bgpadvertisements.herald.io: CustomResourceDefinition not installed (404)",
    )
    .await;
}

fn status_with(peers_established: u32, time: &str) -> BGPNodeStatusStatus {
    BGPNodeStatusStatus {
        local_asn: Some(65001),
        established_peers: peers_established,
        total_peers: 2,
        peers: Vec::new(),
        problems: Vec::new(),
        update_time: time.into(),
    }
}

#[tokio::test(start_paused = true)]
async fn status_is_written_by_server_side_apply_at_a_bounded_rate() {
    let (client, api) = FakeApi::start();
    let mut writer = StatusWriter::new(client.clone(), "node1", Duration::from_secs(5));

    // First write: the status patch finds no object, so it is created, then the status applied.
    let offer = writer
        .offer(&status_with(1, "2026-01-01T00:00:00Z"))
        .await
        .expect("write");
    assert_eq!(offer, Offer::Written);
    let seen = api.seen();
    let patches: Vec<_> = seen.iter().filter(|s| s.method == "PATCH").collect();
    assert_eq!(patches.len(), 3, "{patches:#?}");
    for p in &patches {
        assert_eq!(p.content_type, "application/apply-patch+yaml");
        assert!(p.query.contains("fieldManager=herald-speaker") && p.query.contains("force=true"));
    }
    assert!(patches[0].path.ends_with("/bgpnodestatuses/node1/status"));
    assert_eq!(patches[1].path, format!("{NODE_STATUSES}/node1"));
    assert_eq!(patches[1].body["spec"]["nodeName"], "node1");
    let stored = api
        .get(NODE_STATUSES, "node1")
        .expect("status object exists");
    assert_eq!(stored["status"]["establishedPeers"], 1);
    assert_eq!(stored["status"]["localASN"], 65001);

    // Only the write time changed: nothing is written.
    api.clear_seen();
    let offer = writer
        .offer(&status_with(1, "2026-01-01T00:00:03Z"))
        .await
        .expect("offer");
    assert_eq!(offer, Offer::Unchanged);
    // A real change within the interval waits.
    let offer = writer
        .offer(&status_with(2, "2026-01-01T00:00:03Z"))
        .await
        .expect("offer");
    assert!(
        matches!(offer, Offer::TooSoon(d) if d <= Duration::from_secs(5)),
        "{offer:?}"
    );
    assert!(api.seen().is_empty());

    // Driven by a stream of 20 changes over 2 s, the writer writes at most once per 5 s and
    // ends with the latest value.
    let (tx, rx) = watch::channel(status_with(2, "t"));
    let runner = tokio::spawn(speaker::sources::kube::status::run(writer, rx));
    for i in 0..20u32 {
        tx.send(status_with(3 + i, "t")).expect("send");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(12)).await;
    let writes = api.seen().iter().filter(|s| s.method == "PATCH").count();
    assert!(
        (1..=3).contains(&writes),
        "{writes} writes in 14 s of virtual time"
    );
    let stored = api.get(NODE_STATUSES, "node1").expect("status");
    assert_eq!(
        stored["status"]["establishedPeers"], 22,
        "the latest status wins"
    );
    runner.abort();
}

#[tokio::test]
async fn lease_store_keeps_one_lease_per_node_and_reports_members() {
    let (client, api) = FakeApi::start();
    let now = Arc::new(Mutex::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
    ));
    let clock = {
        let now = now.clone();
        Arc::new(move || *now.lock().expect("lock"))
    };
    let a = LeaseStore::with_clock(client.clone(), "herald-system", clock.clone());
    let b = LeaseStore::with_clock(client.clone(), "herald-system", clock);
    let lease = Duration::from_millis(2_500);

    a.renew("node-a", lease).await.expect("renew a");
    let m = b.renew("node-b", lease).await.expect("renew b");
    assert_eq!(
        m.members,
        BTreeSet::from(["node-a".to_owned(), "node-b".to_owned()])
    );
    let stored = api
        .get(LEASES, "herald-system/herald-l2-node-a")
        .expect("lease a");
    assert_eq!(stored["spec"]["holderIdentity"], "node-a");
    assert_eq!(stored["spec"]["leaseDurationSeconds"], 3, "2.5 s rounds up");
    assert_eq!(
        stored["metadata"]["labels"]["app.kubernetes.io/component"],
        "herald-l2-membership"
    );

    // Two requests per renewal (apply + cached list), whatever else exists.
    api.clear_seen();
    a.renew("node-a", lease).await.expect("renew a");
    let seen = api.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].method, "PATCH");
    assert_eq!(seen[1].method, "GET");
    assert!(
        seen[1]
            .query
            .contains("labelSelector=app.kubernetes.io%2Fcomponent%3Dherald-l2-membership"),
        "{}",
        seen[1].query
    );
    assert!(
        seen[1].query.contains("resourceVersion=0"),
        "{}",
        seen[1].query
    );

    // b stops renewing: after its lease runs out, a no longer counts it.
    *now.lock().expect("lock") += Duration::from_secs(4);
    let m = a.renew("node-a", lease).await.expect("renew a");
    assert_eq!(m.members, BTreeSet::from(["node-a".to_owned()]));

    // A clean stop deletes the Lease.
    b.release("node-b").await.expect("release");
    assert!(api.get(LEASES, "herald-system/herald-l2-node-b").is_none());
    b.release("node-b").await.expect("releasing twice is fine");
}

#[tokio::test(start_paused = true)]
async fn a_failing_status_write_is_retried_and_logged_once() {
    let (logs, _guard) = Logs::capture();

    let (client, api) = FakeApi::start();
    api.fail(NODE_STATUSES, Some(403));
    let writer = StatusWriter::new(client, "node1", Duration::from_secs(5));
    let (tx, rx) = watch::channel(status_with(1, "t"));
    let runner = tokio::spawn(speaker::sources::kube::status::run(writer, rx));
    tokio::time::sleep(Duration::from_secs(31)).await;
    let attempts = api.seen().iter().filter(|s| s.method == "PATCH").count();
    assert!(attempts >= 5, "retried every 5 s: {attempts} attempts");
    let text = || logs.text();
    assert_eq!(
        text().matches("BGPNodeStatus not written").count(),
        1,
        "{}",
        text()
    );

    // RBAC fixed: the next retry writes the latest status, and says so once.
    api.fail(NODE_STATUSES, None);
    tx.send(status_with(2, "t")).expect("send");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stored = api.get(NODE_STATUSES, "node1").expect("status written");
    assert_eq!(stored["status"]["establishedPeers"], 2);
    assert_eq!(
        text().matches("BGPNodeStatus written again").count(),
        1,
        "{}",
        text()
    );
    runner.abort();
}

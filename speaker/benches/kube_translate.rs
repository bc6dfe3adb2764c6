//! Cost of one Kubernetes-mode translation (`sources::kube::translate`), which runs after every
//! (debounced) change in the cluster: S LoadBalancer services with one EndpointSlice each
//! (3 endpoints on 3 of N nodes, every third service `externalTrafficPolicy: Local`), N nodes,
//! one BGPClusterConfig with 2 peers, one BGPAdvertisement (PodCIDR + LoadBalancerIP), one
//! L2AnnouncementPolicy. `cargo bench -p speaker --bench kube_translate`.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;
use speaker::sources::kube::{Identity, Snapshot, translate};

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("bench object")
}

fn snapshot(services: usize, nodes: usize) -> Snapshot {
    let mut snap = Snapshot {
        cluster_configs: vec![obj(json!({
            "apiVersion": "herald.io/v1alpha1", "kind": "BGPClusterConfig", "metadata": {"name": "all"},
            "spec": {"bgpInstances": [{"name": "main", "localASN": 65001, "peers": [
                {"name": "tor1", "peerAddress": "10.0.0.1", "peerASN": 65000, "peerConfigRef": {"name": "tor"}},
                {"name": "tor2", "peerAddress": "10.0.0.2", "peerASN": 65000, "peerConfigRef": {"name": "tor"}}]}]}
        }))],
        peer_configs: vec![obj(json!({
            "apiVersion": "herald.io/v1alpha1", "kind": "BGPPeerConfig", "metadata": {"name": "tor"},
            "spec": {"families": [{"afi": "ipv4", "safi": "unicast", "advertisements": {"matchLabels": {"adv": "bgp"}}}]}
        }))],
        advertisements: vec![obj(json!({
            "apiVersion": "herald.io/v1alpha1", "kind": "BGPAdvertisement",
            "metadata": {"name": "lb", "labels": {"adv": "bgp"}},
            "spec": {"advertisements": [{"advertisementType": "PodCIDR"},
                {"advertisementType": "Service", "service": {"addresses": ["LoadBalancerIP"]},
                 "selector": {"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}}]}
        }))],
        l2_policies: vec![obj(json!({
            "apiVersion": "herald.io/v1alpha1", "kind": "L2AnnouncementPolicy", "metadata": {"name": "l2"},
            "spec": {"loadBalancerIPs": true}
        }))],
        ..Snapshot::default()
    };
    for n in 0..nodes {
        snap.nodes.push(obj(json!({
            "metadata": {"name": format!("node{n}"), "labels": {"rack": format!("r{}", n % 4)}},
            "spec": {"podCIDRs": [format!("10.{}.{}.0/24", 100 + n / 256, n % 256)]},
            "status": {"addresses": [{"type": "InternalIP", "address": format!("10.1.{}.{}", n / 256, n % 256)}]}
        })));
    }
    for s in 0..services {
        let name = format!("svc{s}");
        snap.services.push(obj(json!({
            "metadata": {"name": name, "namespace": format!("ns{}", s % 50)},
            "spec": {"type": "LoadBalancer", "clusterIPs": [format!("10.96.{}.{}", s / 256 % 256, s % 256)],
                     "externalTrafficPolicy": if s % 3 == 0 { "Local" } else { "Cluster" }},
            "status": {"loadBalancer": {"ingress": [{"ip": format!("10.200.{}.{}", s / 256 % 256, s % 256)}]}}
        })));
        let eps: Vec<_> = (0..3)
            .map(|i| json!({"addresses": [format!("10.250.{}.{}", s / 256 % 256, (s + i) % 256)],
                            "nodeName": format!("node{}", (s + i) % nodes), "conditions": {"ready": true}}))
            .collect();
        snap.endpoint_slices.push(obj(json!({
            "metadata": {"name": format!("{name}-x"), "namespace": format!("ns{}", s % 50),
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": eps
        })));
    }
    snap
}

fn bench(c: &mut Criterion) {
    let me = Identity {
        node_name: "node0".into(),
        namespace: "herald-system".into(),
        external_ips: Default::default(),
    };
    let mut group = c.benchmark_group("kube_translate");
    group.sample_size(10);
    for (services, nodes) in [(1_000, 10), (10_000, 100)] {
        let snap = snapshot(services, nodes);
        let d = translate(&me, &snap);
        assert_eq!(d.services.len(), services);
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{services}svc-{nodes}nodes")),
            &snap,
            |b, snap| b.iter(|| translate(&me, snap)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

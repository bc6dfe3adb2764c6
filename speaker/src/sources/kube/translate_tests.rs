//! Unit tests of the pure translation (no API server involved).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;
use crate::advertise;

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("test object")
}

fn me() -> Identity {
    Identity {
        node_name: "node1".into(),
        namespace: "herald-system".into(),
        external_ips: ExternalIpPolicy::new(vec!["192.0.2.0/24".parse().expect("cidr")]),
    }
}

fn node(name: &str, rack: &str, cidr: &str, ip: &str) -> Node {
    obj(json!({
        "metadata": {"name": name, "labels": {"rack": rack}},
        "spec": {"podCIDRs": [cidr]},
        "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]}
    }))
}

fn base() -> Snapshot {
    Snapshot {
        cluster_configs: vec![obj(json!({
            "apiVersion": "herald.io/v1alpha1", "kind": "BGPClusterConfig",
            "metadata": {"name": "racks"},
            "spec": {
                "nodeSelector": {"matchLabels": {"rack": "r1"}},
                "bgpInstances": [{
                    "name": "main", "localASN": 65001,
                    "peers": [
                        {"name": "tor1", "peerAddress": "10.0.1.1", "peerASN": 65000, "peerConfigRef": {"name": "tor"}},
                        {"name": "tor2", "peerAddress": "10.0.2.1", "peerASN": 65000, "peerConfigRef": {"name": "tor-md5"}}
                    ]
                }]
            }
        }))],
        peer_configs: vec![
            obj(json!({
                "apiVersion": "herald.io/v1alpha1", "kind": "BGPPeerConfig",
                "metadata": {"name": "tor"},
                "spec": {
                    "timers": {"holdTimeSeconds": 9, "keepAliveTimeSeconds": 3, "connectRetryTimeSeconds": 2},
                    "gracefulRestart": {"enabled": true, "restartTimeSeconds": 60, "longLived": {"staleTimeSeconds": 3600}},
                    "transport": {"peerPort": 1179},
                    "ebgpMultihop": 2,
                    "bfd": {"minTxMs": 100, "multiplier": 5},
                    "families": [{"afi": "ipv4", "safi": "unicast", "advertisements": {"matchLabels": {"adv": "yes"}}}]
                }
            })),
            obj(json!({
                "apiVersion": "herald.io/v1alpha1", "kind": "BGPPeerConfig",
                "metadata": {"name": "tor-md5"},
                "spec": {
                    "authSecretRef": "tor-auth",
                    "families": [{"afi": "ipv4", "safi": "unicast", "advertisements": {"matchLabels": {"adv": "yes"}}}]
                }
            })),
        ],
        advertisements: vec![obj(json!({
            "apiVersion": "herald.io/v1alpha1", "kind": "BGPAdvertisement",
            "metadata": {"name": "lb", "labels": {"adv": "yes"}},
            "spec": {"advertisements": [
                {"advertisementType": "PodCIDR", "attributes": {"communities": {"standard": ["65000:1"]}}},
                {"advertisementType": "Service", "service": {"addresses": ["LoadBalancerIP", "ExternalIP"]},
                 "selector": {"matchLabels": {"expose": "bgp"}},
                 "attributes": {"communities": {"large": ["65001:1:2"], "wellKnown": ["no-export"]},
                                "localPreference": 200, "med": 7, "asPathPrepend": 1}}
            ]}
        }))],
        nodes: vec![
            node("node1", "r1", "10.244.1.0/24", "10.0.1.2"),
            node("node2", "r2", "10.244.2.0/24", "10.0.2.2"),
        ],
        services: vec![service("shop", "web", "10.200.0.10", "Cluster")],
        endpoint_slices: vec![slice("shop", "web", &[("10.244.1.10", "node1", true)])],
        secrets: vec![secret("tor-auth", "s3cret\n")],
        ..Snapshot::default()
    }
}

fn service(ns: &str, name: &str, ip: &str, etp: &str) -> Service {
    obj(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"expose": "bgp"}},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                 "externalTrafficPolicy": etp, "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}
    }))
}

fn slice(ns: &str, svc: &str, eps: &[(&str, &str, bool)]) -> EndpointSlice {
    obj(json!({
        "metadata": {"name": format!("{svc}-abc"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": eps.iter().map(|(ip, node, ready)| json!({
            "addresses": [ip], "nodeName": node, "conditions": {"ready": ready}
        })).collect::<Vec<_>>()
    }))
}

fn secret(name: &str, password: &str) -> Secret {
    Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("herald-system".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            AUTH_SECRET_KEY.to_owned(),
            ByteString(password.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// The routes the speaker instance announces per peer for a desired state (what
/// [`crate::sources::kube::reconcile`] hands it).
fn routes(d: &Desired) -> advertise::PeerRoutes {
    advertise::local_routes(
        &d.config,
        &crate::sources::kube::reconcile::service_state(d),
    )
}

#[test]
fn cluster_config_peer_config_and_node_become_the_bgp_config() {
    let d = translate(&me(), &base());
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(d.config.node.router_id.to_string(), "10.0.1.2");
    assert_eq!(
        d.config.node.pod_cidrs,
        vec!["10.244.1.0/24".parse::<IpNet>().expect("net")]
    );
    let bgp = d.config.bgp.as_ref().expect("bgp");
    assert_eq!(bgp.local_asn, 65001);
    assert_eq!(bgp.listen.port, 179);
    let tor1 = &bgp.peers[0];
    assert_eq!(tor1.name.as_deref(), Some("tor1"));
    assert_eq!(tor1.address.value, ip("10.0.1.1"));
    assert_eq!(tor1.asn, PeerAsn::Number(65000));
    assert_eq!(tor1.port, 1179);
    assert_eq!(tor1.timers.hold_time_seconds, HoldTime(9));
    assert_eq!(tor1.timers.keepalive_time_seconds, Some(3));
    assert_eq!(tor1.timers.connect_retry_time_seconds, 2);
    assert_eq!(tor1.ebgp_multihop, Some(Ttl(2)));
    assert!(tor1.graceful_restart.enabled);
    assert_eq!(tor1.graceful_restart.restart_time_seconds, RestartTime(60));
    assert_eq!(
        tor1.graceful_restart
            .long_lived
            .map(|l| l.stale_time_seconds.0),
        Some(3600)
    );
    let bfd = tor1.bfd.clone().expect("bfd");
    assert_eq!(
        (bfd.min_tx_ms, bfd.min_rx_ms, bfd.multiplier),
        (100, 300, 5)
    );
    assert_eq!(tor1.families, vec![Family::Ipv4Unicast]);
    assert_eq!(
        d.md5_keys.get(&ip("10.0.2.1")),
        Some(&Md5Key(b"s3cret".to_vec())),
        "the Secret's password, trimmed"
    );
    assert!(!d.md5_keys.contains_key(&ip("10.0.1.1")));
}

#[test]
fn advertisements_become_routes_with_attributes_per_peer() {
    let d = translate(&me(), &base());
    // PodCIDR, LoadBalancerIP, ExternalIP, each shared by both peers.
    assert_eq!(d.advertisements.len(), 3);
    assert!(d.advertisements.iter().all(|a| a.peers == ["tor1", "tor2"]));
    assert_eq!(
        d.allocations[&lb_ipam::ServiceKey::new("shop", "web")],
        vec![ip("10.200.0.10")]
    );
    let routes = routes(&d);
    let to_tor1 = &routes[&ip("10.0.1.1")];
    let prefixes: Vec<String> = to_tor1.keys().map(ToString::to_string).collect();
    assert_eq!(prefixes, ["10.200.0.10/32", "10.244.1.0/24"]);
    let lb = &to_tor1[&"10.200.0.10/32".parse::<IpNet>().expect("net")];
    let text = format!("{lb:?}");
    for wanted in [
        "MultiExitDisc(7)",
        "asns: [65001, 65001]",
        "NO_EXPORT",
        "global: 65001, local1: 1, local2: 2",
    ] {
        assert!(text.contains(wanted), "{wanted} missing in {text}");
    }
    assert!(
        !text.contains("LocalPref"),
        "eBGP peers get no LOCAL_PREF: {text}"
    );
}

#[test]
fn node_outside_the_selector_gets_no_bgp() {
    let me2 = Identity {
        node_name: "node2".into(),
        ..me()
    };
    let d = translate(&me2, &base());
    assert!(d.config.bgp.is_none());
    assert!(d.advertisements.is_empty());
}

#[test]
fn override_sets_router_id_asn_port_and_local_address() {
    let mut snap = base();
    snap.overrides = vec![obj(json!({
        "apiVersion": "herald.io/v1alpha1", "kind": "BGPNodeConfigOverride",
        "metadata": {"name": "node1"},
        "spec": {"bgpInstances": [{"name": "main", "routerID": "192.0.2.1", "localASN": 65009,
                 "localPort": 1790, "peers": [{"name": "tor1", "localAddress": "10.0.1.2"}]}]}
    }))];
    let d = translate(&me(), &snap);
    assert_eq!(d.config.node.router_id.to_string(), "192.0.2.1");
    let bgp = d.config.bgp.as_ref().expect("bgp");
    assert_eq!((bgp.local_asn, bgp.listen.port), (65009, 1790));
    assert_eq!(bgp.peers[0].local_address, Some(ip("10.0.1.2")));
    assert_eq!(bgp.peers[1].local_address, None);
}

#[test]
fn missing_secret_skips_only_that_peer_and_says_why() {
    let mut snap = base();
    snap.secrets.clear();
    let d = translate(&me(), &snap);
    let peers = &d.config.bgp.as_ref().expect("bgp").peers;
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].name.as_deref(), Some("tor1"));
    assert_eq!(d.problems.len(), 1);
    assert!(
        d.problems[0].contains("herald-system/tor-auth not found"),
        "{:?}",
        d.problems
    );
}

#[test]
fn invalid_values_are_reported_and_the_rest_applies() {
    let mut snap = base();
    snap.cluster_configs[0].spec.bgp_instances[0].peers[0].peer_address = Some("not-an-ip".into());
    snap.peer_configs[1].spec.timers = Some(super::super::crd::Timers {
        hold_time_seconds: Some(2),
        ..Default::default()
    });
    let d = translate(&me(), &snap);
    assert!(d.config.bgp.as_ref().expect("bgp").peers.is_empty());
    assert_eq!(d.problems.len(), 2, "{:?}", d.problems);
    assert!(d.problems.iter().any(|p| p.contains("not-an-ip")));
    assert!(d.problems.iter().any(|p| p.contains("at least 3 seconds")));
}

#[test]
fn long_lived_graceful_restart_without_graceful_restart_is_reported_not_applied() {
    let mut snap = base();
    let gr = snap.peer_configs[0]
        .spec
        .graceful_restart
        .as_mut()
        .expect("GR in the fixture");
    gr.enabled = false;
    let d = translate(&me(), &snap);
    assert!(
        d.problems
            .iter()
            .any(|p| p.contains("gracefulRestart.longLived ignored: needs gracefulRestart.enabled")),
        "{:?}",
        d.problems
    );
    let bgp = d.config.bgp.expect("bgp");
    assert!(
        bgp.peers
            .iter()
            .all(|p| p.graceful_restart.long_lived.is_none())
    );
}

#[test]
fn service_advertisement_without_selector_selects_nothing_as_cilium() {
    let mut snap = base();
    snap.advertisements[0].spec.advertisements[1].selector = None;
    let d = translate(&me(), &snap);
    assert_eq!(d.advertisements.len(), 1);
    assert_eq!(d.advertisements[0].kind, AdvertisementKind::PodCidr);
}

#[test]
fn bad_community_skips_the_entry_with_its_name() {
    let mut snap = base();
    if let Some(a) = snap.advertisements[0].spec.advertisements[0]
        .attributes
        .as_mut()
    {
        a.communities = Some(super::super::crd::Communities {
            standard: vec!["70000:1".into()],
            ..Default::default()
        });
    }
    let d = translate(&me(), &snap);
    assert_eq!(d.advertisements.len(), 2);
    assert!(
        d.problems[0].contains("BGPAdvertisement lb advertisements[0]"),
        "{:?}",
        d.problems
    );
    assert!(d.problems[0].contains("70000:1"), "{:?}", d.problems);
}

#[test]
fn etp_local_service_is_announced_only_with_a_local_ready_endpoint() {
    let mut snap = base();
    snap.services = vec![service("shop", "web", "10.200.0.10", "Local")];
    let lb: IpNet = "10.200.0.10/32".parse().expect("net");
    let key = ip("10.0.1.1");
    assert!(routes(&translate(&me(), &snap))[&key].contains_key(&lb));
    snap.endpoint_slices = vec![slice(
        "shop",
        "web",
        &[
            ("10.244.2.10", "node2", true),
            ("10.244.1.10", "node1", false),
        ],
    )];
    assert!(!routes(&translate(&me(), &snap))[&key].contains_key(&lb));
}

#[test]
fn foreign_load_balancer_class_is_not_announced() {
    let mut snap = base();
    if let Some(spec) = snap.services[0].spec.as_mut() {
        spec.load_balancer_class = Some("example.com/other".into());
    }
    let d = translate(&me(), &snap);
    assert!(d.allocations.is_empty());
}

#[test]
fn fib_import_maps_onto_the_import_policy() {
    let mut snap = base();
    snap.cluster_configs[0].spec.bgp_instances[0].fib_import = Some(obj(json!({
        "maxLengthIPv4": 24,
        "rules": [{"match": {"prefixes": [{"prefix": "10.0.0.0/8", "le": 24}],
                              "communities": {"standard": ["65000:100"]}},
                   "action": "accept"}]
    })));
    let d = translate(&me(), &snap);
    let policy = d
        .config
        .bgp
        .as_ref()
        .expect("bgp")
        .import_policy
        .config()
        .clone();
    assert_eq!(policy.max_length_ipv4, Some(24));
    assert_eq!(policy.rules.len(), 1);
    assert_eq!(policy.rules[0].matches.prefixes[0].le, Some(24));
    let d = translate(&me(), &base());
    assert_eq!(
        d.config.bgp.as_ref().expect("bgp").import_policy,
        crate::import_policy::ImportPolicy::reject_all(),
        "without fibImport nothing is imported"
    );
    let mut snap = base();
    snap.cluster_configs[0].spec.bgp_instances[0].fib_import =
        Some(obj(json!({"maxLengthIPv4": 33})));
    let d = translate(&me(), &snap);
    assert!(
        d.problems
            .iter()
            .any(|p| p.contains("fibImport") && p.contains("maxLengthIPv4")),
        "{:?}",
        d.problems
    );
    assert_eq!(
        d.config.bgp.as_ref().expect("bgp").import_policy,
        crate::import_policy::ImportPolicy::reject_all()
    );
}

#[test]
fn two_instances_use_the_first_and_report_the_other() {
    let mut snap = base();
    let mut second = snap.cluster_configs[0].clone();
    second.metadata.name = Some("zz-other".into());
    second.spec.bgp_instances[0].local_asn = 65555;
    snap.cluster_configs.push(second);
    let d = translate(&me(), &snap);
    assert_eq!(d.config.bgp.as_ref().expect("bgp").local_asn, 65001);
    assert!(
        d.problems
            .iter()
            .any(|p| p.contains("zz-other") && p.contains("one BGP instance"))
    );
}

#[test]
fn l2_policy_selects_services_nodes_and_interfaces() {
    let mut snap = base();
    snap.services.push(obj(json!({
        "metadata": {"name": "ext", "namespace": "shop"},
        "spec": {"type": "ClusterIP", "externalIPs": ["192.0.2.7"]}
    })));
    snap.l2_policies = vec![
        obj(json!({
            "apiVersion": "herald.io/v1alpha1", "kind": "L2AnnouncementPolicy",
            "metadata": {"name": "lb-on-r1"},
            "spec": {"nodeSelector": {"matchLabels": {"rack": "r1"}},
                     "serviceSelector": {"matchLabels": {"expose": "bgp"}},
                     "interfaces": ["^eth[0-9]+$"], "loadBalancerIPs": true}
        })),
        obj(json!({
            "apiVersion": "herald.io/v1alpha1", "kind": "L2AnnouncementPolicy",
            "metadata": {"name": "external-everywhere"},
            "spec": {"interfaces": ["^bond0$"], "externalIPs": true}
        })),
    ];
    let d = translate(&me(), &snap);
    let l2 = d.l2.expect("l2");
    assert_eq!(l2.node, "node1");
    assert_eq!(l2.nodes.len(), 2);
    assert_eq!(l2.interfaces.include, ["^bond0$", "^eth[0-9]+$"]);
    assert_eq!(l2.services.len(), 2);
    let ext = &l2.services[0];
    assert_eq!(
        (ext.name.as_str(), ext.ips.clone()),
        ("ext", vec![ip("192.0.2.7")])
    );
    assert_eq!(ext.external_traffic_policy, L2TrafficPolicy::Cluster);
    assert!(
        ext.ready_endpoint_nodes.is_empty(),
        "unrestricted: no node list"
    );
    let web = &l2.services[1];
    assert_eq!(web.ips, vec![ip("10.200.0.10")]);
    assert_eq!(
        web.ready_endpoint_nodes,
        ["node1"],
        "only r1 nodes may lead"
    );
    let table = arp_responder::election::vip_table(&l2.services, &l2.nodes, &l2.node_selector);
    let vip = table
        .iter()
        .find(|v| v.vip == ip("10.200.0.10"))
        .expect("vip");
    assert_eq!(vip.eligible.iter().collect::<Vec<_>>(), ["node1"]);
    let vip = table
        .iter()
        .find(|v| v.vip == ip("192.0.2.7"))
        .expect("vip");
    assert_eq!(vip.eligible.iter().collect::<Vec<_>>(), ["node1", "node2"]);
}

#[test]
fn l2_etp_local_service_is_led_only_from_nodes_with_a_ready_endpoint() {
    let mut snap = base();
    snap.services = vec![service("shop", "web", "10.200.0.10", "Local")];
    snap.endpoint_slices = vec![slice(
        "shop",
        "web",
        &[
            ("10.244.2.10", "node2", true),
            ("10.244.1.10", "node1", false),
        ],
    )];
    snap.l2_policies = vec![obj(json!({
        "apiVersion": "herald.io/v1alpha1", "kind": "L2AnnouncementPolicy",
        "metadata": {"name": "all"}, "spec": {"loadBalancerIPs": true}
    }))];
    let l2 = translate(&me(), &snap).l2.expect("l2");
    let web = &l2.services[0];
    assert_eq!(web.external_traffic_policy, L2TrafficPolicy::Local);
    assert_eq!(web.ready_endpoint_nodes, ["node2"]);
    let table = arp_responder::election::vip_table(&l2.services, &l2.nodes, &l2.node_selector);
    assert_eq!(table[0].eligible.iter().collect::<Vec<_>>(), ["node2"]);
}

/// The datapath table the agent derives from a translated snapshot (what the Kubernetes runtime
/// hands its datapath through `daemon::serving`).
fn datapath_table(d: &Desired, me: &str) -> crate::daemon::desired::ServiceTable {
    let nodes = crate::config::nodes::node_addresses(&d.config);
    crate::daemon::desired::service_table(&crate::daemon::desired::TableInputs {
        node_name: me,
        nodes: &nodes,
        state: &crate::sources::kube::reconcile::service_state(d),
        cluster_ips: false,
    })
}

#[test]
fn services_endpoint_slices_and_nodes_become_the_datapath_table() {
    let mut snap = base();
    snap.services = vec![obj(json!({
        "metadata": {"name": "web", "namespace": "shop", "labels": {"expose": "bgp"}},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10",
                 "sessionAffinity": "ClientIP",
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                           {"name": "dns", "port": 53, "protocol": "UDP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.200.0.10"}]}}
    }))];
    snap.endpoint_slices = vec![obj(json!({
        "metadata": {"name": "web-abc", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                  {"name": "dns", "port": 5353, "protocol": "UDP"}],
        "endpoints": [
            {"addresses": ["10.244.1.10"], "nodeName": "node1", "conditions": {"ready": true}},
            {"addresses": ["10.244.2.10"], "nodeName": "node2", "conditions": {"ready": true}},
            {"addresses": ["10.244.2.11"], "nodeName": "node2", "conditions": {"ready": false}},
            {"addresses": ["10.244.9.10"], "nodeName": "gone", "conditions": {"ready": true}}
        ]
    }))];
    let d = translate(&me(), &snap);
    let table = datapath_table(&d, "node1");
    let rows: Vec<String> = table
        .services
        .iter()
        .map(|s| {
            let backends: Vec<String> = s
                .backends
                .iter()
                .map(|b| format!("{}@{}", b.addr, b.node))
                .collect();
            format!(
                "{}:{}/{:?} affinity={} [{}]",
                s.vip,
                s.port,
                s.proto,
                s.affinity,
                backends.join(" ")
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "10.200.0.10:53/Udp affinity=true [10.244.1.10:5353@10.0.1.2 10.244.2.10:5353@10.0.2.2]",
            "10.200.0.10:80/Tcp affinity=true [10.244.1.10:8080@10.0.1.2 10.244.2.10:8080@10.0.2.2]",
        ],
        "ports by name, nodes by InternalIP, the unready endpoint left out"
    );
    assert!(
        table.problems.iter().any(|p| p.contains("\"gone\"")),
        "an endpoint on a Node without an InternalIP is reported: {:?}",
        table.problems
    );
}

#[test]
fn etp_local_service_gets_only_local_backends_and_no_entry_without_one() {
    let mut snap = base();
    snap.services = vec![service("shop", "web", "10.200.0.10", "Local")];
    snap.endpoint_slices = vec![slice(
        "shop",
        "web",
        &[
            ("10.244.1.10", "node1", true),
            ("10.244.2.10", "node2", true),
        ],
    )];
    let d = translate(&me(), &snap);
    let table = datapath_table(&d, "node1");
    assert_eq!(table.services.len(), 1);
    let backends: Vec<String> = table.services[0]
        .backends
        .iter()
        .map(|b| b.addr.to_string())
        .collect();
    assert_eq!(backends, ["10.244.1.10:80"], "never sent to another node");
    snap.endpoint_slices = vec![slice("shop", "web", &[("10.244.2.10", "node2", true)])];
    let d = translate(&me(), &snap);
    assert!(datapath_table(&d, "node1").services.is_empty());
}

/// CVE-2020-8554 class: a tenant's Service naming the gateway as an externalIP is neither in the
/// services BGP and the datapath see nor in L2, and the refusal names the service and address.
#[test]
fn external_ips_outside_the_allowed_cidrs_are_refused_and_reported() {
    let mut snap = base();
    snap.services.push(obj(json!({
        "metadata": {"name": "evil", "namespace": "tenant"},
        "spec": {"type": "ClusterIP", "externalIPs": ["10.77.0.2", "192.0.2.9"]}
    })));
    snap.l2_policies = vec![obj(json!({
        "apiVersion": "herald.io/v1alpha1", "kind": "L2AnnouncementPolicy",
        "metadata": {"name": "external-everywhere"},
        "spec": {"interfaces": ["^bond0$"], "externalIPs": true}
    }))];
    let d = translate(&me(), &snap);
    let evil = d
        .services
        .iter()
        .find(|s| s.name == "evil")
        .expect("service");
    assert_eq!(evil.external_ips, [ip("192.0.2.9")]);
    let l2 = d.l2.expect("l2");
    let l2_evil = l2
        .services
        .iter()
        .find(|s| s.name == "evil")
        .expect("l2 service");
    assert_eq!(l2_evil.ips, [ip("192.0.2.9")]);
    let refused: Vec<&String> = d
        .problems
        .iter()
        .filter(|p| p.contains("externalIP"))
        .collect();
    assert!(
        refused.len() == 1
            && refused[0].contains("tenant/evil")
            && refused[0].contains("10.77.0.2"),
        "{:?}",
        d.problems
    );
}

#[test]
fn a_nodes_underlay_address_is_its_first_ipv4_internal_ip_else_its_first_ipv6_one() {
    let mut snap = base();
    let dual = obj(json!({
        "metadata": {"name": "dual", "labels": {"rack": "r1"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "fd00:0:7::2"},
                                 {"type": "InternalIP", "address": "10.0.7.2"}]}
    }));
    let v6only = obj(json!({
        "metadata": {"name": "v6only", "labels": {"rack": "r1"}},
        "status": {"addresses": [{"type": "Hostname", "address": "v6only"},
                                 {"type": "InternalIP", "address": "fd00:0:8::2"}]}
    }));
    snap.nodes.extend([dual, v6only]);
    let d = translate(&me(), &snap);
    let nodes = crate::config::nodes::node_addresses(&d.config);
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    assert_eq!(nodes.get("dual"), Some(&ip("10.0.7.2")));
    assert_eq!(
        nodes.get("v6only"),
        Some(&ip("fd00:0:8::2")),
        "an IPv6-only node is reached over its IPv6 address"
    );
}

#[test]
fn link_local_peers_take_their_interface_and_other_peers_refuse_one() {
    let mut snap = base();
    snap.peer_configs[0].spec.bfd = None;
    let peers = &mut snap.cluster_configs[0].spec.bgp_instances[0].peers;
    peers[0].peer_address = Some("fe80::1".into());
    peers[0].interface = Some("eth1".into());
    peers[1].interface = Some("eth2".into());
    let d = translate(&me(), &snap);
    let bgp = d.config.bgp.as_ref().expect("bgp");
    assert_eq!(bgp.peers.len(), 1, "{:?}", d.problems);
    assert_eq!(bgp.peers[0].address.value, ip("fe80::1"));
    assert_eq!(bgp.peers[0].interface_name(), Some("eth1"));
    assert!(
        d.problems
            .iter()
            .any(|p| p.contains("tor2") && p.contains("interface") && p.contains("link-local")),
        "{:?}",
        d.problems
    );
}

#[test]
fn a_peer_with_only_an_interface_is_unnumbered_without_md5() {
    let mut snap = base();
    snap.peer_configs[0].spec.bfd = None;
    let peers = &mut snap.cluster_configs[0].spec.bgp_instances[0].peers;
    peers[0].peer_address = None;
    peers[0].interface = Some("eth1".into());
    // tor2's BGPPeerConfig has an authSecretRef.
    peers[1].peer_address = None;
    peers[1].interface = Some("eth2".into());
    let d = translate(&me(), &snap);
    let bgp = d.config.bgp.as_ref().expect("bgp");
    assert_eq!(bgp.peers.len(), 1, "{:?}", d.problems);
    assert!(bgp.peers[0].is_unnumbered());
    assert_eq!(bgp.peers[0].interface_name(), Some("eth1"));
    assert!(
        d.problems.iter().any(|p| p.contains("tor2")
            && p.contains("authSecretRef")
            && p.contains("not implemented")),
        "{:?}",
        d.problems
    );
}

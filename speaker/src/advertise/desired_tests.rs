//! Unit tests of [`super::desired`]: kinds, selectors, traffic policies, peer/family selection,
//! aggregation, attribute placement and the merge rules.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use bgp_proto::{AsPath, AttrValue, Community, ExtendedCommunity, LargeCommunity, PathAttribute};
use ipnet::IpNet;
use lb_ipam::ServiceKey;

use super::*;
use crate::advertise::model::Advertisement;

const LOCAL_ASN: u32 = 64512;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

fn ads(yaml: &str) -> Vec<Advertisement> {
    let ads: Vec<Advertisement> = serde_saphyr::from_str(yaml).expect("test advertisements");
    for ad in &ads {
        ad.validate().expect("valid advertisement");
    }
    ads
}

fn node() -> NodeView {
    NodeView {
        name: "node-a".into(),
        pod_cidrs: vec![net("10.244.1.0/24"), net("fd00:244:1::/64")],
    }
}

fn peer(name: &str, addr: &str, ebgp: bool) -> PeerView {
    PeerView {
        name: Some(name.into()),
        address: ip(addr),
        families: BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast]),
        ebgp,
    }
}

fn svc(ns: &str, name: &str) -> ServiceView {
    ServiceView {
        namespace: ns.into(),
        name: name.into(),
        ..ServiceView::default()
    }
}

fn endpoint(node: &str, ready: bool) -> EndpointView {
    EndpointView {
        ip: ip("10.244.9.9"),
        node_name: Some(node.into()),
        ready,
        ports: Vec::new(),
    }
}

struct World {
    node: NodeView,
    services: Vec<ServiceView>,
    allocations: BTreeMap<ServiceKey, Vec<IpAddr>>,
    peers: Vec<PeerView>,
    ads: Vec<Advertisement>,
}

impl World {
    fn new(ads_yaml: &str) -> Self {
        Self {
            node: node(),
            services: Vec::new(),
            allocations: BTreeMap::new(),
            peers: vec![peer("tor1", "192.0.2.1", true)],
            ads: ads(ads_yaml),
        }
    }

    fn desired(&self) -> DesiredRoutes {
        desired(&Inputs {
            local_asn: LOCAL_ASN,
            node: &self.node,
            services: &self.services,
            allocations: &self.allocations,
            peers: &self.peers,
            advertisements: &self.ads,
            fixed_routes: &[],
        })
    }

    /// Prefixes sent to `peer` in `family`.
    fn prefixes(&self, peer: &str, family: Family) -> Vec<String> {
        self.desired()
            .get(&PeerFamily {
                peer: ip(peer),
                family,
            })
            .map(|r| r.keys().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    fn attrs(&self, peer: &str, prefix: &str) -> Vec<PathAttribute> {
        let prefix = net(prefix);
        let key = PeerFamily {
            peer: ip(peer),
            family: family_of(&prefix),
        };
        let d = self.desired();
        d.get(&key)
            .and_then(|r| r.get(&prefix))
            .map(|a| a.as_ref().clone())
            .unwrap_or_else(|| panic!("{prefix} not sent to {peer}: {d:?}"))
    }
}

fn find<'a>(
    attrs: &'a [PathAttribute],
    f: impl Fn(&'a AttrValue) -> bool,
) -> Option<&'a AttrValue> {
    attrs.iter().map(|a| &a.value).find(|v| f(v))
}

fn as_path_of(attrs: &[PathAttribute]) -> AsPath {
    match find(attrs, |v| matches!(v, AttrValue::AsPath(_))) {
        Some(AttrValue::AsPath(p)) => p.clone(),
        other => panic!("no AS_PATH: {other:?}"),
    }
}

fn communities_of(attrs: &[PathAttribute]) -> Vec<Community> {
    match find(attrs, |v| matches!(v, AttrValue::Communities(_))) {
        Some(AttrValue::Communities(c)) => c.clone(),
        _ => Vec::new(),
    }
}

fn local_pref_of(attrs: &[PathAttribute]) -> Option<u32> {
    match find(attrs, |v| matches!(v, AttrValue::LocalPref(_))) {
        Some(AttrValue::LocalPref(v)) => Some(*v),
        _ => None,
    }
}

fn med_of(attrs: &[PathAttribute]) -> Option<u32> {
    match find(attrs, |v| matches!(v, AttrValue::MultiExitDisc(_))) {
        Some(AttrValue::MultiExitDisc(v)) => Some(*v),
        _ => None,
    }
}

#[test]
fn pod_cidr_announces_each_pod_cidr_in_its_own_family() {
    let w = World::new("- kind: PodCIDR\n");
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv4Unicast),
        ["10.244.1.0/24"]
    );
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv6Unicast),
        ["fd00:244:1::/64"]
    );
}

#[test]
fn no_advertisements_means_no_routes() {
    let mut w = World::new("[]");
    let mut s = svc("web", "a");
    s.cluster_ips = vec![ip("10.96.0.10")];
    w.services.push(s);
    assert!(w.desired().is_empty());
}

#[test]
fn load_balancer_ip_prefers_the_allocation_over_the_requested_ip() {
    let mut w = World::new("- kind: LoadBalancerIP\n");
    let mut a = svc("web", "a");
    a.load_balancer_ips = vec![ip("198.51.100.1")];
    let mut b = svc("web", "b");
    b.load_balancer_ips = vec![ip("198.51.100.2")];
    w.services = vec![a, b];
    w.allocations.insert(
        ServiceKey::new("web", "a"),
        vec![ip("203.0.113.7"), ip("2001:db8::7")],
    );
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv4Unicast),
        ["198.51.100.2/32", "203.0.113.7/32"]
    );
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv6Unicast),
        ["2001:db8::7/128"]
    );
}

#[test]
fn each_service_kind_announces_only_its_own_addresses() {
    let mut s = svc("web", "a");
    s.cluster_ips = vec![ip("10.96.0.10")];
    s.external_ips = vec![ip("198.51.100.20")];
    s.load_balancer_ips = vec![ip("198.51.100.30")];
    for (kind, expect) in [
        ("ClusterIP", "10.96.0.10/32"),
        ("ExternalIP", "198.51.100.20/32"),
        ("LoadBalancerIP", "198.51.100.30/32"),
    ] {
        let mut w = World::new(&format!("- kind: {kind}\n"));
        w.services.push(s.clone());
        assert_eq!(
            w.prefixes("192.0.2.1", Family::Ipv4Unicast),
            [expect],
            "{kind}"
        );
    }
}

#[test]
fn selector_matches_labels_and_name_namespace_pseudo_labels() {
    let mut w = World::new(
        "- kind: ExternalIP\n  selector: { matchLabels: { io.kubernetes.service.namespace: web } }\n\
         - kind: ExternalIP\n  selector: { matchLabels: { io.kubernetes.service.name: db } }\n\
         - kind: ExternalIP\n  selector: { matchExpressions: [{ key: tier, operator: In, values: [edge] }] }\n",
    );
    let mut a = svc("web", "front");
    a.external_ips = vec![ip("198.51.100.1")];
    let mut b = svc("data", "db");
    b.external_ips = vec![ip("198.51.100.2")];
    let mut c = svc("other", "edge");
    c.labels.insert("tier".into(), "edge".into());
    c.external_ips = vec![ip("198.51.100.3")];
    let mut d = svc("other", "hidden");
    d.labels.insert("tier".into(), "core".into());
    d.external_ips = vec![ip("198.51.100.4")];
    w.services = vec![a, b, c, d];
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv4Unicast),
        ["198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32"]
    );
}

#[test]
fn external_traffic_policy_local_needs_a_ready_endpoint_on_this_node() {
    let mut w = World::new("- kind: LoadBalancerIP\n- kind: ExternalIP\n");
    let mut s = svc("web", "a");
    s.external_traffic_policy = TrafficPolicy::Local;
    s.load_balancer_ips = vec![ip("198.51.100.1")];
    s.external_ips = vec![ip("198.51.100.2")];
    // Ready endpoints elsewhere and a not-ready one here: not announced.
    s.endpoints = vec![endpoint("node-b", true), endpoint("node-a", false)];
    w.services = vec![s.clone()];
    assert!(w.prefixes("192.0.2.1", Family::Ipv4Unicast).is_empty());
    // A ready local endpoint appears: announced.
    s.endpoints.push(endpoint("node-a", true));
    w.services = vec![s.clone()];
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv4Unicast),
        ["198.51.100.1/32", "198.51.100.2/32"]
    );
    // The last local endpoint goes away: withdrawn (absent from the desired set).
    s.endpoints
        .retain(|e| e.node_name.as_deref() != Some("node-a"));
    w.services = vec![s];
    assert!(w.desired().is_empty());
}

#[test]
fn external_traffic_policy_cluster_ignores_endpoints() {
    let mut w = World::new("- kind: LoadBalancerIP\n");
    let mut s = svc("web", "a");
    s.load_balancer_ips = vec![ip("198.51.100.1")];
    s.endpoints = vec![endpoint("node-b", true)];
    w.services = vec![s];
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv4Unicast),
        ["198.51.100.1/32"]
    );
}

#[test]
fn cluster_ip_follows_internal_not_external_traffic_policy() {
    let mut w = World::new("- kind: ClusterIP\n");
    let mut s = svc("web", "a");
    s.cluster_ips = vec![ip("10.96.0.10")];
    s.external_traffic_policy = TrafficPolicy::Local;
    w.services = vec![s.clone()];
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv4Unicast),
        ["10.96.0.10/32"]
    );
    s.internal_traffic_policy = TrafficPolicy::Local;
    w.services = vec![s];
    assert!(w.desired().is_empty());
}

#[test]
fn aggregation_collapses_service_addresses_and_clears_host_bits() {
    let mut w = World::new(
        "- kind: LoadBalancerIP\n  aggregationLengthIPv4: 24\n  aggregationLengthIPv6: 64\n",
    );
    let mut a = svc("web", "a");
    a.load_balancer_ips = vec![ip("198.51.100.1"), ip("2001:db8:0:1::5")];
    let mut b = svc("web", "b");
    b.load_balancer_ips = vec![ip("198.51.100.200"), ip("203.0.113.9")];
    w.services = vec![a, b];
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv4Unicast),
        ["198.51.100.0/24", "203.0.113.0/24"]
    );
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv6Unicast),
        ["2001:db8:0:1::/64"]
    );
}

#[test]
fn different_aggregation_lengths_yield_distinct_prefixes() {
    let mut w =
        World::new("- kind: LoadBalancerIP\n- kind: LoadBalancerIP\n  aggregationLengthIPv4: 28\n");
    let mut a = svc("web", "a");
    a.load_balancer_ips = vec![ip("198.51.100.17")];
    w.services = vec![a];
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv4Unicast),
        ["198.51.100.16/28", "198.51.100.17/32"]
    );
}

#[test]
fn peers_are_selected_by_name_or_address_and_families_by_list() {
    let mut w = World::new(
        "- kind: PodCIDR\n  peers: [tor1]\n\
         - kind: PodCIDR\n  peers: ['2001:db8::2']\n  families: [ipv6-unicast]\n",
    );
    w.peers = vec![
        peer("tor1", "192.0.2.1", true),
        peer("tor2", "2001:db8::2", true),
        peer("tor3", "192.0.2.3", true),
    ];
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv4Unicast),
        ["10.244.1.0/24"]
    );
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv6Unicast),
        ["fd00:244:1::/64"]
    );
    assert!(w.prefixes("2001:db8::2", Family::Ipv4Unicast).is_empty());
    assert_eq!(
        w.prefixes("2001:db8::2", Family::Ipv6Unicast),
        ["fd00:244:1::/64"]
    );
    assert!(w.prefixes("192.0.2.3", Family::Ipv4Unicast).is_empty());
    assert_eq!(w.desired().len(), 3);
}

#[test]
fn a_prefix_needs_the_family_configured_on_the_peer() {
    let mut w = World::new("- kind: PodCIDR\n");
    let mut p = peer("tor1", "192.0.2.1", true);
    p.families = BTreeSet::from([Family::Ipv4Unicast]);
    w.peers = vec![p];
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv4Unicast),
        ["10.244.1.0/24"]
    );
    assert!(w.prefixes("192.0.2.1", Family::Ipv6Unicast).is_empty());
}

#[test]
fn ebgp_gets_prepended_as_path_and_no_local_pref() {
    let w = World::new(
        "- kind: PodCIDR\n  attributes: { localPreference: 300, med: 7, asPathPrepend: 2 }\n",
    );
    let attrs = w.attrs("192.0.2.1", "10.244.1.0/24");
    assert_eq!(as_path_of(&attrs), AsPath::from_sequence(&[LOCAL_ASN; 3]));
    assert_eq!(local_pref_of(&attrs), None);
    assert_eq!(med_of(&attrs), Some(7));
    assert_eq!(attrs[0].value, AttrValue::Origin(bgp_proto::Origin::Igp));
}

#[test]
fn ibgp_gets_local_pref_and_an_empty_as_path() {
    let mut w =
        World::new("- kind: PodCIDR\n  attributes: { localPreference: 300, asPathPrepend: 2 }\n");
    w.peers = vec![peer("rr", "192.0.2.9", false)];
    let attrs = w.attrs("192.0.2.9", "10.244.1.0/24");
    assert!(as_path_of(&attrs).is_empty());
    assert_eq!(local_pref_of(&attrs), Some(300));
    assert_eq!(med_of(&attrs), None);
}

#[test]
fn attributes_are_in_type_code_order_with_every_community_kind() {
    let w = World::new(
        "- kind: PodCIDR\n  attributes:\n    med: 1\n    communities:\n      standard: ['65000:2', '65000:1']\n      wellKnown: [no-export]\n      large: ['64512:1:1']\n      extended: ['rt:65000:7']\n",
    );
    let attrs = w.attrs("192.0.2.1", "10.244.1.0/24");
    let codes: Vec<u8> = attrs.iter().map(|a| a.value.type_code().into()).collect();
    assert_eq!(codes, [1, 2, 4, 8, 16, 32]);
    assert_eq!(
        communities_of(&attrs),
        [
            Community::new(65000, 1),
            Community::new(65000, 2),
            Community::NO_EXPORT
        ]
    );
    assert!(attrs.iter().any(|a| a.value
        == AttrValue::ExtendedCommunities(vec![ExtendedCommunity::route_target(65000, 7)])));
    assert!(attrs.iter().any(|a| a.value
        == AttrValue::LargeCommunities(vec![LargeCommunity {
            global: 64512,
            local1: 1,
            local2: 1
        }])));
}

#[test]
fn overlapping_advertisements_merge_as_documented() {
    let mut w = World::new(
        "- kind: LoadBalancerIP\n  attributes:\n    localPreference: 100\n    med: 50\n    asPathPrepend: 3\n    communities: { standard: ['65000:1'], large: ['1:1:1'] }\n\
         - kind: LoadBalancerIP\n  attributes:\n    localPreference: 200\n    med: 20\n    asPathPrepend: 1\n    communities: { standard: ['65000:2'], large: ['1:1:1'] }\n\
         - kind: LoadBalancerIP\n  attributes:\n    communities: { wellKnown: [no-advertise] }\n",
    );
    w.peers = vec![
        peer("rr", "192.0.2.9", false),
        peer("tor", "192.0.2.1", true),
    ];
    let mut s = svc("web", "a");
    s.load_balancer_ips = vec![ip("198.51.100.1")];
    w.services = vec![s];
    let ibgp = w.attrs("192.0.2.9", "198.51.100.1/32");
    assert_eq!(local_pref_of(&ibgp), Some(200), "highest LOCAL_PREF wins");
    assert_eq!(med_of(&ibgp), Some(20), "lowest MED wins");
    assert_eq!(
        communities_of(&ibgp),
        [
            Community::new(65000, 1),
            Community::new(65000, 2),
            Community::NO_ADVERTISE
        ],
        "communities are the union"
    );
    assert!(ibgp.iter().any(|a| a.value
        == AttrValue::LargeCommunities(vec![LargeCommunity {
            global: 1,
            local1: 1,
            local2: 1
        }])));
    let ebgp = w.attrs("192.0.2.1", "198.51.100.1/32");
    assert_eq!(
        as_path_of(&ebgp),
        AsPath::from_sequence(&[LOCAL_ASN; 2]),
        "smallest prepend wins"
    );
}

#[test]
fn an_advertisement_without_prepend_does_not_override_one_with_it() {
    let w = World::new("- kind: PodCIDR\n  attributes: { asPathPrepend: 4 }\n- kind: PodCIDR\n");
    let attrs = w.attrs("192.0.2.1", "10.244.1.0/24");
    assert_eq!(as_path_of(&attrs), AsPath::from_sequence(&[LOCAL_ASN; 5]));
}

#[test]
fn merge_only_applies_to_the_peers_both_advertisements_select() {
    let mut w = World::new(
        "- kind: PodCIDR\n  attributes: { med: 5 }\n\
         - kind: PodCIDR\n  peers: [tor2]\n  attributes: { med: 1 }\n",
    );
    w.peers = vec![
        peer("tor1", "192.0.2.1", true),
        peer("tor2", "192.0.2.2", true),
    ];
    assert_eq!(med_of(&w.attrs("192.0.2.1", "10.244.1.0/24")), Some(5));
    assert_eq!(med_of(&w.attrs("192.0.2.2", "10.244.1.0/24")), Some(1));
}

#[test]
fn identical_attribute_sets_share_one_allocation() {
    let mut w = World::new("- kind: LoadBalancerIP\n  attributes: { med: 3 }\n");
    w.peers = vec![
        peer("tor1", "192.0.2.1", true),
        peer("tor2", "192.0.2.2", true),
    ];
    w.services = (0..50)
        .map(|i| {
            let mut s = svc("web", &format!("s{i}"));
            s.load_balancer_ips = vec![IpAddr::from([198, 51, 100, i])];
            s
        })
        .collect();
    let d = w.desired();
    let all: Vec<&RouteAttributes> = d.values().flat_map(|r| r.values()).collect();
    assert_eq!(all.len(), 100);
    assert!(all.iter().all(|a| Arc::ptr_eq(a, all[0])));
}

#[test]
fn pod_cidr_host_bits_are_cleared() {
    let mut w = World::new("- kind: PodCIDR\n");
    w.node.pod_cidrs = vec![net("10.244.1.7/24")];
    assert_eq!(
        w.prefixes("192.0.2.1", Family::Ipv4Unicast),
        ["10.244.1.0/24"]
    );
}

//! The service table and the announcement gate, pinned case by case.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use lb_ipam::{Protocol, ServiceKey};

use super::*;
use crate::advertise::{EndpointView, PortView, ServiceState, ServiceView, TrafficPolicy};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn port(name: Option<&str>, number: u16, protocol: Protocol) -> PortView {
    PortView {
        name: name.map(str::to_owned),
        port: number,
        protocol,
    }
}

fn endpoint(addr: &str, node: &str, ready: bool) -> EndpointView {
    EndpointView {
        ip: ip(addr),
        node_name: Some(node.to_owned()),
        ready,
        ports: vec![port(Some("http"), 8080, Protocol::TCP)],
    }
}

fn web() -> ServiceView {
    ServiceView {
        namespace: "default".into(),
        name: "web".into(),
        ports: vec![port(Some("http"), 80, Protocol::TCP)],
        endpoints: vec![
            endpoint("10.244.1.10", "n1", true),
            endpoint("10.244.2.10", "n2", true),
            endpoint("10.244.3.10", "n3", false),
        ],
        ..ServiceView::default()
    }
}

fn nodes() -> BTreeMap<String, IpAddr> {
    [
        ("n1".to_owned(), ip("10.0.1.2")),
        ("n2".to_owned(), ip("10.0.2.2")),
        ("n3".to_owned(), ip("10.0.3.2")),
    ]
    .into()
}

fn state(services: Vec<ServiceView>, allocations: &[(&str, &str)]) -> ServiceState {
    ServiceState {
        services,
        allocations: allocations
            .iter()
            .map(|(name, addr)| (ServiceKey::new("default", *name), vec![ip(addr)]))
            .collect(),
    }
}

fn table(state: &ServiceState, me: &str) -> ServiceTable {
    service_table(&TableInputs {
        node_name: me,
        nodes: &nodes(),
        state,
        cluster_ips: false,
    })
}

#[test]
fn the_allocated_address_gets_the_ready_endpoints_on_their_nodes_with_their_target_port() {
    let t = table(&state(vec![web()], &[("web", "10.200.0.10")]), "n1");
    assert_eq!(t.services.len(), 1);
    let s = &t.services[0];
    assert_eq!(
        (s.vip, s.port, s.proto),
        (ip("10.200.0.10"), 80, Proto::Tcp)
    );
    let backends: Vec<(String, String)> = s
        .backends
        .iter()
        .map(|b| (b.addr.to_string(), b.node.to_string()))
        .collect();
    assert_eq!(
        backends,
        [
            ("10.244.1.10:8080".to_owned(), "10.0.1.2".to_owned()),
            ("10.244.2.10:8080".to_owned(), "10.0.2.2".to_owned()),
        ],
        "the unready endpoint is left out"
    );
    assert!(t.problems.is_empty(), "{:?}", t.problems);
}

#[test]
fn without_an_allocation_the_requested_and_external_addresses_are_programmed() {
    let mut service = web();
    service.load_balancer_ips = vec![ip("10.200.0.50")];
    service.external_ips = vec![ip("192.0.2.7")];
    service.cluster_ips = vec![ip("10.96.0.10")];
    let t = table(&state(vec![service], &[]), "n1");
    let vips: Vec<IpAddr> = t.services.iter().map(|s| s.vip).collect();
    assert_eq!(
        vips,
        [ip("10.200.0.50"), ip("192.0.2.7")],
        "cluster IPs only when asked"
    );
}

#[test]
fn external_traffic_policy_local_keeps_only_this_nodes_backends_and_no_entry_without_one() {
    let mut service = web();
    service.external_traffic_policy = TrafficPolicy::Local;
    let st = state(vec![service], &[("web", "10.200.0.10")]);
    let on_n2 = table(&st, "n2");
    assert_eq!(on_n2.services.len(), 1);
    let addrs: Vec<String> = on_n2.services[0]
        .backends
        .iter()
        .map(|b| b.addr.to_string())
        .collect();
    assert_eq!(addrs, ["10.244.2.10:8080"]);
    assert!(
        table(&st, "n3").services.is_empty(),
        "n3 has only an unready endpoint: no entry, so nothing to serve or announce"
    );
}

#[test]
fn an_endpoint_on_an_unknown_node_is_reported_not_programmed() {
    let mut service = web();
    service.endpoints.push(endpoint("10.244.9.10", "n9", true));
    let t = table(&state(vec![service], &[("web", "10.200.0.10")]), "n1");
    assert_eq!(t.services[0].backends.len(), 2);
    assert_eq!(t.problems.len(), 1);
    assert!(t.problems[0].contains("\"n9\""), "{:?}", t.problems);
}

#[test]
fn endpoint_ports_match_service_ports_by_name_and_protocol() {
    let mut service = web();
    service.ports.push(port(Some("dns"), 53, Protocol::UDP));
    service.endpoints[0]
        .ports
        .push(port(Some("dns"), 5353, Protocol::UDP));
    let t = table(&state(vec![service], &[("web", "10.200.0.10")]), "n1");
    let dns: Vec<&ServiceInput> = t.services.iter().filter(|s| s.port == 53).collect();
    assert_eq!(dns.len(), 1);
    assert_eq!(dns[0].proto, Proto::Udp);
    let addrs: Vec<String> = dns[0].backends.iter().map(|b| b.addr.to_string()).collect();
    assert_eq!(addrs, ["10.244.1.10:5353"], "only the endpoint serving dns");
}

#[test]
fn a_second_service_on_the_same_address_and_port_is_left_out_and_reported() {
    let mut other = web();
    other.name = "other".into();
    other.external_ips = vec![ip("10.200.0.10")];
    let t = table(&state(vec![web(), other], &[("web", "10.200.0.10")]), "n1");
    assert_eq!(t.services.len(), 1);
    assert!(
        t.problems.iter().any(|p| p.contains("already served")),
        "{:?}",
        t.problems
    );
}

#[test]
fn an_address_is_served_only_when_every_port_is_in_the_kernel() {
    let mut service = web();
    service.ports.push(port(None, 443, Protocol::TCP));
    service.endpoints[0]
        .ports
        .push(port(None, 8443, Protocol::TCP));
    let t = table(&state(vec![service], &[("web", "10.200.0.10")]), "n1");
    let vip = ip("10.200.0.10");
    let one: BTreeSet<EntryKey> = [(vip, 80, Proto::Tcp)].into();
    assert!(t.served_addresses(&one).is_empty());
    let both: BTreeSet<EntryKey> = [(vip, 80, Proto::Tcp), (vip, 443, Proto::Tcp)].into();
    assert_eq!(t.served_addresses(&both), [vip].into());
}

#[test]
fn the_gate_removes_every_address_the_datapath_does_not_serve() {
    let mut service = web();
    service.external_ips = vec![ip("192.0.2.7")];
    service.load_balancer_ips = vec![ip("10.200.0.50")];
    let st = state(vec![service], &[("web", "10.200.0.10")]);
    let gated = gate(&st, &[ip("192.0.2.7")].into());
    assert!(gated.allocations.is_empty(), "allocation not served: gone");
    assert_eq!(gated.services[0].external_ips, [ip("192.0.2.7")]);
    assert!(gated.services[0].load_balancer_ips.is_empty());
    let all = gate(
        &st,
        &[ip("10.200.0.10"), ip("192.0.2.7"), ip("10.200.0.50")].into(),
    );
    assert_eq!(all, st, "everything served: nothing removed");
}

#[test]
fn endpoints_on_nodes_with_ipv6_underlay_addresses_are_programmed_with_them() {
    // An IPv4 service whose backends' nodes have IPv6 underlay addresses (IPv4 in IPv6), and
    // an IPv6 service on the same nodes (IPv6 in IPv6).
    let nodes: BTreeMap<String, IpAddr> = [
        ("n1".to_owned(), ip("fd00:0:1::2")),
        ("n2".to_owned(), ip("fd00:0:2::2")),
    ]
    .into();
    let mut web6 = web();
    web6.name = "web6".into();
    web6.endpoints = vec![endpoint("fd00:244:2::10", "n2", true)];
    let state = state(
        vec![web(), web6],
        &[("web", "10.200.0.10"), ("web6", "fd00:200::10")],
    );
    let t = service_table(&TableInputs {
        node_name: "n1",
        nodes: &nodes,
        state: &state,
        cluster_ips: false,
    });
    let got: BTreeMap<IpAddr, Vec<(String, IpAddr)>> = t
        .services
        .iter()
        .map(|s| {
            let b = s.backends.iter().map(|b| (b.addr.to_string(), b.node));
            (s.vip, b.collect())
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                ip("10.200.0.10"),
                vec![
                    ("10.244.1.10:8080".to_owned(), ip("fd00:0:1::2")),
                    ("10.244.2.10:8080".to_owned(), ip("fd00:0:2::2")),
                ]
            ),
            (
                ip("fd00:200::10"),
                vec![("[fd00:244:2::10]:8080".to_owned(), ip("fd00:0:2::2"))]
            ),
        ]
        .into()
    );
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    assert_eq!(own_address("n1", &nodes), Some(ip("fd00:0:1::2")));
}

#[test]
fn a_dual_stack_services_endpoints_serve_its_address_of_their_family_without_problems() {
    let mut dual = web();
    dual.endpoints = vec![
        endpoint("10.244.1.10", "n1", true),
        endpoint("fd00:244:1::10", "n1", true),
    ];
    let mut s = state(vec![dual], &[]);
    s.allocations.insert(
        ServiceKey::new("default", "web"),
        vec![ip("10.200.0.10"), ip("fd00:200::10")],
    );
    let t = table(&s, "n1");
    let got: Vec<(IpAddr, Vec<String>)> = t
        .services
        .iter()
        .map(|s| {
            (
                s.vip,
                s.backends.iter().map(|b| b.addr.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (ip("10.200.0.10"), vec!["10.244.1.10:8080".to_owned()]),
            (ip("fd00:200::10"), vec!["[fd00:244:1::10]:8080".to_owned()]),
        ]
    );
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    // A single-stack service's endpoint of the other family is still reported.
    let mut single = web();
    single.endpoints = vec![endpoint("fd00:244:1::10", "n1", true)];
    let t = table(&state(vec![single], &[("web", "10.200.0.10")]), "n1");
    assert_eq!(t.problems.len(), 1, "{:?}", t.problems);
}

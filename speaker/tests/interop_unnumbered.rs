//! IPv4 over IPv6 sessions against FRR 8.4 in network namespaces: extended next hop (RFC 8950)
//! on a numbered IPv6 session. FRR must hold our IPv4 route with our IPv6 next hop (and its
//! zebra install it `via inet6`), and our FIB import must install FRR's IPv4 route `via inet6`
//! in the speaker's namespace. Waits for states with generous timeouts, never asserts a
//! duration. Needs root and FRR from `scripts/setup.sh`.

mod common;

use std::time::Duration;

use common::{Speaker, Topology, speaker_yaml};
use herald_tests::{Frr, FrrConfig, wait_until_ok};

const UP: Duration = Duration::from_secs(30);
/// Kernel table the speaker imports FRR's routes into (FIB import).
const FIB_TABLE: u32 = 1235;
/// FRR's IPv4 route.
const FRR_V4: &str = "203.0.113.0/24";
/// Our IPv4 route (from [`common::ACCEPT_ALL_AND_STATIC`]).
const OURS_V4: &str = "192.0.2.0/24";

/// FRR (AS 65000) peering with the speaker's IPv6 address, IPv4 and IPv6 unicast, extended
/// next hop on, originating [`FRR_V4`].
fn frr_conf(t: &Topology) -> String {
    format!(
        "frr defaults traditional\nhostname tor\n!\nrouter bgp 65000\n bgp router-id 10.77.0.2\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n timers bgp 3 9\n \
         neighbor {n} remote-as 65001\n neighbor {n} timers connect 1\n \
         neighbor {n} capability extended-nexthop\n \
         address-family ipv4 unicast\n  neighbor {n} activate\n  network {FRR_V4}\n \
         exit-address-family\n address-family ipv6 unicast\n  neighbor {n} activate\n \
         exit-address-family\n!\n",
        n = t.node_v6,
    )
}

/// The kernel route for `prefix` in `table` of `ns` (`ip route show` text, empty if none).
fn kernel_route(ns: &herald_tests::Netns, table: &str, prefix: &str) -> String {
    ns.ip(&["route", "show", "table", table, prefix])
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn extended_next_hop_on_a_numbered_ipv6_session_with_frr() {
    let t = Topology::new("enh_numbered_frr");
    let frr = Frr::start(&t.peer, &t.dir("frr"), &FrrConfig::bgp(frr_conf(&t))).expect("frr");
    let peers = format!(
        "    - address: {p}\n      asn: 65000\n      families: [ipv4-unicast, ipv6-unicast]\n      \
         timers:\n        holdTimeSeconds: 9\n        connectRetryTimeSeconds: 1\n",
        p = t.peer_v6,
    );
    let yaml = speaker_yaml(
        "10.77.0.1",
        65001,
        &peers,
        &format!(
            "{}  fibImport: {{ table: {FIB_TABLE} }}\n",
            common::ACCEPT_ALL_AND_STATIC
        ),
    );
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    let status = speaker.wait_state(t.peer_v6, "Established", UP);
    assert!(
        status
            .capabilities
            .iter()
            .any(|c| c == "extended-next-hop (afi 1 safi 1, next hop afi 2)"),
        "capabilities: {:?}",
        status.capabilities
    );

    // FRR holds our IPv4 route with our IPv6 address as next hop.
    let hops = wait_until_ok("our IPv4 route at FRR", UP, || {
        let routes = frr.bgp_routes("ipv4").map_err(|e| e.to_string())?;
        routes
            .get(OURS_V4)
            .and_then(|paths| paths.first())
            .map(|p| p.next_hops.clone())
            .ok_or(format!("{routes:?}"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    assert!(
        hops.iter().any(|h| h == t.node_v6),
        "FRR's next hops for {OURS_V4}: {hops:?}"
    );
    // FRR's zebra installed it through an IPv6 gateway.
    let frr_kernel = wait_until_ok("our IPv4 route in FRR's kernel", UP, || {
        let r = kernel_route(&t.peer, "main", OURS_V4);
        (!r.is_empty()).then_some(r).ok_or("not yet".to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(frr_kernel.contains("inet6"), "{frr_kernel}");

    // The speaker accepted FRR's IPv4 route with FRR's IPv6 next hop...
    let row = wait_until_ok("FRR's IPv4 route at the speaker", UP, || {
        let rows = speaker.routes(true)?;
        rows.into_iter()
            .find(|r| r.prefix.to_string() == FRR_V4)
            .ok_or("not yet".to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    assert_eq!(
        row.next_hop,
        Some(t.peer_v6.parse().expect("ip")),
        "{row:?}"
    );
    assert_eq!(row.accepted, Some(true));
    // ...and installed it in its kernel table via inet6.
    let ours = wait_until_ok("FRR's IPv4 route in the speaker's kernel", UP, || {
        let r = kernel_route(&t.node, &FIB_TABLE.to_string(), FRR_V4);
        (!r.is_empty()).then_some(r).ok_or("not yet".to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    assert!(
        ours.contains(&format!("via inet6 {}", t.peer_v6)),
        "kernel route: {ours}"
    );
}

//! IPv4 over IPv6 sessions against FRR 8.4 and BIRD 2.0.12 in network namespaces: extended next
//! hop (RFC 8950) on a numbered IPv6 session; a session between given link-local addresses on a
//! link without any IPv4 or global IPv6 address (`address: fe80::…` + `interface`); and BGP
//! unnumbered (`interface` alone), where each side finds the other by router advertisements
//! (FRR `neighbor eth1 interface`; BIRD `radv` + `neighbor range fe80::/10`). Routes flow both
//! ways, IPv4 ones with IPv6 next hops: the peers' kernels get ours `via inet6`, and our FIB
//! import installs theirs `via inet6` (link-local gateways on the interface). Waits for states
//! with generous timeouts, never asserts a duration. Needs root, FRR and BIRD from
//! `scripts/setup.sh`.

mod common;

use std::time::Duration;

use common::{Speaker, Topology, speaker_yaml};
use herald_tests::{Bird, Frr, FrrConfig, Netns, TestLab, VethPair, wait_until_ok};

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
fn kernel_route(ns: &Netns, table: &str, prefix: &str) -> String {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    ns.ip(&[family, "route", "show", "table", table, prefix])
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

/// Two namespaces joined by `eth1` carrying only the link-local addresses `fe80::a` (node) and
/// `fe80::b` (peer): no IPv4, no global IPv6, no kernel-generated link-local (so each side has
/// exactly one source address on the link).
struct LinkLocalPair {
    lab: TestLab,
    node: Netns,
    peer: Netns,
    _link: VethPair,
}

const NODE_LL: &str = "fe80::a";
const PEER_LL: &str = "fe80::b";

impl LinkLocalPair {
    fn new(test: &str) -> Self {
        let lab = TestLab::new(test).expect("test lab");
        let node = lab.netns("node").expect("node netns");
        let peer = lab.netns("peer").expect("peer netns");
        let link = VethPair::create(&node, "eth1", &peer, "eth1").expect("veth");
        for (ns, ll) in [(&node, NODE_LL), (&peer, PEER_LL)] {
            ns.ip(&["link", "set", "eth1", "addrgenmode", "none"])
                .expect("no kernel link-local");
            ns.link_up("lo").expect("lo up");
            ns.link_up("eth1").expect("eth1 up");
            ns.ip(&["addr", "add", &format!("{ll}/64"), "dev", "eth1", "nodad"])
                .expect("link-local address");
        }
        Self {
            lab,
            node,
            peer,
            _link: link,
        }
    }

    fn dir(&self, role: &str) -> std::path::PathBuf {
        self.lab.subdir(role).expect("subdir")
    }
}

#[test]
fn link_local_session_with_frr_carries_ipv4_and_ipv6_without_any_ipv4_address() {
    let t = LinkLocalPair::new("ll_peer_frr");
    let conf = format!(
        "frr defaults traditional\nhostname tor\n!\nrouter bgp 65000\n bgp router-id 10.77.0.2\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n timers bgp 3 9\n \
         neighbor {n} remote-as 65001\n neighbor {n} interface eth1\n \
         neighbor {n} timers connect 1\n neighbor {n} capability extended-nexthop\n \
         address-family ipv4 unicast\n  neighbor {n} activate\n  network {FRR_V4}\n \
         exit-address-family\n address-family ipv6 unicast\n  neighbor {n} activate\n  \
         network 2001:db8:77::/48\n exit-address-family\n!\n",
        n = NODE_LL,
    );
    let frr = Frr::start(&t.peer, &t.dir("frr"), &FrrConfig::bgp(conf)).expect("frr");
    let speaker = link_local_speaker(&t);
    speaker.wait_state(PEER_LL, "Established", UP);
    assert!(
        t.node
            .ip(&["-4", "addr", "show", "dev", "eth1"])
            .expect("ip")
            .trim()
            .is_empty(),
        "the link must carry no IPv4 address"
    );

    // FRR holds both our routes, each installed by its zebra through our link-local address.
    for (afi, prefix) in [("ipv4", OURS_V4), ("ipv6", "2001:db8:1::/48")] {
        wait_until_ok(&format!("{prefix} at FRR"), UP, || {
            let routes = frr.bgp_routes(afi).map_err(|e| e.to_string())?;
            routes.get(prefix).map(|_| ()).ok_or(format!("{routes:?}"))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
        let route = wait_until_ok(&format!("{prefix} in FRR's kernel"), UP, || {
            let r = kernel_route(&t.peer, "main", prefix);
            (!r.is_empty()).then_some(r).ok_or("not yet".to_owned())
        })
        .unwrap_or_else(|e| {
            let detail = frr.vtysh(&format!("show bgp {afi} unicast {prefix}"));
            panic!("{e}\nFRR: {detail:?}")
        });
        assert!(
            route.contains(NODE_LL) && route.contains("dev eth1"),
            "{prefix} in FRR's kernel: {route}"
        );
    }

    // The speaker installs FRR's routes through FRR's link-local address on eth1.
    wait_speaker_kernel(
        &t,
        &speaker,
        FRR_V4,
        &format!("via inet6 {PEER_LL} dev eth1"),
    );
    wait_speaker_kernel(
        &t,
        &speaker,
        "2001:db8:77::/48",
        &format!("via {PEER_LL} dev eth1"),
    );
}

/// The speaker's side of the link-local session: IPv4 and IPv6, our two static routes, FIB import.
fn link_local_speaker(t: &LinkLocalPair) -> Speaker {
    speaker_on_link(
        t,
        &format!(
            "    - address: {PEER_LL}\n      interface: eth1\n      asn: 65000\n      \
             families: [ipv4-unicast, ipv6-unicast]\n"
        ),
    )
}

/// The speaker with `peer` (a `peers:` entry without timers), our two static routes and FIB
/// import.
fn speaker_on_link(t: &LinkLocalPair, peer: &str) -> Speaker {
    let peers = format!(
        "{peer}      timers:\n        holdTimeSeconds: 9\n        connectRetryTimeSeconds: 1\n"
    );
    let yaml = speaker_yaml(
        "10.77.0.1",
        65001,
        &peers,
        &format!(
            "  importPolicy: accept-all\n  staticRoutes:\n    - prefix: {OURS_V4}\n    \
             - prefix: 2001:db8:1::/48\n  fibImport: {{ table: {FIB_TABLE} }}\n"
        ),
    );
    Speaker::start(&t.node, &t.dir("speaker"), &yaml)
}

/// Waits until the speaker's kernel table has `prefix` through `via` (e.g. `via inet6 fe80::b
/// dev eth1`).
fn wait_speaker_kernel(t: &LinkLocalPair, speaker: &Speaker, prefix: &str, via: &str) {
    let route = wait_until_ok(&format!("{prefix} in the speaker's kernel"), UP, || {
        let r = kernel_route(&t.node, &FIB_TABLE.to_string(), prefix);
        (!r.is_empty()).then_some(r).ok_or("not yet".to_owned())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\nreceived: {:?}\n{}",
            speaker.routes(true),
            speaker.log()
        )
    });
    assert!(route.contains(via), "{prefix}: {route}");
}

#[test]
fn link_local_session_with_bird_carries_ipv4_and_ipv6() {
    let t = LinkLocalPair::new("ll_peer_bird");
    let conf = format!(
        "router id 10.77.0.2;\nprotocol device {{}}\n\
         protocol static s4 {{ ipv4; route {FRR_V4} blackhole; }}\n\
         protocol static s6 {{ ipv6; route 2001:db8:77::/48 blackhole; }}\n\
         protocol bgp herald {{ local as 65000; neighbor {NODE_LL} as 65001; interface \"eth1\"; \
         hold time 9; error wait time 1, 5; connect retry time 1; start delay time 1; \
         ipv4 {{ import all; export all; extended next hop on; }}; \
         ipv6 {{ import all; export all; }}; }}\n"
    );
    let bird = Bird::start(&t.peer, &t.dir("bird"), &conf).expect("bird");
    let speaker = link_local_speaker(&t);
    speaker.wait_state(PEER_LL, "Established", UP);
    for prefix in [OURS_V4, "2001:db8:1::/48"] {
        wait_until_ok(&format!("{prefix} at BIRD"), UP, || {
            let routes = bird.routes().map_err(|e| e.to_string())?;
            let route = routes
                .get(prefix)
                .and_then(|r| r.iter().find(|r| r.protocol == "herald"))
                .ok_or(format!("{routes:?}"))?;
            route
                .via
                .iter()
                .any(|v| v.contains(NODE_LL))
                .then_some(())
                .ok_or(format!("{route:?}"))
        })
        .unwrap_or_else(|e| {
            let detail = bird.birdc("show route all");
            panic!("{e}\nBIRD: {detail:?}\n{}", speaker.log())
        });
    }
    wait_speaker_kernel(
        &t,
        &speaker,
        FRR_V4,
        &format!("via inet6 {PEER_LL} dev eth1"),
    );
    wait_speaker_kernel(
        &t,
        &speaker,
        "2001:db8:77::/48",
        &format!("via {PEER_LL} dev eth1"),
    );
}

/// BGP unnumbered both ways: the speaker names only `interface: eth1`, FRR only
/// `neighbor eth1 interface`; each finds the other's link-local address by router
/// advertisements, and IPv4 and IPv6 routes flow both ways with no IPv4 address on the link.
#[test]
fn unnumbered_with_frr_finds_the_neighbour_by_router_advertisements() {
    let t = LinkLocalPair::new("unnum_frr");
    let conf = format!(
        "frr defaults traditional\nhostname tor\n!\nrouter bgp 65000\n bgp router-id 10.77.0.2\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n timers bgp 3 9\n \
         neighbor eth1 interface remote-as external\n neighbor eth1 timers connect 1\n \
         address-family ipv4 unicast\n  network {FRR_V4}\n exit-address-family\n \
         address-family ipv6 unicast\n  neighbor eth1 activate\n  network 2001:db8:77::/48\n \
         exit-address-family\n!\n"
    );
    let frr = Frr::start(&t.peer, &t.dir("frr"), &FrrConfig::bgp(conf)).expect("frr");
    let speaker = speaker_on_link(&t, "    - interface: eth1\n      asn: 65000\n");
    let status = speaker.wait_state(PEER_LL, "Established", Duration::from_secs(60));
    assert!(
        status
            .capabilities
            .iter()
            .any(|c| c == "extended-next-hop (afi 1 safi 1, next hop afi 2)"),
        "{:?}",
        status.capabilities
    );
    for (afi, prefix) in [("ipv4", OURS_V4), ("ipv6", "2001:db8:1::/48")] {
        let route = wait_until_ok(&format!("{prefix} in FRR's kernel"), UP, || {
            let r = kernel_route(&t.peer, "main", prefix);
            (!r.is_empty()).then_some(r).ok_or("not yet".to_owned())
        })
        .unwrap_or_else(|e| {
            let detail = frr.vtysh(&format!("show bgp {afi} unicast {prefix}"));
            panic!("{e}\nFRR: {detail:?}\n{}", speaker.log())
        });
        assert!(
            route.contains(NODE_LL) && route.contains("dev eth1"),
            "{prefix} in FRR's kernel: {route}"
        );
    }
    wait_speaker_kernel(
        &t,
        &speaker,
        FRR_V4,
        &format!("via inet6 {PEER_LL} dev eth1"),
    );
    wait_speaker_kernel(
        &t,
        &speaker,
        "2001:db8:77::/48",
        &format!("via {PEER_LL} dev eth1"),
    );
}

/// BGP unnumbered against BIRD 2: BIRD announces itself by router advertisements (its `radv`
/// protocol) and accepts dynamic BGP sessions from any link-local address on eth1 (`neighbor
/// range fe80::/10` with `interface "eth1"`); the speaker finds BIRD by its RA and connects.
#[test]
fn unnumbered_with_bird_finds_it_by_its_router_advertisements() {
    let t = LinkLocalPair::new("unnum_bird");
    let conf = format!(
        "router id 10.77.0.2;\nprotocol device {{}}\n\
         protocol radv {{ ipv6; interface \"eth1\" {{ min ra interval 3; max ra interval 4; default lifetime 0; }}; }}\n\
         protocol static s4 {{ ipv4; route {FRR_V4} blackhole; }}\n\
         protocol static s6 {{ ipv6; route 2001:db8:77::/48 blackhole; }}\n\
         protocol bgp herald {{ local as 65000; neighbor range fe80::/10 as 65001; interface \"eth1\"; \
         dynamic name \"dyn\"; hold time 9; error wait time 1, 5; \
         ipv4 {{ import all; export all; extended next hop on; }}; \
         ipv6 {{ import all; export all; }}; }}\n"
    );
    let bird = Bird::start(&t.peer, &t.dir("bird"), &conf).expect("bird");
    let speaker = speaker_on_link(&t, "    - interface: eth1\n      asn: 65000\n");
    wait_until_ok("the speaker found BIRD", Duration::from_secs(60), || {
        let peers = speaker.peers()?;
        peers
            .iter()
            .find(|p| p.address.to_string() == PEER_LL && p.state == "Established")
            .map(|_| ())
            .ok_or(format!("{peers:?}"))
    })
    .unwrap_or_else(|e| {
        let detail = bird.birdc("show protocols all");
        panic!("{e}\nBIRD: {detail:?}\n{}", speaker.log())
    });
    wait_speaker_kernel(
        &t,
        &speaker,
        FRR_V4,
        &format!("via inet6 {PEER_LL} dev eth1"),
    );
    wait_speaker_kernel(
        &t,
        &speaker,
        "2001:db8:77::/48",
        &format!("via {PEER_LL} dev eth1"),
    );
    for prefix in [OURS_V4, "2001:db8:1::/48"] {
        wait_until_ok(&format!("{prefix} at BIRD"), UP, || {
            let routes = bird.routes().map_err(|e| e.to_string())?;
            routes.get(prefix).map(|_| ()).ok_or(format!("{routes:?}"))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Prints what a BGP connection from `fe80::b` on the prober's eth1 to `[fe80::a%eth1]:179` gets:
/// `RESET`/`CLOSED` when the speaker drops it, `OPEN` if it answered with a BGP OPEN.
const PROBE: &str = r#"
import socket, struct
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
idx = socket.if_nametoindex('eth1')
s.bind(('fe80::b', 0, 0, idx))
s.settimeout(10)
s.connect(('fe80::a', 179, 0, idx))
caps = bytes([1, 4, 0, 2, 0, 1]) + bytes([65, 4]) + struct.pack('!I', 65000)
opt = bytes([2, len(caps)]) + caps
body = struct.pack('!BHH4sB', 4, 65000, 9, socket.inet_aton('10.9.9.9'), len(opt)) + opt
s.sendall(b'\xff' * 16 + struct.pack('!HB', 19 + len(body), 1) + body)
try:
    d = s.recv(4096)
    print('OPEN' if len(d) > 18 and d[18] == 1 else 'CLOSED', flush=True)
except ConnectionResetError:
    print('RESET', flush=True)
"#;

/// A link-local peer is configured on one link: a connection from its address arriving on
/// another link of the node is not that peer and is dropped, while the real peer stays up.
#[test]
fn a_link_local_peers_address_on_another_link_is_not_accepted() {
    let t = LinkLocalPair::new("ll_wrong_link");
    // A second link from the node (eth2) to a prober holding the peer's address fe80::b.
    let prober = t.lab.netns("prober").expect("netns");
    let _link2 = VethPair::create(&t.node, "eth2", &prober, "eth1").expect("veth");
    for (ns, dev, ll) in [(&t.node, "eth2", NODE_LL), (&prober, "eth1", PEER_LL)] {
        ns.ip(&["link", "set", dev, "addrgenmode", "none"])
            .expect("no kernel link-local");
        ns.link_up(dev).expect("up");
        ns.ip(&["addr", "add", &format!("{ll}/64"), "dev", dev, "nodad"])
            .expect("link-local");
    }
    prober.link_up("lo").expect("lo");
    let conf = format!(
        "frr defaults traditional\nhostname tor\n!\nrouter bgp 65000\n bgp router-id 10.77.0.2\n \
         no bgp ebgp-requires-policy\n timers bgp 3 9\n \
         neighbor {n} remote-as 65001\n neighbor {n} interface eth1\n neighbor {n} timers connect 1\n!\n",
        n = NODE_LL,
    );
    let _frr = Frr::start(&t.peer, &t.dir("frr"), &FrrConfig::bgp(conf)).expect("frr");
    let speaker = link_local_speaker(&t);
    let before = speaker.wait_state(PEER_LL, "Established", UP);
    let script = t.dir("probe").join("probe.py");
    std::fs::write(&script, PROBE).expect("script");
    let out = prober
        .exec("/usr/bin/python3", &[&script.to_string_lossy()])
        .unwrap_or_else(|e| e.to_string());
    assert!(
        !out.contains("OPEN"),
        "the speaker answered a connection from the wrong link: {out}"
    );
    assert!(
        speaker.log().contains("on another link reset"),
        "{out}\n{}",
        speaker.log()
    );
    let after = speaker.peer(PEER_LL);
    assert_eq!(after.state, "Established");
    assert_eq!(
        after.transitions, before.transitions,
        "the real peer was disturbed"
    );
}

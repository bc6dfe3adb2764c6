//! End-to-end tests of what the speaker announces and imports, against real FRR and BIRD in
//! network namespaces: LoadBalancer IPs allocated by lb-ipam and announced from three nodes as a
//! 3-way ECMP route in an FRR ToR's kernel FIB (one path left under `externalTrafficPolicy:
//! Local`), advertisement attributes exactly as configured on FRR (eBGP) and BIRD (iBGP), the IPv6
//! link-local next hop, and FIB import of BIRD's routes (withdrawal, session loss, import-policy
//! change without a session reset). Needs root and the daemons from `scripts/setup.sh`.

mod common;

use std::time::Duration;

use common::Speaker;
use herald_tests::{Bird, ExaBgp, Frr, FrrConfig, Netns, TestLab, VethPair, wait_until_ok};
use nix::sys::signal::Signal;
use speaker::fib::HERALD_RTPROT;

const UP: Duration = Duration::from_secs(45);

const TIMERS: &str = "timers: { holdTimeSeconds: 9, connectRetryTimeSeconds: 1 }";

/// Joins `a` and `b` with a veth pair (`a_if`/`b_if`) carrying the given addresses, links up.
fn link(a: &Netns, a_if: &str, a_cidr: &str, b: &Netns, b_if: &str, b_cidr: &str) -> VethPair {
    let pair = VethPair::create(a, a_if, b, b_if).expect("veth");
    for (ns, dev, cidr) in [(a, a_if, a_cidr), (b, b_if, b_cidr)] {
        ns.link_up("lo").expect("lo up");
        ns.link_up(dev).expect("link up");
        for c in cidr.split(',') {
            ns.addr_add(dev, c).expect("address");
        }
    }
    pair
}

/// Node `i` of the ECMP test: one ToR peer, a one-address pool, and service `web` whose
/// endpoints are the given (node, ready) pairs.
fn node_yaml(i: u8, local_policy: bool, endpoints: &[&str]) -> String {
    let endpoints: String = endpoints
        .iter()
        .enumerate()
        .map(|(n, node)| {
            format!(
                "      - {{ ip: 10.244.{}.{}, nodeName: {node} }}\n",
                n + 1,
                n + 10
            )
        })
        .collect();
    format!(
        "node: {{ name: node{i}, routerId: 10.80.{i}.2 }}\n\
         bgp:\n  localASN: 65001\n  peers:\n    - {{ name: tor, address: 10.80.{i}.1, asn: 65000, {TIMERS} }}\n\
         \x20 advertisements:\n    - {{ name: lb, kind: LoadBalancerIP }}\n\
         ipam:\n  pools:\n    - {{ name: vip, blocks: [{{ start: 10.200.0.10, stop: 10.200.0.10 }}] }}\n\
         services:\n  - name: web\n    externalTrafficPolicy: {policy}\n    endpoints:\n{endpoints}\
         api:\n  controlSocket: {{socket}}\n",
        policy = if local_policy { "Local" } else { "Cluster" },
    )
}

/// Number of kernel next hops of `prefix` in `ns`'s main table (0: no route).
fn kernel_paths(ns: &Netns, prefix: &str) -> usize {
    let out = ns.ip(&["route", "show", prefix]).unwrap_or_default();
    if out.trim().is_empty() {
        return 0;
    }
    out.matches("nexthop via").count().max(1)
}

#[test]
fn three_nodes_give_the_tor_a_3_way_ecmp_route_and_local_policy_leaves_one_path() {
    let lab = TestLab::new("adv_ecmp").expect("lab");
    let tor = lab.netns("tor").expect("tor");
    let nodes: Vec<Netns> = (1..=3)
        .map(|i| lab.netns(&format!("n{i}")).expect("node netns"))
        .collect();
    let _links: Vec<VethPair> = nodes
        .iter()
        .zip(1u8..)
        .map(|(ns, i)| {
            link(
                &tor,
                &format!("eth{i}"),
                &format!("10.80.{i}.1/24"),
                ns,
                "eth0",
                &format!("10.80.{i}.2/24"),
            )
        })
        .collect();
    let neighbors: String = (1..=3)
        .map(|i| {
            format!(
                " neighbor 10.80.{i}.2 remote-as 65001\n neighbor 10.80.{i}.2 timers connect 1\n"
            )
        })
        .collect();
    let conf = format!(
        "frr defaults traditional\nhostname tor\n!\nrouter bgp 65000\n bgp router-id 10.80.0.1\n \
         no bgp ebgp-requires-policy\n bgp bestpath as-path multipath-relax\n timers bgp 3 9\n{neighbors} \
         address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n!\n"
    );
    let frr = Frr::start(
        &tor,
        &lab.subdir("frr").expect("dir"),
        &FrrConfig::bgp(conf),
    )
    .expect("frr");
    let all = ["node1", "node2", "node3"];
    let speakers: Vec<Speaker> = nodes
        .iter()
        .zip(1u8..)
        .map(|(ns, i)| {
            let dir = lab.subdir(&format!("speaker{i}")).expect("dir");
            Speaker::start(ns, &dir, &node_yaml(i, false, &all))
        })
        .collect();
    for i in 1..=3 {
        frr.wait_established(&format!("10.80.{i}.2"), UP)
            .expect("ToR session");
    }
    wait_until_ok(
        "3-way ECMP route in the ToR's kernel",
        UP,
        || match kernel_paths(&tor, "10.200.0.10") {
            3 => Ok(()),
            n => Err(format!(
                "{n} paths: {}",
                tor.ip(&["route"]).unwrap_or_default()
            )),
        },
    )
    .expect("ECMP");
    // The speaker reports what it sent: the lb-ipam address as a /32 with next hop self.
    let sent = speakers[0].routes(false).expect("routes");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].prefix.to_string(), "10.200.0.10/32");
    assert_eq!(sent[0].next_hop, Some("10.80.1.2".parse().expect("ip")));
    assert_eq!(sent[0].as_path, "65001");

    // eTP=Local with the only endpoint on node1: node2 and node3 withdraw, one path remains.
    for (speaker, i) in speakers.iter().zip(1u8..) {
        speaker.reconfigure(&node_yaml(i, true, &["node1"]));
    }
    wait_until_ok("one path left", UP, || {
        match kernel_paths(&tor, "10.200.0.10") {
            1 => Ok(()),
            n => Err(format!("{n} paths")),
        }
    })
    .expect("Local policy");
    let route = tor.ip(&["route", "show", "10.200.0.10"]).expect("ip route");
    assert!(route.contains("via 10.80.1.2"), "{route}");
    assert!(speakers[1].routes(false).expect("routes").is_empty());
}

#[test]
fn attributes_reach_frr_and_bird_exactly_as_configured() {
    let lab = TestLab::new("adv_attrs").expect("lab");
    let node = lab.netns("node").expect("node");
    let frr_ns = lab.netns("frr").expect("frr");
    let bird_ns = lab.netns("bird").expect("bird");
    let _l1 = link(
        &node,
        "eth1",
        "10.81.1.1/29,fd81:1::1/64",
        &frr_ns,
        "eth1",
        "10.81.1.2/29,fd81:1::2/64",
    );
    let _l2 = link(
        &node,
        "eth2",
        "10.81.2.1/29",
        &bird_ns,
        "eth1",
        "10.81.2.2/29",
    );
    let conf = "frr defaults traditional\nhostname frr\n!\nrouter bgp 65000\n bgp router-id 10.81.1.2\n \
        no bgp ebgp-requires-policy\n timers bgp 3 9\n neighbor 10.81.1.1 remote-as 65001\n \
        neighbor 10.81.1.1 timers connect 1\n neighbor fd81:1::1 remote-as 65001\n \
        neighbor fd81:1::1 timers connect 1\n address-family ipv6 unicast\n  neighbor fd81:1::1 activate\n \
        exit-address-family\n!\n";
    let frr = Frr::start(
        &frr_ns,
        &lab.subdir("frr").expect("dir"),
        &FrrConfig::bgp(conf),
    )
    .expect("frr");
    let bird_conf = "router id 10.81.2.2;\nprotocol device {}\n\
        protocol bgp spk { local 10.81.2.2 as 65001; neighbor 10.81.2.1 as 65001; hold time 9; \
        error wait time 1, 5; connect retry time 1; ipv4 { import all; export none; }; }\n";
    let bird = Bird::start(&bird_ns, &lab.subdir("bird").expect("dir"), bird_conf).expect("bird");
    let yaml = format!(
        "node: {{ name: node, routerId: 10.81.1.1 }}\n\
         bgp:\n  localASN: 65001\n  peers:\n\
         \x20   - {{ name: frr, address: 10.81.1.2, asn: 65000, {TIMERS} }}\n\
         \x20   - {{ name: frr6, address: \"fd81:1::2\", asn: 65000, {TIMERS} }}\n\
         \x20   - {{ name: bird, address: 10.81.2.2, asn: internal, {TIMERS} }}\n\
         \x20 advertisements:\n    - kind: LoadBalancerIP\n      attributes:\n\
         \x20       communities: {{ standard: [\"65001:100\"], large: [\"65001:1:2\"], extended: [\"rt:65001:7\"] }}\n\
         \x20       localPreference: 300\n        med: 50\n        asPathPrepend: 2\n\
         ipam:\n  pools:\n    - {{ name: v4, blocks: [{{ cidr: 198.51.100.0/28 }}] }}\n\
         \x20   - {{ name: v6, blocks: [{{ cidr: \"2001:db8:7::/120\" }}] }}\n\
         services:\n  - {{ name: web, ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv4, IPv6] }}\n\
         api:\n  controlSocket: {{socket}}\n"
    );
    let speaker = Speaker::start(&node, &lab.subdir("speaker").expect("dir"), &yaml);
    for peer in ["10.81.1.2", "fd81:1::2", "10.81.2.2"] {
        speaker.wait_state(peer, "Established", UP);
    }
    let v4 = wait_until_ok("FRR has the IPv4 service route", UP, || {
        frr.vtysh_json("show bgp ipv4 unicast 198.51.100.1/32 json")
            .map_err(|e| e.to_string())
            .and_then(|j| j.get("paths").cloned().ok_or_else(|| "no paths".to_owned()))
    })
    .expect("FRR route");
    let path = &v4[0];
    assert_eq!(path["aspath"]["string"], "65001 65001 65001", "{path}");
    assert_eq!(path["metric"], 50, "{path}");
    assert_eq!(path["community"]["string"], "65001:100", "{path}");
    assert_eq!(path["largeCommunity"]["string"], "65001:1:2", "{path}");
    assert_eq!(path["extendedCommunity"]["string"], "RT:65001:7", "{path}");
    // eBGP: no LOCAL_PREF on the wire (FRR then shows none or its default 100, never 300).
    assert_ne!(
        path.get("locPrf").and_then(|v| v.as_u64()),
        Some(300),
        "{path}"
    );

    let v6 = wait_until_ok("FRR has the IPv6 service route", UP, || {
        frr.vtysh_json("show bgp ipv6 unicast 2001:db8:7::1/128 json")
            .map_err(|e| e.to_string())
            .and_then(|j| j.get("paths").cloned().ok_or_else(|| "no paths".to_owned()))
    })
    .expect("FRR IPv6 route");
    let hops = v6[0]["nexthops"].to_string();
    assert!(
        hops.contains("fd81:1::1") && hops.contains("link-local"),
        "global + link-local next hop: {hops}"
    );

    let route = wait_until_ok("BIRD has the IPv4 service route", UP, || {
        let routes = bird.routes().map_err(|e| e.to_string())?;
        routes
            .get("198.51.100.1/32")
            .and_then(|r| r.first().cloned())
            .ok_or_else(|| "missing".to_owned())
    })
    .expect("BIRD route");
    let attr = |k: &str| route.attributes.get(k).cloned().unwrap_or_default();
    assert_eq!(attr("BGP.local_pref"), "300", "{route:?}");
    assert_eq!(attr("BGP.med"), "50", "{route:?}");
    assert_eq!(attr("BGP.community"), "(65001,100)", "{route:?}");
    assert_eq!(attr("BGP.large_community"), "(65001, 1, 2)", "{route:?}");
    assert_eq!(
        route.as_path, "",
        "iBGP: no prepend, empty AS_PATH: {route:?}"
    );
}

#[test]
fn bird_routes_are_imported_into_the_kernel_and_removed_on_withdrawal_policy_and_session_loss() {
    let lab = TestLab::new("adv_fib").expect("lab");
    let node = lab.netns("node").expect("node");
    let bird_ns = lab.netns("bird").expect("bird");
    let _l = link(
        &node,
        "eth1",
        "10.82.0.1/29",
        &bird_ns,
        "eth1",
        "10.82.0.2/29",
    );
    let bird_conf = "router id 10.82.0.2;\nprotocol device {}\n\
        protocol static lan { ipv4; route 198.51.100.0/24 blackhole; route 203.0.113.0/24 blackhole; \
        route 192.0.2.0/24 blackhole; }\n\
        protocol bgp spk { local 10.82.0.2 as 65000; neighbor 10.82.0.1 as 65001; hold time 9; \
        error wait time 1, 5; connect retry time 1; ipv4 { import none; export all; }; }\n";
    let bird = Bird::start(&bird_ns, &lab.subdir("bird").expect("dir"), bird_conf).expect("bird");
    let yaml = |policy: &str| {
        format!(
            "node: {{ name: node, routerId: 10.82.0.1 }}\n\
             bgp:\n  localASN: 65001\n  fibImport: {{ table: 254 }}\n  importPolicy:\n{policy}\
             \x20 peers:\n    - {{ name: bird, address: 10.82.0.2, asn: 65000, {TIMERS} }}\n\
             api:\n  controlSocket: {{socket}}\n"
        )
    };
    let both = "    rules:\n      - { match: { prefixes: [{ prefix: 0.0.0.0/0, le: 24 }] }, action: accept }\n";
    let one = "    rules:\n      - { match: { prefixes: [{ prefix: 198.51.100.0/24 }] }, action: accept }\n";
    // The operator's own route for a prefix BIRD also sends, at the metric ours would have.
    node.ip(&["route", "add", "192.0.2.0/24", "via", "10.82.0.3"])
        .expect("operator's static route");
    let operator_route_intact = || {
        let shown = node
            .ip(&["route", "show", "192.0.2.0/24"])
            .unwrap_or_default();
        shown.contains("via 10.82.0.3") && !shown.contains("via 10.82.0.2")
    };
    let speaker = Speaker::start(&node, &lab.subdir("speaker").expect("dir"), &yaml(both));
    speaker.wait_state("10.82.0.2", "Established", UP);
    let installed = |prefix: &str| {
        node.ip(&["route", "show", prefix, "proto", &HERALD_RTPROT.to_string()])
            .unwrap_or_default()
            .contains("via 10.82.0.2")
    };
    // Waits until the two prefixes are (or are not) in the kernel.
    let wait_installed = |what: &str, want: (bool, bool)| {
        wait_until_ok(what, UP, || {
            let now = (installed("198.51.100.0/24"), installed("203.0.113.0/24"));
            (now == want).then_some(()).ok_or(format!("{now:?}"))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    };
    wait_installed("both routes in the kernel", (true, true));
    // Learned in the same UPDATE as the two above, yet the operator's route was not replaced.
    assert!(
        operator_route_intact(),
        "a peer's route replaced the operator's"
    );

    // Import policy narrowed: one route leaves the kernel, the session is not reset.
    let before = speaker.peer("10.82.0.2");
    speaker.reconfigure(&yaml(one));
    wait_installed("policy change applied", (true, false));
    let after = speaker.peer("10.82.0.2");
    assert_eq!(
        after.transitions, before.transitions,
        "import policy change reset the session"
    );
    // The rejected route is not kept: no soft reconfiguration inbound.
    assert_eq!(after.prefixes_received, 1);
    assert_eq!(after.prefixes_accepted, 1);

    // Withdrawal by BIRD, then the route back; session loss, then the session back; then a clean
    // stop of the speaker: the route goes each time (no graceful restart configured).
    bird.birdc("disable lan").expect("birdc");
    wait_installed("withdrawn route removed", (false, false));
    bird.birdc("enable lan").expect("birdc");
    wait_installed("route re-announced", (true, false));
    bird.birdc("disable spk").expect("birdc");
    wait_installed("route removed on session loss", (false, false));
    bird.birdc("enable spk").expect("birdc");
    wait_installed("route back with the session", (true, false));
    let mut speaker = speaker;
    let mut process = speaker.process.take().expect("running speaker");
    process.signal(Signal::SIGTERM).expect("SIGTERM");
    process
        .wait_exit(Duration::from_secs(10))
        .expect("speaker stops");
    assert!(
        !installed("198.51.100.0/24"),
        "routes left in the kernel after shutdown"
    );
    assert!(operator_route_intact(), "the operator's route was removed");
}

/// RFC 4724 §4.1 on the restarting side, against BIRD: after the agent is killed, the kernel
/// routes it installed keep forwarding while it is down; the new agent adopts them, and removes
/// the one BIRD no longer sends only when every peer has sent End-of-RIB — not when the first
/// peer's update arrives. The route BIRD still sends is never absent.
#[test]
fn kept_fib_routes_survive_a_restart_and_are_swept_only_after_end_of_rib() {
    let lab = TestLab::new("adv_fib_gr").expect("lab");
    let node = lab.netns("node").expect("node");
    let bird_ns = lab.netns("bird").expect("bird");
    let _l = link(
        &node,
        "eth1",
        "10.83.0.1/29",
        &bird_ns,
        "eth1",
        "10.83.0.2/29",
    );
    let bird_conf = "router id 10.83.0.2;\nprotocol device {}\n\
        protocol static kept { ipv4; route 198.51.100.0/24 blackhole; }\n\
        protocol static gone { ipv4; route 203.0.113.0/24 blackhole; }\n\
        protocol bgp spk { local 10.83.0.2 as 65000; neighbor 10.83.0.1 as 65001; hold time 9; \
        graceful restart on; error wait time 1, 5; connect retry time 1; \
        ipv4 { import none; export all; }; }\n\
        protocol bgp quiet { local 10.83.0.3 as 65000; neighbor 10.83.0.4 as 65001; hold time 9; \
        graceful restart on; error wait time 1, 5; connect retry time 1; \
        ipv4 { import none; export none; }; }\n";
    // A second session between second addresses (BIRD matches incoming sessions by address).
    bird_ns
        .sh("ip addr add 10.83.0.3/29 dev eth1")
        .expect("second address");
    node.sh("ip addr add 10.83.0.4/29 dev eth1")
        .expect("second address");
    let bird = Bird::start(&bird_ns, &lab.subdir("bird").expect("dir"), bird_conf).expect("bird");
    let state_dir = lab.subdir("state").expect("dir");
    let yaml = format!(
        "node: {{ name: node, routerId: 10.83.0.1 }}\n\
         bgp:\n  localASN: 65001\n  stateDir: {state}\n  fibImport: {{ keepOnShutdown: true }}\n  importPolicy: accept-all\n\
         \x20 peers:\n    - {{ name: bird, address: 10.83.0.2, asn: 65000, {TIMERS}, \
         gracefulRestart: {{ enabled: true, restartTimeSeconds: 120 }} }}\n\
         \x20   - {{ name: quiet, address: 10.83.0.3, localAddress: 10.83.0.4, asn: 65000, {TIMERS}, \
         gracefulRestart: {{ enabled: true, restartTimeSeconds: 120 }} }}\n\
         api:\n  controlSocket: {{socket}}\n",
        state = state_dir.display()
    );
    let installed = |prefix: &str| {
        node.ip(&["route", "show", prefix, "proto", &HERALD_RTPROT.to_string()])
            .unwrap_or_default()
            .contains("via 10.83.0.2")
    };
    let both = || (installed("198.51.100.0/24"), installed("203.0.113.0/24"));
    let mut first = Speaker::start(&node, &lab.subdir("speaker1").expect("dir"), &yaml);
    first.wait_state("10.83.0.2", "Established", UP);
    first.wait_state("10.83.0.3", "Established", UP);
    wait_until_ok("both routes in the kernel", UP, || {
        (both() == (true, true))
            .then_some(())
            .ok_or(format!("{:?}", both()))
    })
    .unwrap_or_else(|e| panic!("{e}"));

    // The agent dies; BIRD stops sending one route, and its second (route-less) session stays
    // down for now.
    let mut process = first.process.take().expect("running speaker");
    process.signal(Signal::SIGKILL).expect("SIGKILL");
    process
        .wait_exit(Duration::from_secs(10))
        .expect("speaker dies");
    bird.birdc("disable gone").expect("birdc");
    bird.birdc("disable quiet").expect("birdc");
    assert_eq!(both(), (true, true), "routes kept while the agent is down");

    // The new agent adopts both routes; one peer's update and End-of-RIB are not enough to sweep.
    let second = Speaker::start(&node, &lab.subdir("speaker2").expect("dir"), &yaml);
    let peer = second.wait_state("10.83.0.2", "Established", UP);
    wait_until_ok("the first peer's update", UP, || {
        let p = second.peer("10.83.0.2");
        (p.prefixes_accepted == 1)
            .then_some(())
            .ok_or(format!("{p:?}"))
    })
    .unwrap_or_else(|e| panic!("{e} {peer:?}"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        both(),
        (true, true),
        "stale route kept until every peer has sent End-of-RIB"
    );
    // The restarted agent announced the kept forwarding state (RFC 4724 §3: R and F bits).
    let detail = bird.birdc("show protocols all spk").expect("birdc");
    assert!(
        detail.contains("AF preserved: ipv4"),
        "F bit not seen by BIRD: {detail}"
    );

    // The last peer comes back and sends End-of-RIB: the route no longer received is swept.
    bird.birdc("enable quiet").expect("birdc");
    wait_until_ok("stale route swept after End-of-RIB", UP, || {
        let now = both();
        assert!(now.0, "the route BIRD still sends went missing");
        (now == (true, false))
            .then_some(())
            .ok_or(format!("{now:?}"))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    second.wait_state("10.83.0.3", "Established", UP);
}

/// A reload that adds an advertisement and swaps the service it selects in one file edit must
/// reach the peer as one change: ExaBGP, which logs every UPDATE, never sees the old service's
/// address (the new advertisement applied to the old services would announce it for a moment).
#[test]
fn a_reload_changing_advertisements_and_services_together_sends_no_intermediate_routes() {
    let t = common::Topology::new("adv_reload_atomic");
    let neighbor = t.exabgp_neighbor();
    let exabgp = ExaBgp::start(&t.peer, &t.dir("exabgp"), &[neighbor]).expect("exabgp");
    let yaml = |advertisements: &str, service: &str, ip: &str| {
        format!(
            "node: {{ name: node, routerId: {node} }}\n\
             bgp:\n  localASN: 65001\n  peers:\n    - {{ address: {peer}, asn: 65000, passive: true, {TIMERS} }}\n\
             \x20 staticRoutes:\n    - prefix: 192.0.2.0/24\n{advertisements}\
             ipam:\n  pools:\n    - {{ name: vip, blocks: [{{ cidr: 10.200.0.0/24 }}] }}\n\
             services:\n  - {{ name: {service}, loadBalancerIP: {ip} }}\n\
             api:\n  controlSocket: {{socket}}\n",
            node = t.node_v4,
            peer = t.peer_v4,
        )
    };
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml("", "web", "10.200.0.10"));
    exabgp.wait_up(t.node_v4, UP).expect("ExaBGP up");
    let received = |want: &str| {
        wait_until_ok(want, UP, || {
            let p = exabgp.received_prefixes().map_err(|e| e.to_string())?;
            (p.iter().map(String::as_str).collect::<Vec<_>>()
                == want.split(' ').collect::<Vec<_>>())
            .then_some(())
            .ok_or(format!("{p:?}"))
        })
        .expect("prefixes at ExaBGP");
    };
    received("192.0.2.0/24");
    let transitions = speaker.peer(t.peer_v4).transitions;

    speaker.reconfigure(&yaml(
        "  advertisements:\n    - { name: lb, kind: LoadBalancerIP }\n",
        "api",
        "10.200.0.11",
    ));
    received("10.200.0.11/32 192.0.2.0/24");
    let log = exabgp.messages().expect("ExaBGP messages");
    let text: String = log.iter().map(ToString::to_string).collect();
    assert!(
        !text.contains("10.200.0.10"),
        "the old service's address went out: {text}"
    );
    assert_eq!(
        speaker.peer(t.peer_v4).transitions,
        transitions,
        "the reload reset the session"
    );
}

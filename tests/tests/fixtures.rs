//! Tests of the fixture library itself, against the real daemons in real namespaces: each pair of
//! implementations establishes a session and exchanges prefixes, faults take effect and lift, and
//! nothing (namespace, process) is left behind afterwards — also when the test body panics.
//! Needs root, `ip`, `tc`, FRR, BIRD 2, GoBGP and ExaBGP (see `scripts/setup.sh`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use herald_tests::{
    Bird, Blackhole, Bridge, ExaBgp, ExaBgpNeighbor, Frr, FrrConfig, GoBgp, Netns, ProcessId,
    TestLab, VethPair, wait_until,
};

const SESSION_TIMEOUT: Duration = Duration::from_secs(40);
const ROUTE_TIMEOUT: Duration = Duration::from_secs(20);

/// Asserts that none of `namespaces` exists and none of `processes` runs any more.
fn assert_all_gone(namespaces: &[String], processes: &[ProcessId]) {
    for ns in namespaces {
        assert!(!Netns::exists(ns), "namespace {ns} left behind");
    }
    for p in processes {
        assert!(!p.is_alive(), "process {} left running", p.pid);
    }
}

/// Two namespaces joined by a veth pair `eth1`, addressed `<net>.1/30` and `<net>.2/30`.
fn linked_pair(lab: &TestLab, net: &str) -> (Netns, Netns, VethPair) {
    let a = lab.netns("a").expect("netns a");
    let b = lab.netns("b").expect("netns b");
    let link = VethPair::create(&a, "eth1", &b, "eth1").expect("veth");
    a.addr_add("eth1", &format!("{net}.1/30")).expect("addr a");
    b.addr_add("eth1", &format!("{net}.2/30")).expect("addr b");
    (a, b, link)
}

const FRR_TOR: &str = "frr defaults datacenter
hostname tor
router bgp 65000
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.0.0.2 remote-as 65001
 neighbor 10.0.0.2 timers connect 1
 address-family ipv4 unicast
  network 192.0.2.0/24
 exit-address-family
";

const BIRD_NODE: &str = "router id 10.0.0.2;
protocol device {}
protocol static st4 { ipv4; route 198.51.100.0/24 blackhole; }
protocol bgp tor {
  local 10.0.0.2 as 65001;
  neighbor 10.0.0.1 as 65000;
  error wait time 1, 5;
  connect retry time 1;
  ipv4 { import all; export where proto = \"st4\"; };
}
";

#[test]
fn frr_and_bird_establish_and_exchange_prefixes() {
    let lab = TestLab::new("frr_and_bird").expect("lab");
    let (names, pids) = {
        let (tor, node, _link) = linked_pair(&lab, "10.0.0");
        let frr = Frr::start(
            &tor,
            &lab.subdir("frr").expect("dir"),
            &FrrConfig::bgp(FRR_TOR),
        )
        .expect("frr");
        let mut bird =
            Bird::start(&node, &lab.subdir("bird").expect("dir"), BIRD_NODE).expect("bird");

        frr.wait_established("10.0.0.2", SESSION_TIMEOUT)
            .expect("FRR sees Established");
        bird.wait_established("tor", SESSION_TIMEOUT)
            .expect("BIRD sees Established");
        let protocols = bird.protocols().expect("protocols");
        assert!(
            protocols
                .iter()
                .any(|p| p.name == "tor" && p.info.starts_with("Established")),
            "{protocols:?}"
        );

        // BIRD → FRR, and on into the ToR's kernel FIB through zebra.
        let paths = wait_until("198.51.100.0/24 in FRR", ROUTE_TIMEOUT, || {
            frr.bgp_routes("ipv4").ok()?.remove("198.51.100.0/24")
        })
        .expect("route from BIRD");
        assert_eq!(paths[0].as_path, "65001");
        assert_eq!(paths[0].next_hops, vec!["10.0.0.2".to_owned()]);
        wait_until("198.51.100.0/24 in the ToR FIB", ROUTE_TIMEOUT, || {
            tor.routes(&["198.51.100.0/24"])
                .ok()
                .filter(|r| r.contains("via 10.0.0.2"))
        })
        .expect("zebra installed the route");
        let summary = frr.bgp_summary().expect("summary");
        assert!(
            summary
                .iter()
                .any(|p| p.address == "10.0.0.2" && p.prefixes_received == 1),
            "{summary:?}"
        );

        // FRR → BIRD.
        let routes = wait_until("192.0.2.0/24 in BIRD", ROUTE_TIMEOUT, || {
            bird.routes().ok()?.remove("192.0.2.0/24")
        })
        .expect("route from FRR");
        assert_eq!(routes[0].protocol, "tor");
        assert_eq!(routes[0].via, vec!["10.0.0.1".to_owned()]);
        assert_eq!(routes[0].as_path, "65000");

        let mut pids: Vec<ProcessId> = frr.processes().into_iter().map(|(_, p)| p).collect();
        pids.push(bird.process().id());
        (vec![tor.name().to_owned(), node.name().to_owned()], pids)
    };
    assert_all_gone(&names, &pids);
}

const GOBGP: &str = r#"
[global.config]
  as = 65002
  router-id = "10.0.1.1"
  port = 179
  local-address-list = ["10.0.1.1"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.0.1.2"
    peer-as = 65003
  [neighbors.timers.config]
    connect-retry = 1
    idle-hold-time-after-reset = 1
  [neighbors.transport.config]
    passive-mode = true
"#;

#[test]
fn gobgp_and_exabgp_establish_exchange_and_withdraw() {
    let lab = TestLab::new("gobgp_and_exabgp").expect("lab");
    let (names, pids) = {
        let (g_ns, e_ns, _link) = linked_pair(&lab, "10.0.1");
        let mut gobgp =
            GoBgp::start(&g_ns, &lab.subdir("gobgp").expect("dir"), GOBGP).expect("gobgpd");
        let neighbor = ExaBgpNeighbor {
            peer_address: "10.0.1.1".to_owned(),
            local_address: "10.0.1.2".to_owned(),
            local_as: 65003,
            peer_as: 65002,
            router_id: "10.0.1.2".to_owned(),
            families: vec!["ipv4 unicast".to_owned()],
            ..Default::default()
        };
        let mut exa =
            ExaBgp::start(&e_ns, &lab.subdir("exabgp").expect("dir"), &[neighbor]).expect("exabgp");

        gobgp
            .wait_established("10.0.1.2", SESSION_TIMEOUT)
            .expect("GoBGP sees Established");
        exa.wait_up("10.0.1.1", SESSION_TIMEOUT)
            .expect("ExaBGP sees up");

        // ExaBGP → GoBGP through the API FIFO.
        exa.api("announce route 203.0.113.0/24 next-hop 10.0.1.2")
            .expect("inject");
        let paths = wait_until("203.0.113.0/24 in GoBGP", ROUTE_TIMEOUT, || {
            gobgp.rib("ipv4").ok()?.remove("203.0.113.0/24")
        })
        .expect("route from ExaBGP");
        assert_eq!(paths[0].as_path, vec![65003]);
        assert_eq!(paths[0].next_hop, "10.0.1.2");

        // GoBGP → ExaBGP, then withdrawal.
        gobgp.add_route("192.0.2.0/24").expect("gobgp add");
        wait_until("192.0.2.0/24 at ExaBGP", ROUTE_TIMEOUT, || {
            exa.received_prefixes()
                .ok()
                .filter(|s| s.contains("192.0.2.0/24"))
        })
        .expect("ExaBGP received the route");
        gobgp.del_route("192.0.2.0/24").expect("gobgp del");
        wait_until("192.0.2.0/24 withdrawn at ExaBGP", ROUTE_TIMEOUT, || {
            exa.received_prefixes()
                .ok()
                .filter(|s| !s.contains("192.0.2.0/24"))
        })
        .expect("ExaBGP saw the withdrawal");

        exa.api("withdraw route 203.0.113.0/24 next-hop 10.0.1.2")
            .expect("withdraw");
        wait_until("203.0.113.0/24 gone from GoBGP", ROUTE_TIMEOUT, || {
            gobgp
                .rib("ipv4")
                .ok()
                .filter(|r| !r.contains_key("203.0.113.0/24"))
        })
        .expect("withdrawal reached GoBGP");

        let pids = vec![gobgp.process().id(), exa.process().id()];
        (vec![g_ns.name().to_owned(), e_ns.name().to_owned()], pids)
    };
    assert_all_gone(&names, &pids);
}

#[test]
fn blackhole_drops_ingress_while_link_stays_up() {
    let lab = TestLab::new("blackhole").expect("lab");
    let (a, b, _link) = linked_pair(&lab, "10.0.2");
    assert!(a.ping("10.0.2.2"), "baseline ping");
    let hole = Blackhole::ingress(&b, "eth1").expect("blackhole");
    assert!(!a.ping("10.0.2.2"), "ping passed through the blackhole");
    let link = b.ip(&["-o", "link", "show", "dev", "eth1"]).expect("link");
    assert!(
        link.contains("state UP") || link.contains("LOWER_UP"),
        "link went down: {link}"
    );
    hole.lift().expect("lift");
    assert!(
        !b.link_exists("hbh2")
            && b.ip(&["-o", "link", "show", "type", "ifb"])
                .expect("ifb list")
                .is_empty()
    );
    assert!(a.ping("10.0.2.2"), "ping after lifting");

    // Link-loss fault.
    b.link_down("eth1").expect("down");
    assert!(!a.ping("10.0.2.2"), "ping over a downed link");
    b.link_up("eth1").expect("up");
    wait_until("ping after link up", Duration::from_secs(10), || {
        a.ping("10.0.2.2").then_some(())
    })
    .expect("ping");
}

#[test]
fn bridge_joins_three_namespaces() {
    let lab = TestLab::new("bridge").expect("lab");
    let sw = lab.netns("sw").expect("sw");
    let br = Bridge::create(&sw, "br0").expect("bridge");
    let hosts: Vec<Netns> = (1..=3)
        .map(|i| lab.netns(&format!("h{i}")).expect("host"))
        .collect();
    let mut links = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let port = format!("p{}", i + 1);
        links.push(VethPair::create(h, "eth1", &sw, &port).expect("veth"));
        br.attach(&port).expect("attach");
        h.addr_add("eth1", &format!("10.0.3.{}/24", i + 1))
            .expect("addr");
        h.addr_add("eth1", &format!("fd00:3::{}/64", i + 1))
            .expect("addr6");
    }
    assert!(hosts[0].ping("10.0.3.3"), "h1 → h3 over the bridge");
    assert!(hosts[2].ping("fd00:3::2"), "h3 → h2 over IPv6");
    drop(links);
    assert!(!sw.link_exists("p1"), "bridge port left after veth drop");
}

#[test]
fn sysctl_and_routes_apply_inside_the_namespace_only() {
    let lab = TestLab::new("sysctl_routes").expect("lab");
    let (a, b, _link) = linked_pair(&lab, "10.0.4");
    a.sysctl("net.ipv4.ip_forward", "1").expect("sysctl");
    assert_eq!(
        a.exec("sysctl", &["-n", "net.ipv4.ip_forward"])
            .expect("read")
            .trim(),
        "1"
    );
    assert_eq!(
        b.exec("sysctl", &["-n", "net.ipv4.ip_forward"])
            .expect("read")
            .trim(),
        "0"
    );
    b.route_add(&["198.18.0.0/24", "via", "10.0.4.1"])
        .expect("route");
    assert!(
        b.routes(&["198.18.0.0/24"])
            .expect("routes")
            .contains("via 10.0.4.1")
    );
    assert!(a.routes(&["198.18.0.0/24"]).expect("routes").is_empty());
}

#[test]
fn panic_in_a_test_still_removes_namespaces_and_processes() {
    let mut seen: Option<(String, Vec<ProcessId>, std::path::PathBuf)> = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let lab = TestLab::new("panic_cleanup").expect("lab");
        let ns = lab.netns("x").expect("netns");
        let child = ns
            .spawn("sleeper", "sleep", &["600"], lab.dir())
            .expect("spawn");
        // A second process not owned by any guard: the namespace's drop must kill it.
        let stray = ns
            .spawn("stray", "sleep", &["600"], lab.dir())
            .expect("spawn")
            .detach();
        assert!(stray.is_alive() && child.id().is_alive());
        seen = Some((
            ns.name().to_owned(),
            vec![child.id(), stray],
            lab.dir().to_path_buf(),
        ));
        let _guards = (lab, ns, child);
        panic!("deliberate failure");
    }));
    assert!(result.is_err(), "the body was meant to panic");
    let (ns, pids, dir) = seen.expect("body ran");
    assert_all_gone(&[ns], &pids);
    // The failed test's logs are kept for inspection.
    assert!(
        dir.join("sleeper.stdout.log").exists(),
        "logs not kept after a panic"
    );
    std::fs::remove_dir_all(&dir).expect("remove kept dir");
}

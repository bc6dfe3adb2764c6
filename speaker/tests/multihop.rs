//! eBGP multihop and GTSM (RFC 5082) end to end: the speaker and FRR two hops apart, through a
//! router namespace that forwards between them. Three sessions share the topology:
//! `ebgpMultihop: 2` establishes; the same kind of peering without it (our TTL 1) does not, the
//! router answering with ICMP Time Exceeded; with `gtsm` (hops 1) on our side the peer's packets
//! arrive with TTL 254 and are dropped (the kernel counts `TcpExtTCPMinTTLDrop`). A reload then
//! gives each refused session the setting it needs, and both come up: the TTL was the only cause.
//!
//! Needs root and FRR.

mod common;

use std::time::{Duration, Instant};

use common::{Speaker, speaker_yaml};
use herald_tests::{Frr, FrrConfig, Netns, TestLab, VethPair, wait_until_ok};

const UP: Duration = Duration::from_secs(40);

/// The speaker's and FRR's address of one session, and the speaker's setting for it.
struct Hop {
    node: &'static str,
    frr: &'static str,
    /// Extra YAML for the speaker's peer entry.
    speaker: &'static str,
    /// The same after the reload.
    fixed: &'static str,
    /// FRR's neighbor lines for it (after `neighbor ADDR`).
    frr_lines: &'static [&'static str],
}

const MULTIHOP: Hop = Hop {
    node: "10.78.1.1",
    frr: "10.78.2.1",
    speaker: "      ebgpMultihop: 2\n",
    fixed: "      ebgpMultihop: 2\n",
    frr_lines: &["ebgp-multihop 2"],
};
/// FRR only listens, so our TTL-1 SYN is all there is.
const TTL1: Hop = Hop {
    node: "10.78.1.2",
    frr: "10.78.2.2",
    speaker: "",
    fixed: "      ebgpMultihop: 2\n",
    frr_lines: &["ebgp-multihop 2", "passive"],
};
/// FRR sends with TTL 255 and accepts ≥ 254 (`ttl-security hops 2`): our packets pass, its
/// packets reach us with 254.
const GTSM: Hop = Hop {
    node: "10.78.1.3",
    frr: "10.78.2.3",
    speaker: "      gtsm:\n        hops: 1\n",
    fixed: "      gtsm:\n        hops: 2\n",
    frr_lines: &["ttl-security hops 2"],
};
const HOPS: [&Hop; 3] = [&MULTIHOP, &TTL1, &GTSM];

fn nstat(ns: &Netns, counter: &str) -> u64 {
    ns.exec("nstat", &["-az", counter])
        .ok()
        .and_then(|out| {
            out.lines()
                .find(|l| l.starts_with(counter))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn speaker_config(fixed: bool) -> String {
    let mut peers = String::new();
    for h in HOPS {
        peers.push_str(&format!(
            "    - address: {}\n      asn: 65000\n      localAddress: {}\n{}      timers:\n        holdTimeSeconds: 9\n        connectRetryTimeSeconds: 1\n",
            h.frr,
            h.node,
            if fixed { h.fixed } else { h.speaker }
        ));
    }
    speaker_yaml(
        "10.78.1.1",
        65001,
        &peers,
        "  staticRoutes:\n    - prefix: 192.0.2.0/24\n",
    )
}

#[test]
fn multihop_establishes_two_hops_away_and_ttl1_and_gtsm_do_not() {
    let lab = TestLab::new("multihop").expect("lab");
    let node = lab.netns("node").expect("netns");
    let router = lab.netns("router").expect("netns");
    let peer = lab.netns("peer").expect("netns");
    let _left = VethPair::create(&node, "eth1", &router, "eth1").expect("veth");
    let _right = VethPair::create(&router, "eth2", &peer, "eth1").expect("veth");
    for (ns, devs) in [
        (&node, &["lo", "eth1"][..]),
        (&router, &["lo", "eth1", "eth2"][..]),
        (&peer, &["lo", "eth1"][..]),
    ] {
        for d in devs {
            ns.link_up(d).expect("link up");
        }
    }
    router.addr_add("eth1", "10.78.1.6/29").expect("addr");
    router.addr_add("eth2", "10.78.2.6/29").expect("addr");
    router
        .sysctl("net.ipv4.ip_forward", "1")
        .expect("forwarding");
    for h in HOPS {
        node.addr_add("eth1", &format!("{}/29", h.node))
            .expect("addr");
        peer.addr_add("eth1", &format!("{}/29", h.frr))
            .expect("addr");
    }
    node.route_add(&["10.78.2.0/29", "via", "10.78.1.6"])
        .expect("route");
    peer.route_add(&["10.78.1.0/29", "via", "10.78.2.6"])
        .expect("route");
    assert!(node.ping("10.78.2.1"), "no path through the router");

    let mut conf =
        "frr defaults traditional\nhostname tor\n!\nrouter bgp 65000\n bgp router-id 10.78.2.1\n \
                    no bgp ebgp-requires-policy\n no bgp network import-check\n timers bgp 3 9\n"
            .to_owned();
    for h in HOPS {
        let n = h.node;
        conf.push_str(&format!(
            " neighbor {n} remote-as 65001\n neighbor {n} timers connect 1\n neighbor {n} update-source {}\n",
            h.frr
        ));
        for line in h.frr_lines {
            conf.push_str(&format!(" neighbor {n} {line}\n"));
        }
    }
    conf.push_str("!\n");
    let frr = Frr::start(
        &peer,
        &lab.subdir("frr").expect("dir"),
        &FrrConfig::bgp(conf),
    )
    .expect("frr");

    let time_exceeded = nstat(&router, "IcmpOutTimeExcds");
    let min_ttl_drops = nstat(&node, "TcpExtTCPMinTTLDrop");
    let dir = lab.subdir("speaker").expect("dir");
    let speaker = Speaker::start(&node, &dir, &speaker_config(false));
    let started = Instant::now();

    // With ebgpMultihop 2 the session comes up and carries the prefix.
    speaker.wait_state(MULTIHOP.frr, "Established", UP);
    frr.wait_established(MULTIHOP.node, UP)
        .expect("FRR multihop session");
    wait_until_ok("prefix in FRR", UP, || {
        let routes = frr.bgp_routes("ipv4").map_err(|e| e.to_string())?;
        routes
            .get("192.0.2.0/24")
            .map(drop)
            .ok_or("missing".to_owned())
    })
    .expect("FRR learned the prefix over two hops");

    // Give the refused sessions several connect-retry rounds.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(started.elapsed()));
    for h in [&TTL1, &GTSM] {
        assert_ne!(speaker.peer(h.frr).state, "Established", "{}", h.frr);
        assert_ne!(
            frr.peer_state(h.node).expect("vtysh").as_deref(),
            Some("Established"),
            "{}",
            h.node
        );
    }
    // Our TTL-1 packets died at the router; FRR's TTL-254 packets died at our GTSM check.
    assert!(
        nstat(&router, "IcmpOutTimeExcds") > time_exceeded,
        "the router sent no Time Exceeded"
    );
    assert!(
        nstat(&node, "TcpExtTCPMinTTLDrop") > min_ttl_drops,
        "no IP_MINTTL drops on our side"
    );

    // Positive control: multihop 2 for the first, GTSM with hops 2 for the second.
    speaker.reconfigure(&speaker_config(true));
    for h in [&TTL1, &GTSM] {
        speaker.wait_state(h.frr, "Established", UP);
        frr.wait_established(h.node, UP).expect("FRR session");
    }
}

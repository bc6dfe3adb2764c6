//! End to end through the real XDP and TC programs in network namespaces (root; skipped with a
//! message otherwise). Nothing is mocked: real veths, real kernel routing, real TCP, real eBPF.
//!
//! ```text
//!                       ┌─ lb1 (XDP Maglev + Geneve DSR on eth0)
//! client ── router ─────┼─ lb2 (same)
//!   172.16.0.2   │      ├─ be1 (TC decap + reverse NAT; HTTP on 10.244.1.10/.11:8080)
//!                │      └─ be2 (same, 10.244.2.10/.11)
//!   VIP 10.96.0.10:80 routed by the router to lb1/lb2 (ECMP, or one of them)
//! ```
//!
//! The router forwards everything; LB and backend nodes hang off it on /24s with MTU 1600
//! (room for the Geneve headers). Backend nodes carry the VIP and their backend addresses on
//! `lo` (arp_ignore=1, arp_announce=2) and run `e2e_server.py`. The LB nodes' XDP programs run in
//! native mode; each router port facing an LB node runs an XDP_PASS program so that native
//! XDP_TX frames from the LB node are received (veth rule). The client sends with checksum
//! offload off so the frames the LB nodes rewrite carry complete checksums.
//!
//! Over an IPv6-only underlay (`Lab::v6_underlay`, issue 16) the same topology serves VIP:80 in
//! IPv4-in-IPv6 Geneve and VIP6:80 in IPv6-in-IPv6 Geneve; the router reaches the LB node for
//! the IPv4 VIP `via inet6`, and the backend nodes decapsulate only from the LB nodes' IPv6
//! addresses.
//!
//! Next-hop MACs for the encapsulation are resolved by the loader helper
//! `datapath::neighbour::next_hop` (route + ARP table of the LB node's namespace), and the
//! uplink MAC by `datapath::neighbour::interface_mac`, both run inside the LB node's namespace.

mod support;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use datapath::loader::{LoadConfig, Loader, programs};
use datapath::maglev::{self, Backend, Proto, Seed};
use datapath::neighbour;
use datapath::reconcile::{BackendSpec, Reconciler, ServiceSpec};
use datapath_common::{Config, Counter, hash};
use herald_tests::in_netns;
use support::*;

const M: u32 = 1021;

/// An LB node: its namespace, its loader (maps and attached programs) and its reconciler.
struct LbNode {
    name: String,
    loader: Loader,
    reconciler: Reconciler,
    /// Next-hop MAC towards each backend node (index 0: be1).
    next_hops: Vec<[u8; 6]>,
    /// The underlay family: the backend nodes' addresses are of it.
    underlay: Underlay,
}

impl LbNode {
    /// Programs VIP:80 with the given backends (the full desired state).
    fn program(&mut self, backends: &[(usize, SocketAddr)]) {
        self.program_all(&[(VIP.into(), backends.to_vec())]);
    }

    /// Programs `(VIP, backends)` services on port 80 (the full desired state).
    fn program_all(&mut self, services: &[(IpAddr, Vec<(usize, SocketAddr)>)]) {
        let specs: Vec<ServiceSpec> = services
            .iter()
            .map(|(vip, backends)| ServiceSpec {
                vip: *vip,
                port: VIP_PORT,
                proto: Proto::Tcp,
                affinity: false,
                backends: backends
                    .iter()
                    .map(|(j, addr)| BackendSpec {
                        addr: *addr,
                        weight: maglev::DEFAULT_WEIGHT,
                        node: be_node(*j, self.underlay).0,
                        next_hop_mac: self.next_hops[j - 1],
                        local: false,
                    })
                    .collect(),
            })
            .collect();
        self.reconciler
            .apply(&specs, &mut self.loader)
            .expect("reconcile");
    }

    fn counter(&self, c: Counter) -> u64 {
        counter(&self.loader, c)
    }
}

/// A global counter of `loader`'s programs.
fn counter(loader: &Loader, c: Counter) -> u64 {
    loader
        .counters()
        .expect("counters")
        .into_iter()
        .find(|(k, _)| *k == c)
        .map(|(_, v)| v)
        .unwrap_or(0)
}

/// The shared topology plus in-process LB nodes. Field order is drop order: the LB loaders
/// before the namespaces.
struct Lab {
    lbs: Vec<LbNode>,
    net: Net,
}

impl std::ops::Deref for Lab {
    type Target = Net;
    fn deref(&self) -> &Net {
        &self.net
    }
}

impl Lab {
    fn new(test: &str) -> Self {
        Self::with_mtu(test, UNDERLAY_MTU)
    }

    /// The lab with an underlay MTU of `mtu` (programmed on the LB nodes as the agent does).
    fn with_mtu(test: &str, mtu: u16) -> Self {
        Self::build(test, mtu, Underlay::V4)
    }

    /// The lab over an IPv6-only underlay, serving VIP:80 (IPv4 in IPv6) and VIP6:80 (IPv6 in
    /// IPv6).
    fn v6_underlay(test: &str) -> Self {
        Self::build(test, UNDERLAY_MTU, Underlay::V6)
    }

    fn build(test: &str, mtu: u16, underlay: Underlay) -> Self {
        let net = Net::build(test, true, mtu, underlay);
        let router = &net.router;
        // LB nodes: XDP LB on the uplink (native), XDP_PASS on the router's port facing it.
        let seed = Seed::default();
        let mut lbs = Vec::new();
        for (i, ns) in net.lbs.iter().enumerate() {
            let (node, _) = lb_node(i + 1, underlay);
            let (loader, next_hops) = in_netns(ns, || {
                let mut l = Loader::load(&LoadConfig {
                    maglev_m: M,
                    pin_dir: None,
                    ..LoadConfig::default()
                })
                .expect("load eBPF");
                let mac = neighbour::interface_mac("eth0").expect("uplink MAC");
                l.set_config(&Config {
                    node_mac: mac,
                    jhash_v4: seed.jhash_v4,
                    jhash_v6: seed.jhash_v6,
                    ..identity(node, mtu, M)
                })
                .expect("config");
                let hops: Vec<[u8; 6]> = (1..=2)
                    .map(|j| {
                        neighbour::next_hop(be_node(j, underlay).0, Duration::from_secs(10))
                            .expect("next hop")
                            .mac
                    })
                    .collect();
                let mode = l
                    .attach_xdp(programs::XDP_LB, "eth0", true)
                    .expect("attach XDP");
                assert_eq!(mode, aya::programs::XdpMode::Driver, "native XDP on veth");
                (l, hops)
            });
            let mut loader = loader;
            let port = format!("lb{}", i + 1);
            in_netns(router, || {
                loader
                    .attach_xdp(programs::XDP_PASS, &port, true)
                    .expect("attach XDP_PASS on the router port")
            });
            let mut lb = LbNode {
                name: ns.name().to_owned(),
                loader,
                reconciler: Reconciler::new(M, seed, 256, 4096).expect("reconciler"),
                next_hops,
                underlay,
            };
            match underlay {
                Underlay::V4 => lb.program(&backends()),
                Underlay::V6 => {
                    lb.program_all(&[(VIP.into(), backends()), (VIP6.into(), backends6())])
                }
            }
            lbs.push(lb);
        }

        Self { lbs, net }
    }
}

/// The backend (index into [`backends`]) the Maglev table over `set` gives the client's flow
/// from `sport`, computed in user space with the Cilium-compatible hash.
fn predict(set: &[(usize, SocketAddr)], sport: u16) -> SocketAddr {
    let seed = Seed::default();
    let list: Vec<Backend> = set
        .iter()
        .map(|(_, a)| Backend::new(*a, Proto::Tcp))
        .collect();
    let table = maglev::build(M, &seed, &list).expect("maglev");
    let h = hash::packet_hash_v4(
        CLIENT.octets(),
        sport.to_be_bytes(),
        VIP_PORT.to_be_bytes(),
        6,
        seed.jhash_v4,
    );
    set[table.slots()[(h % M) as usize] as usize].1
}

#[test]
fn tcp_to_the_vip_completes_and_replies_bypass_the_lb_nodes_with_vip_source() {
    if !root() {
        return;
    }
    let lab = Lab::new("dp_e2e_tcp");
    lab.route_vip_via(&[1, 2]);
    let vip = VIP.to_string();
    // On the backend nodes' uplinks: replies leave with source VIP:80, never with the backend
    // address. On the router's ports towards the LB nodes: nothing with source VIP ever goes
    // there (the positive control: requests to the VIP do).
    let be_vip: Vec<Capture> = lab
        .bes
        .iter()
        .map(|ns| {
            lab.capture(
                ns,
                "eth0",
                &format!("tcp and src host {vip} and src port 80"),
            )
        })
        .collect();
    let be_raw: Vec<Capture> = lab
        .bes
        .iter()
        .map(|ns| lab.capture(ns, "eth0", "tcp and src net 10.244.0.0/16"))
        .collect();
    let lb_from_vip: Vec<Capture> = (1..=2)
        .map(|i| lab.capture(&lab.router, &format!("lb{i}"), &format!("src host {vip}")))
        .collect();
    let lb_to_vip: Vec<Capture> = (1..=2)
        .map(|i| {
            lab.capture(
                &lab.router,
                &format!("lb{i}"),
                &format!("tcp and dst host {vip}"),
            )
        })
        .collect();

    let mut s = lab.connect(None).expect("connect to the VIP");
    let who = whoami(&mut s).expect("whoami");
    assert!(who.starts_with("be"), "answered by a backend: {who:?}");
    const DOWN: usize = 8 << 20;
    let body = request(
        &mut s,
        &format!("GET /blob/{DOWN} HTTP/1.1\r\nHost: vip\r\n\r\n"),
        &[],
    )
    .expect("download");
    assert_eq!(body.len(), DOWN);
    assert!(blob_ok(&body), "downloaded bytes follow the pattern");
    const UP: usize = 4 << 20;
    let upload: Vec<u8> = (0..UP).map(|k| (k * 7 % 256) as u8).collect();
    let answer = request(
        &mut s,
        &format!("POST /upload HTTP/1.1\r\nHost: vip\r\nContent-Length: {UP}\r\n\r\n"),
        &upload,
    )
    .expect("upload");
    assert_eq!(
        String::from_utf8_lossy(&answer).trim(),
        format!("{UP} {}", adler32(&upload)),
        "the backend received the upload intact"
    );
    drop(s);
    // More flows, so ECMP spreads them over both LB nodes.
    let served = whoami_flows(&lab.net);

    let be_vip: Vec<usize> = be_vip.into_iter().map(|c| c.lines().len()).collect();
    let be_raw: Vec<Vec<String>> = be_raw.into_iter().map(Capture::lines).collect();
    let lb_from_vip: Vec<Vec<String>> = lb_from_vip.into_iter().map(Capture::lines).collect();
    let lb_to_vip: Vec<usize> = lb_to_vip.into_iter().map(|c| c.lines().len()).collect();
    assert!(
        be_vip.iter().sum::<usize>() > 10,
        "replies with source VIP:80 leave the backend nodes: {be_vip:?}"
    );
    for (j, lines) in be_raw.iter().enumerate() {
        assert!(
            lines.is_empty(),
            "be{} sent replies from a backend address: {:?}",
            j + 1,
            &lines[..lines.len().min(5)]
        );
    }
    for (i, lines) in lb_from_vip.iter().enumerate() {
        assert!(
            lines.is_empty(),
            "traffic from the VIP went to lb{}: {:?}",
            i + 1,
            &lines[..lines.len().min(5)]
        );
    }
    assert!(
        lb_to_vip.iter().all(|n| *n > 0),
        "ECMP sent client traffic to both LB nodes: {lb_to_vip:?}"
    );
    for lb in &lab.lbs {
        assert!(lb.counter(Counter::Encap) > 0, "{} encapsulated", lb.name);
        assert_eq!(lb.counter(Counter::DropInternal), 0);
    }
    assert!(
        served
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1,
        "flows spread over several backends: {served:?}"
    );
}

#[test]
fn both_lb_nodes_send_a_flow_to_the_same_backend_even_mid_flow() {
    if !root() {
        return;
    }
    let lab = Lab::new("dp_e2e_same");
    let all = backends();
    let expected: Vec<SocketAddr> = SPORTS.map(|p| predict(&all, p)).collect();
    assert!(
        expected
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == all.len(),
        "the chosen ports exercise every backend: {expected:?}"
    );
    lab.route_vip_via(&[1]);
    let via1 = whoami_flows(&lab.net);
    lab.route_vip_via(&[2]);
    let via2 = whoami_flows(&lab.net);
    assert_eq!(via1, expected, "lb1 follows the Maglev table");
    assert_eq!(via2, expected, "lb2 picks the same backends as lb1");

    // A connection established through lb1 keeps working when the router moves it to lb2,
    // which has never seen it: lb2 picks the same backend and adds the DSR option to the first
    // packet it forwards (cilium/cilium#32091).
    lab.route_vip_via(&[1]);
    let mut s = lab.connect(Some(42000)).expect("connect");
    let first = whoami(&mut s).expect("whoami via lb1");
    let dsr_before = lab.lbs[1].counter(Counter::DsrOption);
    const DOWN: usize = 6 << 20;
    s.write_all(format!("GET /blob/{DOWN} HTTP/1.1\r\nHost: vip\r\n\r\n").as_bytes())
        .expect("request");
    let mut switched = false;
    let body = read_response(&mut s, |got| {
        if !switched && got >= DOWN / 4 {
            lab.route_vip_via(&[2]);
            switched = true;
        }
    })
    .expect("download across the LB switch");
    assert!(switched);
    assert_eq!(body.len(), DOWN);
    assert!(blob_ok(&body), "downloaded bytes follow the pattern");
    let second = whoami(&mut s).expect("whoami via lb2");
    assert_eq!(first, second, "same backend after the switch");
    assert!(
        lab.lbs[1].counter(Counter::DsrOption) > dsr_before,
        "lb2 put the DSR option on the first packet it saw of the moved flow"
    );
}

#[test]
fn removing_a_backend_moves_only_its_flows() {
    if !root() {
        return;
    }
    let mut lab = Lab::new("dp_e2e_remove");
    lab.route_vip_via(&[1]);
    // Long-lived connections, one per source port, each asked once who serves it.
    let mut conns: Vec<(TcpStream, SocketAddr)> = SPORTS
        .map(|p| {
            let mut s = lab.connect(Some(p)).expect("connect");
            let who = served_by(&whoami(&mut s).expect("whoami"));
            (s, who)
        })
        .collect();
    let all = backends();
    // Remove the backend that serves the most of them.
    let victim = all
        .iter()
        .map(|(_, b)| *b)
        .max_by_key(|b| conns.iter().filter(|(_, w)| w == b).count())
        .expect("backends");
    let moved = conns.iter().filter(|(_, w)| *w == victim).count();
    assert!(
        moved > 0 && moved < conns.len(),
        "victim {victim} serves some flows"
    );
    let rest: Vec<(usize, SocketAddr)> =
        all.iter().copied().filter(|(_, b)| *b != victim).collect();
    for lb in &mut lab.lbs {
        lb.program(&rest);
    }

    for (s, who) in &mut conns {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let again = whoami(s);
        if *who == victim {
            // Its packets now reach another backend, which has no such connection and resets
            // it (the reset comes back through reverse NAT, from the VIP).
            assert!(
                again.is_err(),
                "flow on the removed backend broke: {again:?}"
            );
        } else {
            let again = again.expect("surviving flow still answers");
            assert_eq!(served_by(&again), *who, "flow on a kept backend stays");
        }
    }
    let whos: Vec<SocketAddr> = conns.iter().map(|(_, w)| *w).collect();
    drop(conns);
    // The same 4-tuples again (the LB node remembers them): kept flows keep their backend,
    // the removed backend's flows go where the new table says.
    let after = whoami_flows(&lab.net);
    for ((p, b), a) in SPORTS.zip(whos).zip(after) {
        if b == victim {
            assert_eq!(
                a,
                predict(&rest, p),
                "moved flow from :{p} follows the new table"
            );
        } else {
            assert_eq!(a, b, "flow from :{p} stays on its backend");
        }
    }
}

/// Issue 16: an underlay with the client's MTU (1500), so no room for the Geneve headers on top
/// of full-size packets. The backend nodes lower the MSS of their SYN-ACKs (`mss.rs`), so the
/// client's segments fit once encapsulated: 8 MiB up (encapsulated by the LB node) and 8 MiB
/// down (DSR, straight from the backend) complete without a single ICMP too-big.
#[test]
fn an_8_mib_transfer_over_a_1500_byte_underlay_needs_no_icmp_too_big() {
    if !root() {
        return;
    }
    let lab = Lab::with_mtu("dp_e2e_mtu", 1500);
    lab.route_vip_via(&[1]);
    const SIZE: usize = 8 << 20;
    let mut s = lab.connect(None).expect("connect to the VIP");
    let upload: Vec<u8> = (0..SIZE).map(|k| (k * 13 % 251) as u8).collect();
    let answer = request(
        &mut s,
        &format!("POST /upload HTTP/1.1\r\nHost: vip\r\nContent-Length: {SIZE}\r\n\r\n"),
        &upload,
    )
    .expect("upload");
    assert_eq!(
        String::from_utf8_lossy(&answer).trim(),
        format!("{SIZE} {}", adler32(&upload)),
        "the backend received the upload intact"
    );
    let body = request(
        &mut s,
        &format!("GET /blob/{SIZE} HTTP/1.1\r\nHost: vip\r\n\r\n"),
        &[],
    )
    .expect("download");
    assert_eq!(body.len(), SIZE);
    assert!(blob_ok(&body), "downloaded bytes follow the pattern");
    drop(s);

    let lb = &lab.lbs[0];
    // 8 MiB in segments of at most 1386 bytes (MSS 1398 less timestamps).
    assert!(
        lb.counter(Counter::Encap) as usize > SIZE / 1398,
        "the upload went through the encapsulation: {} packets",
        lb.counter(Counter::Encap)
    );
    assert_eq!(
        lb.counter(Counter::IcmpTooBig),
        0,
        "no client packet was too big once encapsulated"
    );
    assert_eq!(lb.counter(Counter::DropInternal), 0);
    let clamped: u64 = lab
        .be_loaders
        .iter()
        .map(|l| counter(l, Counter::MssClamped))
        .sum();
    assert_eq!(clamped, 1, "the one SYN-ACK's MSS was lowered");
}

/// Issue 16: Geneve over an IPv6-only underlay. The nodes' links carry IPv6 addresses only, so
/// the LB node reaches the backend nodes in outer IPv6 (IPv4 in IPv6 for VIP, IPv6 in IPv6 for
/// VIP6, with the DSR option of the service's family), the backend nodes decapsulate it from
/// the known LB nodes' IPv6 addresses, and the replies go straight to the client with the
/// VIP as source.
fn serves_over_the_ipv6_underlay(test: &str, vip: IpAddr) {
    let lab = Lab::v6_underlay(test);
    lab.route_via(vip, &[1]);
    let v = vip.to_string();
    // Every Geneve packet towards the backend nodes is outer IPv6 (none is IPv4)...
    let geneve = |filter: &str| -> Vec<Capture> {
        ["be1", "be2"]
            .iter()
            .map(|port| lab.capture(&lab.router, port, filter))
            .collect()
    };
    let geneve6 = geneve("ip6 and udp dst port 6081");
    let geneve4 = geneve("ip and udp dst port 6081");
    // ... replies leave the backend nodes from VIP:80, and none goes back to the LB node.
    let from_vip: Vec<Capture> = lab
        .bes
        .iter()
        .map(|ns| lab.capture(ns, "eth0", &format!("tcp and src host {v} and src port 80")))
        .collect();
    let to_lb = lab.capture(&lab.router, "lb1", &format!("src host {v}"));

    let mut served = std::collections::BTreeSet::new();
    for p in SPORTS.take(8) {
        let mut s = lab
            .connect_to(vip, Some(p))
            .unwrap_or_else(|e| panic!("connect to {v} from :{p}: {e}"));
        let who = whoami(&mut s).expect("whoami");
        let addr: IpAddr = who
            .split_whitespace()
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected whoami answer {who:?}"));
        assert_eq!(
            addr.is_ipv6(),
            vip.is_ipv6(),
            "a backend of the VIP's family: {who}"
        );
        served.insert(addr);
    }
    let mut s = lab.connect_to(vip, None).expect("connect");
    const DOWN: usize = 2 << 20;
    let body = request(
        &mut s,
        &format!("GET /blob/{DOWN} HTTP/1.1\r\nHost: vip\r\n\r\n"),
        &[],
    )
    .expect("download");
    assert_eq!(body.len(), DOWN);
    assert!(blob_ok(&body), "downloaded bytes follow the pattern");
    const UP: usize = 1 << 20;
    let upload: Vec<u8> = (0..UP).map(|k| (k * 7 % 256) as u8).collect();
    let answer = request(
        &mut s,
        &format!("POST /upload HTTP/1.1\r\nHost: vip\r\nContent-Length: {UP}\r\n\r\n"),
        &upload,
    )
    .expect("upload");
    assert_eq!(
        String::from_utf8_lossy(&answer).trim(),
        format!("{UP} {}", adler32(&upload)),
        "the backend received the upload intact"
    );
    drop(s);

    let geneve6: Vec<String> = geneve6.into_iter().flat_map(Capture::lines).collect();
    let geneve4: Vec<String> = geneve4.into_iter().flat_map(Capture::lines).collect();
    let from_vip: usize = from_vip.into_iter().map(|c| c.lines().len()).sum();
    let to_lb = to_lb.lines();
    assert!(
        served.len() > 1,
        "flows spread over several backends: {served:?}"
    );
    assert!(
        !geneve6.is_empty(),
        "Geneve in outer IPv6 reached the backend nodes"
    );
    assert!(geneve4.is_empty(), "no Geneve in outer IPv4: {geneve4:?}");
    assert!(
        from_vip > 10,
        "replies with source {v}:80 leave the backend nodes"
    );
    assert!(
        to_lb.is_empty(),
        "traffic from the VIP went to lb1: {:?}",
        &to_lb[..to_lb.len().min(5)]
    );
    let lb = &lab.lbs[0];
    assert!(lb.counter(Counter::Encap) > 0, "lb1 encapsulated");
    assert!(
        lb.counter(Counter::DsrOption) >= 9,
        "each SYN carried the DSR option"
    );
    assert_eq!(lb.counter(Counter::DropInternal), 0);
    let decap: u64 = lab
        .be_loaders
        .iter()
        .map(|l| counter(l, Counter::Decap))
        .sum();
    assert!(decap > 0, "the backend nodes decapsulated");
    for l in &lab.be_loaders {
        assert_eq!(counter(l, Counter::DropGeneveUnknownNode), 0);
        assert_eq!(counter(l, Counter::GeneveNotLocal), 0);
    }
}

#[test]
fn an_ipv4_service_is_served_over_an_ipv6_underlay() {
    if !root() {
        return;
    }
    serves_over_the_ipv6_underlay("dp_e2e_v4in6", VIP.into());
}

#[test]
fn an_ipv6_service_is_served_over_an_ipv6_underlay() {
    if !root() {
        return;
    }
    serves_over_the_ipv6_underlay("dp_e2e_v6in6", VIP6.into());
}

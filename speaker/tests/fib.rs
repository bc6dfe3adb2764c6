//! The rtnetlink FIB installer against a real kernel, inside a network namespace of its own:
//! ECMP multipath IPv4/IPv6 routes, link-local next hops, idempotent reconcile, resync after a
//! restart, foreign routes left alone, and cleanup at shutdown. Needs root. No mocks.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use herald_tests::{Netns, TestLab, VethPair, in_netns};
use ipnet::IpNet;
use speaker::config::FibImportConfig;
use speaker::fib::driver::FibHandle;
use speaker::fib::{Fib, FibNextHop, FibRoutes, FibWriter, HERALD_RTPROT, NetlinkFib, RTPROT_BGP};

const TABLE: u32 = 1234;

fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

fn via(s: &str) -> FibNextHop {
    FibNextHop::via(s.parse::<IpAddr>().expect("addr"))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn table(ns: &Netns, v6: bool) -> String {
    let fam = if v6 { "-6" } else { "-4" };
    ns.ip(&[fam, "route", "show", "table", &TABLE.to_string()])
        .expect("ip route show")
}

/// Lines of `ip route show table` for one prefix, with its nexthop lines.
fn route_of(dump: &str, prefix: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in dump.lines() {
        if line.starts_with(char::is_whitespace) {
            if inside {
                out.push_str(line.trim());
                out.push('\n');
            }
            continue;
        }
        inside = line.starts_with(&format!("{prefix} "));
        if inside {
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    out
}

#[test]
fn fib_installs_ecmp_routes_reconciles_and_cleans_up() {
    let lab = TestLab::new("fib_installs_ecmp").expect("lab");
    let node = lab.netns("node").expect("netns");
    let peers = lab.netns("peers").expect("netns");
    let _link = VethPair::create(&node, "eth1", &peers, "eth1").expect("veth");
    node.addr_add("eth1", "10.0.0.1/24").expect("addr");
    node.sh(
        "ip -6 addr add 2001:db8::1/64 dev eth1 nodad && ip -6 addr add fe80::1/64 dev eth1 nodad",
    )
    .expect("v6 addrs");
    node.link_up("eth1").expect("up");
    peers.link_up("eth1").expect("up");
    let ifindex: u32 = node
        .sh("cat /sys/class/net/eth1/ifindex")
        .expect("ifindex")
        .trim()
        .parse()
        .expect("number");
    // A route of someone else in the same table: must survive everything below.
    node.sh(&format!(
        "ip route add 10.99.0.0/24 via 10.0.0.9 table {TABLE} proto static"
    ))
    .expect("foreign route");

    let mut desired = FibRoutes::new();
    desired.insert(
        net("10.1.0.0/24"),
        BTreeSet::from([via("10.0.0.2"), via("10.0.0.3")]),
    );
    desired.insert(net("10.2.0.0/24"), BTreeSet::from([via("10.0.0.2")]));
    desired.insert(
        net("2001:db8:100::/48"),
        BTreeSet::from([via("2001:db8::2"), via("2001:db8::3")]),
    );
    desired.insert(
        net("2001:db8:200::/48"),
        BTreeSet::from([FibNextHop {
            gateway: "fe80::2".parse().expect("ll"),
            ifindex: Some(ifindex),
        }]),
    );

    // 1. Install from scratch.
    let want = desired.clone();
    let (report, read_back) = in_netns(&node, move || {
        block_on(async move {
            let mut fib = Fib::new(NetlinkFib::connect(TABLE, RTPROT_BGP, None).expect("netlink"));
            fib.resync().await.expect("resync");
            let report = fib.reconcile(&want).await;
            let mut writer = NetlinkFib::connect(TABLE, RTPROT_BGP, None).expect("netlink");
            (report, writer.installed().await.expect("dump"))
        })
    });
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.replaced, 4);
    assert_eq!(
        read_back, desired,
        "the kernel holds exactly what we asked for"
    );
    let v4 = table(&node, false);
    let ecmp = route_of(&v4, "10.1.0.0/24");
    assert!(ecmp.contains("proto bgp"), "{v4}"); // RTPROT_BGP, as asked above
    assert!(
        ecmp.contains("nexthop via 10.0.0.2") && ecmp.contains("nexthop via 10.0.0.3"),
        "{v4}"
    );
    assert!(
        route_of(&v4, "10.2.0.0/24").contains("via 10.0.0.2 dev eth1 proto bgp"),
        "{v4}"
    );
    let v6 = table(&node, true);
    let ecmp6 = route_of(&v6, "2001:db8:100::/48");
    assert!(
        ecmp6.contains("nexthop via 2001:db8::2") && ecmp6.contains("nexthop via 2001:db8::3"),
        "{v6}"
    );
    assert!(
        route_of(&v6, "2001:db8:200::/48").contains("via fe80::2 dev eth1"),
        "{v6}"
    );

    // 2. A restarted installer adopts the routes and has nothing to do; then it applies a change:
    //    one ECMP path goes away, one prefix is withdrawn, one is added.
    let mut changed = desired.clone();
    changed.insert(net("10.1.0.0/24"), BTreeSet::from([via("10.0.0.3")]));
    changed.remove(&net("10.2.0.0/24"));
    changed.remove(&net("2001:db8:100::/48"));
    changed.insert(
        net("10.3.0.0/16"),
        BTreeSet::from([via("10.0.0.2"), via("10.0.0.4")]),
    );
    let (same, delta) = {
        let desired = desired.clone();
        let changed = changed.clone();
        in_netns(&node, move || {
            block_on(async move {
                let mut fib =
                    Fib::new(NetlinkFib::connect(TABLE, RTPROT_BGP, None).expect("netlink"));
                fib.resync().await.expect("resync");
                let same = fib.reconcile(&desired).await;
                let delta = fib.reconcile(&changed).await;
                (same, delta)
            })
        })
    };
    assert_eq!(
        (same.replaced, same.removed, same.failed.len()),
        (0, 0, 0),
        "idempotent: {same:?}"
    );
    assert_eq!(
        (delta.replaced, delta.removed, delta.failed.len()),
        (2, 2, 0),
        "{delta:?}"
    );
    let v4 = table(&node, false);
    assert!(
        route_of(&v4, "10.1.0.0/24").contains("via 10.0.0.3 dev eth1"),
        "{v4}"
    );
    assert!(!route_of(&v4, "10.1.0.0/24").contains("10.0.0.2"), "{v4}");
    assert!(route_of(&v4, "10.2.0.0/24").is_empty(), "{v4}");
    let r3 = route_of(&v4, "10.3.0.0/16");
    assert!(
        r3.contains("nexthop via 10.0.0.2") && r3.contains("nexthop via 10.0.0.4"),
        "{v4}"
    );
    assert!(route_of(&table(&node, true), "2001:db8:100::/48").is_empty());

    // 3. Shutdown removes our routes only; removing an absent route is not an error.
    let after: BTreeMap<IpNet, BTreeSet<FibNextHop>> = in_netns(&node, move || {
        block_on(async move {
            let mut fib = Fib::new(NetlinkFib::connect(TABLE, RTPROT_BGP, None).expect("netlink"));
            fib.resync().await.expect("resync");
            fib.shutdown().await.expect("shutdown");
            let mut writer = NetlinkFib::connect(TABLE, RTPROT_BGP, None).expect("netlink");
            writer
                .remove(net("10.1.0.0/24"))
                .await
                .expect("absent route removal is a no-op");
            writer.installed().await.expect("dump")
        })
    });
    assert!(after.is_empty(), "{after:?}");
    let v4 = table(&node, false);
    assert!(
        v4.contains("10.99.0.0/24 via 10.0.0.9"),
        "foreign route kept: {v4}"
    );
    assert_eq!(v4.lines().count(), 1, "{v4}");
    assert!(table(&node, true).trim().is_empty());
}

#[test]
fn fib_reports_kernel_refusals_and_retries_them() {
    let lab = TestLab::new("fib_reports_refusals").expect("lab");
    let node = lab.netns("node").expect("netns");
    let peers = lab.netns("peers").expect("netns");
    let _link = VethPair::create(&node, "eth1", &peers, "eth1").expect("veth");
    node.addr_add("eth1", "10.0.0.1/24").expect("addr");
    node.link_up("eth1").expect("up");
    // 10.50.0.1 is not on a connected network: the kernel refuses the route (ENETUNREACH).
    let mut desired = FibRoutes::new();
    desired.insert(net("10.5.0.0/24"), BTreeSet::from([via("10.50.0.1")]));
    desired.insert(net("10.6.0.0/24"), BTreeSet::from([via("10.0.0.2")]));
    let (first, second) = {
        let node_name = node.name().to_owned();
        in_netns(&node, move || {
            block_on(async move {
                let mut fib =
                    Fib::new(NetlinkFib::connect(TABLE, RTPROT_BGP, None).expect("netlink"));
                let first = fib.reconcile(&desired).await;
                // Make the gateway reachable, as a link coming up would.
                let status = std::process::Command::new("ip")
                    .args([
                        "-n",
                        &node_name,
                        "addr",
                        "add",
                        "10.50.0.2/24",
                        "dev",
                        "eth1",
                    ])
                    .status()
                    .expect("ip");
                assert!(status.success());
                let second = fib.reconcile(&desired).await;
                (first, second)
            })
        })
    };
    assert_eq!(first.replaced, 1);
    assert_eq!(first.failed.len(), 1, "{first:?}");
    assert_eq!(first.failed[0].0, net("10.5.0.0/24"));
    assert_eq!((second.replaced, second.failed.len()), (1, 0), "{second:?}");
    assert!(table(&node, false).contains("10.5.0.0/24 via 10.50.0.1"));
}

#[test]
fn fib_import_leaves_frr_bgp_routes_in_main_alone() {
    let lab = TestLab::new("fib_leaves_frr").expect("lab");
    let node = lab.netns("node").expect("netns");
    let peers = lab.netns("peers").expect("netns");
    let _link = VethPair::create(&node, "eth1", &peers, "eth1").expect("veth");
    node.addr_add("eth1", "10.0.0.1/24").expect("addr");
    node.link_up("eth1").expect("up");
    // What FRR's zebra leaves in main for bgpd: protocol 186. Herald must never adopt or delete it.
    node.sh("ip route add 10.77.0.0/24 via 10.0.0.9 proto 186")
        .expect("FRR-like route");
    let config = FibImportConfig::default();
    assert_eq!((config.table, config.protocol), (254, HERALD_RTPROT));
    assert_ne!(config.protocol, RTPROT_BGP);
    let (installed, during) = {
        let node_name = node.name().to_owned();
        in_netns(&node, move || {
            block_on(async move {
                let fib = FibHandle::start(config).await.expect("start");
                fib.update(vec![(
                    net("10.88.0.0/24"),
                    BTreeSet::from([via("10.0.0.2")]),
                )]);
                let installed = fib.installed().await;
                let during = std::process::Command::new("ip")
                    .args(["-n", &node_name, "-4", "route", "show", "table", "main"])
                    .output()
                    .expect("ip");
                fib.shutdown().await;
                (
                    installed,
                    String::from_utf8_lossy(&during.stdout).into_owned(),
                )
            })
        })
    };
    assert_eq!(
        installed.keys().copied().collect::<Vec<_>>(),
        vec![net("10.88.0.0/24")],
        "only our own route is ours"
    );
    assert!(
        route_of(&during, "10.88.0.0/24").contains(&format!("proto {HERALD_RTPROT}")),
        "{during}"
    );
    assert!(
        route_of(&during, "10.77.0.0/24").contains("proto bgp"),
        "{during}"
    );
    let main = node
        .ip(&["-4", "route", "show", "table", "main"])
        .expect("ip");
    assert!(
        route_of(&main, "10.88.0.0/24").is_empty(),
        "ours removed: {main}"
    );
    assert!(
        route_of(&main, "10.77.0.0/24").contains("via 10.0.0.9 dev eth1 proto bgp"),
        "FRR's route untouched by start, import and shutdown: {main}"
    );
}

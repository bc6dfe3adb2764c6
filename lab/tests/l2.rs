//! End-to-end test of the shipped `l2` topology under the netns runner: three nodes running the
//! real `herald agent` (lb-ipam + L2 announcements) on a real Linux bridge, a client on the segment and a host behind a router.
//! Asserts that the service IPs are reachable over IPv4 (ARP) and IPv6 (NDP), that exactly one node
//! leads each IP, that traffic resumes on another node when the leader's link dies, and that
//! `lab down` leaves no namespace, link or process behind. Needs root; no mocks.

mod support;

use std::time::{Duration, Instant};

use support::{ShippedLab, ensure_binary, is_root};

const NODES: [&str; 3] = ["node1", "node2", "node3"];
const ALL: [&str; 7] = [
    "sw", "router", "client", "node1", "node2", "node3", "outside",
];
const VIP4: &str = "192.168.50.200";
const VIP6: &str = "fd50::200";

/// The nodes whose agent says it leads `vip` (`herald l2 --json` over each control socket).
fn leaders_of(lab: &ShippedLab, herald: &std::path::Path, vip: &str) -> Vec<String> {
    NODES
        .iter()
        .filter(|n| {
            let socket = lab.node_dir(n).join("speaker.sock");
            let Ok(out) = std::process::Command::new(herald)
                .args(["l2", "--json", "--socket"])
                .arg(&socket)
                .output()
            else {
                return false;
            };
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            v["vips"].as_array().is_some_and(|vips| {
                vips.iter()
                    .any(|x| x["vip"] == vip && x["ledByMe"] == serde_json::Value::Bool(true))
            })
        })
        .map(|n| (*n).to_owned())
        .collect()
}

#[test]
fn l2_topology_answers_arp_and_ndp_fails_over_and_tears_down_cleanly() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let herald = ensure_binary("speaker", "herald");
    let lab = ShippedLab::copy("l2", "l2e2e");
    lab.up();

    let url4 = format!("http://{VIP4}/");
    let url6 = format!("http://[{VIP6}]/");
    let t = Duration::from_secs(30);
    let by_v4 = lab.wait_http("client", &url4, t);
    let by_v6 = lab.wait_http("client", &url6, t);
    assert!(NODES.contains(&by_v4.as_str()), "answer {by_v4:?}");
    assert!(NODES.contains(&by_v6.as_str()), "answer {by_v6:?}");
    // Routed traffic: the router resolves the VIPs on the segment too.
    assert_eq!(lab.wait_http("outside", &url4, t), by_v4);
    assert_eq!(lab.wait_http("outside", &url6, t), by_v6);

    // Exactly one node leads each IP, and it is the one that answered.
    for (vip, answered) in [(VIP4, &by_v4), (VIP6, &by_v6)] {
        let leaders = leaders_of(&lab, &herald, vip);
        assert_eq!(&leaders, &vec![answered.clone()], "leaders of {vip}");
    }
    let (_, neigh) = lab.exec("client", &["ip", "neigh", "show", VIP4]);
    let (_, mac) = lab.exec(&by_v4, &["cat", "/sys/class/net/eth1/address"]);
    assert!(
        neigh.contains(mac.trim()),
        "client resolves {VIP4} to {neigh}, leader MAC {mac}"
    );

    // The leader's link dies: another node takes the IP over and answers.
    let procs = lab.processes(&ALL);
    let old = by_v4.clone();
    let (ok, _) = lab.exec(&old, &["ip", "link", "set", "eth1", "down"]);
    assert!(ok);
    let start = Instant::now();
    let new = herald_lab::wait_until("another node answers", Duration::from_secs(10), || {
        lab.http_get("client", &url4).filter(|b| *b != old)
    })
    .expect("failover");
    println!(
        "l2 failover {old} -> {new}: HTTP answered again after {:?}",
        start.elapsed()
    );
    assert!(NODES.contains(&new.as_str()));
    let new6 = lab.wait_http("client", &url6, Duration::from_secs(10));
    assert_ne!(new6, old, "IPv6 still answered by the dead node");
    assert_eq!(lab.wait_http("outside", &url4, t), new);

    lab.down_and_check(&ALL, &procs);
}

//! End-to-end test of the main job, `lab demo`, on a private copy of the shipped `bgp-ecmp`
//! topology: real FRR on the ToR, the real agent (BGP, lb-ipam, XDP Maglev + Geneve DSR) on
//! node1..3, real HTTP through the service IP to the backend pods. Asserts the rows (sessions, the
//! ToR's 3-way ECMP route, HTTP answered by the pods, the DSR proof from captures on the nodes'
//! uplinks, one row per node), that `--keep` leaves the lab up with the datapath's pinned maps
//! readable by `herald datapath status`, and that `lab down` then leaves no namespace, link, process or
//! pinned map behind. Needs root; no mocks.

mod support;

use support::{ShippedLab, ensure_binary, is_root};

const ALL: [&str; 8] = [
    "tor", "node1", "node2", "node3", "pod1", "pod2", "pod3", "client",
];

fn row<'a>(table: &'a str, step: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(step))
        .unwrap_or_else(|| panic!("no row {step:?} in:\n{table}"))
}

#[test]
fn demo_shows_sessions_ecmp_route_and_http_through_the_service_ip() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let herald = ensure_binary("speaker", "herald");
    let lab = ShippedLab::copy("bgp-ecmp", "demo");
    let file = lab.file().to_string_lossy().into_owned();
    let out = lab.lab(&["demo", "--keep", "--topology", &file]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{table}\n{stderr}");

    let sessions = row(&table, "BGP sessions");
    assert!(sessions.contains(" ok "), "{sessions}");
    for peer in ["10.0.1.2", "10.0.2.2", "10.0.3.2"] {
        assert!(
            sessions.contains(peer),
            "{peer} not Established: {sessions}"
        );
    }
    let route = row(&table, "ToR ECMP route");
    assert!(route.contains("3-way ECMP"), "{route}");
    let http = row(&table, "HTTP via VIP");
    assert!(
        http.contains(" ok ") && http.contains("answered by pod"),
        "{http}"
    );
    assert!(!http.contains("unanswered"), "{http}");
    let service_ip = row(&table, "service IP");
    assert!(
        service_ip.contains(" ok ") && service_ip.contains("10.200.0.10 allocated by lb-ipam"),
        "{service_ip}"
    );
    // Each node's datapath serves the address lb-ipam gave it, with all three backends.
    let served = row(&table, "datapath serves VIP");
    for n in ["node1", "node2", "node3"] {
        assert!(
            served.contains(&format!("{n}: 10.200.0.10:80 → 3 backends")),
            "{served}"
        );
    }
    // The proof: a flow entered at one node, crossed to another in Geneve, and its reply left
    // that node with the service address as source; every reply left some node from it.
    let dsr = row(&table, "DSR proof");
    assert!(dsr.contains(" ok "), "{dsr}");
    assert!(
        dsr.contains("entered at node")
            && dsr.contains("Geneve 10.0.")
            && dsr.contains("with the DSR option")
            && dsr.contains("from 10.200.0.10:80")
            && dsr.contains("every reply left its backend's node"),
        "{dsr}"
    );
    let mut replies = 0;
    for n in ["node1", "node2", "node3"] {
        let r = row(&table, n);
        assert!(
            r.contains(" ok ") && r.contains("flows entered here"),
            "{r}"
        );
        replies += r
            .split("; ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("reply count in {r}"));
    }
    assert_eq!(
        replies, 12,
        "each of the 12 flows replied from exactly one node"
    );
    // One agent killed with SIGKILL and restarted under load: nothing failed, no path lost.
    let restart = row(&table, "agent kill -9");
    assert!(
        restart.contains(" ok ")
            && restart.contains(": 0 failed;")
            && restart.contains("6 of 6 4 MiB downloads running across the restart completed")
            && restart.contains("the ToR kept 3 of 3 paths throughout"),
        "{restart}"
    );
    assert!(row(&table, "teardown").contains("kept up"));

    // The lab is still up and what the table claims is visible from outside the demo.
    let (_, fib) = lab.exec("tor", &["ip", "route", "show", "10.200.0.10"]);
    assert_eq!(fib.matches("nexthop via").count(), 3, "{fib}");
    let body = lab
        .http_get("client", "http://10.200.0.10/")
        .expect("HTTP after the demo");
    assert!(body.starts_with("pod"), "{body}");
    // The agents' maps are pinned in the lab's bpffs; `herald datapath status` shows them.
    let pins = lab.state_root().join(&lab.name).join("bpffs");
    let bin = herald.to_string_lossy().into_owned();
    let socket = lab.node_dir("node1").join("speaker.sock");
    let socket = socket.to_string_lossy().into_owned();
    let (ok, status) = lab.exec("node1", &[&bin, "datapath", "status", "--socket", &socket]);
    assert!(ok && status.contains("10.200.0.10:80"), "{status}");
    assert!(
        status.contains("10.244.1.10:8080 node 10.0.1.2 local true"),
        "{status}"
    );

    let procs = lab.processes(&ALL);
    // 3 FRR daemons, one agent per node, one server per pod.
    assert!(procs.len() >= 3 + 3 + 3, "too few processes: {procs:?}");
    lab.down_and_check(&ALL, &procs);
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(
        !mounts.contains(&pins.to_string_lossy().into_owned()),
        "the lab's bpffs (and its pinned maps) outlived `lab down`: {mounts}"
    );
    assert!(!pins.exists(), "bpffs mount point left");
}

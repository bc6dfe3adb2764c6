//! End-to-end test of the shipped `dual-stack` topology: real FRR on the ToR with one IPv4 and one
//! IPv6 session to each of two real agents (BGP, lb-ipam, eBPF datapath over IPv6 node
//! addresses); asserts all four sessions Established, a 2-way ECMP route to the service's IPv4
//! and IPv6 address in the ToR's FIB, HTTP from the client over both families, the DSR row for
//! each family (from captures on the nodes' uplinks: a flow entered at one node, crossed to the
//! other in Geneve over IPv6 with the DSR option, and its replies left that node from the
//! service address; every reply left exactly one node from it), and a clean `lab down`. Needs
//! root; no mocks.

mod support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use herald_lab::dsr_proof::{self, DemoService, FlowPath};
use herald_lab::process::ChildProcess;
use herald_lab::{frr, wait_until};
use support::{ShippedLab, ensure_binary, is_root};

const ALL: [&str; 4] = ["tor", "node1", "node2", "client"];

#[test]
fn dual_stack_sessions_ecmp_and_http_over_ipv4_and_ipv6() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    ensure_binary("speaker", "herald");
    let lab = ShippedLab::copy("dual-stack", "dual");
    lab.up();

    let run_dir = lab.node_dir("tor").join("frr").join("run");
    let peers = ["10.1.1.2", "10.1.2.2", "fd00:1:1::2", "fd00:1:2::2"];
    wait_until("4 sessions Established", Duration::from_secs(60), || {
        let ps = frr::summary_at(&run_dir).ok()?;
        peers
            .iter()
            .all(|a| {
                ps.iter()
                    .any(|p| p.address == *a && p.state == "Established")
            })
            .then_some(())
    })
    .expect("sessions");

    for (family, vip) in [("-4", "10.201.0.10"), ("-6", "fd00:201::10")] {
        let hops = wait_until(
            &format!("2-way ECMP to {vip}"),
            Duration::from_secs(30),
            || {
                let (_, text) = lab.exec("tor", &["ip", family, "route", "show", vip]);
                let hops = herald_lab::demo::fib_next_hops(&text);
                (hops.len() == 2).then_some(hops)
            },
        )
        .expect("ECMP route");
        assert!(
            hops.iter()
                .all(|h| h.contains(if family == "-4" { '.' } else { ':' }))
        );
    }
    let t = Duration::from_secs(15);
    let v4 = lab.wait_http("client", "http://10.201.0.10/", t);
    let v6 = lab.wait_http("client", "http://[fd00:201::10]/", t);
    for body in [&v4, &v6] {
        assert!(body == "node1" || body == "node2", "{body}");
    }
    let config = lab
        .file()
        .parent()
        .expect("lab directory")
        .join("dual-stack/node1/herald.yaml");
    let service = DemoService::load(&config).expect("the agent config's service");
    for (i, vip) in ["10.201.0.10", "fd00:201::10"].iter().enumerate() {
        let vip: IpAddr = vip.parse().expect("vip");
        let paths = dsr_paths(&lab, &service, vip, 21000 + 100 * i as u16);
        check_dsr(&paths, vip);
    }
    let procs = lab.processes(&ALL);
    lab.down_and_check(&ALL, &procs);
}

/// The nodes' IPv6 underlay addresses (`nodes:` in their agent config).
fn node_addrs() -> BTreeMap<IpAddr, String> {
    [("fd00:1:1::2", "node1"), ("fd00:1:2::2", "node2")]
        .into_iter()
        .map(|(a, n)| (a.parse().expect("addr"), n.to_owned()))
        .collect()
}

/// Requests `vip`:80 from the client over 16 fresh source ports while tcpdump watches both
/// nodes' uplinks; ties each answered flow to the node it entered at and the node its replies
/// left (the `lab demo` DSR proof, `dsr_proof`).
fn dsr_paths(lab: &ShippedLab, service: &DemoService, vip: IpAddr, base: u16) -> Vec<FlowPath> {
    let service = DemoService {
        vip,
        ..service.clone()
    };
    let filter = dsr_proof::capture_filter(&service);
    let mut captures: Vec<(String, ChildProcess)> = ["node1", "node2"]
        .iter()
        .map(|node| {
            let mut c = Command::new("ip");
            c.args([
                "netns",
                "exec",
                &lab.netns(node),
                "tcpdump",
                "-nn",
                "-l",
                "-i",
            ])
            .arg(&service.uplink)
            .arg(&filter);
            let dir = lab.node_dir(node);
            let p = ChildProcess::spawn(&format!("dsr-capture-{vip}"), c, &dir).expect("tcpdump");
            wait_until(
                &format!("tcpdump on {node}"),
                Duration::from_secs(20),
                || {
                    std::fs::read_to_string(p.stderr_log())
                        .ok()
                        .filter(|e| e.contains("listening on"))
                },
            )
            .expect("tcpdump listening");
            ((*node).to_owned(), p)
        })
        .collect();
    let host = match vip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let url = format!("http://{host}:{}/", service.port);
    let mut answers = BTreeMap::new();
    for port in base..base + 16 {
        let p = port.to_string();
        let (ok, body) = lab.exec(
            "client",
            &["curl", "-s", "-g", "-m", "5", "--local-port", &p, &url],
        );
        assert!(ok && !body.trim().is_empty(), "GET {url} from :{port}");
        answers.insert(port, body.trim().to_owned());
    }
    // Let the last replies reach the captures.
    std::thread::sleep(Duration::from_millis(500));
    let mut seen = BTreeMap::new();
    for (node, p) in &mut captures {
        p.stop().expect("stop tcpdump");
        let text = std::fs::read_to_string(p.stdout_log()).expect("capture");
        let s: Vec<_> = text
            .lines()
            .filter_map(|l| dsr_proof::parse_capture_line(l, vip, service.port))
            .collect();
        seen.insert(node.clone(), s);
    }
    dsr_proof::flow_paths(&answers, &seen, &node_addrs())
}

/// The DSR row for `vip`: every flow's replies left exactly one node, the one whose backend
/// answered, from `vip`:80; some flow entered at the other node and crossed in Geneve over IPv6
/// with the DSR option.
fn check_dsr(paths: &[FlowPath], vip: IpAddr) {
    assert_eq!(paths.len(), 16);
    for p in paths {
        assert_eq!(
            p.reply_node.as_deref(),
            Some(p.answer.as_str()),
            "{vip}: the replies of :{} left the answering node only, from {vip}:80: {p:?}",
            p.client_port
        );
    }
    let crossed: Vec<&FlowPath> = paths.iter().filter(|p| p.crossed()).collect();
    assert!(
        !crossed.is_empty(),
        "{vip}: no flow crossed nodes (ECMP and Maglev kept every flow local): {paths:?}"
    );
    for p in crossed {
        let (src, dst) = p.geneve.expect("Geneve");
        assert!(
            src.is_ipv6() && dst.is_ipv6(),
            "{vip}: Geneve over IPv6: {p:?}"
        );
        assert!(
            p.geneve_option,
            "{vip}: the flow's Geneve carried the DSR option: {p:?}"
        );
    }
}

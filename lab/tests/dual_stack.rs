//! End-to-end test of the shipped `dual-stack` topology: real FRR on the ToR with one IPv4 and one
//! IPv6 session to each of two real speakers; asserts all four sessions Established, a 2-way ECMP
//! route to the service's IPv4 and IPv6 address in the ToR's FIB, HTTP from the client over both
//! families, and a clean `lab down`. Needs root; no mocks.

mod support;

use std::time::Duration;

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
    let procs = lab.processes(&ALL);
    lab.down_and_check(&ALL, &procs);
}

//! End-to-end test of the main job, `lab demo`, on a private copy of the shipped `bgp-ecmp`
//! topology: real FRR on the ToR, the real speaker on node1..3, real HTTP through the service IP.
//! Asserts the rows that are real today (sessions, the ToR's 3-way ECMP route, HTTP answered by a
//! node, "not yet available" for the DSR proof), that `--keep` leaves the lab up and that
//! `lab down` then leaves no namespace, link or process behind. Needs root; no mocks.

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
    ensure_binary("speaker", "speaker");
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
        http.contains(" ok ") && http.contains("answered by node"),
        "{http}"
    );
    assert!(row(&table, "service IP").contains("10.200.0.10"));
    assert!(row(&table, "DSR proof").contains("not yet available: the datapath"));
    assert!(row(&table, "teardown").contains("kept up"));

    // The lab is still up and what the table claims is visible from outside the demo.
    let (_, fib) = lab.exec("tor", &["ip", "route", "show", "10.200.0.10"]);
    assert_eq!(fib.matches("nexthop via").count(), 3, "{fib}");
    let body = lab
        .http_get("client", "http://10.200.0.10/")
        .expect("HTTP after the demo");
    assert!(body.starts_with("node"), "{body}");

    let procs = lab.processes(&ALL);
    assert!(procs.len() >= 3 + 3 + 3, "too few processes: {procs:?}");
    lab.down_and_check(&ALL, &procs);
}

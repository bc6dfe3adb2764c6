//! End-to-end tests of `herald-l2` in network namespaces: a client and three nodes on a Linux
//! bridge, real AF_PACKET sockets, real ARP/NDP from scapy and the kernel. Needs root; each test
//! builds its own uniquely named namespaces and removes them (and its processes) on drop.
//! No mocks. Outage figures are printed, not asserted (they are measured by benches/failover.sh).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{Lab, is_root, node_config, run};

/// The tests are timing-sensitive on a 2-core machine: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const NODES: [&str; 3] = ["n1", "n2", "n3"];
const V4: [&str; 3] = ["192.168.77.200", "192.168.77.201", "192.168.77.202"];
const V6: [&str; 2] = ["fd77::200", "fd77::201"];

fn services() -> String {
    let mut s = String::new();
    for (i, ip) in V4.iter().chain(V6.iter()).enumerate() {
        s.push_str(&format!("  - {{name: svc{i}, ips: ['{ip}']}}\n"));
    }
    s
}

/// Client + n1..n3 on br0: client 192.168.77.100 / fd77::100, nodes .1N with the VIPs on lo (so
/// they accept traffic for them; `arp_ignore=1` keeps the kernel from answering ARP for them).
fn basic_lab(test: &str, interfaces: &str, extra: &str) -> Lab {
    let mut lab = Lab::new(test);
    lab.add_host("client");
    lab.sh(
        "client",
        "ip addr add 192.168.77.100/24 dev eth0 && ip addr add fd77::100/64 dev eth0 nodad",
    );
    for (i, n) in NODES.iter().enumerate() {
        lab.add_host(n);
        let mut cmd = format!(
            "ip addr add 192.168.77.1{i}/24 dev eth0 && ip addr add fd77::1{i}/64 dev eth0 nodad"
        );
        for v in V4 {
            cmd.push_str(&format!(" && ip addr add {v}/32 dev lo"));
        }
        for v in V6 {
            cmd.push_str(&format!(" && ip addr add {v}/128 dev lo"));
        }
        lab.sh(n, &cmd);
    }
    for n in NODES {
        lab.start_node(n, &node_config(n, &services(), interfaces, extra));
    }
    lab
}

fn macs(lab: &Lab) -> BTreeMap<String, String> {
    NODES
        .iter()
        .map(|n| (lab.mac(n, "eth0"), (*n).to_owned()))
        .collect()
}

fn guard() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn ipv4_and_ipv6_vips_resolve_to_exactly_one_node() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let lab = basic_lab("res", "interfaces: {include: ['^eth0$'], exclude: []}", "");
    let all: Vec<&str> = V4.iter().chain(V6.iter()).copied().collect();
    let leaders = lab.wait_converged(&NODES, &all, Duration::from_secs(15));
    let by_mac = macs(&lab);
    for vip in &all {
        let mode = if vip.contains(':') { "ns" } else { "arp" };
        let replies = lab.probe("client", mode, vip, "eth0", 3, "fd77::100");
        assert_eq!(
            replies.len(),
            3,
            "{vip}: want one reply per request, got {replies:?}"
        );
        let answering: BTreeSet<&str> = replies
            .iter()
            .map(|(m, _)| by_mac.get(m).map_or(m.as_str(), String::as_str))
            .collect();
        assert_eq!(
            answering,
            BTreeSet::from([leaders[*vip].as_str()]),
            "{vip} answered by {answering:?}"
        );
    }
    // The kernel resolves them the same way.
    lab.sh(
        "client",
        "ping -c1 -W2 192.168.77.200 >/dev/null && ping -c1 -W2 fd77::200 >/dev/null",
    );
    let neigh = lab.sh(
        "client",
        "ip neigh show 192.168.77.200; ip -6 neigh show fd77::200",
    );
    for vip in ["192.168.77.200", "fd77::200"] {
        let leader_mac = lab.mac(&leaders[vip], "eth0");
        assert!(
            neigh
                .lines()
                .any(|l| l.starts_with(&format!("{vip} ")) && l.contains(&leader_mac)),
            "{vip} -> {leader_mac} not in {neigh}"
        );
    }
    // Status counters and the spread of VIPs.
    let distinct: BTreeSet<&String> = leaders.values().collect();
    assert!(distinct.len() >= 2, "all VIPs on one node: {leaders:?}");
    let st = lab.status(&leaders["192.168.77.200"]).expect("status");
    let v = st["vips"]
        .as_array()
        .expect("vips")
        .iter()
        .find(|v| v["vip"] == "192.168.77.200")
        .expect("vip")
        .clone();
    assert!(v["replies_sent"].as_u64().unwrap_or(0) >= 3, "{v}");
    assert!(v["garps_sent"].as_u64().unwrap_or(0) >= 2, "{v}");
    assert_eq!(v["interfaces"], serde_json::json!(["eth0"]));
    // `herald-l2 show` renders the same status as Prometheus text and as the `speaker l2` table.
    let status_file = lab
        .dir
        .path()
        .join(format!("{}.status.json", leaders["192.168.77.200"]));
    let show = |extra: &[&str]| {
        let mut args = vec![env!("CARGO_BIN_EXE_herald-l2"), "show", "--status-file"];
        let path = status_file.to_str().expect("utf-8 path");
        args.push(path);
        args.extend_from_slice(extra);
        run(&args)
    };
    let prom = show(&["--prometheus"]);
    let line = prom
        .lines()
        .find(|l| {
            l.starts_with("herald_l2_replies_sent_total") && l.contains("vip=\"192.168.77.200\"")
        })
        .unwrap_or_else(|| panic!("no replies counter in {prom}"));
    let n: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|x| x.parse().ok())
        .expect("counter value");
    assert!(n >= 3, "{line}");
    assert!(show(&[]).contains("192.168.77.200"));
    // A DAD probe for a led IPv6 VIP is defended with an NA to all-nodes from the leader. (By now
    // the takeover's own unsolicited NAs, the last 2 s after takeover, are over.)
    std::thread::sleep(Duration::from_millis(2500));
    let dad = lab.probe("client", "dad", "fd77::201", "eth0", 3, "");
    let leader_mac = lab.mac(&leaders["fd77::201"], "eth0");
    // Every probe is answered; a late unsolicited NA from the same leader (a takeover repeat
    // that lands in the capture window on a slow machine) may add one, never another node.
    assert!(dad.len() >= 3, "{dad:?}");
    assert!(dad.iter().all(|(m, _)| *m == leader_mac), "{dad:?}");
}

#[test]
fn local_policy_and_shared_ips_elect_one_eligible_leader() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let mut lab = Lab::new("lp");
    lab.add_host("client");
    lab.sh("client", "ip addr add 192.168.77.100/24 dev eth0");
    // .210: eTP=Local with its only ready endpoint on n3. .211: two services sharing the IP, with
    // endpoints on {n1, n2} and {n2, n3}: only n2 serves both.
    let svc = "  - {name: local, ips: ['192.168.77.210'], externalTrafficPolicy: Local, readyEndpointNodes: [n3]}\n\
               \x20 - {name: dns-udp, ips: ['192.168.77.211'], sharingKey: dns, externalTrafficPolicy: Local, readyEndpointNodes: [n1, n2]}\n\
               \x20 - {name: dns-tcp, ips: ['192.168.77.211'], sharingKey: dns, externalTrafficPolicy: Local, readyEndpointNodes: [n2, n3]}\n";
    for n in NODES {
        lab.add_host(n);
        lab.start_node(
            n,
            &node_config(n, svc, "interfaces: {include: ['^eth0$'], exclude: []}", ""),
        );
    }
    let leaders = lab.wait_converged(
        &NODES,
        &["192.168.77.210", "192.168.77.211"],
        Duration::from_secs(15),
    );
    assert_eq!(leaders["192.168.77.210"], "n3");
    assert_eq!(leaders["192.168.77.211"], "n2");
    for (vip, node) in [("192.168.77.210", "n3"), ("192.168.77.211", "n2")] {
        let replies = lab.probe("client", "arp", vip, "eth0", 3, "");
        assert_eq!(replies.len(), 3, "{vip}: {replies:?}");
        assert!(
            replies.iter().all(|(m, _)| *m == lab.mac(node, "eth0")),
            "{vip}: {replies:?}"
        );
    }
    // The only eligible node dies: nobody else may answer for the eTP=Local IP.
    lab.kill_node("n3");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        lab.probe("client", "arp", "192.168.77.210", "eth0", 2, "")
            .is_empty()
    );
}

/// A client and the three nodes announcing 192.168.77.200, with a file store (1.5 s leases,
/// `store_extra` appended to its settings); returns the lab and the lease directory.
fn file_store_lab(name: &str, store_extra: &str) -> (Lab, std::path::PathBuf) {
    let mut lab = Lab::new(name);
    lab.add_host("client");
    lab.sh("client", "ip addr add 192.168.77.100/24 dev eth0");
    let leases = lab.dir.path().join("leases");
    let store = format!(
        "store: {{kind: file, dir: '{}', leaseMs: 1500, renewMs: 300{store_extra}}}",
        leases.display()
    );
    let svc = "  - {name: web, ips: ['192.168.77.200']}\n";
    for n in NODES {
        lab.add_host(n);
        lab.start_node(
            n,
            &node_config(
                n,
                svc,
                "interfaces: {include: ['^eth0$'], exclude: []}",
                &store,
            ),
        );
    }
    (lab, leases)
}

#[test]
fn file_store_lets_the_last_node_standing_take_over() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let (mut lab, _) = file_store_lab("fs", "");
    let vip = "192.168.77.200";
    let first = lab.wait_converged(&NODES, &[vip], Duration::from_secs(15))[vip].clone();
    lab.kill_node(&first);
    let rest: Vec<&str> = NODES.iter().copied().filter(|n| *n != first).collect();
    let second = lab.wait_converged(&rest, &[vip], Duration::from_secs(5))[vip].clone();
    lab.kill_node(&second);
    // One of three left: no majority of the configured nodes, but once the dead nodes' leases
    // expire the membership is just this node, which then leads.
    let last: Vec<&str> = rest.iter().copied().filter(|n| *n != second).collect();
    let leaders = lab.wait_converged(&last, &[vip], Duration::from_secs(10));
    assert_eq!(leaders[vip], last[0]);
    let st = lab.status(last[0]).expect("status");
    assert_eq!(st["members"], serde_json::json!([last[0]]), "{st}");
    let replies = lab.probe("client", "arp", vip, "eth0", 2, "");
    assert!(
        replies.len() == 2 && replies.iter().all(|(m, _)| *m == lab.mac(last[0], "eth0")),
        "{replies:?}"
    );
}

#[test]
fn a_store_down_for_every_node_takes_no_address_dark_within_the_outage_grace() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let (lab, leases) = file_store_lab("so", ", outageGraceMs: 6000");
    let vip = "192.168.77.200";
    let leader = lab.wait_converged(&NODES, &[vip], Duration::from_secs(15))[vip].clone();
    // The store goes away for everyone: its directory becomes a file, so every renewal fails.
    // The swap is one atomic rename: the agents keep renewing meanwhile, and recreate a missing
    // directory (emptying it file by file raced with a renewal in CI: "Directory not empty").
    let blocker = leases.with_extension("blocker");
    std::fs::write(&blocker, b"not a directory").expect("write the blocking file");
    swap_paths(&leases, &blocker);
    let _ = std::fs::remove_dir_all(&blocker);
    // Twice the lease later, the leader still answers, and says why.
    std::thread::sleep(Duration::from_millis(3500));
    let replies = lab.probe("client", "arp", vip, "eth0", 2, "");
    assert!(
        replies.len() == 2 && replies.iter().all(|(m, _)| *m == lab.mac(&leader, "eth0")),
        "the address went dark during the store outage: {replies:?}"
    );
    let st = lab.status(&leader).expect("status");
    assert_eq!(
        (&st["lease_valid"], &st["store_outage"]),
        (&serde_json::json!(false), &serde_json::json!(true)),
        "{st}"
    );
    // The grace is bounded: 1.5 s lease + 6 s after the last renewal, nobody answers.
    std::thread::sleep(Duration::from_millis(5500));
    assert!(
        lab.probe("client", "arp", vip, "eth0", 2, "").is_empty(),
        "answered beyond the outage grace"
    );
    // The store returns: renewals work again and the address is answered again.
    std::fs::create_dir(&blocker).expect("new lease directory");
    swap_paths(&leases, &blocker);
    let _ = std::fs::remove_file(&blocker);
    lab.wait_converged(&NODES, &[vip], Duration::from_secs(15));
}

/// Exchanges two paths in one step (`renameat2(RENAME_EXCHANGE)`), so no observer sees neither.
fn swap_paths(a: &std::path::Path, b: &std::path::Path) {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE)
        .unwrap_or_else(|e| panic!("exchange {a:?} and {b:?}: {e}"));
}

/// Pings `vip` from the client every 10 ms while `fault` runs; returns the longest gap between
/// replies, in ms.
fn outage_during(lab: &mut Lab, vip: &str, fault: impl FnOnce(&mut Lab)) -> f64 {
    let ns = lab.ns("client");
    let child = std::process::Command::new("ip")
        .args([
            "netns", "exec", &ns, "ping", "-n", "-D", "-i", "0.01", "-w", "4", vip,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ping");
    std::thread::sleep(Duration::from_millis(700));
    fault(lab);
    let out = child.wait_with_output().expect("ping output");
    let text = String::from_utf8_lossy(&out.stdout);
    let times: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    assert!(times.len() > 100, "too few ping replies: {text}");
    times
        .windows(2)
        .map(|w| (w[1] - w[0]) * 1000.0)
        .fold(0.0, f64::max)
}

#[test]
fn failover_after_sigkill_and_after_link_down() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let mut lab = basic_lab("fo", "interfaces: {include: ['^eth0$'], exclude: []}", "");
    let vip = V4[0];
    let leaders = lab.wait_converged(&NODES, &[vip], Duration::from_secs(15));
    let old = leaders[vip].clone();
    lab.sh("client", &format!("ping -c1 -W2 {vip} >/dev/null"));

    // 1. The leader node dies: SIGKILL its herald-l2 and, in the same instant, stop it serving
    //    the VIP (else its kernel keeps answering the pings and there is no outage to see).
    let gap = outage_during(&mut lab, vip, |lab| {
        lab.kill_node(&old);
        lab.sh(&old, &format!("ip addr del {vip}/32 dev lo"));
    });
    let rest: Vec<&str> = NODES.iter().copied().filter(|n| *n != old).collect();
    let new = lab.wait_converged(&rest, &[vip], Duration::from_secs(5))[vip].clone();
    assert_ne!(new, old);
    let neigh = lab.sh("client", &format!("ip neigh show {vip}"));
    assert!(
        neigh.contains(&lab.mac(&new, "eth0")),
        "client still resolves {vip} to the old node: {neigh}"
    );
    let replies = lab.probe("client", "arp", vip, "eth0", 2, "");
    assert!(
        replies.len() == 2 && replies.iter().all(|(m, _)| *m == lab.mac(&new, "eth0")),
        "{replies:?}"
    );
    println!("failover after SIGKILL of {old}: outage {gap:.0} ms (new leader {new})");

    // 2. Bring the killed node back; then take the current leader's link down.
    let cfg = lab.configs[&old].clone();
    lab.sh(&old, &format!("ip addr add {vip}/32 dev lo"));
    lab.start_node(&old, &cfg);
    let leaders = lab.wait_converged(&NODES, &[vip], Duration::from_secs(15));
    let leader = leaders[vip].clone();
    lab.sh("client", &format!("ping -c1 -W2 {vip} >/dev/null"));
    let ns = lab.ns(&leader);
    let gap = outage_during(&mut lab, vip, |_| {
        run(&["ip", "-n", &ns, "link", "set", "eth0", "down"]);
    });
    let rest: Vec<&str> = NODES.iter().copied().filter(|n| *n != leader).collect();
    let new = lab.wait_converged(&rest, &[vip], Duration::from_secs(5))[vip].clone();
    assert_ne!(new, leader);
    let neigh = lab.sh("client", &format!("ip neigh show {vip}"));
    assert!(
        neigh.contains(&lab.mac(&new, "eth0")),
        "client still resolves {vip} to the old node: {neigh}"
    );
    // The node whose link is down no longer has quorum and leads nothing.
    let st = lab.status(&leader).expect("status");
    assert_eq!(st["quorum"], false, "{st}");
    assert!(
        st["vips"]
            .as_array()
            .expect("vips")
            .iter()
            .all(|v| v["led_by_me"] == false),
        "{st}"
    );
    println!("failover after link down on {leader}: outage {gap:.0} ms (new leader {new})");
}

/// Parses `tcpdump -nn -e -tt` ARP lines: (time, is_request, vip, source MAC, destination MAC).
fn arp_events(text: &str) -> Vec<(f64, bool, String, String, String)> {
    let mut out = Vec::new();
    for l in text.lines() {
        let mut words = l.split_whitespace();
        let Some(t) = words.next().and_then(|t| t.parse::<f64>().ok()) else {
            continue;
        };
        let src_mac = words.next().unwrap_or("").to_owned();
        let dst_mac = words.nth(1).unwrap_or("").trim_end_matches(',').to_owned();
        if let Some(rest) = l.split("Request who-has ").nth(1) {
            let target = rest.split_whitespace().next().unwrap_or("").to_owned();
            out.push((t, true, target, src_mac, dst_mac));
        } else if let Some(rest) = l.split("Reply ").nth(1) {
            let vip = rest.split_whitespace().next().unwrap_or("").to_owned();
            out.push((t, false, vip, src_mac, dst_mac));
        }
    }
    out
}

#[test]
fn no_two_nodes_answer_for_one_vip_while_leaders_churn() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let mut lab = basic_lab("sb", "interfaces: {include: ['^eth0$'], exclude: []}", "");
    lab.wait_converged(&NODES, &V4, Duration::from_secs(15));
    let pcap = lab.dir.path().join("bridge.pcap");
    let br = lab.ns("br");
    let mut dump = std::process::Command::new("ip")
        .args(["netns", "exec", &br, "tcpdump", "-i", "br0", "-U", "-w"])
        .arg(&pcap)
        .arg("arp")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump");
    // The client asks for every VIP every 20 ms for the whole run.
    let ns = lab.ns("client");
    let script = format!(
        "from scapy.all import *\nconf.verb=0\nm=get_if_hwaddr('eth0')\np=[Ether(dst='ff:ff:ff:ff:ff:ff',src=m)/ARP(op=1,hwsrc=m,psrc='192.168.77.100',pdst=v) for v in {V4:?}]\nsendp(p*330, iface='eth0', inter=0.02/3)\n"
    );
    let asker = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "/usr/bin/python3", "-c", &script])
        .spawn()
        .expect("asker");
    let start = Instant::now();
    let mut events = 0;
    let mut round = 0usize;
    while start.elapsed() < Duration::from_secs(18) {
        let victim = NODES[round % 3];
        round += 1;
        if round.is_multiple_of(2) {
            lab.kill_node(victim);
            std::thread::sleep(Duration::from_millis(1200));
            let cfg = lab.configs[victim].clone();
            lab.start_node(victim, &cfg);
        } else {
            let vns = lab.ns(victim);
            run(&["ip", "-n", &vns, "link", "set", "eth0", "down"]);
            std::thread::sleep(Duration::from_millis(1200));
            run(&["ip", "-n", &vns, "link", "set", "eth0", "up"]);
        }
        events += 1;
        std::thread::sleep(Duration::from_millis(1500));
    }
    let _ = asker.wait_with_output();
    std::thread::sleep(Duration::from_millis(300));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dump.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = dump.wait();
    let text = run(&[
        "tcpdump",
        "-r",
        pcap.to_str().expect("utf-8 path"),
        "-nn",
        "-e",
        "-tt",
    ]);
    let ev = arp_events(&text);
    let client_mac = lab.mac("client", "eth0");
    // For each request, the distinct MACs answering it (replies to the client, not gratuitous
    // announcements) before the next request for the same VIP.
    let mut conflicts = Vec::new();
    let mut answered = 0;
    for vip in V4 {
        let mut last_req: Option<f64> = None;
        let mut responders: BTreeSet<String> = BTreeSet::new();
        for (t, is_req, target, mac, dst) in ev.iter().filter(|e| e.2 == vip) {
            if *is_req && *mac == client_mac {
                if responders.len() > 1 {
                    conflicts.push((vip, last_req, responders.clone()));
                }
                answered += usize::from(!responders.is_empty());
                last_req = Some(*t);
                responders.clear();
            } else if !*is_req && target == vip && *dst == client_mac && last_req.is_some() {
                responders.insert(mac.clone());
            }
        }
    }
    println!(
        "churn: {events} leader changes, {answered} answered requests, {} conflicts",
        conflicts.len()
    );
    assert!(events >= 6);
    assert!(
        answered > 500,
        "too few answered requests ({answered}): the probe did not run"
    );
    assert!(
        conflicts.is_empty(),
        "two nodes answered one request: {conflicts:?}"
    );
}

/// Whether this kernel can create 802.1Q sub-interfaces (CONFIG_VLAN_8021Q).
fn vlan_supported(lab: &Lab, h: &str) -> bool {
    let ok = std::process::Command::new("ip")
        .args([
            "-n",
            &lab.ns(h),
            "link",
            "add",
            "link",
            "eth0",
            "name",
            "vlantest",
            "type",
            "vlan",
            "id",
            "4000",
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        run(&["ip", "-n", &lab.ns(h), "link", "del", "vlantest"]);
    }
    ok
}

#[test]
fn vlan_tagged_requests_are_answered_only_on_their_vlan() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let mut lab = Lab::new("vl");
    lab.add_host("client");
    let svc = "  - {name: vlan-svc, ips: ['192.168.100.200']}\n";
    let vlans = vlan_supported(&lab, "client");
    for n in NODES {
        lab.add_host(n);
        // No IP address on the nodes' segment interfaces; the VIP sits on lo.
        let mut cmd = "ip addr add 192.168.100.200/32 dev lo".to_owned();
        if vlans {
            cmd.push_str(" && ip link add link eth0 name eth0.100 type vlan id 100 && ip link set eth0.100 up");
        }
        lab.sh(n, &cmd);
        lab.start_node(
            n,
            &node_config(n, svc, "interfaces: {include: ['^eth0'], exclude: []}", ""),
        );
    }
    let leaders = lab.wait_converged(&NODES, &["192.168.100.200"], Duration::from_secs(15));
    let leader = &leaders["192.168.100.200"];
    // A tagged request reaching a parent interface must never be answered untagged there: the
    // kernel moves the tag into metadata and the socket filter drops such frames.
    let replies = lab.probe_vlan("client", "192.168.100.200", "eth0", 3, 100);
    assert!(
        replies.iter().all(|(_, vlan)| *vlan == Some(100)),
        "untagged answer to a tagged request: {replies:?}"
    );
    if !vlans {
        assert!(replies.is_empty(), "{replies:?}");
        eprintln!(
            "kernel without CONFIG_VLAN_8021Q: VLAN sub-interface part skipped (tagged requests verified unanswered on the parent)"
        );
        return;
    }
    lab.sh("client", "ip link add link eth0 name eth0.100 type vlan id 100 && ip link set eth0.100 up && ip addr add 192.168.100.100/24 dev eth0.100");
    let leader_vlan_mac = lab.mac(leader, "eth0.100");
    let replies = lab.probe("client", "arp", "192.168.100.200", "eth0.100", 3, "");
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert!(
        replies.iter().all(|(m, _)| *m == leader_vlan_mac),
        "{replies:?}"
    );
    lab.sh("client", "ping -c1 -W2 192.168.100.200 >/dev/null");
}

#[test]
fn address_less_interfaces_answer() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let mut lab = Lab::new("al");
    lab.add_host("client");
    lab.sh("client", "ip addr add 192.168.77.100/24 dev eth0");
    let svc = "  - {name: a, ips: ['192.168.77.200']}\n";
    for n in NODES {
        lab.add_host(n);
        // Neither IPv4 nor IPv6 (not even link-local) on the segment interface.
        lab.sh(
            n,
            "sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1 && ip addr add 192.168.77.200/32 dev lo",
        );
        lab.start_node(
            n,
            &node_config(n, svc, "interfaces: {include: ['^eth0$'], exclude: []}", ""),
        );
    }
    let leaders = lab.wait_converged(&NODES, &["192.168.77.200"], Duration::from_secs(15));
    let leader_mac = lab.mac(&leaders["192.168.77.200"], "eth0");
    assert!(
        lab.sh(&leaders["192.168.77.200"], "ip -o addr show dev eth0")
            .trim()
            .is_empty()
    );
    let replies = lab.probe("client", "arp", "192.168.77.200", "eth0", 3, "");
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert!(replies.iter().all(|(m, _)| *m == leader_mac), "{replies:?}");
}

#[test]
fn excluded_interface_never_answers() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let mut lab = Lab::new("ex");
    lab.add_host("client");
    lab.attach("client", "eth1", "br1");
    lab.sh(
        "client",
        "ip addr add 192.168.77.100/24 dev eth0 && ip addr add 192.168.88.100/24 dev eth1",
    );
    let svc = "  - {name: a, ips: ['192.168.77.200']}\n  - {name: b, ips: ['192.168.88.200']}\n";
    for n in NODES {
        lab.add_host(n);
        lab.attach(n, "eth1", "br1");
        lab.start_node(
            n,
            &node_config(n, svc, "interfaces: {exclude: ['^eth1$', '^lo$']}", ""),
        );
    }
    lab.wait_converged(
        &NODES,
        &["192.168.77.200", "192.168.88.200"],
        Duration::from_secs(15),
    );
    // On the excluded segment nobody answers, for either VIP.
    for vip in ["192.168.77.200", "192.168.88.200"] {
        let replies = lab.probe("client", "arp", vip, "eth1", 3, "");
        assert!(
            replies.is_empty(),
            "excluded eth1 answered for {vip}: {replies:?}"
        );
    }
    // On the selected one the leader does.
    assert_eq!(
        lab.probe("client", "arp", "192.168.77.200", "eth0", 2, "")
            .len(),
        2
    );
    for n in NODES {
        let st = lab.status(n).expect("status");
        let eth1 = st["interfaces"]
            .as_array()
            .expect("interfaces")
            .iter()
            .find(|i| i["name"] == "eth1")
            .cloned();
        assert_eq!(
            eth1.map(|i| i["selected"].clone()),
            Some(serde_json::json!(false)),
            "{st}"
        );
    }
}

//! The one agent under real traffic, on copies of the shipped `bgp-ecmp` topology: real FRR on the
//! ToR, `herald agent` on three nodes (BGP, lb-ipam, XDP Maglev + Geneve DSR), python HTTP servers
//! as pods, curl and a paced download client as the client.
//!
//! - `externalTrafficPolicy: Local`: the ToR gets paths only from nodes with a local endpoint, the
//!   pods see the client's own address, and the node without one has no datapath entry (it
//!   neither announces nor sends the flow to another node).
//! - Endpoint churn 3 → 2 → 4 while long downloads run: streams to surviving backends complete;
//!   growing the backend set breaks no stream. (Streams already running to the removed backend
//!   may go on while its pod still answers — the flow table pins established flows, as a
//!   terminating pod's connections drain; new flows never reach it.)
//!
//! Needs root, FRR and bpffs (`scripts/setup.sh`).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_lab::{paced_get, wait_until};
use support::{ShippedLab, ensure_binary, is_root};

const VIP: &str = "10.200.0.10";
const UP: Duration = Duration::from_secs(60);
/// Size of each pod's download file.
const BIG: usize = 8 << 20;

fn topology_dir(lab: &ShippedLab) -> PathBuf {
    lab.file()
        .parent()
        .map(|p| p.join("bgp-ecmp"))
        .unwrap_or_default()
}

/// Rewrites the `endpoints:` list of every node's agent config in `dir/nodeN/herald.yaml` (before
/// `up`) or of the running copies (after), and optionally the traffic policy.
fn set_endpoints(configs: &[PathBuf], endpoints: &[(&str, &str)], local: bool) {
    let list: String = endpoints
        .iter()
        .map(|(ip, node)| format!("      - {{ ip: {ip}, nodeName: {node}, port: 8080 }}\n"))
        .collect();
    for path in configs {
        let text = std::fs::read_to_string(path).expect("agent config");
        let start = text.find("    endpoints:\n").expect("endpoints list");
        let end = text[start..]
            .find("# The cluster's nodes")
            .map(|i| start + i)
            .expect("end of endpoints");
        let policy = if local {
            "    externalTrafficPolicy: Local\n"
        } else {
            ""
        };
        let new = format!(
            "{}{policy}    endpoints:\n{list}{}",
            &text[..start],
            &text[end..]
        );
        // Write-and-rename, as an editor would: the agent sees one complete file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, new).expect("write config");
        std::fs::rename(&tmp, path).expect("rename config");
    }
}

fn shipped_configs(lab: &ShippedLab) -> Vec<PathBuf> {
    (1..=3)
        .map(|n| topology_dir(lab).join(format!("node{n}/herald.yaml")))
        .collect()
}

fn running_configs(lab: &ShippedLab) -> Vec<PathBuf> {
    (1..=3)
        .map(|n| {
            lab.node_dir(&format!("node{n}"))
                .join("binds/etc/herald/herald.yaml")
        })
        .collect()
}

/// Next hops of the ToR's kernel route to the VIP.
fn tor_paths(lab: &ShippedLab) -> Vec<String> {
    let (_, text) = lab.exec("tor", &["ip", "route", "show", VIP]);
    text.split_whitespace()
        .zip(text.split_whitespace().skip(1))
        .filter(|(w, _)| *w == "via")
        .map(|(_, a)| a.to_owned())
        .collect()
}

fn agent_json(lab: &ShippedLab, herald: &Path, node: &str, args: &[&str]) -> serde_json::Value {
    let socket = lab.node_dir(node).join("speaker.sock");
    let out = Command::new(herald)
        .args(args)
        .args(["--json", "--socket"])
        .arg(&socket)
        .output()
        .expect("run herald");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Backends of the VIP's datapath entry on `node` (0 without an entry).
fn vip_backends(lab: &ShippedLab, herald: &Path, node: &str) -> u64 {
    let status = agent_json(lab, herald, node, &["datapath", "status"]);
    status["maps"]["services"]
        .as_array()
        .and_then(|s| s.iter().find(|e| e["vip"] == VIP))
        .and_then(|e| e["backends"].as_u64())
        .unwrap_or(0)
}

/// Writes a `BIG`-byte file whose first line names the pod into each pod's web root.
fn write_big_files(topology: &Path) {
    for n in 1..=3 {
        let mut body = format!("pod{n}\n").into_bytes();
        body.resize(BIG, b'x');
        std::fs::write(topology.join(format!("pod{n}/www/big.bin")), body).expect("big file");
    }
}

/// Sends `count` requests to the VIP from client ports `first_port..`, one new flow each, and
/// counts the answers by the pod that sent them (failed requests are not counted).
fn pods_answering(lab: &ShippedLab, first_port: u16, count: u16) -> BTreeMap<String, usize> {
    let url = format!("http://{VIP}/");
    let mut answered = BTreeMap::new();
    for port in first_port..first_port + count {
        let port = port.to_string();
        let (ok, body) = lab.exec(
            "client",
            &["curl", "-s", "-m", "2", "--local-port", &port, &url],
        );
        if ok {
            *answered
                .entry(body.split_whitespace().next().unwrap_or("").to_owned())
                .or_default() += 1;
        }
    }
    answered
}

/// A paced download (500 KB/s, about 17 s for `BIG`) from the client, into `out`, from client
/// port `port`; its stdout is the `DL <bytes> <status>` line of [`paced_get`].
fn start_download(lab: &ShippedLab, script: &Path, out: &Path, port: u16) -> Child {
    let url = format!("http://{VIP}/big.bin");
    let argv = paced_get::argv(script, &url, 500_000, &out.to_string_lossy(), port);
    Command::new("ip")
        .args(["netns", "exec", &lab.netns("client")])
        .args(&argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("paced download")
}

/// One finished download: which pod served it (first line of the file) and whether it is
/// complete.
#[derive(Debug)]
struct Download {
    pod: String,
    complete: bool,
}

fn finish(child: Child, out: &Path) -> Download {
    let output = child.wait_with_output().expect("download output");
    let result = paced_get::parse_line(&String::from_utf8_lossy(&output.stdout));
    let body = std::fs::read(out).unwrap_or_default();
    let pod = body
        .split(|b| *b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default();
    Download {
        pod,
        complete: result == Some((BIG, 200)),
    }
}

/// Starts 12 downloads (client ports from `first_port`), changes every node's endpoint list to
/// `endpoints` while they run, waits until every node's datapath holds that many backends
/// (asserting streams were still running then), and returns how each download ended.
fn churn_under_load(
    lab: &ShippedLab,
    herald: &Path,
    scratch: &Path,
    first_port: u16,
    endpoints: &[(&str, &str)],
) -> Vec<Download> {
    let script = paced_get::install(scratch).expect("download client");
    let mut streams: Vec<(Child, PathBuf)> = (0..12)
        .map(|i| {
            let out = scratch.join(format!("d{}", first_port + i));
            (start_download(lab, &script, &out, first_port + i), out)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    set_endpoints(&running_configs(lab), endpoints, false);
    let changed = std::time::Instant::now();
    wait_until("the new backend set on every node", UP, || {
        ["node1", "node2", "node3"]
            .iter()
            .all(|n| vip_backends(lab, herald, n) == endpoints.len() as u64)
            .then_some(())
    })
    .expect("endpoint change applied");
    let running = streams
        .iter_mut()
        .map(|(c, _)| c.try_wait().ok().flatten().is_none())
        .filter(|running| *running)
        .count();
    eprintln!(
        "change applied on every node after {:?}; {running} streams running",
        changed.elapsed()
    );
    assert!(running > 0, "the change must land while streams run");
    streams
        .into_iter()
        .map(|(c, out)| finish(c, &out))
        .collect()
}

#[test]
fn external_traffic_policy_local_keeps_the_client_address_and_idle_nodes_stay_silent() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let herald = ensure_binary("speaker", "herald");
    let lab = ShippedLab::copy("bgp-ecmp", "etpl");
    // pod3's endpoint is gone: node3 has no local endpoint.
    set_endpoints(
        &shipped_configs(&lab),
        &[("10.244.1.10", "node1"), ("10.244.2.10", "node2")],
        true,
    );
    lab.up();
    let paths = wait_until("two ToR paths", UP, || {
        let p = tor_paths(&lab);
        (p.len() == 2).then_some(p)
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", tor_paths(&lab)));
    assert_eq!(paths, ["10.0.1.2", "10.0.2.2"], "node3 announces nothing");
    // Every request is answered by a pod on the node it entered at.
    lab.wait_http("client", &format!("http://{VIP}/"), UP);
    let answered = pods_answering(&lab, 31000, 10);
    assert_eq!(
        answered.values().sum::<usize>(),
        10,
        "every request answered: {answered:?}"
    );
    assert!(
        answered.keys().all(|p| p == "pod1" || p == "pod2"),
        "{answered:?}"
    );
    // The pods saw the client's own address (no SNAT, no DSR hop hiding it).
    let log = |pod: &str| {
        std::fs::read_to_string(lab.node_dir(pod).join("cmd.stderr.log")).unwrap_or_default()
    };
    let seen = format!("{}{}", log("pod1"), log("pod2"));
    assert!(seen.contains("10.0.100.10 - -"), "{seen}");
    assert!(!seen.contains("10.0.1.2 - -") && !seen.contains("10.0.2.2 - -"));
    // node3 has no entry: it neither serves nor forwards the VIP, and says why.
    assert_eq!(vip_backends(&lab, &herald, "node3"), 0);
    assert_eq!(vip_backends(&lab, &herald, "node1"), 1, "only its own pod");
    let services = agent_json(&lab, &herald, "node3", &["services"]);
    let why = services[0]["notServed"][VIP].as_str().unwrap_or_default();
    assert!(why.contains("no ready backend"), "{services}");
}

#[test]
fn endpoint_churn_keeps_streams_to_surviving_backends() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let herald = ensure_binary("speaker", "herald");
    let lab = ShippedLab::copy("bgp-ecmp", "churn");
    write_big_files(&topology_dir(&lab));
    lab.up();
    wait_until("three ToR paths", UP, || {
        (tor_paths(&lab).len() == 3).then_some(())
    })
    .expect("ECMP");
    lab.wait_http("client", &format!("http://{VIP}/"), UP);
    let scratch = tempfile::tempdir().expect("tempdir");

    // 3 → 2 while 12 downloads run: pod3 leaves every node's endpoint list.
    let done = churn_under_load(
        &lab,
        &herald,
        scratch.path(),
        32000,
        &[("10.244.1.10", "node1"), ("10.244.2.10", "node2")],
    );
    eprintln!("3 -> 2: {done:?}");
    let survivors: Vec<&Download> = done.iter().filter(|d| d.pod != "pod3").collect();
    assert!(!survivors.is_empty(), "{done:?}");
    assert!(
        survivors.iter().all(|d| d.complete),
        "a stream to a surviving backend broke: {done:?}"
    );

    // 2 → 4 while 12 more run: pod3 returns and pod2 gains a second address.
    lab.exec(
        "pod2",
        &["ip", "addr", "add", "10.244.2.11/24", "dev", "eth1"],
    );
    let done = churn_under_load(
        &lab,
        &herald,
        scratch.path(),
        33000,
        &[
            ("10.244.1.10", "node1"),
            ("10.244.2.10", "node2"),
            ("10.244.2.11", "node2"),
            ("10.244.3.10", "node3"),
        ],
    );
    eprintln!("2 -> 4: {done:?}");
    assert!(
        done.iter().all(|d| d.complete),
        "growing the backend set broke a stream: {done:?}"
    );
    // New flows reach the new backends too.
    let pods = pods_answering(&lab, 34000, 24);
    assert!(
        pods.contains_key("pod3"),
        "pod3 is back in the tables: {pods:?}"
    );
}

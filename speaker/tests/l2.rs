//! End-to-end: three `herald agent` processes with `l2:` and one service from an `ipam:` pool, on
//! one Linux bridge with a client. The client's ARP requests for the allocated IP are answered by
//! exactly one node, `speaker l2 --json` and `speaker services --json` report it, and the lb-ipam
//! state file keeps the service's address across a speaker restart. Real namespaces, veths,
//! AF_PACKET sockets and scapy; no mocks. Needs root; everything is removed on drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use herald_tests::{Bridge, ChildProcess, Netns, TestLab, VethPair, wait_until, wait_until_ok};
use nix::sys::signal::Signal;
use serde_json::Value;

const NODES: [&str; 3] = ["n1", "n2", "n3"];
const POOL_FIRST: &str = "192.168.78.200";
const POOL_SECOND: &str = "192.168.78.201";
/// ARP requests each probe sends.
const PROBES: u64 = 3;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

fn node_config(dir: &Path, node: &str, extra_service: &str) -> String {
    format!(
        "node: {{name: {node}, routerId: 10.0.0.1}}\n\
         api: {{controlSocket: {dir}/speaker.sock}}\n\
         ipam:\n  stateFile: {dir}/lb-ipam.json\n  pools:\n    - name: lan\n      blocks: [{{start: {POOL_FIRST}, stop: 192.168.78.210}}]\n\
         services:\n{extra_service}  - {{name: web, namespace: shop, ports: [{{port: 80}}]}}\n\
         l2:\n  nodes: [{{name: n1}}, {{name: n2}}, {{name: n3}}]\n  interfaces: {{include: ['^eth0$'], exclude: []}}\n\
         \x20 auth: {{keyFile: {dir}/l2.key}}\n",
        dir = dir.display()
    )
}

/// One `herald agent` in its namespace; SIGTERM on drop (ChildProcess's own drop).
struct Speaker {
    dir: PathBuf,
    process: ChildProcess,
}

impl Speaker {
    fn start(ns: &Netns, dir: &Path, node: &str, config: &str) -> Self {
        let path = dir.join("speaker.yaml");
        std::fs::write(&path, config).expect("write config");
        // Every node holds the same heartbeat key (authenticated, replay-protected heartbeats).
        std::fs::write(dir.join("l2.key"), "herald-test-l2-shared-key\n").expect("write key");
        let mut command = ns.command(env!("CARGO_BIN_EXE_herald"));
        command.args(["agent", "--config"]).arg(&path);
        command.env("RUST_LOG", "info");
        let process = ChildProcess::spawn(&format!("speaker-{node}"), command, dir).expect("spawn");
        let speaker = Self {
            dir: dir.to_owned(),
            process,
        };
        wait_until("control socket", Duration::from_secs(20), || {
            dir.join("speaker.sock").exists().then_some(())
        })
        .unwrap_or_else(|e| panic!("{node} did not start: {e}\n{}", speaker.log()));
        speaker
    }

    fn log(&self) -> String {
        self.process.log_tail(4000)
    }

    fn show(&self, what: &str) -> Result<Value, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([what, "--json", "--socket"])
            .arg(self.dir.join("speaker.sock"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    fn stop(mut self) {
        self.process.signal(Signal::SIGTERM).expect("SIGTERM");
        let status = self
            .process
            .wait_exit(Duration::from_secs(10))
            .expect("speaker exits on SIGTERM");
        assert!(status.success(), "speaker exit {status:?}\n{}", self.log());
    }
}

/// The VIP row of `speaker l2 --json` for `vip`.
fn vip_row(report: &Value, vip: &str) -> Option<Value> {
    report["vips"]
        .as_array()?
        .iter()
        .find(|v| v["vip"] == vip)
        .cloned()
}

fn web_addresses(services: &Value) -> Vec<String> {
    services
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["service"] == "shop/web")
        .and_then(|s| s["addresses"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// Waits until every speaker reports the same leader for `vip` and exactly that one answers.
fn converged_leader(speakers: &BTreeMap<&str, Speaker>, vip: &str) -> String {
    wait_until_ok("one agreed L2 leader", Duration::from_secs(20), || {
        let mut leaders = Vec::new();
        let mut led_here = Vec::new();
        for (node, speaker) in speakers {
            let report = speaker.show("l2")?;
            let row = vip_row(&report, vip).ok_or(format!("{node}: no row for {vip}"))?;
            leaders.push(row["leader"].as_str().unwrap_or("").to_owned());
            if row["ledByMe"] == true {
                led_here.push((*node).to_owned());
            }
        }
        leaders.dedup();
        match (leaders.as_slice(), led_here.as_slice()) {
            ([leader], [me]) if leader == me => Ok(leader.clone()),
            _ => Err(format!("leaders {leaders:?}, led by {led_here:?}")),
        }
    })
    .unwrap_or_else(|e| {
        let logs: Vec<String> = speakers.values().map(Speaker::log).collect();
        panic!("{e}\n{}", logs.join("\n----\n"))
    })
}

fn arp_replies(client: &Netns, vip: &str) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/l2_support/arp_probe.py");
    let out = client
        .command("/usr/bin/python3")
        .args([script, vip, "eth0", &PROBES.to_string()])
        .output()
        .expect("run the ARP probe");
    assert!(
        out.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("probe JSON")
}

#[test]
fn allocated_ip_is_answered_by_exactly_one_node_and_survives_restart() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lab = TestLab::new("speaker_l2").expect("lab");
    let switch = lab.netns("sw").expect("switch netns");
    let bridge = Bridge::create(&switch, "br0").expect("bridge");
    let mut hosts = BTreeMap::new();
    let mut links = Vec::new();
    for (i, host) in ["client", "n1", "n2", "n3"].into_iter().enumerate() {
        let ns = lab.netns(host).expect("netns");
        let port = format!("p{i}");
        links.push(VethPair::create(&ns, "eth0", &switch, &port).expect("veth"));
        bridge.attach(&port).expect("attach");
        ns.link_up("lo").expect("lo");
        ns.link_up("eth0").expect("eth0");
        ns.addr_add("eth0", &format!("192.168.78.{}/24", 10 + i))
            .expect("address");
        hosts.insert(host, ns);
    }
    let mac = |host: &str| -> String {
        let text = hosts[host]
            .ip(&["-j", "link", "show", "eth0"])
            .expect("link");
        let v: Value = serde_json::from_str(&text).expect("ip -j");
        v[0]["address"].as_str().expect("mac").to_owned()
    };
    let node_of_mac: BTreeMap<String, &str> = NODES.iter().map(|n| (mac(n), *n)).collect();

    let mut speakers = BTreeMap::new();
    for node in NODES {
        let dir = lab.subdir(node).expect("dir");
        let config = node_config(&dir, node, "");
        speakers.insert(node, Speaker::start(&hosts[node], &dir, node, &config));
    }

    // lb-ipam gave the service the pool's first address on every node.
    for (node, speaker) in &speakers {
        let services = speaker.show("services").expect("speaker services");
        assert_eq!(
            web_addresses(&services),
            vec![POOL_FIRST],
            "{node}: {services}"
        );
        assert_eq!(services[0]["satisfied"], true, "{node}: {services}");
    }

    let leader = converged_leader(&speakers, POOL_FIRST);
    let replies = arp_replies(&hosts["client"], POOL_FIRST);
    assert!(!replies.is_empty(), "no ARP reply for {POOL_FIRST}");
    let answering: std::collections::BTreeSet<&str> = replies
        .iter()
        .map(|m| node_of_mac.get(m).copied().unwrap_or("unknown"))
        .collect();
    assert_eq!(
        answering,
        std::collections::BTreeSet::from([leader.as_str()]),
        "replies {replies:?}, MACs {node_of_mac:?}"
    );

    // The leader's report counts the replies and its takeover GARPs and names the interface.
    let row = wait_until_ok("replies counted", Duration::from_secs(5), || {
        let row = vip_row(&speakers[leader.as_str()].show("l2")?, POOL_FIRST)
            .ok_or("no row".to_owned())?;
        // The probe also sees the leader's gratuitous replies; the counter is for answers.
        if row["repliesSent"].as_u64().unwrap_or(0) >= PROBES {
            Ok(row)
        } else {
            Err(format!("{row}"))
        }
    })
    .expect("leader's counters");
    assert_eq!(row["interfaces"], serde_json::json!(["eth0"]), "{row}");
    assert!(row["garpsSent"].as_u64().unwrap_or(0) >= 1, "{row}");
    assert_eq!(row["services"], serde_json::json!(["shop/web"]), "{row}");

    // Restart n1 with a service that sorts first: without the state file it would take the
    // first address; with it, web keeps its address and the newcomer gets the next one.
    let n1 = speakers.remove("n1").expect("n1");
    let dir = n1.dir.clone();
    n1.stop();
    let config = node_config(&dir, "n1", "  - {name: aaa, namespace: shop}\n");
    let n1 = Speaker::start(&hosts["n1"], &dir, "n1", &config);
    let services = n1.show("services").expect("services after restart");
    assert_eq!(web_addresses(&services), vec![POOL_FIRST], "{services}");
    let aaa = services
        .as_array()
        .and_then(|a| a.iter().find(|s| s["service"] == "shop/aaa").cloned())
        .expect("aaa listed");
    assert_eq!(
        aaa["addresses"],
        serde_json::json!([POOL_SECOND]),
        "{services}"
    );
    speakers.insert("n1", n1);

    // Still exactly one node answers for web's address once the cluster has settled again.
    let leader = converged_leader(&speakers, POOL_FIRST);
    let replies = arp_replies(&hosts["client"], POOL_FIRST);
    let answering: std::collections::BTreeSet<&str> = replies
        .iter()
        .map(|m| node_of_mac.get(m).copied().unwrap_or("unknown"))
        .collect();
    assert_eq!(
        answering,
        std::collections::BTreeSet::from([leader.as_str()]),
        "after restart: replies {replies:?}"
    );

    // A reload (the file changes) allocates for the service n1 got at its restart and hands its address to the
    // announcer without a restart.
    let n2 = &speakers["n2"];
    std::fs::write(
        n2.dir.join("speaker.yaml"),
        node_config(&n2.dir, "n2", "  - {name: aaa, namespace: shop}\n"),
    )
    .expect("rewrite n2's config");
    wait_until_ok("n2 announces aaa", Duration::from_secs(15), || {
        let report = n2.show("l2")?;
        vip_row(&report, POOL_SECOND)
            .filter(|row| row["services"] == serde_json::json!(["shop/aaa"]))
            .ok_or(format!("{report}"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", n2.log()));
    let services = n2.show("services").expect("services after reload");
    assert_eq!(web_addresses(&services), vec![POOL_FIRST], "{services}");
    drop(speakers);
    drop(links);
    drop(bridge);
}

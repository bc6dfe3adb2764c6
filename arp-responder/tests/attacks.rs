//! End-to-end attacks on the L2 heartbeats, in network namespaces: three `herald-l2` nodes, a
//! client that asks for every VIP by ARP every 20 ms (`hb_tool.py arpwatch`), and an attacker
//! host on the same bridge (`hb_tool.py forge|flood|record|replay`, raw AF_PACKET sockets).
//! Each test attacks, then SIGKILLs a leader during the attack and checks from the client's ARP
//! answers that its VIPs move within [`FAILOVER_BOUND`] and that no other VIP goes dark.
//! Needs root; namespaces and processes are removed on drop, also when a test fails.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{Lab, is_root};

/// The tests are timing-sensitive on a 2-core machine: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const NODES: [&str; 3] = ["n1", "n2", "n3"];
const VIPS: [&str; 3] = ["192.168.78.200", "192.168.78.201", "192.168.78.202"];
const CLIENT_IP: &str = "192.168.78.100";
/// The cluster's key (what `auth.keyFile` holds).
const KEY: &str = "correct horse battery staple 42\n";
/// What the attacker signs with: a wrong key, hex.
const WRONG_KEY_HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// Failover is 300–500 ms by design (dead interval 400 ms; see benches/failover.sh for the
/// measured figures). The bound asserted here leaves room for a loaded 2-core CI machine; an attack
/// that keeps a dead leader alive darkens its VIPs for as long as the attack runs (seconds), so it
/// still fails this bound.
const FAILOVER_BOUND: f64 = 1.5;

fn guard() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Node name of lab host `h` ("g2" runs node "n2": clusters may reuse names).
fn node_of(h: &str) -> String {
    format!("n{}", &h[1..])
}

/// Adds hosts `hosts` running one cluster `cluster` that announces `vips`, with the key in a file
/// when `keyed`.
fn add_cluster(lab: &mut Lab, cluster: &str, hosts: &[&str], vips: &[&str], keyed: bool) {
    let auth = if keyed {
        let path = lab.dir.path().join("hb.key");
        std::fs::write(&path, KEY).expect("key file");
        format!("auth: {{keyFile: {}}}", path.display())
    } else {
        String::new()
    };
    let services: String = vips
        .iter()
        .enumerate()
        .map(|(i, v)| format!("  - {{name: {cluster}{i}, ips: ['{v}']}}\n"))
        .collect();
    for h in hosts {
        lab.add_host(h);
    }
    for h in hosts {
        let yaml = format!(
            "node: {}\ncluster: {cluster}\nnodes: [{{name: n1}}, {{name: n2}}, {{name: n3}}]\ninterfaces: {{include: ['^eth0$'], exclude: []}}\n{auth}\nservices:\n{services}",
            node_of(h)
        );
        lab.start_node(h, &yaml);
    }
}

/// A client, an attacker ("evil") and one cluster n1..n3 named "test" announcing [`VIPS`].
fn one_cluster(test: &str, keyed: bool) -> Lab {
    let mut lab = Lab::new(test);
    lab.add_host("client");
    lab.add_host("evil");
    add_cluster(&mut lab, "test", &NODES, &VIPS, keyed);
    lab
}

/// Waits until each VIP is led by exactly one of `hosts` and all of them agree; VIP -> host.
fn wait_leaders(
    lab: &Lab,
    hosts: &[&str],
    vips: &[&str],
    timeout: Duration,
) -> BTreeMap<String, String> {
    let start = std::time::Instant::now();
    loop {
        let agreed = || -> Option<BTreeMap<String, String>> {
            let statuses: Vec<(&str, serde_json::Value)> = hosts
                .iter()
                .map(|h| Some((*h, lab.status(h)?)))
                .collect::<Option<_>>()?;
            let mut out = BTreeMap::new();
            for vip in vips {
                let mut holders = Vec::new();
                for (h, s) in &statuses {
                    let v = s["vips"].as_array()?.iter().find(|v| v["vip"] == *vip)?;
                    if v["led_by_me"].as_bool()? {
                        holders.push(*h);
                    }
                }
                let [h] = holders[..] else { return None };
                let leader = node_of(h);
                if statuses.iter().any(|(_, s)| {
                    s["vips"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|v| v["vip"] == *vip && v["leader"] != leader.as_str())
                }) {
                    return None;
                }
                out.insert((*vip).to_owned(), h.to_owned());
            }
            Some(out)
        };
        if let Some(m) = agreed() {
            return m;
        }
        if start.elapsed() > timeout {
            let dump: Vec<String> = hosts
                .iter()
                .map(|h| format!("{h}: {:?}\n{}", lab.status(h), lab.log(h)))
                .collect();
            panic!("no convergence within {timeout:?}:\n{}", dump.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the client saw: ARP answers (time, VIP, MAC) from `start` to `end`.
struct Watch {
    start: f64,
    end: f64,
    replies: Vec<(f64, String, String)>,
}

impl Watch {
    fn parse(out: &str, secs: f64) -> Watch {
        let v: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("arpwatch output {out:?}: {e}"));
        let start = v["start"].as_f64().expect("start");
        let replies = v["replies"]
            .as_array()
            .expect("replies")
            .iter()
            .map(|r| {
                (
                    r[0].as_f64().expect("t"),
                    r[1].as_str().expect("vip").to_owned(),
                    r[2].as_str().expect("mac").to_owned(),
                )
            })
            .collect();
        Watch {
            start,
            end: start + secs,
            replies,
        }
    }

    /// Seconds from `after` to the first answer for `vip` from a MAC other than `old`.
    fn failover(&self, vip: &str, after: f64, old: &str) -> Option<f64> {
        self.replies
            .iter()
            .find(|(t, v, m)| *t >= after && v == vip && m != old)
            .map(|(t, _, _)| t - after)
    }

    /// Longest stretch in [from, to] without an answer for `vip`, in seconds.
    fn longest_gap(&self, vip: &str, from: f64, to: f64) -> f64 {
        let mut times: Vec<f64> = vec![from];
        times.extend(
            self.replies
                .iter()
                .filter(|(t, v, _)| v == vip && *t > from && *t < to)
                .map(|(t, _, _)| *t),
        );
        times.push(to);
        times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
    }

    /// MACs that answered for `vip` in [from, to].
    fn macs(&self, vip: &str, from: f64, to: f64) -> BTreeSet<String> {
        self.replies
            .iter()
            .filter(|(t, v, _)| v == vip && *t >= from && *t <= to)
            .map(|(_, _, m)| m.clone())
            .collect()
    }
}

/// Starts the client's ARP watch over `vips` for `secs`.
fn start_watch(lab: &mut Lab, vips: &[&str], secs: f64) {
    lab.hb_tool(
        "watch",
        "client",
        &[
            "arpwatch",
            "eth0",
            CLIENT_IP,
            &secs.to_string(),
            &vips.join(","),
        ],
    );
}

fn rejected(lab: &Lab, h: &str, reason: &str) -> u64 {
    lab.status(h)
        .and_then(|s| s["heartbeats_rejected"][reason].as_u64())
        .unwrap_or(0)
}

/// Checks the outcome of a leader kill at `t_kill` seen by `w`: the victim's VIPs answered by
/// another node of `hosts` within the bound, every other VIP never dark and never moved.
fn assert_failover(
    lab: &Lab,
    w: &Watch,
    leaders: &BTreeMap<String, String>,
    victim: &str,
    t_kill: f64,
    hosts: &[&str],
) {
    let victim_mac = if hosts.contains(&victim) {
        lab.mac(victim, "eth0")
    } else {
        String::new()
    };
    let survivor_macs: BTreeSet<String> = hosts
        .iter()
        .filter(|h| **h != victim)
        .map(|h| lab.mac(h, "eth0"))
        .collect();
    for (vip, leader) in leaders {
        let mac = lab.mac(leader, "eth0");
        let before = w.macs(vip, w.start + 0.3, t_kill);
        assert_eq!(
            before,
            BTreeSet::from([mac.clone()]),
            "{vip} before the kill"
        );
        let gap = w.longest_gap(vip, w.start + 0.3, t_kill);
        assert!(
            gap <= FAILOVER_BOUND,
            "{vip} dark for {gap:.3} s before the kill"
        );
        if leader == victim {
            let took = w.failover(vip, t_kill, &victim_mac);
            println!("{vip}: failover after SIGKILL of {victim} in {took:?} s");
            let took = took.unwrap_or_else(|| panic!("{vip} never answered again after the kill"));
            assert!(took <= FAILOVER_BOUND, "{vip}: failover took {took:.3} s");
            let after = w.macs(vip, t_kill + took, w.end);
            assert_eq!(after.len(), 1, "{vip} answered by {after:?}");
            assert!(
                after.is_subset(&survivor_macs),
                "{vip} answered by {after:?}"
            );
        } else {
            let gap = w.longest_gap(vip, t_kill, w.end - 0.1);
            assert!(
                gap <= FAILOVER_BOUND,
                "{vip} dark for {gap:.3} s after the kill"
            );
            assert_eq!(
                w.macs(vip, t_kill, w.end),
                BTreeSet::from([mac]),
                "{vip} moved"
            );
        }
    }
}

/// Forges heartbeats in every node's name claiming every VIP — with a wrong key and untagged,
/// 2000 frames/s each — and SIGKILLs the leader of `VIPS[0]` 2 s into it, the client watching.
fn forge_attack(lab: &mut Lab) -> (Watch, BTreeMap<String, String>, String, f64) {
    let leaders = wait_leaders(lab, &NODES, &VIPS, Duration::from_secs(15));
    let all = VIPS.join(",");
    for (name, key) in [("forge-wrong", WRONG_KEY_HEX), ("forge-none", "-")] {
        lab.hb_tool(
            name,
            "evil",
            &["forge", "eth0", "test", "6", "n1,n2,n3", &all, key],
        );
    }
    start_watch(lab, &VIPS, 5.0);
    std::thread::sleep(Duration::from_millis(2000));
    let victim = leaders[VIPS[0]].clone();
    let t_kill = wall_now();
    lab.kill_node(&victim);
    let w = Watch::parse(&lab.output("watch"), 5.0);
    lab.output("forge-wrong");
    lab.output("forge-none");
    (w, leaders, victim, t_kill)
}

#[test]
fn forged_heartbeats_claiming_every_vip_change_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let mut lab = one_cluster("fg", true);
    let (w, leaders, victim, t_kill) = forge_attack(&mut lab);
    assert_failover(&lab, &w, &leaders, &victim, t_kill, &NODES);
    for h in NODES.iter().filter(|h| **h != victim) {
        let st = lab.status(h).expect("status");
        assert_eq!(st["heartbeat_auth"], "hmac-sha256", "{st}");
        assert!(rejected(&lab, h, "bad_auth") > 1000, "{st}");
        assert!(st["peers_tracked"].as_u64().expect("peers") <= 2, "{st}");
    }
}

/// The control: without a key the untagged forgeries are believed, and those in the killed
/// leader's name keep its VIP dark for as long as they run (the behaviour before this change).
#[test]
fn without_a_key_forged_heartbeats_darken_the_vip() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let mut lab = one_cluster("fq", false);
    let (w, _, victim, t_kill) = forge_attack(&mut lab);
    let dark = w.longest_gap(VIPS[0], t_kill, w.end - 0.1);
    println!(
        "without a key, {} dark for {dark:.3} s after SIGKILL of {victim} (forgeries running)",
        VIPS[0]
    );
    assert!(
        dark >= 2.5,
        "forgeries did not keep the VIP dark ({dark:.3} s)"
    );
}

/// Records the leader of `VIPS[0]`'s heartbeats for 2 s, SIGKILLs it and replays them, byte for
/// byte, from the attacker host for 4.5 s while the client watches. Returns what it saw.
fn replay_attack(lab: &mut Lab) -> (Watch, BTreeMap<String, String>, String, f64) {
    let leaders = wait_leaders(lab, &NODES, &VIPS, Duration::from_secs(15));
    let victim = leaders[VIPS[0]].clone();
    let file = lab.dir.path().join("recorded.hex");
    let file = file.to_str().expect("utf-8 path").to_owned();
    let mac = lab.mac(&victim, "eth0");
    lab.hb_tool("record", "evil", &["record", "eth0", &mac, "2", &file]);
    let rec: serde_json::Value =
        serde_json::from_str(lab.output("record").trim()).expect("record output");
    assert!(rec["recorded"].as_u64().expect("count") >= 10, "{rec}");
    start_watch(lab, &VIPS, 6.0);
    std::thread::sleep(Duration::from_millis(1000));
    let t_kill = wall_now();
    lab.kill_node(&victim);
    lab.hb_tool("replay", "evil", &["replay", "eth0", &file, "4.5"]);
    let w = Watch::parse(&lab.output("watch"), 6.0);
    lab.output("replay");
    (w, leaders, victim, t_kill)
}

#[test]
fn replayed_heartbeats_of_a_killed_leader_do_not_keep_its_vips_dark() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let mut lab = one_cluster("rp", true);
    let (w, leaders, victim, t_kill) = replay_attack(&mut lab);
    assert_failover(&lab, &w, &leaders, &victim, t_kill, &NODES);
    for h in NODES.iter().filter(|h| **h != victim) {
        let st = lab.status(h).expect("status");
        let refused = rejected(&lab, h, "replay") + rejected(&lab, h, "stale");
        assert!(refused > 100, "{st}");
        let alive = st["alive_peers"].as_array().expect("alive");
        assert!(
            !alive.iter().any(|p| *p == node_of(&victim).as_str()),
            "{st}"
        );
    }
}

/// The control: the same attack on a cluster without a key (today's build had no other mode)
/// keeps the killed leader's VIP dark for as long as the replay runs. If this stops failing
/// over late, the attack above no longer proves anything.
#[test]
fn without_a_key_the_replay_attack_darkens_the_vip() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let mut lab = one_cluster("rq", false);
    let (w, _, victim, t_kill) = replay_attack(&mut lab);
    let dark = w.longest_gap(VIPS[0], t_kill, t_kill + 4.0);
    println!(
        "without a key, {} dark for {dark:.3} s after SIGKILL of {victim} (replay running)",
        VIPS[0]
    );
    assert!(
        dark >= 3.5,
        "replay did not keep the VIP dark ({dark:.3} s)"
    );
    let st = lab
        .status(if victim == "n1" { "n2" } else { "n1" })
        .expect("status");
    assert_eq!(st["heartbeat_auth"], "none", "{st}");
}

#[test]
fn a_flood_of_random_names_is_ignored() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    // Without a key, so the frames reach the name check (with one they fail authentication).
    let mut lab = one_cluster("fl", false);
    let leaders = wait_leaders(&lab, &NODES, &VIPS, Duration::from_secs(15));
    lab.hb_tool(
        "flood",
        "evil",
        &["flood", "eth0", "test", "6", &VIPS.join(",")],
    );
    start_watch(&mut lab, &VIPS, 5.0);
    std::thread::sleep(Duration::from_millis(2000));
    let victim = leaders[VIPS[0]].clone();
    let t_kill = wall_now();
    lab.kill_node(&victim);
    let w = Watch::parse(&lab.output("watch"), 5.0);
    let sent: serde_json::Value = serde_json::from_str(lab.output("flood").trim()).expect("flood");
    assert_failover(&lab, &w, &leaders, &victim, t_kill, &NODES);
    for h in NODES.iter().filter(|h| **h != victim) {
        let st = lab.status(h).expect("status");
        assert!(rejected(&lab, h, "unknown_node") > 5000, "{st} ({sent})");
        assert!(st["peers_tracked"].as_u64().expect("peers") <= 2, "{st}");
    }
}

#[test]
fn two_clusters_on_one_segment_do_not_disturb_each_other() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let _g = guard();
    let mut lab = Lab::new("2c");
    lab.add_host("client");
    // Same node names, same key: only the cluster id tells them apart.
    let blue = ["n1", "n2", "n3"];
    let green = ["g1", "g2", "g3"];
    let green_vips = ["192.168.78.210", "192.168.78.211", "192.168.78.212"];
    add_cluster(&mut lab, "blue", &blue, &VIPS, true);
    add_cluster(&mut lab, "green", &green, &green_vips, true);
    let blue_leaders = wait_leaders(&lab, &blue, &VIPS, Duration::from_secs(15));
    let green_leaders = wait_leaders(&lab, &green, &green_vips, Duration::from_secs(15));
    let all: Vec<&str> = VIPS.iter().chain(green_vips.iter()).copied().collect();
    start_watch(&mut lab, &all, 5.0);
    std::thread::sleep(Duration::from_millis(1500));
    let victim = blue_leaders[VIPS[0]].clone();
    let t_kill = wall_now();
    lab.kill_node(&victim);
    let w = Watch::parse(&lab.output("watch"), 5.0);
    assert_failover(&lab, &w, &blue_leaders, &victim, t_kill, &blue);
    // Green saw nothing of it: same leaders, never dark.
    assert_failover(&lab, &w, &green_leaders, "none", t_kill, &green);
    for h in green {
        let st = lab.status(h).expect("status");
        let alive: BTreeSet<&str> = st["alive_peers"]
            .as_array()
            .expect("alive")
            .iter()
            .filter_map(|p| p.as_str())
            .collect();
        assert_eq!(alive.len(), 2, "{st}");
        assert!(rejected(&lab, h, "other_cluster") > 0, "{st}");
        assert_eq!(rejected(&lab, h, "bad_auth"), 0, "{st}");
    }
}

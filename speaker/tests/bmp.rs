//! BMP (RFC 7854) against a real collector: pmacct's `pmbmpd` in the peer namespace gets the
//! agent's Initiation, the Peer Up of an ExaBGP peer, its routes before and after the import
//! policy, Statistics Reports and the Peer Down when ExaBGP stops; and a collector that accepts
//! the connection but never reads must not hold up the BGP session (its connection is dropped
//! once its queue is full, and counted).

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Speaker, Topology, speaker_yaml};
use herald_tests::{ChildProcess, ExaBgp, Netns, in_netns, wait_until_ok};
use serde_json::Value;
use socket2::{Domain, Socket, Type};

const UP: Duration = Duration::from_secs(30);
/// The collector's address, added in the peer namespace.
const COLLECTOR: &str = "10.77.0.5";

fn timers() -> &'static str {
    "      timers:\n        holdTimeSeconds: 9\n        connectRetryTimeSeconds: 1\n"
}

/// `pmbmpd` listening on `address:port`, logging every message as JSON lines.
struct Pmbmpd {
    process: ChildProcess,
    log: PathBuf,
}

impl Pmbmpd {
    fn start(ns: &Netns, dir: &Path, address: &str, port: u16) -> Self {
        let log = dir.join("bmp.json");
        let config = dir.join("pmbmpd.conf");
        std::fs::write(
            &config,
            format!(
                "daemonize: false\nbmp_daemon_ip: {address}\nbmp_daemon_port: {port}\n\
                 bmp_daemon_msglog_file: {log}\nbmp_daemon_msglog_output: json\n\
                 logfile: {dir}/pmbmpd.log\npidfile: {dir}/pmbmpd.pid\n",
                log = log.display(),
                dir = dir.display()
            ),
        )
        .expect("pmbmpd config");
        let mut cmd = ns.command("/usr/sbin/pmbmpd");
        cmd.args(["-f", &config.to_string_lossy()]);
        let process = ChildProcess::spawn("pmbmpd", cmd, dir).expect("spawn pmbmpd");
        wait_until_ok("pmbmpd listening", UP, || {
            let text = std::fs::read_to_string(dir.join("pmbmpd.log")).unwrap_or_default();
            text.contains("waiting for BMP data")
                .then_some(())
                .ok_or(text)
        })
        .expect("pmbmpd started");
        Self { process, log }
    }

    /// Every JSON line logged so far.
    fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn of_type(&self, kind: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| m.get("bmp_msg_type").and_then(Value::as_str) == Some(kind))
            .collect()
    }

    fn dump(&self) -> String {
        format!(
            "pmbmpd messages:\n{}\npmbmpd log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            self.process.log_tail(2000)
        )
    }
}

fn text<'a>(m: &'a Value, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

/// Prefixes of `route_monitor` updates, pre-policy (`is_post` absent or 0) or post-policy.
fn monitored(messages: &[Value], post: bool) -> BTreeSet<String> {
    messages
        .iter()
        .filter(|m| text(m, "log_type") == Some("update"))
        .filter(|m| m.get("is_post").and_then(Value::as_i64).unwrap_or(0) == i64::from(post))
        .filter_map(|m| text(m, "ip_prefix").map(str::to_owned))
        .collect()
}

#[test]
fn pmbmpd_sees_peers_routes_statistics_and_peer_down() {
    let t = Topology::new("bmp_pmbmpd");
    t.peer
        .addr_add("eth1", &format!("{COLLECTOR}/29"))
        .expect("collector address");
    let collector = Pmbmpd::start(&t.peer, &t.dir("pmbmpd"), COLLECTOR, 11790);
    let mut exabgp =
        ExaBgp::start(&t.peer, &t.dir("exabgp"), &[t.exabgp_neighbor()]).expect("exabgp");
    let peers = format!(
        "    - address: {}\n      asn: 65000\n      passive: true\n      softReconfigurationInbound: true\n{}",
        t.peer_v4,
        timers()
    );
    let bmp = format!(
        "  importPolicy:\n    rules:\n      - {{ match: {{ prefixes: [{{ prefix: 203.0.113.0/24 }}] }}, action: accept }}\n\
         \x20 bmp:\n    collectors:\n      - {{ name: pmbmpd, address: {COLLECTOR}, port: 11790, statisticsIntervalSeconds: 5 }}\n"
    );
    let yaml = speaker_yaml("10.77.0.1", 65001, &peers, &bmp);
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    speaker.wait_state(t.peer_v4, "Established", UP);
    exabgp
        .api("announce route 203.0.113.0/24 next-hop self")
        .expect("api");
    exabgp
        .api("announce route 198.51.100.0/24 next-hop self")
        .expect("api");

    // Initiation names the node.
    let init = wait_until_ok("BMP initiation at pmbmpd", UP, || {
        collector
            .of_type("init")
            .into_iter()
            .next()
            .ok_or_else(|| collector.dump())
    })
    .expect("initiation");
    let init_text = init.to_string();
    assert!(init_text.contains("node"), "sysName missing: {init_text}");
    assert!(
        init_text.contains("herald"),
        "sysDescr missing: {init_text}"
    );

    // Peer Up for ExaBGP with its address and AS.
    let up = wait_until_ok("BMP peer_up at pmbmpd", UP, || {
        collector
            .of_type("peer_up")
            .into_iter()
            .next()
            .ok_or_else(|| collector.dump())
    })
    .expect("peer up");
    assert_eq!(text(&up, "peer_ip"), Some(t.peer_v4), "{up}");
    assert_eq!(
        up.get("peer_asn").and_then(Value::as_u64),
        Some(65000),
        "{up}"
    );
    assert_eq!(text(&up, "bmp_router"), Some(t.node_v4), "{up}");

    // Pre-policy: both routes as received; post-policy: only the one the policy accepts.
    let both: BTreeSet<String> = ["198.51.100.0/24", "203.0.113.0/24"]
        .map(str::to_owned)
        .into();
    wait_until_ok("route monitoring at pmbmpd", UP, || {
        let routes = collector.of_type("route_monitor");
        let pre = monitored(&routes, false);
        let post = monitored(&routes, true);
        (pre == both && post.contains("203.0.113.0/24"))
            .then_some(())
            .ok_or_else(|| format!("pre {pre:?} post {post:?}\n{}", collector.dump()))
    })
    .expect("route monitoring");
    let post = monitored(&collector.of_type("route_monitor"), true);
    assert!(
        !post.contains("198.51.100.0/24"),
        "a rejected route was reported post-policy: {post:?}"
    );
    let routes = collector.of_type("route_monitor");
    assert!(
        routes.iter().all(|m| text(m, "peer_ip") == Some(t.peer_v4)),
        "{routes:?}"
    );

    // Statistics (one log line per counter): routes in the Adj-RIB-In (type 7: both, as soft
    // reconfiguration keeps the rejected one) and the accepted one in the Loc-RIB (type 8).
    let counter = |stats: &[Value], kind: u64| {
        stats
            .iter()
            .rev()
            .find(|m| m.get("counter_type").and_then(Value::as_u64) == Some(kind))
            .and_then(|m| m.get("counter_value").and_then(Value::as_u64))
    };
    let stats = wait_until_ok("BMP stats at pmbmpd", UP, || {
        let stats = collector.of_type("stats");
        (counter(&stats, 7) == Some(2) && counter(&stats, 8) == Some(1))
            .then_some(stats)
            .ok_or_else(|| collector.dump())
    })
    .expect("statistics");
    assert!(
        stats.iter().all(|m| text(m, "peer_ip") == Some(t.peer_v4)),
        "{stats:?}"
    );

    // ExaBGP stops: the collector hears the Peer Down.
    exabgp
        .process()
        .signal(nix::sys::signal::Signal::SIGTERM)
        .expect("stop exabgp");
    let down = wait_until_ok("BMP peer_down at pmbmpd", UP, || {
        collector
            .of_type("peer_down")
            .into_iter()
            .next()
            .ok_or_else(|| collector.dump())
    })
    .expect("peer down");
    assert_eq!(text(&down, "peer_ip"), Some(t.peer_v4), "{down}");
    assert_eq!(
        down.get("reason_type").and_then(Value::as_u64),
        Some(4),
        "ExaBGP closes without a NOTIFICATION: {down}"
    );
    println!("pmbmpd log:\n{}", collector.dump());
}

/// A collector that accepts the connection and never reads: ExaBGP's routes keep reaching the
/// agent, and the agent drops the collector's connection when its (small) queue is full.
#[test]
fn stuck_collector_does_not_stall_bgp() {
    let t = Topology::new("bmp_stuck");
    t.peer
        .addr_add("eth1", &format!("{COLLECTOR}/29"))
        .expect("collector address");
    // Listening and accepting, never reading, with a small receive buffer so the kernel holds
    // little and the agent's queue fills.
    let listener = in_netns(&t.peer, || -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_recv_buffer_size(4096)?;
        socket.set_reuse_address(true)?;
        let address: std::net::SocketAddr = format!("{COLLECTOR}:11791")
            .parse()
            .map_err(std::io::Error::other)?;
        socket.bind(&address.into())?;
        socket.listen(8)?;
        Ok(socket.into())
    })
    .expect("collector socket");
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let stop = Arc::new(AtomicBool::new(false));
    let stop_accepting = stop.clone();
    let accepting = std::thread::spawn(move || {
        let mut held = Vec::new();
        while !stop_accepting.load(Ordering::Relaxed) {
            if let Ok((stream, _)) = listener.accept() {
                held.push(stream);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        held.len()
    });
    let exabgp = ExaBgp::start(&t.peer, &t.dir("exabgp"), &[t.exabgp_neighbor()]).expect("exabgp");
    let peers = format!(
        "    - address: {}\n      asn: 65000\n      passive: true\n{}",
        t.peer_v4,
        timers()
    );
    let bmp = format!(
        "  importPolicy: accept-all\n  bmp:\n    collectors:\n      - {{ address: {COLLECTOR}, port: 11791, queueLimitBytes: 65536 }}\n"
    );
    let yaml = speaker_yaml("10.77.0.1", 65001, &peers, &bmp);
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    speaker.wait_state(t.peer_v4, "Established", UP);
    // Announce routes in rounds until the collector's queue overflowed; each round must
    // still be accepted by the agent.
    let mut announced = 0u32;
    let drops = wait_until_ok(
        "collector dropped for a full queue",
        Duration::from_secs(120),
        || {
            let mut batch = String::new();
            for _ in 0..500 {
                let [_, b, c, d] = (0x0a00_0000u32 + announced).to_be_bytes();
                batch.push_str(&format!("announce route 10.{b}.{c}.{d}/32 next-hop self\n"));
                announced += 1;
            }
            exabgp.api(&batch).map_err(|e| e.to_string())?;
            let collectors = speaker.bmp_collectors()?;
            let drops: u64 = collectors.iter().map(|c| c.drops).sum();
            (drops > 0)
                .then_some(drops)
                .ok_or(format!("{collectors:?} after {announced}"))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    // The BGP session never noticed: every route announced so far is accepted.
    wait_until_ok("all routes accepted", Duration::from_secs(120), || {
        let p = speaker.peer(t.peer_v4);
        (p.prefixes_accepted == announced as usize && p.state == "Established")
            .then_some(())
            .ok_or(format!("{p:?} of {announced}"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    // The queue never holds more than its limit; the agent's peak memory is printed.
    let collectors = speaker.bmp_collectors().expect("bmp status");
    assert!(
        collectors.iter().all(|c| c.queued_bytes <= 65536),
        "{collectors:?}"
    );
    let peak = speaker
        .process
        .as_ref()
        .and_then(|p| std::fs::read_to_string(format!("/proc/{}/status", p.pid())).ok())
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let connections = {
        stop.store(true, Ordering::Relaxed);
        accepting.join().expect("accept thread")
    };
    assert!(
        connections >= 1,
        "the agent never connected to the collector"
    );
    println!(
        "stuck collector: {drops} drop(s), {connections} connection(s), {announced} routes accepted, agent {peak}"
    );
    drop(exabgp);
}

/// A collector added by a reload gets the peers that are already up and a dump of their routes
/// (RFC 7854 §5); removed by the next reload, it gets a Termination.
#[test]
fn collector_added_by_reload_gets_a_dump_and_removed_one_a_termination() {
    let t = Topology::new("bmp_reload");
    t.peer
        .addr_add("eth1", &format!("{COLLECTOR}/29"))
        .expect("collector address");
    let collector = Pmbmpd::start(&t.peer, &t.dir("pmbmpd"), COLLECTOR, 11792);
    // IPv6 routes over the IPv4 session too (MP_REACH_NLRI in the dump).
    let mut neighbor = t.exabgp_neighbor();
    neighbor.families.push("ipv6 unicast".to_owned());
    let exabgp = ExaBgp::start(&t.peer, &t.dir("exabgp"), &[neighbor]).expect("exabgp");
    let peers = format!(
        "    - address: {}\n      asn: 65000\n      passive: true\n      families: [ipv4-unicast, ipv6-unicast]\n{}",
        t.peer_v4,
        timers()
    );
    let without = speaker_yaml("10.77.0.1", 65001, &peers, "  importPolicy: accept-all\n");
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &without);
    speaker.wait_state(t.peer_v4, "Established", UP);
    exabgp
        .api(
            "announce route 203.0.113.0/24 next-hop self\nannounce route 198.51.100.0/24 next-hop self\n\
             announce route 2001:db8:1::/48 next-hop fd77::2",
        )
        .expect("api");
    wait_until_ok("routes accepted", UP, || {
        let p = speaker.peer(t.peer_v4);
        (p.prefixes_accepted == 3)
            .then_some(())
            .ok_or(format!("{p:?}"))
    })
    .expect("accepted");
    assert!(collector.messages().is_empty(), "{}", collector.dump());

    let with = speaker_yaml(
        "10.77.0.1",
        65001,
        &peers,
        &format!(
            "  importPolicy: accept-all\n  bmp:\n    collectors:\n      - {{ address: {COLLECTOR}, port: 11792, routeMonitoring: {{ preInboundPolicy: false }} }}\n"
        ),
    );
    speaker.reconfigure(&with);
    let both: BTreeSet<String> = ["198.51.100.0/24", "2001:db8:1::/48", "203.0.113.0/24"]
        .map(str::to_owned)
        .into();
    wait_until_ok("dump at pmbmpd", UP, || {
        let routes = collector.of_type("route_monitor");
        let post = monitored(&routes, true);
        (post == both && !collector.of_type("peer_up").is_empty())
            .then_some(())
            .ok_or_else(|| collector.dump())
    })
    .expect("peer up and post-policy dump");
    assert!(
        monitored(&collector.of_type("route_monitor"), false).is_empty(),
        "pre-policy was turned off: {}",
        collector.dump()
    );
    let collectors = speaker.bmp_collectors().expect("bmp status");
    assert_eq!(collectors.len(), 1, "{collectors:?}");

    speaker.reconfigure(&without);
    wait_until_ok("termination at pmbmpd", UP, || {
        (!collector.of_type("term").is_empty())
            .then_some(())
            .ok_or_else(|| collector.dump())
    })
    .expect("termination");
    wait_until_ok("collector gone", UP, || {
        let c = speaker.bmp_collectors()?;
        c.is_empty().then_some(()).ok_or(format!("{c:?}"))
    })
    .expect("collector removed");
    drop(exabgp);
}

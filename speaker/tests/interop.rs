//! End-to-end tests of the speaker's BGP sessions against real BIRD 2, FRR, GoBGP and ExaBGP in
//! network namespaces (plus a raw Python peer for malformed UPDATEs). Each test builds its own
//! namespaces with unique names and tears everything down on drop, so they run in parallel.
//! Needs root and the daemons from `scripts/setup.sh`.

mod common;

use std::time::{Duration, Instant};

use common::{Speaker, Topology, speaker_yaml};
use herald_tests::{
    Bird, ExaBgp, ExaBgpNeighbor, Frr, FrrConfig, GoBgp, wait_until, wait_until_ok,
};
use nix::sys::signal::Signal;

const UP: Duration = Duration::from_secs(30);

fn timers() -> &'static str {
    "      timers:\n        holdTimeSeconds: 9\n        connectRetryTimeSeconds: 1\n"
}

#[test]
fn bird_v4_active_v6_passive_announce_withdraw_and_reload_without_reset() {
    let t = Topology::new("bird_sessions");
    let bird_conf = format!(
        "router id {p4};\nprotocol device {{}}\n\
         protocol bgp spk4 {{ local {p4} as 65000; neighbor {n4} as 65001; passive on; hold time 9; \
         error wait time 1, 5; connect retry time 1; ipv4 {{ import all; export none; }}; }}\n\
         protocol bgp spk6 {{ local {p6} as 65000; neighbor {n6} as 65001; hold time 9; \
         error wait time 1, 5; connect retry time 1; ipv6 {{ import all; export none; }}; }}\n",
        p4 = t.peer_v4,
        n4 = t.node_v4,
        p6 = t.peer_v6,
        n6 = t.node_v6,
    );
    let bird = Bird::start(&t.peer, &t.dir("bird"), &bird_conf).expect("bird");
    let peers = format!(
        "    - address: {p4}\n      asn: 65000\n{timers}    - address: {p6}\n      asn: 65000\n      passive: true\n{timers}",
        p4 = t.peer_v4,
        p6 = t.peer_v6,
        timers = timers()
    );
    let statics = |v4: &str| {
        format!("  staticRoutes:\n    - prefix: {v4}\n    - prefix: 2001:db8:100::/48\n")
    };
    let yaml = |v4: &str| speaker_yaml("10.77.0.1", 65001, &peers, &statics(v4));
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml("192.0.2.0/24"));

    // The speaker connects over IPv4 (BIRD is passive) and accepts BIRD over IPv6.
    bird.wait_established("spk4", UP).expect("spk4");
    bird.wait_established("spk6", UP).expect("spk6");
    let v4 = speaker.wait_state(t.peer_v4, "Established", UP);
    assert_eq!(v4.remote_asn, Some(65000));
    assert!(
        v4.capabilities.iter().any(|c| c == "4-octet-as"),
        "{:?}",
        v4.capabilities
    );
    assert_eq!(v4.hold_time, Some(9));
    speaker.wait_state(t.peer_v6, "Established", UP);

    // The CLI binary reads the same state over the control socket.
    let socket = speaker.socket.to_string_lossy().into_owned();
    let json = t
        .node
        .exec(
            env!("CARGO_BIN_EXE_speaker"),
            &["peers", "--json", "--socket", &socket],
        )
        .expect("speaker peers --json");
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let states: Vec<&str> = parsed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p.get("state").and_then(|s| s.as_str()))
        .collect();
    assert_eq!(states, vec!["Established", "Established"], "{json}");
    let table = t
        .node
        .exec(
            env!("CARGO_BIN_EXE_speaker"),
            &["peers", "--socket", &socket],
        )
        .expect("speaker peers");
    assert!(
        table.contains("fd77::2") && table.contains("4-octet-as"),
        "{table}"
    );

    wait_until_ok("routes in BIRD", UP, || {
        let routes = bird.routes().map_err(|e| e.to_string())?;
        let v4 = routes.get("192.0.2.0/24").ok_or("no 192.0.2.0/24")?;
        if !v4[0].as_path.contains("65001") {
            return Err(format!("AS path {:?}", v4[0].as_path));
        }
        if !v4[0].via.iter().any(|v| v == t.node_v4) {
            return Err(format!("next hop {:?}", v4[0].via));
        }
        routes
            .get("2001:db8:100::/48")
            .ok_or("no 2001:db8:100::/48")?;
        Ok(())
    })
    .expect("BIRD learned both prefixes");

    // Reload with another IPv4 prefix: the old one is withdrawn, the new one announced, and no
    // session is reset.
    let before = speaker.peer(t.peer_v4);
    speaker.reconfigure(&yaml("198.51.100.0/24"));
    wait_until_ok("withdrawal and new prefix in BIRD", UP, || {
        let routes = bird.routes().map_err(|e| e.to_string())?;
        match (
            routes.contains_key("192.0.2.0/24"),
            routes.contains_key("198.51.100.0/24"),
        ) {
            (false, true) => Ok(()),
            other => Err(format!("old/new present: {other:?}")),
        }
    })
    .expect("reload applied");
    let after = speaker.peer(t.peer_v4);
    assert_eq!(after.state, "Established");
    assert_eq!(
        after.transitions, before.transitions,
        "reload reset the session"
    );
    assert_eq!(
        bird.bgp_state("spk4").expect("birdc").as_deref(),
        Some("Established")
    );
}

fn frr_conf(extra_neighbor_lines: &str) -> String {
    format!(
        "frr defaults traditional\nhostname tor\n!\nrouter bgp 65000\n bgp router-id 10.77.0.2\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n timers bgp 3 9\n{extra_neighbor_lines}!\n"
    )
}

#[test]
fn frr_md5_right_key_establishes_and_wrong_key_does_not() {
    let t = Topology::new("frr_md5");
    let conf = frr_conf(&format!(
        " neighbor {n4} remote-as 65001\n neighbor {n4} password s3cret\n neighbor {n4} timers connect 1\n \
         neighbor {n6} remote-as 65001\n neighbor {n6} password wrong-key\n neighbor {n6} timers connect 1\n \
         address-family ipv6 unicast\n  neighbor {n6} activate\n exit-address-family\n",
        n4 = t.node_v4,
        n6 = t.node_v6,
    ));
    let frr = Frr::start(&t.peer, &t.dir("frr"), &FrrConfig::bgp(conf)).expect("frr");
    let dir = t.dir("speaker");
    let key = dir.join("md5.key");
    std::fs::write(&key, "s3cret\n").expect("key file");
    let peers = format!(
        "    - address: {p4}\n      asn: 65000\n      passwordFile: {k}\n{timers}    - address: {p6}\n      asn: 65000\n      passwordFile: {k}\n{timers}",
        p4 = t.peer_v4,
        p6 = t.peer_v6,
        k = key.display(),
        timers = timers()
    );
    let yaml = speaker_yaml(
        "10.77.0.1",
        65001,
        &peers,
        "  staticRoutes:\n    - prefix: 192.0.2.0/24\n      communities: [\"65001:42\"]\n",
    );
    let speaker = Speaker::start(&t.node, &dir, &yaml);
    frr.wait_established(t.node_v4, UP).expect("MD5 session up");
    speaker.wait_state(t.peer_v4, "Established", UP);
    wait_until_ok("prefix in FRR", UP, || {
        let routes = frr.bgp_routes("ipv4").map_err(|e| e.to_string())?;
        routes
            .get("192.0.2.0/24")
            .cloned()
            .ok_or("missing".to_owned())
    })
    .expect("FRR learned the prefix");
    let detail = frr
        .vtysh_json("show bgp ipv4 unicast 192.0.2.0/24 json")
        .expect("vtysh");
    assert!(
        detail.to_string().contains("65001:42"),
        "community not seen by FRR: {detail}"
    );

    // The IPv6 session has mismatched keys: it must stay down.
    std::thread::sleep(Duration::from_secs(6));
    assert_ne!(speaker.peer(t.peer_v6).state, "Established");
    assert_ne!(
        frr.peer_state(t.node_v6).expect("vtysh").as_deref(),
        Some("Established")
    );
}

#[test]
fn frr_helper_keeps_routes_stale_across_speaker_crash_until_end_of_rib() {
    let t = Topology::new("frr_gr");
    let conf = frr_conf(&format!(
        " bgp graceful-restart\n bgp graceful-restart restart-time 120\n bgp graceful-restart stalepath-time 120\n \
         neighbor {n4} remote-as 65001\n neighbor {n4} timers connect 1\n",
        n4 = t.node_v4,
    ));
    let frr = Frr::start(&t.peer, &t.dir("frr"), &FrrConfig::bgp(conf)).expect("frr");
    let dir = t.dir("speaker");
    let peers = format!(
        "    - address: {p4}\n      asn: 65000\n      gracefulRestart:\n        enabled: true\n        restartTimeSeconds: 60\n{timers}",
        p4 = t.peer_v4,
        timers = timers()
    );
    let extra = format!(
        "  stateDir: {}\n  staticRoutes:\n    - prefix: 192.0.2.0/24\n",
        dir.join("state").display()
    );
    let yaml = speaker_yaml("10.77.0.1", 65001, &peers, &extra);
    let mut speaker = Speaker::start(&t.node, &dir, &yaml);
    speaker.wait_state(t.peer_v4, "Established", UP);
    let path = |frr: &Frr| -> Option<serde_json::Value> {
        let v = frr
            .vtysh_json("show bgp ipv4 unicast 192.0.2.0/24 json")
            .ok()?;
        v.get("paths")?.as_array()?.first().cloned()
    };
    wait_until("prefix in FRR", UP, || path(&frr)).expect("learned");

    speaker.kill9();
    // FRR notices the closed connection and keeps the route, marked stale.
    wait_until("route marked stale", UP, || {
        path(&frr).filter(|p| p.get("stale").and_then(|s| s.as_bool()) == Some(true))
    })
    .expect("stale route kept");
    // While we are down the route never disappears.
    let down_since = Instant::now();
    while down_since.elapsed() < Duration::from_secs(3) {
        assert!(path(&frr).is_some(), "route withdrawn during the restart");
        std::thread::sleep(Duration::from_millis(200));
    }

    speaker.spawn(&t.node);
    let status = speaker.wait_state(t.peer_v4, "Established", UP);
    assert!(
        status
            .capabilities
            .iter()
            .any(|c| c.starts_with("graceful-restart"))
    );
    wait_until("route fresh after End-of-RIB", UP, || {
        path(&frr).filter(|p| p.get("stale").is_none_or(|s| s.as_bool() != Some(true)))
    })
    .expect("stale flag cleared after EoR");
    let neighbor = frr
        .vtysh_json(&format!("show bgp neighbors {} json", t.node_v4))
        .expect("vtysh");
    let text = neighbor.to_string();
    assert!(
        text.contains("gracefulRestart") || text.contains("GracefulRestart"),
        "FRR did not negotiate GR: {text}"
    );
}

#[test]
fn gobgp_v4_passive_v6_active_and_hold_timer_expiry_on_frozen_peer() {
    let t = Topology::new("gobgp_hold");
    let conf = format!(
        "[global.config]\n  as = 65000\n  router-id = \"10.77.0.2\"\n  port = 179\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{n4}\"\n    peer-as = 65001\n\
           [neighbors.timers.config]\n    hold-time = 9\n    keepalive-interval = 3\n    connect-retry = 1\n    idle-hold-time-after-reset = 1\n\
           [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{n6}\"\n    peer-as = 65001\n\
           [neighbors.transport.config]\n    passive-mode = true\n\
           [neighbors.timers.config]\n    hold-time = 9\n    keepalive-interval = 3\n    connect-retry = 1\n    idle-hold-time-after-reset = 1\n\
           [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv6-unicast\"\n",
        n4 = t.node_v4,
        n6 = t.node_v6,
    );
    let mut gobgp = GoBgp::start(&t.peer, &t.dir("gobgp"), &conf).expect("gobgpd");
    let peers = format!(
        "    - address: {p4}\n      asn: 65000\n      passive: true\n      timers:\n        holdTimeSeconds: 3\n        connectRetryTimeSeconds: 1\n    - address: {p6}\n      asn: 65000\n{timers}",
        p4 = t.peer_v4,
        p6 = t.peer_v6,
        timers = timers()
    );
    let yaml = speaker_yaml(
        "10.77.0.1",
        65001,
        &peers,
        "  staticRoutes:\n    - prefix: 192.0.2.0/24\n    - prefix: 2001:db8:100::/48\n",
    );
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    gobgp.wait_established(t.node_v4, UP).expect("v4");
    gobgp.wait_established(t.node_v6, UP).expect("v6");
    wait_until_ok("prefixes in GoBGP", UP, || {
        let v4 = gobgp.rib("ipv4").map_err(|e| e.to_string())?;
        let v6 = gobgp.rib("ipv6").map_err(|e| e.to_string())?;
        match (
            v4.contains_key("192.0.2.0/24"),
            v6.contains_key("2001:db8:100::/48"),
        ) {
            (true, true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .expect("GoBGP learned both");
    let status = speaker.wait_state(t.peer_v4, "Established", UP);
    // min(our 3 s, GoBGP's 9 s).
    assert_eq!(status.hold_time, Some(3));

    // Freeze GoBGP: our hold timer (3 s) expires and we send NOTIFICATION 4/0.
    gobgp.process().signal(Signal::SIGSTOP).expect("SIGSTOP");
    let frozen_at = Instant::now();
    let down = wait_until_ok("hold timer expiry", Duration::from_secs(15), || {
        let p = speaker.peer(t.peer_v4);
        if p.state != "Established" {
            Ok(p)
        } else {
            Err("still Established".to_owned())
        }
    })
    .expect("session went down");
    let detected = frozen_at.elapsed();
    gobgp.process().signal(Signal::SIGCONT).expect("SIGCONT");
    assert!(
        down.last_error
            .as_deref()
            .is_some_and(|e| e.contains("4/0")),
        "{:?}",
        down.last_error
    );
    assert!(detected < Duration::from_secs(6), "took {detected:?}");
}

/// A raw BGP peer in Python: OPEN, KEEPALIVE, then an UPDATE with an invalid ORIGIN (RFC 7606:
/// treat-as-withdraw, the session stays) and one whose attribute length overruns the message
/// (Malformed Attribute List: NOTIFICATION 3/1). Prints what it receives.
const RAW_PEER: &str = r#"
import socket, struct, sys, time
def msg(t, body): return b'\xff' * 16 + struct.pack('!HB', 19 + len(body), t) + body
s = socket.socket()
s.bind((sys.argv[2], 0))
s.settimeout(15)
s.connect((sys.argv[1], 179))
caps = bytes([1, 4, 0, 1, 0, 1]) + bytes([65, 4]) + struct.pack('!I', 65010)
opt = bytes([2, len(caps)]) + caps
s.sendall(msg(1, struct.pack('!BHH4sB', 4, 65010, 9, socket.inet_aton(sys.argv[2]), len(opt)) + opt))
buf = b''
def read():
    global buf
    while True:
        if len(buf) >= 19:
            n = struct.unpack('!H', buf[16:18])[0]
            if len(buf) >= n:
                m, buf = buf[:n], buf[n:]
                return m
        d = s.recv(4096)
        if not d: return None
        buf += d
phase = 0
while True:
    m = read()
    if m is None:
        print('CLOSED', flush=True); break
    t = m[18]
    if t == 1:
        print('OPEN', flush=True); s.sendall(msg(4, b''))
    elif t == 4:
        if phase == 0:
            print('ESTABLISHED', flush=True)
            path = bytes([2, 1]) + struct.pack('!I', 65010)
            attrs = bytes([0x40, 1, 1, 7]) + bytes([0x40, 2, len(path)]) + path + bytes([0x40, 3, 4]) + socket.inet_aton(sys.argv[2])
            s.sendall(msg(2, struct.pack('!H', 0) + struct.pack('!H', len(attrs)) + attrs + bytes([24, 203, 0, 113])))
            phase = 1; t1 = time.time()
        elif phase == 1 and time.time() - t1 > 2:
            print('SURVIVED', flush=True)
            s.sendall(msg(2, struct.pack('!H', 0) + struct.pack('!H', 200) + bytes([0x40, 1, 1, 0])))
            phase = 2
        s.sendall(msg(4, b''))
    elif t == 3:
        print('NOTIFICATION %d %d' % (m[19], m[20]), flush=True); break
"#;

#[test]
fn exabgp_session_survives_malformed_updates_on_another_session() {
    let t = Topology::new("exabgp_malformed");
    t.peer
        .addr_add("eth1", "10.77.0.3/29")
        .expect("raw peer address");
    let neighbor = ExaBgpNeighbor {
        peer_address: t.node_v4.to_owned(),
        local_address: t.peer_v4.to_owned(),
        local_as: 65000,
        peer_as: 65001,
        router_id: t.peer_v4.to_owned(),
        families: vec!["ipv4 unicast".to_owned()],
    };
    let exabgp = ExaBgp::start(&t.peer, &t.dir("exabgp"), &[neighbor]).expect("exabgp");
    let peers = format!(
        "    - address: {p4}\n      asn: 65000\n      passive: true\n{timers}    - address: 10.77.0.3\n      asn: 65010\n      passive: true\n{timers}",
        p4 = t.peer_v4,
        timers = timers()
    );
    let yaml = speaker_yaml(
        "10.77.0.1",
        65001,
        &peers,
        "  importPolicy: accept-all\n  staticRoutes:\n    - prefix: 192.0.2.0/24\n",
    );
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    exabgp.wait_up(t.node_v4, UP).expect("ExaBGP up");
    wait_until_ok("prefix at ExaBGP", UP, || {
        let p = exabgp.received_prefixes().map_err(|e| e.to_string())?;
        p.contains("192.0.2.0/24")
            .then_some(())
            .ok_or(format!("{p:?}"))
    })
    .expect("ExaBGP received the prefix");
    // ExaBGP announces a route; the accept-all import policy takes it.
    exabgp
        .api("announce route 203.0.113.0/24 next-hop self")
        .expect("api");
    wait_until_ok("route from ExaBGP accepted", UP, || {
        let p = speaker.peer(t.peer_v4);
        (p.prefixes_accepted == 1)
            .then_some(())
            .ok_or(format!("{p:?}"))
    })
    .expect("accepted");
    let exa_before = speaker.peer(t.peer_v4);

    let script = t.dir("raw").join("raw_peer.py");
    std::fs::write(&script, RAW_PEER).expect("script");
    let out = t
        .peer
        .exec(
            "/usr/bin/python3",
            &[&script.to_string_lossy(), t.node_v4, "10.77.0.3"],
        )
        .expect("raw peer ran");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"ESTABLISHED"), "{out}\n{}", speaker.log());
    assert!(
        lines.contains(&"SURVIVED"),
        "invalid ORIGIN reset the session: {out}"
    );
    assert!(
        lines.contains(&"NOTIFICATION 3 1"),
        "expected Malformed Attribute List: {out}"
    );
    let raw = speaker.peer("10.77.0.3");
    assert_eq!(
        raw.prefixes_received, 0,
        "treat-as-withdraw must not install the route"
    );

    // The ExaBGP session was not disturbed.
    let exa_after = speaker.peer(t.peer_v4);
    assert_eq!(exa_after.state, "Established");
    assert_eq!(exa_after.transitions, exa_before.transitions);
}

#[test]
fn frr_bfd_down_takes_the_session_down_long_before_the_hold_timer() {
    let t = Topology::new("frr_bfd");
    let conf = format!(
        "frr defaults traditional\nhostname tor\n!\nbfd\n peer {n4} local-address {p4}\n  receive-interval 100\n  \
         transmit-interval 100\n  detect-multiplier 3\n !\n!\nrouter bgp 65000\n bgp router-id {p4}\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n \
         neighbor {n4} remote-as 65001\n neighbor {n4} timers connect 1\n neighbor {n4} bfd\n!\n",
        n4 = t.node_v4,
        p4 = t.peer_v4,
    );
    let frr = Frr::start(&t.peer, &t.dir("frr"), &FrrConfig::bgp(conf).with_bfd()).expect("frr");
    let peers = format!(
        "    - address: {p4}\n      asn: 65000\n      timers:\n        holdTimeSeconds: 90\n        connectRetryTimeSeconds: 1\n      \
         bfd:\n        minTxMs: 100\n        minRxMs: 100\n        multiplier: 3\n",
        p4 = t.peer_v4,
    );
    let yaml = speaker_yaml("10.77.0.1", 65001, &peers, "");
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    frr.wait_established(t.node_v4, UP).expect("BGP up");
    wait_until_ok("BFD Up on the speaker", UP, || {
        let p = speaker.peer(t.peer_v4);
        match (p.state.as_str(), p.bfd_state.as_deref()) {
            ("Established", Some("Up")) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));

    t.peer.link_down("eth1").expect("link down");
    let cut = Instant::now();
    // The hold timer is 90 s: anything within this wait is BFD's doing.
    let down = wait_until_ok("session down", Duration::from_secs(10), || {
        let p = speaker.peer(t.peer_v4);
        (p.state != "Established")
            .then_some(p)
            .ok_or("still Established".to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    eprintln!(
        "BGP down {:?} after the link went down (BFD 100 ms x 3, hold 90 s)",
        cut.elapsed()
    );
    assert!(
        down.last_error
            .as_deref()
            .is_some_and(|e| e.contains("BFD") && e.contains("6/10")),
        "expected Cease/BFD Down, got {:?}",
        down.last_error
    );
}

#[test]
fn frr_gtsm_session_establishes_with_ttl_security() {
    let t = Topology::new("frr_gtsm");
    let conf = frr_conf(&format!(
        " neighbor {n4} remote-as 65001\n neighbor {n4} ttl-security hops 1\n neighbor {n4} timers connect 1\n",
        n4 = t.node_v4,
    ));
    let frr = Frr::start(&t.peer, &t.dir("frr"), &FrrConfig::bgp(conf)).expect("frr");
    let peers = format!(
        "    - address: {p4}\n      asn: 65000\n      gtsm:\n        hops: 1\n{timers}",
        p4 = t.peer_v4,
        timers = timers()
    );
    let yaml = speaker_yaml(
        "10.77.0.1",
        65001,
        &peers,
        "  staticRoutes:\n    - prefix: 192.0.2.0/24\n",
    );
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    frr.wait_established(t.node_v4, UP)
        .expect("GTSM session up");
    speaker.wait_state(t.peer_v4, "Established", UP);
    wait_until_ok("prefix in FRR", UP, || {
        let routes = frr.bgp_routes("ipv4").map_err(|e| e.to_string())?;
        routes
            .get("192.0.2.0/24")
            .cloned()
            .ok_or("missing".to_owned())
    })
    .expect("FRR learned the prefix over the GTSM session");
    // FRR's `ttl-security hops 1` sets IP_MINTTL 255 on its socket, so the session can only have
    // come up because our packets leave with TTL 255.
}

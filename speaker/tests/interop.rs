//! End-to-end tests of the speaker's BGP sessions against real BIRD 2, FRR and ExaBGP in network
//! namespaces (plus a raw Python peer for malformed UPDATEs): BFD bound to BGP (FRR, BIRD), GTSM
//! with a directly connected peer, malformed UPDATEs. The per-daemon session matrix (IPv4/IPv6,
//! active/passive, MD5, graceful restart, hold timer, withdrawal) is `interop_matrix.rs`. Each test builds its own
//! namespaces with unique names and tears everything down on drop, so they run in parallel.
//! Needs root and the daemons from `scripts/setup.sh`.

mod common;

use std::time::{Duration, Instant};

use common::{Speaker, Topology, speaker_yaml};
use herald_tests::{Bird, ExaBgp, Frr, FrrConfig, wait_until_ok};
use nix::sys::signal::Signal;
use speaker::api::control::Response;
use speaker::bgp::session::PeerReset;

const UP: Duration = Duration::from_secs(30);

fn timers() -> &'static str {
    "      timers:\n        holdTimeSeconds: 9\n        connectRetryTimeSeconds: 1\n"
}

fn frr_conf(extra_neighbor_lines: &str) -> String {
    format!(
        "frr defaults traditional\nhostname tor\n!\nrouter bgp 65000\n bgp router-id 10.77.0.2\n \
         no bgp ebgp-requires-policy\n no bgp network import-check\n timers bgp 3 9\n{extra_neighbor_lines}!\n"
    )
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
    let neighbor = t.exabgp_neighbor();
    let exabgp = ExaBgp::start(&t.peer, &t.dir("exabgp"), &[neighbor]).expect("exabgp");
    let peers = format!(
        "    - address: {p4}\n      asn: 65000\n      passive: true\n{timers}    - address: 10.77.0.3\n      asn: 65010\n      passive: true\n{timers}",
        p4 = t.peer_v4,
        timers = timers()
    );
    let yaml = speaker_yaml("10.77.0.1", 65001, &peers, common::ACCEPT_ALL_AND_STATIC);
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

/// BFD (100 ms x 3) bound to a BGP session whose hold time is 90 s: the peer's link goes down
/// and our session must fall at once, for BFD (Cease/BFD Down), not for the hold timer. The time
/// is printed, not asserted (a loaded 2-core machine); the 10 s wait is far below 90 s.
/// `bfd_extra` is appended to the peer's `bfd:` map (e.g. its `authentication:`).
fn bfd_takes_the_session_down(
    t: &Topology,
    bfd_extra: &str,
    peer_up: impl Fn() -> Result<bool, String>,
) {
    let peers = format!(
        "    - address: {p4}\n      asn: 65000\n      timers:\n        holdTimeSeconds: 90\n        connectRetryTimeSeconds: 1\n      \
         bfd:\n        minTxMs: 100\n        minRxMs: 100\n        multiplier: 3\n{bfd_extra}",
        p4 = t.peer_v4,
    );
    let yaml = speaker_yaml("10.77.0.1", 65001, &peers, "");
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    wait_until_ok("BGP up on the peer", UP, || {
        peer_up()?.then_some(()).ok_or("not Established".to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    wait_until_ok("BFD Up on the speaker", UP, || {
        let p = speaker.peer(t.peer_v4);
        match (p.state.as_str(), p.bfd_state.as_deref()) {
            ("Established", Some("Up")) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    assert_eq!(speaker.peer(t.peer_v4).hold_time, Some(90));
    assert_eq!(
        speaker.peer(t.peer_v4).bfd_auth_failures,
        Some(0),
        "no packet of the peer failed authentication"
    );
    // A new BFD session runs at the slow 1 s rate until a poll sequence after Up moves it to
    // 100 ms (RFC 5880 §6.8.3); measure the steady state, not that first second.
    std::thread::sleep(Duration::from_secs(2));

    t.peer.link_down("eth1").expect("link down");
    let cut = Instant::now();
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
    bfd_takes_the_session_down(&t, "", || {
        let state = frr.peer_state(t.node_v4).map_err(|e| e.to_string())?;
        Ok(state.as_deref() == Some("Established"))
    });
}

#[test]
fn bird_bfd_down_takes_the_session_down_long_before_the_hold_timer() {
    let t = Topology::new("bird_bfd");
    let conf = format!(
        "router id {p4};\nprotocol device {{}}\n\
         protocol bfd {{ interface \"eth1\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }}; }}\n\
         protocol bgp spk {{ local {p4} as 65000; neighbor {n4} as 65001; hold time 90; bfd on; \
         error wait time 1, 5; connect retry time 1; ipv4 {{ import all; export none; }}; }}\n",
        p4 = t.peer_v4,
        n4 = t.node_v4,
    );
    let bird = Bird::start(&t.peer, &t.dir("bird"), &conf).expect("bird");
    bfd_takes_the_session_down(&t, "", || {
        let state = bird.bgp_state("spk").map_err(|e| e.to_string())?;
        Ok(state.as_deref() == Some("Established"))
    });
}

/// The same through the agent's configuration with RFC 5880 Meticulous Keyed SHA1 on both ends:
/// `bfd.authentication` in the YAML, the key in a file, BIRD with the same key and ID.
#[test]
fn bird_authenticated_bfd_down_takes_the_session_down() {
    let t = Topology::new("bird_bfd_auth");
    let conf = format!(
        "router id {p4};\nprotocol device {{}}\n\
         protocol bfd {{ interface \"eth1\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; \
         authentication meticulous keyed sha1; password \"bfd-key-1\" {{ id 3; }}; }}; }}\n\
         protocol bgp spk {{ local {p4} as 65000; neighbor {n4} as 65001; hold time 90; bfd on; \
         error wait time 1, 5; connect retry time 1; ipv4 {{ import all; export none; }}; }}\n",
        p4 = t.peer_v4,
        n4 = t.node_v4,
    );
    let bird = Bird::start(&t.peer, &t.dir("bird"), &conf).expect("bird");
    let key_file = t.dir("keys").join("bfd.key");
    std::fs::write(&key_file, "bfd-key-1\n").expect("key file");
    let auth = format!(
        "        authentication:\n          type: meticulousKeyedSha1\n          keyId: 3\n          \
         passwordFile: {}\n",
        key_file.display()
    );
    bfd_takes_the_session_down(&t, &auth, || {
        let state = bird.bgp_state("spk").map_err(|e| e.to_string())?;
        Ok(state.as_deref() == Some("Established"))
    });
}

/// A reload re-reads the BFD key file: a changed key re-registers the BFD session (BIRD's packets
/// now fail our check, counted; the session does not come Up), the right key brings it back Up.
#[test]
fn bird_bfd_key_change_applies_on_reload() {
    let t = Topology::new("bird_bfd_rekey");
    let conf = format!(
        "router id {p4};\nprotocol device {{}}\n\
         protocol bfd {{ interface \"eth1\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; \
         authentication keyed sha1; password \"bfd-key-1\" {{ id 3; }}; }}; }}\n\
         protocol bgp spk {{ local {p4} as 65000; neighbor {n4} as 65001; hold time 90; bfd on; \
         error wait time 1, 5; connect retry time 1; ipv4 {{ import all; export none; }}; }}\n",
        p4 = t.peer_v4,
        n4 = t.node_v4,
    );
    let _bird = Bird::start(&t.peer, &t.dir("bird"), &conf).expect("bird");
    let key_file = t.dir("keys").join("bfd.key");
    std::fs::write(&key_file, "bfd-key-1\n").expect("key file");
    let peers = format!(
        "    - address: {p4}\n      asn: 65000\n      timers:\n        holdTimeSeconds: 90\n        connectRetryTimeSeconds: 1\n      \
         bfd:\n        minTxMs: 100\n        minRxMs: 100\n        multiplier: 3\n        authentication:\n          \
         type: keyedSha1\n          keyId: 3\n          passwordFile: {key}\n",
        p4 = t.peer_v4,
        key = key_file.display(),
    );
    let yaml = speaker_yaml("10.77.0.1", 65001, &peers, "");
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    let bfd_up = |what: &str| {
        wait_until_ok(what, UP, || {
            let p = speaker.peer(t.peer_v4);
            match (p.state.as_str(), p.bfd_state.as_deref()) {
                ("Established", Some("Up")) => Ok(p),
                other => Err(format!("{other:?}")),
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()))
    };
    let up = bfd_up("BFD Up with the right key");
    assert_eq!(up.bfd_auth_failures, Some(0));

    // Another key in the same file: the reload re-registers the BFD session with it.
    std::fs::write(&key_file, "bfd-key-2\n").expect("key file");
    speaker.reconfigure(&yaml);
    let refused = wait_until_ok("BIRD's packets refused under the new key", UP, || {
        let p = speaker.peer(t.peer_v4);
        match (p.bfd_state.as_deref(), p.bfd_auth_failures) {
            (Some("Up"), _) | (_, None | Some(0)) => Err(format!("{p:?}")),
            _ => Ok(p),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()));
    eprintln!(
        "rekey: BFD {:?} with {:?} packets refused",
        refused.bfd_state, refused.bfd_auth_failures
    );
    std::thread::sleep(Duration::from_secs(2));
    let p = speaker.peer(t.peer_v4);
    assert_ne!(p.bfd_state.as_deref(), Some("Up"), "{p:?}");
    // A BFD session that never came Up does not take BGP down (only a failure after Up does).
    assert_eq!(p.state, "Established");

    // The right key again.
    std::fs::write(&key_file, "bfd-key-1\n").expect("key file");
    speaker.reconfigure(&yaml);
    let up = bfd_up("BFD Up again after restoring the key");
    assert_eq!(
        up.bfd_auth_failures,
        Some(0),
        "a fresh count for the new session"
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

/// Polls `probe` every 50 ms for `span`, collecting what it returns (for "seen at least once" and
/// "never" checks across a short window).
fn watch<T>(span: Duration, mut probe: impl FnMut() -> T) -> Vec<T> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < span {
        seen.push(probe());
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

/// RFC 8538 with FRR 8.4 (`bgp graceful-restart notification`, N bit on both sides). A NOTIFICATION
/// other than Hard Reset — FRR's soft `clear bgp` (Cease/Administrative Reset with
/// `no bgp hard-administrative-reset`), or our Hold Timer Expired while FRR is frozen — restarts
/// the session like a TCP failure: each side keeps the other's routes, marked stale, until
/// End-of-RIB. A Hard Reset (FRR with `bgp hard-administrative-reset`) flushes them. FRR sets the
/// Forwarding State bit only with `preserve-fw-state`; without it RFC 4724 §4.2 has us drop its
/// stale routes as soon as the new session is up, before its End-of-RIB.
#[test]
fn frr_notification_restarts_keep_routes_and_hard_reset_flushes_them() {
    let t = Topology::new("frr_rfc8538");
    let base = frr_conf(&format!(
        " bgp graceful-restart\n bgp graceful-restart notification\n bgp graceful-restart preserve-fw-state\n \
         no bgp hard-administrative-reset\n \
         neighbor {n4} remote-as 65001\n neighbor {n4} timers connect 1\n \
         address-family ipv4 unicast\n  network 203.0.113.0/24\n exit-address-family\n",
        n4 = t.node_v4,
    ));
    let dir = t.dir("frr");
    let frr = Frr::start(&t.peer, &dir, &FrrConfig::bgp(base.clone())).expect("frr");
    let peers = format!(
        "    - address: {p4}\n      asn: 65000\n      gracefulRestart:\n        enabled: true\n        restartTimeSeconds: 60\n      \
         timers:\n        holdTimeSeconds: 6\n        connectRetryTimeSeconds: 1\n",
        p4 = t.peer_v4,
    );
    let yaml = speaker_yaml("10.77.0.1", 65001, &peers, common::ACCEPT_ALL_AND_STATIC);
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    // Our route at FRR: None if absent, else whether it is stale.
    let ours = |frr: &Frr| -> Option<bool> {
        let v = frr
            .vtysh_json("show bgp ipv4 unicast 192.0.2.0/24 json")
            .ok()?;
        let path = v.get("paths")?.as_array()?.first()?.clone();
        Some(path.get("stale").and_then(|s| s.as_bool()) == Some(true))
    };
    let settled = |frr: &Frr| {
        wait_until_ok("both sides settled", UP, || {
            let p = speaker.peer(t.peer_v4);
            // FRR also sends our own route back (no sender-side loop detection by default); we
            // keep it in the Adj-RIB-In but never accept it (AS loop).
            match (
                p.state.as_str(),
                p.prefixes_accepted,
                p.prefixes_stale,
                ours(frr),
            ) {
                ("Established", 1, 0, Some(false)) => Ok(p),
                other => Err(format!("{other:?}")),
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", speaker.log()))
    };
    let first = settled(&frr);
    let neighbor = frr
        .vtysh_json(&format!("show bgp neighbors {} json", t.node_v4))
        .expect("vtysh")
        .to_string();
    assert!(
        neighbor.contains("\"nBit\":true"),
        "FRR did not see our N bit: {neighbor}"
    );

    // 1. FRR sends a soft Cease/Administrative Reset: we keep its route (stale) through the
    // restart, never dropping it.
    frr.vtysh(&format!("clear bgp {}", t.node_v4))
        .expect("clear bgp");
    let n = first.prefixes_received;
    let seen = watch(Duration::from_secs(3), || {
        let p = speaker.peer(t.peer_v4);
        (p.prefixes_received, p.prefixes_stale)
    });
    assert!(
        seen.iter().all(|(received, _)| *received == n),
        "FRR's routes dropped: {seen:?}"
    );
    assert!(
        seen.iter().any(|(_, stale)| *stale == n),
        "never stale: {seen:?}"
    );
    let second = settled(&frr);
    assert!(
        second.transitions > first.transitions,
        "no restart happened"
    );
    assert!(
        second.notifications_in > first.notifications_in,
        "no NOTIFICATION received"
    );

    // 2. We send Hold Timer Expired (FRR frozen): we keep FRR's route as stale while it is
    // down; once FRR resumes it reads our NOTIFICATION and keeps our route as stale too.
    let bgpd = frr
        .processes()
        .into_iter()
        .find(|(n, _)| n == "bgpd")
        .map(|(_, id)| id)
        .expect("bgpd");
    bgpd.signal(Signal::SIGSTOP).expect("SIGSTOP");
    let down = wait_until_ok("hold timer expiry", UP, || {
        let p = speaker.peer(t.peer_v4);
        (p.state != "Established")
            .then_some(p)
            .ok_or("still Established".to_owned())
    });
    bgpd.signal(Signal::SIGCONT).expect("SIGCONT");
    let down = down.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        down.last_error
            .as_deref()
            .is_some_and(|e| e.contains("4/0")),
        "{:?}",
        down.last_error
    );
    assert_eq!((down.prefixes_received, down.prefixes_stale), (n, n));
    let at_frr = watch(Duration::from_secs(2), || ours(&frr));
    assert!(
        at_frr.iter().all(Option::is_some),
        "FRR dropped our route: {at_frr:?}"
    );
    assert!(
        at_frr.contains(&Some(true)),
        "FRR never marked our route stale: {at_frr:?}"
    );
    let third = settled(&frr);

    // 3. Hard Reset: FRR's Administrative Reset now goes out as Cease/Hard Reset; both sides
    // flush.
    let hard = base.replace(
        " no bgp hard-administrative-reset\n",
        " bgp hard-administrative-reset\n",
    );
    std::fs::write(dir.join("frr.conf"), hard).expect("frr.conf");
    frr.apply_config().expect("apply");
    frr.vtysh(&format!("clear bgp {}", t.node_v4))
        .expect("clear bgp");
    let seen = watch(Duration::from_secs(2), || {
        let p = speaker.peer(t.peer_v4);
        (p.prefixes_received, p.last_error)
    });
    assert!(
        seen.iter().any(|(received, _)| *received == 0),
        "Hard Reset kept FRR's route: {seen:?}"
    );
    assert!(
        seen.iter().any(|(_, e)| e
            .as_deref()
            .is_some_and(|e| e.contains("received NOTIFICATION 6/9 (hard reset: 6/4)"))),
        "Hard Reset not reported as such: {seen:?}"
    );
    let fourth = settled(&frr);
    assert!(fourth.transitions > third.transitions);
}

/// FRR's count of one message type received from the speaker (`messageStats` of `show bgp
/// neighbors json`).
fn frr_received(frr: &Frr, neighbor: &str, stat: &str) -> Result<u64, String> {
    let json = frr
        .vtysh_json(&format!("show bgp neighbors {neighbor} json"))
        .map_err(|e| e.to_string())?;
    json[neighbor]["messageStats"][stat]
        .as_u64()
        .ok_or_else(|| format!("no messageStats.{stat} in {json}"))
}

#[test]
fn operator_resets_reach_frr_soft_ones_without_a_session_reset() {
    let t = Topology::new("frr_reset");
    let conf = frr_conf(&format!(
        " neighbor {n4} remote-as 65001\n neighbor {n4} timers connect 1\n\
         \x20address-family ipv4 unicast\n  network 198.51.100.0/24\n exit-address-family\n",
        n4 = t.node_v4,
    ));
    let frr = Frr::start(&t.peer, &t.dir("frr"), &FrrConfig::bgp(conf)).expect("frr");
    t.peer
        .ip(&["route", "add", "blackhole", "198.51.100.0/24"])
        .expect("FRR's network route");
    let peers = format!(
        "    - name: tor\n      address: {p4}\n      asn: 65000\n{timers}",
        p4 = t.peer_v4,
        timers = timers()
    );
    let yaml = speaker_yaml("10.77.0.1", 65001, &peers, common::ACCEPT_ALL_AND_STATIC);
    let speaker = Speaker::start(&t.node, &t.dir("speaker"), &yaml);
    frr.wait_established(t.node_v4, UP).expect("session up");
    wait_until_ok("FRR's route accepted", UP, || {
        let p = speaker.peer(t.peer_v4);
        (p.prefixes_accepted == 1)
            .then_some(())
            .ok_or(format!("{p:?}"))
    })
    .expect("accepted");
    let before = speaker.peer(t.peer_v4);
    let stat = |name: &str| frr_received(&frr, t.node_v4, name);

    // Soft in: FRR gets a ROUTE-REFRESH and answers it; the session stays.
    let refreshes = stat("routeRefreshRecv").expect("FRR stats");
    let answer = speaker.reset("tor", PeerReset::SoftIn).expect("control");
    assert!(matches!(answer, Response::Reset { .. }), "{answer:?}");
    wait_until_ok("FRR received the ROUTE-REFRESH", UP, || {
        let now = stat("routeRefreshRecv")?;
        (now > refreshes).then_some(()).ok_or(format!("{now}"))
    })
    .expect("ROUTE-REFRESH at FRR");

    // Soft out: our routes go out again (FRR counts a new UPDATE); the session stays.
    let updates = stat("updatesRecv").expect("FRR stats");
    speaker
        .reset("10.77.0.2", PeerReset::SoftOut)
        .expect("control");
    wait_until_ok("FRR received our routes again", UP, || {
        let now = stat("updatesRecv")?;
        (now > updates).then_some(()).ok_or(format!("{now}"))
    })
    .expect("UPDATE at FRR");
    let after_soft = speaker.peer(t.peer_v4);
    assert_eq!(
        after_soft.transitions, before.transitions,
        "a soft reset reset the session"
    );
    assert_eq!(after_soft.prefixes_accepted, 1);

    // An unknown peer is named in the refusal.
    match speaker.reset("nobody", PeerReset::Hard).expect("control") {
        Response::Error { message } => assert!(message.contains("nobody"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }

    // Hard reset: the session goes down and comes back, and FRR has our route again.
    speaker.reset("tor", PeerReset::Hard).expect("control");
    wait_until_ok("the session was reset", UP, || {
        let p = speaker.peer(t.peer_v4);
        (p.transitions > before.transitions && p.state == "Established")
            .then_some(())
            .ok_or(format!("{} after {} transitions", p.state, p.transitions))
    })
    .expect("reset and back up");
    assert!(
        speaker.log().contains("reset by the operator"),
        "{}",
        speaker.log()
    );
    wait_until_ok("our prefix back at FRR", UP, || {
        let routes = frr.bgp_routes("ipv4").map_err(|e| e.to_string())?;
        routes
            .get("192.0.2.0/24")
            .cloned()
            .ok_or("missing".to_owned())
    })
    .expect("prefix at FRR after the reset");
}

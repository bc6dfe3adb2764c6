//! Our BFD against real implementations in network namespaces: FRR's bfdd (zebra + bfdd) and
//! BIRD 2's `bfd` protocol, over a veth pair, IPv4 and IPv6 single-hop (RFC 5881) and IPv4
//! multihop (RFC 5883). Sessions must come Up on both sides; when the path fails (veth down on
//! the peer's side, or all ingress dropped on ours) our side must report Down with "control
//! detection time expired" to the subscriber. With RFC 5880 §6.7.4 authentication (BIRD's
//! keyed SHA1 and meticulous keyed SHA1), sessions come Up with the right key and stay Down with
//! a wrong key or key ID, on both ends. How long that took is printed, not asserted
//! (timing assertions flake on a shared 2-core machine); `tests/bfd_detection.rs` measures it.
//!
//! The speaker's BFD driver runs on a tokio runtime whose threads are moved into the test's
//! namespace with setns(2), so its sockets live there. Needs root, `ip`, `tc`, FRR and BIRD 2.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use herald_tests::{
    Bird, Blackhole, Frr, FrrConfig, FrrDaemon, Netns, TestLab, VethPair, runtime_in,
};
use serde_json::Value;
use speaker::bfd::{AuthKey, Bfd, BfdEvent, BfdSession, Diagnostic, SessionSpec, State};
use speaker::config::{BfdAuthType, BfdConfig};

/// Handshake at the slow 1 s rate plus daemon start-up on a loaded machine.
const UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Generous bound for the Down event; the real number is printed.
const DOWN_TIMEOUT: Duration = Duration::from_secs(10);

fn fast() -> BfdConfig {
    BfdConfig {
        min_tx_ms: 100,
        min_rx_ms: 100,
        multiplier: 3,
        multihop: false,
        authentication: None,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

/// Waits for the next state change to `want`, returning it; other changes are skipped.
async fn wait_state(session: &mut BfdSession, want: State, timeout: Duration) -> BfdEvent {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, session.recv()).await {
            Ok(Some(event)) if event.state == want => return event,
            Ok(Some(event)) => {
                eprintln!("bfd: {} {} -> {}", event.peer, event.previous, event.state)
            }
            Ok(None) => panic!("BFD driver stopped while waiting for {want}"),
            Err(_) => panic!(
                "session {} not {want} after {timeout:?} (state {})",
                session.key().peer,
                session.state()
            ),
        }
    }
}

/// Polls a blocking probe off the runtime until it returns true.
async fn wait_probe(
    what: &str,
    timeout: Duration,
    probe: impl Fn() -> bool + Send + Sync + 'static,
) {
    let probe = std::sync::Arc::new(probe);
    let deadline = Instant::now() + timeout;
    loop {
        let p = probe.clone();
        if tokio::task::spawn_blocking(move || p())
            .await
            .unwrap_or(false)
        {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two namespaces `dut` (us) and `peer` joined by `eth1`, IPv4 `<v4>.1` (peer) / `.2` (us) and
/// IPv6 `fd00:<tag>::1` / `::2`.
fn topology(lab: &TestLab, v4: &str, tag: &str) -> (Netns, Netns, VethPair) {
    let dut = lab.netns("dut").expect("netns dut");
    let peer = lab.netns("peer").expect("netns peer");
    let link = VethPair::create(&dut, "eth1", &peer, "eth1").expect("veth");
    peer.addr_add("eth1", &format!("{v4}.1/30")).expect("addr");
    dut.addr_add("eth1", &format!("{v4}.2/30")).expect("addr");
    peer.addr_add("eth1", &format!("fd00:{tag}::1/64"))
        .expect("addr");
    dut.addr_add("eth1", &format!("fd00:{tag}::2/64"))
        .expect("addr");
    for ns in [&dut, &peer] {
        ns.link_up("lo").expect("lo up");
    }
    (dut, peer, link)
}

/// For a multihop session: `{net}.255.1` on the peer's and `{net}.255.2` on the DUT's
/// loopback, each routed over the link (`{net}.0.0/30` from [`topology`]).
fn loopbacks_one_hop_apart(dut: &Netns, peer: &Netns, net: &str) {
    peer.addr_add("lo", &format!("{net}.255.1/32"))
        .expect("lo addr");
    dut.addr_add("lo", &format!("{net}.255.2/32"))
        .expect("lo addr");
    peer.route_add(&[&format!("{net}.255.2/32"), "via", &format!("{net}.0.2")])
        .expect("route");
    dut.route_add(&[&format!("{net}.255.1/32"), "via", &format!("{net}.0.1")])
        .expect("route");
}

/// `show bfd peers json` status of `peer` (`up`, `down`, `init`), if FRR knows it.
fn frr_status(frr: &Frr, peer: &str) -> Option<String> {
    let v = frr.vtysh_json("show bfd peers json").ok()?;
    v.as_array()?
        .iter()
        .find(|p| p.get("peer").and_then(Value::as_str) == Some(peer))
        .and_then(|p| p.get("status").and_then(Value::as_str))
        .map(str::to_owned)
}

#[test]
fn frr_bfdd_sessions_come_up_and_link_loss_is_detected() {
    let lab = TestLab::new("bfd_frr").expect("lab");
    let (dut, peer, _link) = topology(&lab, "10.31.0", "31");
    // A multihop peer one routed hop away in FRR's terms: a loopback address on each side.
    loopbacks_one_hop_apart(&dut, &peer, "10.31");
    let config = "frr defaults datacenter
hostname tor
bfd
 peer 10.31.0.2 local-address 10.31.0.1 interface eth1
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 !
 peer fd00:31::2 local-address fd00:31::1 interface eth1
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 !
 peer 10.31.255.2 multihop local-address 10.31.255.1
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 !
!
";
    let frr = Frr::start(
        &peer,
        &lab.subdir("frr").expect("dir"),
        &FrrConfig {
            config: config.to_owned(),
            daemons: vec![FrrDaemon::Bfdd],
        },
    )
    .expect("FRR zebra + bfdd");
    let frr = std::sync::Arc::new(frr);

    let rt = runtime_in(&dut, 2);
    rt.block_on(async {
        let bfd = Bfd::spawn();
        let mut v4 = bfd
            .register(SessionSpec {
                peer: ip("10.31.0.1"),
                local: ip("10.31.0.2"),
                interface: Some("eth1".into()),
                config: fast(),
                auth: None,
            })
            .await
            .expect("register IPv4");
        let mut v6 = bfd
            .register(SessionSpec {
                peer: ip("fd00:31::1"),
                local: ip("fd00:31::2"),
                interface: Some("eth1".into()),
                config: fast(),
                auth: None,
            })
            .await
            .expect("register IPv6");
        let mut multihop = bfd
            .register(SessionSpec {
                peer: ip("10.31.255.1"),
                local: ip("10.31.255.2"),
                interface: None,
                config: BfdConfig {
                    multihop: true,
                    ..fast()
                },
                auth: None,
            })
            .await
            .expect("register multihop");

        let started = Instant::now();
        for s in [&mut v4, &mut v6, &mut multihop] {
            let up = wait_state(s, State::Up, UP_TIMEOUT).await;
            assert_eq!(up.diagnostic, Diagnostic::NoDiagnostic);
        }
        eprintln!(
            "bfd/frr: all three sessions Up after {:?}",
            started.elapsed()
        );
        for addr in ["10.31.0.2", "fd00:31::2", "10.31.255.2"] {
            let f = frr.clone();
            wait_probe(&format!("FRR sees {addr} up"), UP_TIMEOUT, move || {
                frr_status(&f, addr).as_deref() == Some("up")
            })
            .await;
        }
        // Stay Up through FRR's poll sequence and a few detection periods.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            (v4.state(), v6.state(), multihop.state()),
            (State::Up, State::Up, State::Up)
        );

        // Link loss on the peer's side: our end of the veth loses carrier, nothing arrives.
        // Keep FRR's IPv6 address across the admin down, as it would be on a real port that
        // loses its cable (Linux flushes IPv6 addresses on admin down otherwise).
        peer.sysctl("net.ipv6.conf.eth1.keep_addr_on_down", "1")
            .expect("sysctl");
        let down_at = Instant::now();
        peer.link_down("eth1").expect("link down");
        for (name, s) in [
            ("IPv4", &mut v4),
            ("IPv6", &mut v6),
            ("multihop", &mut multihop),
        ] {
            let event = wait_state(s, State::Down, DOWN_TIMEOUT).await;
            eprintln!(
                "bfd/frr: {name} Down {:?} after link down ({})",
                down_at.elapsed(),
                event.diagnostic
            );
            assert!(event.is_failure(), "{event:?}");
            assert_eq!(event.diagnostic, Diagnostic::ControlDetectionTimeExpired);
        }

        // The link comes back: the sessions re-establish by themselves.
        peer.link_up("eth1").expect("link up");
        // Admin down deleted FRR's route to our multihop address; restore it.
        peer.ip(&["route", "replace", "10.31.255.2/32", "via", "10.31.0.2"])
            .expect("route");
        for s in [&mut v4, &mut v6, &mut multihop] {
            wait_state(s, State::Up, UP_TIMEOUT).await;
        }

        // Deregistration tells FRR we left on purpose (AdminDown → its diag "neighbor down").
        drop(v4);
        let f = frr.clone();
        wait_probe(
            "FRR sees 10.31.0.2 down after deregistration",
            UP_TIMEOUT,
            move || frr_status(&f, "10.31.0.2").as_deref() == Some("down"),
        )
        .await;
        assert_eq!(v6.state(), State::Up, "other sessions unaffected");
    });
}

#[test]
fn bird_bfd_session_comes_up_and_silence_is_detected() {
    let lab = TestLab::new("bfd_bird").expect("lab");
    let (dut, peer, _link) = topology(&lab, "10.32.0", "32");
    let config = "router id 10.32.0.1;
protocol device {}
protocol bfd {
  interface \"eth1\" {
    min rx interval 100 ms;
    min tx interval 100 ms;
    multiplier 3;
  };
  neighbor 10.32.0.2 dev \"eth1\" local 10.32.0.1;
  neighbor fd00:32::2 dev \"eth1\" local fd00:32::1;
}
";
    let bird = Bird::start(&peer, &lab.subdir("bird").expect("dir"), config).expect("BIRD");
    let bird = std::sync::Arc::new(bird);
    let bird_state = |b: &Bird, addr: &str| -> Option<String> {
        let text = b.birdc("show bfd sessions").ok()?;
        text.lines()
            .map(str::split_whitespace)
            .find_map(|mut cols| {
                (cols.next() == Some(addr)).then(|| cols.nth(1).map(str::to_owned))
            })
            .flatten()
    };

    let rt = runtime_in(&dut, 2);
    rt.block_on(async {
        let bfd = Bfd::spawn();
        let mut v4 = bfd
            .register(SessionSpec {
                peer: ip("10.32.0.1"),
                local: ip("10.32.0.2"),
                interface: Some("eth1".into()),
                config: fast(),
                auth: None,
            })
            .await
            .expect("register IPv4");
        let mut v6 = bfd
            .register(SessionSpec {
                peer: ip("fd00:32::1"),
                local: ip("fd00:32::2"),
                interface: Some("eth1".into()),
                config: fast(),
                auth: None,
            })
            .await
            .expect("register IPv6");
        for s in [&mut v4, &mut v6] {
            wait_state(s, State::Up, UP_TIMEOUT).await;
        }
        for addr in ["10.32.0.2", "fd00:32::2"] {
            let b = bird.clone();
            wait_probe(&format!("BIRD sees {addr} Up"), UP_TIMEOUT, move || {
                bird_state(&b, addr).as_deref() == Some("Up")
            })
            .await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!((v4.state(), v6.state()), (State::Up, State::Up));

        // Silence with the link up: drop everything arriving on our interface.
        let hole = Blackhole::ingress(&dut, "eth1").expect("blackhole");
        let silent_at = Instant::now();
        for (name, s) in [("IPv4", &mut v4), ("IPv6", &mut v6)] {
            let event = wait_state(s, State::Down, DOWN_TIMEOUT).await;
            eprintln!(
                "bfd/bird: {name} Down {:?} after ingress blackhole ({})",
                silent_at.elapsed(),
                event.diagnostic
            );
            assert!(event.is_failure(), "{event:?}");
            assert_eq!(event.diagnostic, Diagnostic::ControlDetectionTimeExpired);
        }
        // BIRD still hears us, now saying Down, and follows.
        let b = bird.clone();
        wait_probe("BIRD sees 10.32.0.2 leave Up", UP_TIMEOUT, move || {
            bird_state(&b, "10.32.0.2").is_some_and(|s| s != "Up")
        })
        .await;

        hole.lift().expect("lift blackhole");
        for s in [&mut v4, &mut v6] {
            wait_state(s, State::Up, UP_TIMEOUT).await;
        }
    });
}

/// `show bfd sessions` state of `addr` in BIRD (`Up`, `Down`, `Init`), if it lists it.
fn bird_bfd_state(bird: &Bird, addr: &str) -> Option<String> {
    let text = bird.birdc("show bfd sessions").ok()?;
    text.lines()
        .map(str::split_whitespace)
        .find_map(|mut cols| (cols.next() == Some(addr)).then(|| cols.nth(1).map(str::to_owned)))
        .flatten()
}

/// Asserts that `session` reports no state change at all (it stays Down) for `quiet`.
async fn stays_down(session: &mut BfdSession, quiet: Duration) {
    let event = tokio::time::timeout(quiet, session.recv()).await;
    assert!(event.is_err(), "session left Down: {event:?}");
    assert_eq!(session.state(), State::Down);
}

#[test]
fn bird_keyed_sha1_sessions_come_up_with_the_right_key_only() {
    let lab = TestLab::new("bfd_bird_auth").expect("lab");
    let (dut, peer, _link) = topology(&lab, "10.33.0", "33");
    // Multihop (meticulous keyed SHA1) between loopback addresses one routed hop apart.
    loopbacks_one_hop_apart(&dut, &peer, "10.33");
    let config = "router id 10.33.0.1;
protocol device {}
protocol bfd {
  interface \"eth1\" {
    min rx interval 100 ms;
    min tx interval 100 ms;
    multiplier 3;
    authentication keyed sha1;
    password \"secret\" { id 1; };
  };
  multihop {
    min rx interval 100 ms;
    min tx interval 100 ms;
    multiplier 3;
    authentication meticulous keyed sha1;
    password \"mh-secret\" { id 7; };
  };
  neighbor 10.33.0.2 dev \"eth1\" local 10.33.0.1;
  neighbor 10.33.255.2 local 10.33.255.1 multihop;
}
";
    let bird = Bird::start(&peer, &lab.subdir("bird").expect("dir"), config).expect("BIRD");
    let bird = std::sync::Arc::new(bird);
    let single_hop = |auth: AuthKey| SessionSpec {
        peer: ip("10.33.0.1"),
        local: ip("10.33.0.2"),
        interface: Some("eth1".into()),
        config: fast(),
        auth: Some(auth),
    };
    let multihop = |auth: AuthKey| SessionSpec {
        peer: ip("10.33.255.1"),
        local: ip("10.33.255.2"),
        interface: None,
        config: BfdConfig {
            multihop: true,
            ..fast()
        },
        auth: Some(auth),
    };
    let keyed =
        |id: u8, secret: &[u8]| AuthKey::new(BfdAuthType::KeyedSha1, id, secret).expect("key");
    let meticulous = |id: u8, secret: &[u8]| {
        AuthKey::new(BfdAuthType::MeticulousKeyedSha1, id, secret).expect("key")
    };

    let rt = runtime_in(&dut, 2);
    rt.block_on(async {
        let bfd = Bfd::spawn();
        // The right keys: both sessions come Up on both ends and stay Up.
        let mut v4 = bfd
            .register(single_hop(keyed(1, b"secret")))
            .await
            .expect("register keyed");
        let mut mh = bfd
            .register(multihop(meticulous(7, b"mh-secret")))
            .await
            .expect("register meticulous");
        let started = Instant::now();
        for s in [&mut v4, &mut mh] {
            let up = wait_state(s, State::Up, UP_TIMEOUT).await;
            assert_eq!(up.diagnostic, Diagnostic::NoDiagnostic);
        }
        eprintln!(
            "bfd/bird auth: both sessions Up after {:?}",
            started.elapsed()
        );
        for addr in ["10.33.0.2", "10.33.255.2"] {
            let b = bird.clone();
            wait_probe(&format!("BIRD sees {addr} Up"), UP_TIMEOUT, move || {
                bird_bfd_state(&b, addr).as_deref() == Some("Up")
            })
            .await;
        }
        // Several keyed-SHA1 sequence increments (once a second) and hundreds of meticulous ones.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!((v4.state(), mh.state()), (State::Up, State::Up));
        assert_eq!(
            (v4.auth_failures(), mh.auth_failures()),
            (0, 0),
            "every packet BIRD signed verified"
        );
        for addr in ["10.33.0.2", "10.33.255.2"] {
            assert_eq!(bird_bfd_state(&bird, addr).as_deref(), Some("Up"), "{addr}");
        }

        // Leave (AdminDown), then come back with a wrong key, a wrong key ID and the wrong type.
        drop(v4);
        drop(mh);
        let b = bird.clone();
        wait_probe("BIRD sees both leave Up", UP_TIMEOUT, move || {
            ["10.33.0.2", "10.33.255.2"]
                .iter()
                .all(|a| bird_bfd_state(&b, a).is_some_and(|s| s != "Up"))
        })
        .await;
        for (name, spec) in [
            ("wrong key", single_hop(keyed(1, b"Secret"))),
            ("wrong key ID", single_hop(keyed(2, b"secret"))),
            ("wrong type", single_hop(meticulous(1, b"secret"))),
            ("wrong multihop key", multihop(meticulous(7, b"secret"))),
        ] {
            let peer_addr = spec.peer;
            let mut session = bfd.register(spec).await.expect("register");
            stays_down(&mut session, Duration::from_secs(4)).await;
            assert!(
                session.auth_failures() > 0,
                "{name}: BIRD's packets were not refused"
            );
            let local = if peer_addr == ip("10.33.0.1") {
                "10.33.0.2"
            } else {
                "10.33.255.2"
            };
            let state = bird_bfd_state(&bird, local);
            assert!(
                state.as_deref() != Some("Up") && state.as_deref() != Some("Init"),
                "{name}: BIRD accepted our packets ({state:?})"
            );
            eprintln!(
                "bfd/bird auth: {name}: Down, {} packets refused, BIRD {state:?}",
                session.auth_failures()
            );
        }

        // And the right key again: Up.
        let mut v4 = bfd
            .register(single_hop(keyed(1, b"secret")))
            .await
            .expect("register keyed again");
        wait_state(&mut v4, State::Up, UP_TIMEOUT).await;
    });
}

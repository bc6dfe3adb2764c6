//! The BFD driver on real sockets, without a third-party peer, in a private network namespace:
//! two of our sessions talk to each other over loopback through the one listening socket
//! (demultiplexing by address pair, then by discriminator), the RFC 5881 received-TTL rule is
//! enforced on hand-made packets, registration errors are reported, and forged packets (right
//! discriminators, no or bad authentication, a stale sequence number) sent at authenticated
//! sessions neither bring them down nor up. Needs root and `ip`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use herald_tests::{Netns, TestLab, VethPair, block_on_in};
use speaker::bfd::auth::AuthState;
use speaker::bfd::{AuthKey, Bfd, BfdSession, Diagnostic, Error, Repr, SessionSpec, State};
use speaker::config::{BfdAuthType, BfdConfig};

const TIMEOUT: Duration = Duration::from_secs(20);

fn config(multihop: bool) -> BfdConfig {
    BfdConfig {
        min_tx_ms: 50,
        min_rx_ms: 50,
        multiplier: 3,
        multihop,
        authentication: None,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

async fn wait_state(session: &mut BfdSession, want: State) -> Diagnostic {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, session.recv()).await {
            Ok(Some(e)) if e.state == want => return e.diagnostic,
            Ok(Some(_)) => {}
            Ok(None) => panic!("driver stopped"),
            Err(_) => panic!("not {want} in time (state {})", session.state()),
        }
    }
}

fn lab_ns(test: &str) -> (TestLab, Netns) {
    let lab = TestLab::new(test).expect("lab");
    let ns = lab.netns("dut").expect("netns");
    ns.link_up("lo").expect("lo up");
    ns.addr_add("lo", "fd00:99::1/128").expect("addr");
    ns.addr_add("lo", "fd00:99::2/128").expect("addr");
    (lab, ns)
}

#[test]
fn two_local_sessions_come_up_over_loopback_and_detect_a_deregistered_peer() {
    let (_lab, ns) = lab_ns("bfd_loopback");
    block_on_in(&ns, None, || async {
        let bfd = Bfd::spawn();
        for (a_addr, b_addr, multihop) in [
            ("127.0.0.1", "127.0.0.2", false),
            ("fd00:99::1", "fd00:99::2", false),
            ("127.0.0.1", "127.0.0.2", true),
        ] {
            let spec = |local: &str, peer: &str| SessionSpec {
                peer: ip(peer),
                local: ip(local),
                interface: None,
                config: config(multihop),
                auth: None,
            };
            let mut a = bfd.register(spec(a_addr, b_addr)).await.expect("a");
            let mut b = bfd.register(spec(b_addr, a_addr)).await.expect("b");
            assert_ne!(a.discriminator(), b.discriminator());
            assert_eq!(
                wait_state(&mut a, State::Up).await,
                Diagnostic::NoDiagnostic
            );
            assert_eq!(
                wait_state(&mut b, State::Up).await,
                Diagnostic::NoDiagnostic
            );
            // Dropping b sends AdminDown: a hears "neighbor signaled session down" at once,
            // without waiting for its detection timer.
            drop(b);
            assert_eq!(
                wait_state(&mut a, State::Down).await,
                Diagnostic::NeighborSignaledSessionDown,
                "{a_addr} multihop={multihop}"
            );
        }
    });
}

#[test]
fn single_hop_packets_need_ttl_255() {
    let (_lab, ns) = lab_ns("bfd_ttl");
    block_on_in(&ns, None, || async {
        let bfd = Bfd::spawn();
        let mut session = bfd
            .register(SessionSpec {
                peer: ip("127.0.0.2"),
                local: ip("127.0.0.1"),
                interface: None,
                config: config(false),
                auth: None,
            })
            .await
            .expect("register");
        let down = Repr {
            diagnostic: Diagnostic::NoDiagnostic,
            state: State::Down,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0xabcd,
            your_discriminator: 0,
            desired_min_tx: 1_000_000,
            required_min_rx: 50_000,
            required_min_echo_rx: 0,
            auth: None,
        };
        let sender = UdpSocket::bind("127.0.0.2:50000").expect("bind");
        let target: SocketAddr = "127.0.0.1:3784".parse().expect("addr");
        // One hop too many: discarded, the session stays Down.
        sender.set_ttl(254).expect("ttl");
        for _ in 0..3 {
            sender.send_to(&down.to_bytes(), target).expect("send");
        }
        let early = tokio::time::timeout(Duration::from_millis(500), session.recv()).await;
        assert!(early.is_err(), "TTL 254 packet was accepted: {early:?}");
        assert_eq!(session.state(), State::Down);
        // The same packet with TTL 255 moves the session to Init.
        sender.set_ttl(255).expect("ttl");
        sender.send_to(&down.to_bytes(), target).expect("send");
        assert_eq!(
            wait_state(&mut session, State::Init).await,
            Diagnostic::NoDiagnostic
        );
        // A packet for an unknown discriminator changes nothing (and does not stop the driver).
        let stray = Repr {
            state: State::Up,
            your_discriminator: session.discriminator().wrapping_add(1).max(1),
            ..down
        };
        sender.send_to(&stray.to_bytes(), target).expect("send");
        assert_eq!(session.state(), State::Init);
    });
}

#[test]
fn registration_errors_are_reported() {
    let (_lab, ns) = lab_ns("bfd_register");
    block_on_in(&ns, None, || async {
        let bfd = Bfd::spawn();
        let spec = SessionSpec {
            peer: ip("127.0.0.2"),
            local: ip("127.0.0.1"),
            interface: None,
            config: config(false),
            auth: None,
        };
        let _first = bfd.register(spec.clone()).await.expect("first");
        assert!(matches!(
            bfd.register(spec.clone()).await,
            Err(Error::Duplicate { .. })
        ));
        assert!(matches!(
            bfd.register(SessionSpec {
                local: ip("::1"),
                ..spec.clone()
            })
            .await,
            Err(Error::MixedFamilies { .. })
        ));
        assert!(matches!(
            bfd.register(SessionSpec {
                peer: ip("127.0.0.3"),
                config: BfdConfig {
                    multiplier: 0,
                    ..config(false)
                },
                ..spec.clone()
            })
            .await,
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            bfd.register(SessionSpec {
                peer: ip("127.0.0.4"),
                interface: Some("nosuchif0".into()),
                ..spec
            })
            .await,
            Err(Error::Io { .. })
        ));
    });
}

#[test]
fn ipv6_link_local_sessions_come_up_between_two_namespaces() {
    let lab = TestLab::new("bfd_linklocal").expect("lab");
    let a = lab.netns("a").expect("netns");
    let b = lab.netns("b").expect("netns");
    let _link = VethPair::create(&a, "eth1", &b, "eth1").expect("veth");
    a.addr_add("eth1", "fe80::a/64").expect("addr");
    b.addr_add("eth1", "fe80::b/64").expect("addr");
    let side = |ns: &Netns, local: &'static str, peer: &'static str| {
        block_on_in(ns, None, || async move {
            let bfd = Bfd::spawn();
            let mut session = bfd
                .register(SessionSpec {
                    peer: ip(peer),
                    local: ip(local),
                    interface: Some("eth1".into()),
                    config: config(false),
                    auth: None,
                })
                .await
                .expect("register");
            assert_eq!(
                wait_state(&mut session, State::Up).await,
                Diagnostic::NoDiagnostic
            );
            // Stay up long enough for the other side to get there too, and stay Up.
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(session.state(), State::Up);
        });
    };
    std::thread::scope(|s| {
        let left = s.spawn(|| side(&a, "fe80::a", "fe80::b"));
        let right = s.spawn(|| side(&b, "fe80::b", "fe80::a"));
        left.join().expect("side a");
        right.join().expect("side b");
    });
}

/// A forged packet in `state` from discriminator `my` to `your`, bare or signed with `key` and
/// sequence number `seq` (a guessed key, or the right key with an old capture's number).
fn forged(state: State, my: u32, your: u32, signed: Option<(&AuthKey, u32)>) -> Vec<u8> {
    let mut repr = Repr {
        diagnostic: Diagnostic::NoDiagnostic,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: my,
        your_discriminator: your,
        desired_min_tx: 50_000,
        required_min_rx: 50_000,
        required_min_echo_rx: 0,
        auth: None,
    };
    if let Some((key, seq)) = signed {
        AuthState::new(key.clone(), seq).sign(std::time::Instant::now(), &mut repr);
    }
    repr.to_bytes()
}

#[test]
fn forged_packets_neither_bring_an_authenticated_session_down_nor_up() {
    let (_lab, ns) = lab_ns("bfd_forgery");
    block_on_in(&ns, None, || async {
        let bfd = Bfd::spawn();
        let key = AuthKey::new(BfdAuthType::MeticulousKeyedSha1, 1, b"secret").expect("key");
        let guessed = AuthKey::new(BfdAuthType::MeticulousKeyedSha1, 1, b"guess").expect("key");
        let spec = |local: &str, peer: &str| SessionSpec {
            peer: ip(peer),
            local: ip(local),
            interface: None,
            config: config(false),
            auth: Some(key.clone()),
        };
        let mut a = bfd
            .register(spec("127.0.0.1", "127.0.0.2"))
            .await
            .expect("a");
        let mut b = bfd
            .register(spec("127.0.0.2", "127.0.0.1"))
            .await
            .expect("b");
        wait_state(&mut a, State::Up).await;
        wait_state(&mut b, State::Up).await;
        // A third session whose peer (127.0.0.3) never answers: it must stay Down.
        let mut lonely = bfd
            .register(spec("127.0.0.1", "127.0.0.3"))
            .await
            .expect("c");

        // The attacker: on-link (TTL 255), spoofing the peers' addresses, knowing the
        // discriminators (they travel in clear), not the key.
        let target: SocketAddr = "127.0.0.1:3784".parse().expect("addr");
        let from_b = UdpSocket::bind("127.0.0.2:0").expect("bind");
        let from_c = UdpSocket::bind("127.0.0.3:0").expect("bind");
        for s in [&from_b, &from_c] {
            s.set_ttl(255).expect("ttl");
        }
        let (da, db) = (a.discriminator(), b.discriminator());
        let lonely_discr = lonely.discriminator();
        let mut sent = 0u64;
        for round in 0..20u32 {
            for state in [State::AdminDown, State::Down] {
                for packet in [
                    forged(state, db, da, None),
                    forged(state, db, da, Some((&guessed, round))),
                    // The right key with a sequence number far outside the window: what an old
                    // captured packet looks like.
                    forged(state, db, da, Some((&key, round.wrapping_mul(0x1000_0001)))),
                ] {
                    from_b.send_to(&packet, target).expect("send");
                    sent += 1;
                }
            }
            // Bring-up attempts at the lonely session: Down then Init, as a real peer would.
            for (state, your) in [(State::Down, 0), (State::Init, lonely_discr)] {
                for packet in [
                    forged(state, 0x4242, your, None),
                    forged(state, 0x4242, your, Some((&guessed, round))),
                ] {
                    from_c.send_to(&packet, target).expect("send");
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Let the driver work through the queue, then check nothing moved.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!((a.state(), b.state()), (State::Up, State::Up));
        assert!(a.try_recv().is_none(), "a changed state");
        assert_eq!(lonely.state(), State::Down);
        assert!(lonely.try_recv().is_none(), "the lonely session left Down");
        // Every forgery was refused by authentication. (A stale-sequence one with the right key
        // would pass only if its number fell into the 9-wide window after a's random
        // bfd.RcvAuthSeq: about 2^-28 per packet.)
        assert!(
            a.auth_failures() >= sent,
            "{} of {sent} forgeries counted",
            a.auth_failures()
        );
        assert_eq!(lonely.auth_failures(), 80);
        assert_eq!(b.auth_failures(), 0, "b never saw a forgery");
    });
}

//! Unit tests of the session state machine, driven by inputs and a simulated clock.

use super::*;
use crate::bfd::auth::AuthState;
use crate::config::BfdAuthType;

const MS: Duration = Duration::from_millis(1);

fn cfg(tx_ms: u32, rx_ms: u32, mult: u8) -> SessionConfig {
    SessionConfig::new(tx_ms * MS, rx_ms * MS, mult).expect("valid config")
}

fn session(now: Instant) -> Session {
    Session::new(0x1111, cfg(300, 300, 3), Prng::new(7), now).expect("session")
}

/// A packet from the remote end (discriminator 0x2222) in `state`.
fn remote(state: State) -> Repr {
    Repr {
        diagnostic: Diagnostic::NoDiagnostic,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x2222,
        your_discriminator: if state == State::Down || state == State::AdminDown {
            0
        } else {
            0x1111
        },
        desired_min_tx: 300_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
        auth: None,
    }
}

fn sends(out: &[Output]) -> Vec<&Repr> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(r) => Some(r),
            Output::StateChanged { .. } => None,
        })
        .collect()
}

fn changes(out: &[Output]) -> Vec<(State, State, Diagnostic)> {
    out.iter()
        .filter_map(|o| match o {
            Output::StateChanged {
                from,
                to,
                diagnostic,
            } => Some((*from, *to, *diagnostic)),
            Output::Send(_) => None,
        })
        .collect()
}

fn recv(s: &mut Session, now: Instant, repr: Repr) -> Vec<Output> {
    s.handle(now, Input::Received(repr)).expect("accepted")
}

/// Brings `s` to `state` through the handshake.
fn drive_to(s: &mut Session, now: Instant, state: State) {
    match state {
        State::Down => {}
        State::Init => {
            recv(s, now, remote(State::Down));
        }
        State::Up => {
            recv(s, now, remote(State::Init));
        }
        State::AdminDown => {
            s.handle(now, Input::AdminDown).expect("admin down");
        }
    }
    assert_eq!(s.state(), state);
}

#[test]
fn new_session_sends_a_slow_down_packet_at_once() {
    let t0 = Instant::now();
    let mut s = session(t0);
    assert_eq!(s.poll_timeout(), Some(t0));
    let out = s.handle_timeout(t0);
    let sent = sends(&out);
    assert_eq!(sent.len(), 1);
    let p = sent[0];
    assert_eq!(p.state, State::Down);
    assert_eq!(p.my_discriminator, 0x1111);
    assert_eq!(p.your_discriminator, 0);
    assert_eq!(
        p.desired_min_tx, SLOW_TX_US,
        "§6.8.3 slow rate while not Up"
    );
    assert_eq!(p.required_min_rx, 300_000);
    assert_eq!(p.detect_mult, 3);
    assert!(!p.poll && !p.final_);
    // Remote Min RX starts at 1 µs, so the slow 1 s rate (jittered) governs.
    let next = s.poll_timeout().expect("next tx");
    assert!(
        next >= t0 + 750 * MS && next <= t0 + 1000 * MS,
        "{:?}",
        next - t0
    );
}

#[test]
fn zero_discriminator_or_timers_are_rejected() {
    let t0 = Instant::now();
    assert!(Session::new(0, cfg(300, 300, 3), Prng::new(1), t0).is_err());
    assert!(SessionConfig::new(Duration::ZERO, 300 * MS, 3).is_err());
    assert!(SessionConfig::new(300 * MS, Duration::ZERO, 3).is_err());
    assert!(SessionConfig::new(300 * MS, 300 * MS, 0).is_err());
    assert!(SessionConfig::new(Duration::from_secs(5000), 300 * MS, 3).is_err());
    let from_file = BfdConfig {
        min_tx_ms: 100,
        min_rx_ms: 200,
        multiplier: 5,
        multihop: false,
        authentication: None,
    };
    let c = SessionConfig::try_from(&from_file).expect("valid");
    assert_eq!(
        (c.desired_min_tx(), c.required_min_rx(), c.detect_mult()),
        (100 * MS, 200 * MS, 5)
    );
}

/// Every (local state, received state) pair of §6.8.6, with the expected new state and diag.
#[test]
fn reception_transition_table() {
    use State::*;
    let nbr = Diagnostic::NeighborSignaledSessionDown;
    let none = Diagnostic::NoDiagnostic;
    let table = [
        (Down, AdminDown, Down, None),
        (Down, Down, Init, Some(none)),
        (Down, Init, Up, Some(none)),
        (Down, Up, Down, None),
        (Init, AdminDown, Down, Some(nbr)),
        (Init, Down, Init, None),
        (Init, Init, Up, Some(none)),
        (Init, Up, Up, Some(none)),
        (Up, AdminDown, Down, Some(nbr)),
        (Up, Down, Down, Some(nbr)),
        (Up, Init, Up, None),
        (Up, Up, Up, None),
        (AdminDown, AdminDown, AdminDown, None),
        (AdminDown, Down, AdminDown, None),
        (AdminDown, Init, AdminDown, None),
        (AdminDown, Up, AdminDown, None),
    ];
    for (local, received, expected, change) in table {
        let t0 = Instant::now();
        let mut s = session(t0);
        drive_to(&mut s, t0, local);
        let out = recv(&mut s, t0, remote(received));
        assert_eq!(s.state(), expected, "{local} + {received}");
        let expected_changes: Vec<_> = change.map(|d| (local, expected, d)).into_iter().collect();
        assert_eq!(changes(&out), expected_changes, "{local} + {received}");
        // The remote variables are learned whatever the local state.
        assert_eq!(s.remote_state(), received);
        assert_eq!(s.remote_discriminator(), 0x2222);
    }
}

#[test]
fn two_sessions_complete_the_three_way_handshake_and_detect_silence() {
    let t0 = Instant::now();
    let mut a = Session::new(1, cfg(100, 100, 3), Prng::new(1), t0).expect("a");
    let mut b = Session::new(2, cfg(100, 100, 3), Prng::new(2), t0).expect("b");
    let mut now = t0;
    let mut a_changes = Vec::new();
    let mut b_changes = Vec::new();
    // Exchange packets with zero delay until both are Up and their polls have finished.
    for _ in 0..200 {
        let next = [a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a timer");
        now = next;
        let mut to_b: Vec<Repr> = sends(&a.handle_timeout(now)).into_iter().cloned().collect();
        let mut to_a: Vec<Repr> = sends(&b.handle_timeout(now)).into_iter().cloned().collect();
        while !to_a.is_empty() || !to_b.is_empty() {
            for p in std::mem::take(&mut to_b) {
                let out = recv(&mut b, now, p);
                b_changes.extend(changes(&out));
                to_a.extend(sends(&out).into_iter().cloned());
            }
            for p in std::mem::take(&mut to_a) {
                let out = recv(&mut a, now, p);
                a_changes.extend(changes(&out));
                to_b.extend(sends(&out).into_iter().cloned());
            }
        }
        if a.state() == State::Up
            && b.state() == State::Up
            && !a.poll_in_progress()
            && !b.poll_in_progress()
        {
            break;
        }
    }
    assert_eq!((a.state(), b.state()), (State::Up, State::Up));
    assert!(
        !a.poll_in_progress() && !b.poll_in_progress(),
        "polls finish"
    );
    assert_eq!((a.remote_discriminator(), b.remote_discriminator()), (2, 1));
    // Down → Init → Up on at least one side; both end Up with no diagnostic.
    assert!(
        a_changes
            .iter()
            .chain(&b_changes)
            .any(|c| c.1 == State::Init)
    );
    assert_eq!(a_changes.last().map(|c| c.1), Some(State::Up));
    assert_eq!(b_changes.last().map(|c| c.1), Some(State::Up));
    // Handshake at the slow 1 s rate: at most a few seconds of simulated time.
    assert!(now - t0 < Duration::from_secs(4), "{:?}", now - t0);
    // Fast rate once Up and polled.
    assert_eq!(a.tx_interval(), Some(100 * MS));
    assert_eq!(a.detection_time(), Some(300 * MS));

    // b goes silent: a declares it down exactly one detection time after the last packet.
    let last_rx = now;
    loop {
        let t = a.poll_timeout().expect("timer");
        let out = a.handle_timeout(t);
        if let Some(c) = changes(&out).first() {
            assert_eq!(
                *c,
                (
                    State::Up,
                    State::Down,
                    Diagnostic::ControlDetectionTimeExpired
                )
            );
            assert_eq!(t - last_rx, 300 * MS);
            break;
        }
        assert!(t - last_rx <= 300 * MS, "detection overdue");
    }
    assert_eq!(a.remote_discriminator(), 0, "§6.8.1 RemoteDiscr zeroed");
    // Back to the slow rate, with the diagnostic in the packets.
    let p = sends(&a.handle_timeout(a.poll_timeout().expect("tx")))
        .pop()
        .cloned();
    let p = p.expect("periodic packet");
    assert_eq!(
        (
            p.state,
            p.diagnostic,
            p.desired_min_tx,
            p.your_discriminator
        ),
        (
            State::Down,
            Diagnostic::ControlDetectionTimeExpired,
            SLOW_TX_US,
            0
        )
    );
}

#[test]
fn detection_time_uses_remote_multiplier_and_larger_interval() {
    let t0 = Instant::now();
    let mut s = session(t0);
    assert_eq!(s.detection_time(), None);
    assert_eq!(
        s.poll_timeout(),
        Some(t0),
        "no detection before the first packet"
    );
    let mut p = remote(State::Down);
    p.detect_mult = 5;
    p.desired_min_tx = 200_000;
    recv(&mut s, t0, p.clone());
    // 5 × max(our 300 ms, their 200 ms).
    assert_eq!(s.detection_time(), Some(1500 * MS));
    p.desired_min_tx = 400_000;
    recv(&mut s, t0, p);
    assert_eq!(s.detection_time(), Some(2000 * MS));
}

#[test]
fn detection_expiry_in_init_goes_down_and_in_down_only_forgets_the_remote() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_timeout(t0);
    drive_to(&mut s, t0, State::Init);
    let deadline = t0 + 900 * MS;
    // Not yet.
    assert!(changes(&s.handle_timeout(deadline - MS)).is_empty());
    assert_eq!(s.state(), State::Init);
    let out = s.handle_timeout(deadline);
    assert_eq!(
        changes(&out),
        vec![(
            State::Init,
            State::Down,
            Diagnostic::ControlDetectionTimeExpired
        )]
    );

    let mut s = session(t0);
    s.handle_timeout(t0);
    recv(&mut s, t0, remote(State::Up)); // stays Down
    assert_eq!(s.remote_discriminator(), 0x2222);
    let out = s.handle_timeout(deadline);
    assert!(changes(&out).is_empty());
    assert_eq!((s.state(), s.remote_discriminator()), (State::Down, 0));
}

#[test]
fn every_packet_restarts_the_detection_timer() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_timeout(t0);
    drive_to(&mut s, t0, State::Up);
    for i in 1..10u32 {
        recv(&mut s, t0 + i * 800 * MS, remote(State::Up));
        assert!(changes(&s.handle_timeout(t0 + i * 800 * MS + 899 * MS)).is_empty());
    }
    assert_eq!(s.state(), State::Up);
}

#[test]
fn reaching_up_starts_a_poll_for_the_faster_rate_and_final_ends_it() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_timeout(t0);
    drive_to(&mut s, t0, State::Up);
    assert!(s.poll_in_progress());
    // The decrease from 1 s to 300 ms takes effect at once.
    assert_eq!(s.tx_interval(), Some(300 * MS));
    let next = s.poll_timeout().expect("tx");
    assert!(next <= t0 + 300 * MS, "next packet brought forward");
    let p = sends(&s.handle_timeout(next))
        .pop()
        .cloned()
        .expect("packet");
    assert!(p.poll && !p.final_);
    assert_eq!((p.state, p.desired_min_tx), (State::Up, 300_000));
    // Periodic packets keep P until the Final arrives.
    let p2 = sends(&s.handle_timeout(s.poll_timeout().expect("tx")))
        .pop()
        .cloned()
        .expect("packet");
    assert!(p2.poll);
    let mut f = remote(State::Up);
    f.final_ = true;
    recv(&mut s, next, f);
    assert!(!s.poll_in_progress());
    let p3 = sends(&s.handle_timeout(s.poll_timeout().expect("tx")))
        .pop()
        .cloned()
        .expect("packet");
    assert!(!p3.poll);
}

#[test]
fn a_slow_configured_rate_needs_no_poll_on_up() {
    let t0 = Instant::now();
    let mut s = Session::new(0x1111, cfg(2000, 300, 3), Prng::new(3), t0).expect("s");
    drive_to(&mut s, t0, State::Up);
    assert!(!s.poll_in_progress());
    assert_eq!(s.tx_interval(), Some(2000 * MS));
}

#[test]
fn poll_gets_an_immediate_final_without_poll() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_timeout(t0);
    drive_to(&mut s, t0, State::Up);
    assert!(s.poll_in_progress(), "our own poll runs too");
    let mut p = remote(State::Up);
    p.poll = true;
    let out = recv(&mut s, t0 + MS, p);
    let sent = sends(&out);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].final_ && !sent[0].poll, "P and F never together");
    assert_eq!(sent[0].your_discriminator, 0x2222);
    // A Final with no poll of ours outstanding changes nothing.
    let mut f = remote(State::Up);
    f.final_ = true;
    recv(&mut s, t0 + 2 * MS, f.clone());
    recv(&mut s, t0 + 3 * MS, f);
    assert!(!s.poll_in_progress());
}

#[test]
fn increased_tx_interval_waits_for_the_final() {
    let t0 = Instant::now();
    let mut s = session(t0);
    drive_to(&mut s, t0, State::Up);
    let mut f = remote(State::Up);
    f.final_ = true;
    recv(&mut s, t0, f.clone());
    assert_eq!(s.tx_interval(), Some(300 * MS));
    s.handle(t0, Input::SetConfig(cfg(600, 300, 3)))
        .expect("config");
    assert!(s.poll_in_progress());
    assert_eq!(s.tx_interval(), Some(300 * MS), "old rate until Final");
    let p = sends(&s.handle_timeout(s.poll_timeout().expect("tx")))
        .pop()
        .cloned()
        .expect("packet");
    assert!(p.poll);
    assert_eq!(p.desired_min_tx, 600_000, "new value advertised at once");
    recv(&mut s, t0 + MS, f);
    assert_eq!(s.tx_interval(), Some(600 * MS));
}

#[test]
fn decreased_rx_interval_keeps_the_old_detection_time_until_the_final() {
    let t0 = Instant::now();
    let mut s = session(t0);
    drive_to(&mut s, t0, State::Up);
    let mut f = remote(State::Up);
    f.final_ = true;
    f.desired_min_tx = 50_000;
    recv(&mut s, t0, f.clone());
    assert_eq!(s.detection_time(), Some(900 * MS));
    s.handle(t0, Input::SetConfig(cfg(300, 100, 3)))
        .expect("config");
    let mut up = remote(State::Up);
    up.desired_min_tx = 50_000;
    recv(&mut s, t0 + MS, up);
    assert_eq!(s.detection_time(), Some(900 * MS), "old Required Min RX");
    recv(&mut s, t0 + 2 * MS, f);
    assert_eq!(s.detection_time(), Some(300 * MS));
}

#[test]
fn a_change_during_a_poll_starts_another_poll_after_the_final() {
    let t0 = Instant::now();
    let mut s = session(t0);
    drive_to(&mut s, t0, State::Up);
    assert!(s.poll_in_progress());
    s.handle(t0, Input::SetConfig(cfg(200, 300, 3)))
        .expect("config");
    let mut f = remote(State::Up);
    f.final_ = true;
    // Let our Desired Min TX govern the transmit interval.
    f.required_min_rx = 100_000;
    recv(&mut s, t0 + MS, f.clone());
    assert!(s.poll_in_progress(), "second poll for the second change");
    recv(&mut s, t0 + 2 * MS, f);
    assert!(!s.poll_in_progress());
    assert_eq!(s.tx_interval(), Some(200 * MS));
}

#[test]
fn config_change_while_down_applies_without_poll() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle(t0, Input::SetConfig(cfg(100, 50, 2)))
        .expect("config");
    assert!(!s.poll_in_progress());
    let p = sends(&s.handle_timeout(t0)).pop().cloned().expect("packet");
    assert_eq!(
        (p.desired_min_tx, p.required_min_rx, p.detect_mult),
        (SLOW_TX_US, 50_000, 2)
    );
}

#[test]
fn transmit_interval_honours_the_remote_required_min_rx() {
    let t0 = Instant::now();
    let mut s = session(t0);
    drive_to(&mut s, t0, State::Up);
    let mut p = remote(State::Up);
    p.final_ = true;
    p.required_min_rx = 2_000_000;
    recv(&mut s, t0, p);
    assert_eq!(s.tx_interval(), Some(2000 * MS));
}

#[test]
fn zero_remote_min_rx_stops_periodic_transmission_but_not_finals() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_timeout(t0);
    let mut p = remote(State::Down);
    p.required_min_rx = 0;
    recv(&mut s, t0, p.clone());
    assert_eq!(s.tx_interval(), None);
    // Only the detection timer remains.
    assert_eq!(s.poll_timeout(), Some(t0 + 900 * MS));
    p.poll = true;
    p.your_discriminator = 0x1111;
    p.state = State::Init;
    let out = recv(&mut s, t0 + MS, p.clone());
    assert!(sends(&out).iter().any(|r| r.final_));
    // The remote asks for packets again: one goes out right away.
    p.poll = false;
    p.required_min_rx = 300_000;
    recv(&mut s, t0 + 2 * MS, p);
    assert_eq!(s.poll_timeout(), Some(t0 + 2 * MS));
}

fn periodic_gaps(mult: u8, seed: u64) -> Vec<Duration> {
    let t0 = Instant::now();
    let mut s = Session::new(9, cfg(1000, 1000, mult), Prng::new(seed), t0).expect("s");
    let mut last = None;
    let mut gaps = Vec::new();
    for _ in 0..400 {
        let t = s.poll_timeout().expect("tx");
        if !sends(&s.handle_timeout(t)).is_empty() {
            if let Some(l) = last {
                gaps.push(t - l);
            }
            last = Some(t);
        }
    }
    gaps
}

#[test]
fn periodic_transmission_is_jittered_between_75_and_100_percent() {
    let gaps = periodic_gaps(3, 11);
    assert!(gaps.len() > 300);
    assert!(gaps.iter().all(|g| *g >= 750 * MS && *g <= 1000 * MS));
    assert!(gaps.iter().any(|g| *g < 800 * MS) && gaps.iter().any(|g| *g > 950 * MS));
}

#[test]
fn detect_mult_one_caps_jitter_at_90_percent() {
    let gaps = periodic_gaps(1, 11);
    assert!(gaps.iter().all(|g| *g >= 750 * MS && *g <= 900 * MS));
    assert!(gaps.iter().any(|g| *g > 880 * MS));
}

#[test]
fn jitter_is_deterministic_per_seed() {
    assert_eq!(periodic_gaps(3, 5), periodic_gaps(3, 5));
    assert_ne!(periodic_gaps(3, 5), periodic_gaps(3, 6));
}

#[test]
fn slow_rate_while_not_up_even_with_a_fast_peer() {
    let t0 = Instant::now();
    let mut s = Session::new(9, cfg(50, 50, 3), Prng::new(1), t0).expect("s");
    s.handle_timeout(t0);
    let mut p = remote(State::Down);
    p.required_min_rx = 10_000;
    recv(&mut s, t0, p);
    assert_eq!(s.state(), State::Init);
    assert_eq!(s.tx_interval(), Some(Duration::from_secs(1)));
}

#[test]
fn authenticated_or_misaddressed_packets_are_discarded_without_effect() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let mut p = remote(State::Down);
    p.auth = crate::bfd::packet::AuthSection::new(1, b"\x01pw".to_vec());
    assert_eq!(s.handle(t0, Input::Received(p)), Err(Error::AuthUnexpected));
    let mut p = remote(State::Up);
    p.your_discriminator = 0x9999;
    assert_eq!(
        s.handle(t0, Input::Received(p)),
        Err(Error::UnknownDiscriminator(0x9999))
    );
    assert_eq!((s.state(), s.remote_discriminator()), (State::Down, 0));
    assert_eq!(s.detection_time(), None);
}

#[test]
fn admin_down_signals_the_peer_and_stops_detection_until_admin_up() {
    let t0 = Instant::now();
    let mut s = session(t0);
    drive_to(&mut s, t0, State::Up);
    let out = s.handle(t0, Input::AdminDown).expect("admin");
    assert_eq!(
        changes(&out),
        vec![(
            State::Up,
            State::AdminDown,
            Diagnostic::AdministrativelyDown
        )]
    );
    let p = sends(&s.handle_timeout(s.poll_timeout().expect("tx")))
        .pop()
        .cloned()
        .expect("packet");
    assert_eq!(
        (p.state, p.diagnostic, p.poll, p.desired_min_tx),
        (
            State::AdminDown,
            Diagnostic::AdministrativelyDown,
            false,
            SLOW_TX_US
        )
    );
    // No detection in AdminDown, even long after the last packet.
    let far = t0 + Duration::from_secs(60);
    recv(&mut s, t0, remote(State::Up));
    let mut t = t0;
    while t < far {
        t = s.poll_timeout().expect("tx keeps going");
        assert!(changes(&s.handle_timeout(t)).is_empty());
    }
    assert_eq!(s.state(), State::AdminDown);
    let out = s.handle(far, Input::AdminUp).expect("up");
    assert_eq!(
        changes(&out),
        vec![(State::AdminDown, State::Down, Diagnostic::NoDiagnostic)]
    );
    // Repeating either is a no-op.
    assert!(s.handle(far, Input::AdminUp).expect("up").is_empty());
}

fn authenticated(now: Instant, local: u32, auth_type: BfdAuthType, secret: &[u8]) -> Session {
    Session::new(local, cfg(300, 300, 3), Prng::new(u64::from(local)), now)
        .expect("session")
        .with_authentication(AuthKey::new(auth_type, 1, secret).expect("key"))
}

/// Runs two authenticated sessions against each other for `duration`, delivering every packet
/// (each must be signed); returns the last time reached.
fn exchange(a: &mut Session, b: &mut Session, from: Instant, duration: Duration) -> Instant {
    let mut now = from;
    let end = from + duration;
    while now < end {
        let next = [a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("timers");
        now = next.max(now);
        let mut to_b: Vec<Repr> = Vec::new();
        let mut to_a: Vec<Repr> = Vec::new();
        to_b.extend(sends(&a.handle_timeout(now)).into_iter().cloned());
        to_a.extend(sends(&b.handle_timeout(now)).into_iter().cloned());
        while !to_a.is_empty() || !to_b.is_empty() {
            for r in std::mem::take(&mut to_b) {
                assert!(r.auth.is_some(), "unsigned packet {r:?}");
                let out = b.handle(now, Input::Received(r)).expect("b accepts a");
                to_a.extend(sends(&out).into_iter().cloned());
            }
            for r in std::mem::take(&mut to_a) {
                assert!(r.auth.is_some(), "unsigned packet {r:?}");
                let out = a.handle(now, Input::Received(r)).expect("a accepts b");
                to_b.extend(sends(&out).into_iter().cloned());
            }
        }
    }
    now
}

#[test]
fn authenticated_sessions_sign_every_packet_and_come_up() {
    for t in [BfdAuthType::KeyedSha1, BfdAuthType::MeticulousKeyedSha1] {
        let t0 = Instant::now();
        let mut a = authenticated(t0, 0x1111, t, b"secret");
        let mut b = authenticated(t0, 0x2222, t, b"secret");
        let now = exchange(&mut a, &mut b, t0, Duration::from_secs(5));
        assert_eq!((a.state(), b.state()), (State::Up, State::Up), "{t:?}");
        // `exchange` checked that every packet, Finals included, carried a section.
        assert!(now > t0);
        assert!(
            a.authentication()
                .and_then(|s| s.received_sequence())
                .is_some()
        );
    }
}

#[test]
fn unauthenticated_or_wrongly_keyed_packets_neither_bring_a_session_up_nor_down() {
    let t0 = Instant::now();
    let t = BfdAuthType::MeticulousKeyedSha1;
    // Down: forged Down and Init packets (right discriminators) must not start the handshake.
    let mut s = authenticated(t0, 0x1111, t, b"secret");
    for state in [State::Down, State::Init] {
        let mut forged = remote(state);
        assert_eq!(
            s.handle(t0, Input::Received(forged.clone())),
            Err(Error::AuthMissing)
        );
        // Signed, with a guessed key.
        let mut guess = AuthState::new(AuthKey::new(t, 1, b"guessed").expect("key"), 3);
        guess.sign(t0, &mut forged);
        assert_eq!(
            s.handle(t0, Input::Received(forged)),
            Err(Error::AuthDigest)
        );
    }
    assert_eq!(s.state(), State::Down);
    assert_eq!(
        s.detection_time(),
        None,
        "nothing was learned from the forgeries"
    );

    // Up: a forged AdminDown / Down with the right discriminators changes nothing either.
    let mut a = authenticated(t0, 0x1111, t, b"secret");
    let mut b = authenticated(t0, 0x2222, t, b"secret");
    let now = exchange(&mut a, &mut b, t0, Duration::from_secs(5));
    assert_eq!(a.state(), State::Up);
    let deadline = a.poll_timeout();
    for state in [State::AdminDown, State::Down] {
        let mut forged = remote(state);
        forged.your_discriminator = 0x1111;
        assert_eq!(
            a.handle(now, Input::Received(forged.clone())),
            Err(Error::AuthMissing)
        );
        let mut wrong = AuthState::new(AuthKey::new(t, 1, b"guessed").expect("key"), 0);
        wrong.sign(now, &mut forged);
        assert!(a.handle(now, Input::Received(forged)).is_err());
    }
    assert_eq!(a.state(), State::Up);
    assert_eq!(a.poll_timeout(), deadline, "no timer was restarted");
    // And a replay of b's own earlier packet is refused (meticulous: no repeats).
    let replayed = b.control_packet(now);
    assert_eq!(
        a.handle(now, Input::Received(replayed.clone())).map(|_| ()),
        Ok(())
    );
    assert!(matches!(
        a.handle(now, Input::Received(replayed)),
        Err(Error::AuthSequence { .. })
    ));
}

#[test]
fn a_session_without_authentication_refuses_signed_packets() {
    let t0 = Instant::now();
    let mut plain = session(t0);
    let mut signer = authenticated(t0, 0x2222, BfdAuthType::KeyedSha1, b"secret");
    let packet = signer.control_packet(t0);
    assert_eq!(
        plain.handle(t0, Input::Received(packet)),
        Err(Error::AuthUnexpected)
    );
    assert_eq!(plain.state(), State::Down);
}

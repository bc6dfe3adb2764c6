//! Transition tests of the FSM: every row drives the FSM into a state, feeds one input and checks
//! the new state and the outputs, in the spirit of RFC 4271 §8.2.2's per-state event lists.

use super::*;
use bgp_proto::update::Update;

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn config() -> FsmConfig {
    let mut c = FsmConfig::new(65001, LOCAL_ID, PeerAsn::Number(65002));
    c.hold_time = 9;
    c.connect_retry = Duration::from_secs(2);
    c.capabilities = vec![Capability::Multiprotocol(bgp_proto::Family::IPV4_UNICAST)];
    c
}

fn peer_open(asn: u32, id: Ipv4Addr, hold: u16) -> Open {
    Open::new(
        asn,
        hold,
        id,
        vec![
            Capability::Multiprotocol(bgp_proto::Family::IPV4_UNICAST),
            Capability::FourOctetAs(asn),
        ],
    )
}

/// A simplified view of an output, for tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dial,
    Abort,
    SendOpen,
    SendKeepalive,
    SendNotification(u8, u8),
    SendOther,
    Close,
    Up,
    Down,
    Received,
}

fn kinds(outputs: &[Output]) -> Vec<Kind> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Connect => Some(Kind::Dial),
            Output::AbortConnect => Some(Kind::Abort),
            Output::Send(_, Message::Open(_)) => Some(Kind::SendOpen),
            Output::Send(_, Message::Keepalive) => Some(Kind::SendKeepalive),
            Output::Send(_, Message::Notification(n)) => {
                Some(Kind::SendNotification(n.code.into(), n.subcode))
            }
            Output::Send(..) => Some(Kind::SendOther),
            Output::Close(_) => Some(Kind::Close),
            Output::Established { .. } => Some(Kind::Up),
            Output::Down { .. } => Some(Kind::Down),
            Output::Received(_) => Some(Kind::Received),
            Output::StateChange { .. } => None,
        })
        .collect()
}

struct Harness {
    fsm: Fsm,
    now: Instant,
}

const CONN: ConnId = 1;

impl Harness {
    fn new(config: FsmConfig) -> Self {
        Self {
            fsm: Fsm::new(config),
            now: Instant::now(),
        }
    }

    fn step(&mut self, input: Input) -> Vec<Output> {
        self.fsm.handle(self.now, input)
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Fires `timer` at its deadline.
    fn fire(&mut self, timer: Timer) -> Vec<Output> {
        let at = self.fsm.deadline(timer).expect("timer armed");
        self.now = self.now.max(at);
        self.step(Input::TimerExpired(timer))
    }

    /// Drives a fresh FSM into `state` over connection [`CONN`].
    fn into_state(state: State) -> Self {
        let mut h = Self::new(config());
        if state == State::Idle {
            return h;
        }
        h.step(Input::Start);
        if state == State::Connect {
            return h;
        }
        if state == State::Active {
            h.step(Input::ConnectFailed);
            return h;
        }
        h.step(Input::Connected(CONN, Direction::Outbound));
        if state == State::OpenSent {
            return h;
        }
        h.step(Input::Received(
            CONN,
            Message::Open(peer_open(65002, PEER_ID, 30)),
        ));
        if state == State::OpenConfirm {
            return h;
        }
        h.step(Input::Received(CONN, Message::Keepalive));
        assert_eq!(h.fsm.state(), State::Established);
        h
    }
}

fn open_msg() -> Input {
    Input::Received(CONN, Message::Open(peer_open(65002, PEER_ID, 30)))
}

fn update_msg() -> Input {
    Input::Received(CONN, Message::Update(Update::default()))
}

fn notification_msg() -> Input {
    Input::Received(
        CONN,
        Message::Notification(Notification::cease(CeaseSubcode::AdministrativeReset)),
    )
}

fn stop() -> Input {
    Input::Stop {
        notification: Notification::shutdown(CeaseSubcode::AdministrativeShutdown, "maintenance")
            .expect("short message"),
    }
}

#[test]
fn transition_table() {
    use Kind::*;
    use State::*;
    // (from, input, to, outputs that must appear in this order)
    let table: Vec<(State, Input, State, Vec<Kind>)> = vec![
        // Idle: only start events do something; connections are refused.
        (Idle, Input::Start, Connect, vec![Dial]),
        (
            Idle,
            Input::Connected(CONN, Direction::Inbound),
            Idle,
            vec![Close],
        ),
        (Idle, open_msg(), Idle, vec![]),
        (Idle, Input::ConnectFailed, Idle, vec![]),
        (Idle, stop(), Idle, vec![]),
        // Connect.
        (Connect, Input::Start, Connect, vec![]),
        (
            Connect,
            Input::Connected(CONN, Direction::Outbound),
            OpenSent,
            vec![SendOpen],
        ),
        (
            Connect,
            Input::Connected(CONN, Direction::Inbound),
            OpenSent,
            vec![Abort, SendOpen],
        ),
        (Connect, Input::ConnectFailed, Active, vec![]),
        (Connect, stop(), Idle, vec![Abort]),
        // Active.
        (
            Active,
            Input::Connected(CONN, Direction::Inbound),
            OpenSent,
            vec![Abort, SendOpen],
        ),
        (Active, Input::Start, Active, vec![]),
        (Active, stop(), Idle, vec![Abort]),
        // OpenSent.
        (OpenSent, open_msg(), OpenConfirm, vec![SendKeepalive]),
        (
            OpenSent,
            Input::Received(CONN, Message::Keepalive),
            Idle,
            vec![SendNotification(5, 1), Close, Abort],
        ),
        (
            OpenSent,
            update_msg(),
            Idle,
            vec![SendNotification(5, 1), Close],
        ),
        (OpenSent, notification_msg(), Idle, vec![Close]),
        (OpenSent, Input::Disconnected(CONN), Active, vec![Close]),
        (
            OpenSent,
            Input::Malformed(CONN, Notification::new(ErrorCode::MessageHeader, 2)),
            Idle,
            vec![SendNotification(1, 2), Close],
        ),
        (OpenSent, stop(), Idle, vec![SendNotification(6, 2), Close]),
        (
            OpenSent,
            Input::Received(CONN, Message::Open(peer_open(65003, PEER_ID, 30))),
            Idle,
            vec![SendNotification(2, 2), Close],
        ),
        // OpenConfirm.
        (
            OpenConfirm,
            Input::Received(CONN, Message::Keepalive),
            Established,
            vec![Up],
        ),
        (
            OpenConfirm,
            open_msg(),
            Idle,
            vec![SendNotification(5, 2), Close],
        ),
        (
            OpenConfirm,
            update_msg(),
            Idle,
            vec![SendNotification(5, 2), Close],
        ),
        (OpenConfirm, notification_msg(), Idle, vec![Close]),
        (OpenConfirm, Input::Disconnected(CONN), Idle, vec![Close]),
        (
            OpenConfirm,
            stop(),
            Idle,
            vec![SendNotification(6, 2), Close],
        ),
        // Established.
        (Established, update_msg(), Established, vec![Received]),
        (
            Established,
            Input::Received(CONN, Message::Keepalive),
            Established,
            vec![],
        ),
        (
            Established,
            open_msg(),
            Idle,
            vec![SendNotification(5, 3), Close, Abort, Down],
        ),
        (
            Established,
            notification_msg(),
            Idle,
            vec![Close, Abort, Down],
        ),
        (
            Established,
            Input::Disconnected(CONN),
            Idle,
            vec![Close, Abort, Down],
        ),
        (
            Established,
            Input::Malformed(CONN, Notification::new(ErrorCode::Update, 1)),
            Idle,
            vec![SendNotification(3, 1), Close, Abort, Down],
        ),
        (
            Established,
            Input::Connected(2, Direction::Inbound),
            Established,
            vec![SendNotification(6, 7), Close],
        ),
        (
            Established,
            stop(),
            Idle,
            vec![SendNotification(6, 2), Close, Abort, Down],
        ),
        (
            Established,
            Input::Reset {
                notification: Notification::cease(CeaseSubcode::MaxPrefixes),
                reason: "max prefixes".into(),
            },
            Idle,
            vec![SendNotification(6, 1), Close, Abort, Down],
        ),
    ];
    for (row, (from, input, to, expected)) in table.into_iter().enumerate() {
        let mut h = Harness::into_state(from);
        let described = format!("{input:?}");
        let outputs = h.step(input);
        assert_eq!(h.fsm.state(), to, "row {row}: {from:?} + {described}");
        let got = kinds(&outputs);
        // `expected` must appear in order as a subsequence of what came out.
        let mut it = got.iter();
        for want in &expected {
            assert!(
                it.any(|k| k == want),
                "row {row}: {from:?} + {described}: expected {expected:?} in {got:?}"
            );
        }
    }
}

#[test]
fn timer_table() {
    use Kind::*;
    use State::*;
    let table = [
        (Connect, Timer::ConnectRetry, Connect, vec![Abort, Dial]),
        (Active, Timer::ConnectRetry, Connect, vec![Abort, Dial]),
        (
            OpenSent,
            Timer::Hold,
            Idle,
            vec![SendNotification(4, 0), Close, Abort],
        ),
        (
            OpenConfirm,
            Timer::Hold,
            Idle,
            vec![SendNotification(4, 0), Close, Abort],
        ),
        (
            OpenConfirm,
            Timer::Keepalive,
            OpenConfirm,
            vec![SendKeepalive],
        ),
        (
            Established,
            Timer::Keepalive,
            Established,
            vec![SendKeepalive],
        ),
        (
            Established,
            Timer::Hold,
            Idle,
            vec![SendNotification(4, 0), Close, Abort, Down],
        ),
    ];
    for (from, timer, to, expected) in table {
        let mut h = Harness::into_state(from);
        let got = kinds(&h.fire(timer));
        assert_eq!(h.fsm.state(), to, "{from:?} + {timer:?}");
        assert_eq!(got, expected, "{from:?} + {timer:?}");
    }
}

#[test]
fn hold_timer_expiry_sends_notification_at_negotiated_time() {
    let mut h = Harness::into_state(State::Established);
    // Negotiated hold time is min(9, 30) = 9 s.
    assert_eq!(h.fsm.timers().0, Duration::from_secs(9));
    let deadline = h.fsm.deadline(Timer::Hold).expect("armed");
    assert_eq!(deadline, h.now + Duration::from_secs(9));
    // A KEEPALIVE 5 s later pushes the deadline.
    h.advance(Duration::from_secs(5));
    h.step(Input::Received(CONN, Message::Keepalive));
    assert_eq!(
        h.fsm.deadline(Timer::Hold),
        Some(h.now + Duration::from_secs(9))
    );
    // An early wake-up does nothing.
    assert!(h.step(Input::TimerExpired(Timer::Hold)).is_empty());
    let out = h.fire(Timer::Hold);
    assert!(out.contains(&Output::Send(
        CONN,
        Message::Notification(Notification::hold_timer_expired())
    )));
    assert_eq!(h.fsm.state(), State::Idle);
}

#[test]
fn keepalive_interval_is_jittered_third_of_hold_time() {
    let h = Harness::into_state(State::Established);
    assert_eq!(h.fsm.timers().1, Duration::from_secs(3));
    let wait = h.fsm.deadline(Timer::Keepalive).expect("armed") - h.now;
    assert!(
        wait >= Duration::from_millis(2250) && wait <= Duration::from_secs(3),
        "{wait:?}"
    );
}

#[test]
fn zero_hold_time_disables_hold_and_keepalive_timers() {
    let mut c = config();
    c.hold_time = 0;
    let mut h = Harness::new(c);
    h.step(Input::Start);
    h.step(Input::Connected(CONN, Direction::Outbound));
    h.step(open_msg());
    h.step(Input::Received(CONN, Message::Keepalive));
    assert_eq!(h.fsm.state(), State::Established);
    assert_eq!(h.fsm.deadline(Timer::Hold), None);
    assert_eq!(h.fsm.deadline(Timer::Keepalive), None);
}

#[test]
fn passive_start_listens_without_connecting() {
    let mut c = config();
    c.passive = true;
    let mut h = Harness::new(c);
    let out = h.step(Input::Start);
    assert_eq!(h.fsm.state(), State::Active);
    assert!(!kinds(&out).contains(&Kind::Dial));
    assert_eq!(h.fsm.deadline(Timer::ConnectRetry), None);
    h.step(Input::Connected(CONN, Direction::Inbound));
    assert_eq!(h.fsm.state(), State::OpenSent);
}

#[test]
fn failures_back_off_and_stable_session_resets_the_backoff() {
    let mut h = Harness::into_state(State::OpenSent);
    let mut waits = Vec::new();
    for _ in 0..4 {
        h.step(Input::Received(CONN, Message::Keepalive)); // FSM error → Idle
        assert_eq!(h.fsm.state(), State::Idle);
        let wait = h.fsm.deadline(Timer::IdleHold).expect("IdleHold armed") - h.now;
        waits.push(wait.as_secs());
        h.fire(Timer::IdleHold);
        assert_eq!(h.fsm.state(), State::Connect, "automatic start");
        h.step(Input::Connected(CONN, Direction::Outbound));
    }
    assert_eq!(waits, vec![1, 2, 4, 8]);
    assert_eq!(
        h.fsm.connect_retry_counter(),
        0,
        "reset by the automatic start"
    );
    // Up for longer than the stable period: the next failure waits the base time again.
    h.step(open_msg());
    h.step(Input::Received(CONN, Message::Keepalive));
    h.advance(Duration::from_secs(61));
    h.step(Input::Received(CONN, Message::Keepalive));
    h.step(Input::Disconnected(CONN));
    assert_eq!(
        h.fsm.deadline(Timer::IdleHold),
        Some(h.now + Duration::from_secs(1))
    );
}

#[test]
fn manual_stop_sends_shutdown_message_and_does_not_restart() {
    let mut h = Harness::into_state(State::Established);
    let out = h.step(stop());
    let sent = out.iter().find_map(|o| match o {
        Output::Send(_, Message::Notification(n)) => Some(n.clone()),
        _ => None,
    });
    assert_eq!(
        sent.as_ref().and_then(Notification::shutdown_communication),
        Some("maintenance")
    );
    assert!(h.fsm.is_admin_down());
    assert_eq!(
        h.fsm.poll_timeout(),
        None,
        "no IdleHold after a manual stop"
    );
    assert!(matches!(
        out.iter().find(|o| matches!(o, Output::Down { .. })),
        Some(Output::Down {
            reason: DownReason::Stopped(_),
            ..
        })
    ));
}

#[test]
fn peer_kinds_and_identifiers_are_checked() {
    // (peer AS setting, peer's AS, peer's id, accepted)
    let table = [
        (PeerAsn::Number(65002), 65002, PEER_ID, true),
        (PeerAsn::Number(65002), 65009, PEER_ID, false),
        (PeerAsn::Kind(PeerKind::External), 65009, PEER_ID, true),
        (PeerAsn::Kind(PeerKind::External), 65001, PEER_ID, false),
        (PeerAsn::Kind(PeerKind::Internal), 65001, PEER_ID, true),
        (PeerAsn::Kind(PeerKind::Internal), 65001, LOCAL_ID, false),
        (PeerAsn::Number(4_200_000_000), 4_200_000_000, PEER_ID, true),
    ];
    for (setting, asn, id, accepted) in table {
        let mut c = config();
        c.peer_asn = setting;
        let mut h = Harness::new(c);
        h.step(Input::Start);
        h.step(Input::Connected(CONN, Direction::Outbound));
        let out = h.step(Input::Received(CONN, Message::Open(peer_open(asn, id, 30))));
        assert_eq!(
            h.fsm.state() == State::OpenConfirm,
            accepted,
            "{setting:?} vs AS {asn} id {id}: {:?}",
            kinds(&out)
        );
        if !accepted {
            assert!(
                kinds(&out)
                    .iter()
                    .any(|k| matches!(k, Kind::SendNotification(2, 2 | 3)))
            );
        }
    }
}

#[test]
fn no_common_family_is_unsupported_capability() {
    let mut h = Harness::into_state(State::OpenSent);
    let open = Open::new(
        65002,
        30,
        PEER_ID,
        vec![Capability::Multiprotocol(bgp_proto::Family::IPV6_UNICAST)],
    );
    let out = h.step(Input::Received(CONN, Message::Open(open)));
    assert!(kinds(&out).contains(&Kind::SendNotification(2, 7)));
}

#[test]
fn collision_keeps_connection_opened_by_higher_identifier() {
    // Our id 10.0.0.1 < peer's 10.0.0.2: the peer's (inbound) connection survives.
    let mut h = Harness::into_state(State::OpenConfirm);
    let out = h.step(Input::Connected(2, Direction::Inbound));
    assert!(kinds(&out).contains(&Kind::SendOpen));
    let out = h.step(Input::Received(
        2,
        Message::Open(peer_open(65002, PEER_ID, 30)),
    ));
    assert!(out.contains(&Output::Send(
        CONN,
        Message::Notification(Notification::cease(
            CeaseSubcode::ConnectionCollisionResolution
        ))
    )));
    assert!(out.contains(&Output::Close(CONN)));
    assert_eq!(h.fsm.connection(), Some(2));
    assert_eq!(h.fsm.state(), State::OpenConfirm);
    h.step(Input::Received(2, Message::Keepalive));
    assert_eq!(h.fsm.state(), State::Established);

    // With a higher local id, our outbound connection survives and the inbound one is closed.
    let mut c = config();
    c.router_id = Ipv4Addr::new(10, 0, 0, 9);
    let mut h = Harness::new(c);
    h.step(Input::Start);
    h.step(Input::Connected(CONN, Direction::Outbound));
    h.step(open_msg());
    h.step(Input::Connected(2, Direction::Inbound));
    let out = h.step(Input::Received(
        2,
        Message::Open(peer_open(65002, PEER_ID, 30)),
    ));
    assert!(out.contains(&Output::Close(2)));
    assert_eq!(h.fsm.connection(), Some(CONN));
    assert_eq!(h.fsm.state(), State::OpenConfirm);
}

#[test]
fn collision_in_open_sent_waits_for_survivors_open() {
    let mut h = Harness::into_state(State::OpenSent);
    h.step(Input::Connected(2, Direction::Inbound));
    // The outbound connection's OPEN arrives first; the peer's id wins, so conn 1 is dumped and
    // the FSM waits in OpenSent for the OPEN on conn 2.
    let out = h.step(open_msg());
    assert!(out.contains(&Output::Close(CONN)));
    assert_eq!(h.fsm.state(), State::OpenSent);
    assert_eq!(h.fsm.connection(), Some(2));
    h.step(Input::Received(
        2,
        Message::Open(peer_open(65002, PEER_ID, 30)),
    ));
    assert_eq!(h.fsm.state(), State::OpenConfirm);
}

#[test]
fn delay_open_waits_then_sends_or_answers_early_open() {
    let mut c = config();
    c.delay_open = Some(Duration::from_secs(3));
    let mut h = Harness::new(c.clone());
    h.step(Input::Start);
    let out = h.step(Input::Connected(CONN, Direction::Outbound));
    assert!(!kinds(&out).contains(&Kind::SendOpen));
    assert_eq!(h.fsm.state(), State::Connect);
    let out = h.fire(Timer::DelayOpen);
    assert_eq!(kinds(&out), vec![Kind::SendOpen]);
    assert_eq!(h.fsm.state(), State::OpenSent);

    // Event 20: the peer's OPEN while DelayOpen runs → our OPEN + KEEPALIVE, OpenConfirm.
    let mut h = Harness::new(c);
    h.step(Input::Start);
    h.step(Input::Connected(CONN, Direction::Outbound));
    let out = h.step(open_msg());
    assert_eq!(kinds(&out), vec![Kind::SendOpen, Kind::SendKeepalive]);
    assert_eq!(h.fsm.state(), State::OpenConfirm);
}

#[test]
fn messages_from_unknown_connections_are_ignored() {
    let mut h = Harness::into_state(State::Established);
    assert!(h.step(Input::Received(77, Message::Keepalive)).is_empty());
    assert!(h.step(Input::Disconnected(77)).is_empty());
    assert_eq!(h.fsm.state(), State::Established);
}

#[test]
fn our_open_carries_four_octet_as_and_configured_hold_time() {
    let mut c = config();
    c.local_asn = 4_200_000_001;
    let fsm = Fsm::new(c);
    assert_eq!(fsm.local_open().asn(), 4_200_000_001);
    assert_eq!(fsm.local_open().my_as, 23456);
    assert_eq!(fsm.local_open().hold_time, 9);
}

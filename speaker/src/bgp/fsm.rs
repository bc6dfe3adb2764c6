//! The BGP finite state machine of one peer (RFC 4271 §8), sans-IO.
//!
//! Owns the six states, the ConnectRetry/Hold/Keepalive/DelayOpen/IdleHold timers (as deadlines,
//! with jitter from a seeded PRNG), the OPEN exchange with capability negotiation through
//! `bgp_proto::negotiate`, the OPEN checks that need configuration (peer AS, BGP identifier),
//! connection collisions (§6.8, decided in [`super::collision`]) and the IdleHoldTime back-off.
//!
//! No sockets, no clock: the driver feeds [`Input`]s with the current time and carries out the
//! returned [`Output`]s; [`Fsm::poll_timeout`] says when to call back with
//! [`Input::TimerExpired`]. UPDATE contents are not interpreted here: they come out as
//! [`Output::Received`] for the session layer.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp_proto::iana::{CeaseSubcode, ErrorCode, OpenErrorSubcode};
use bgp_proto::{Capability, Message, Negotiated, Notification, Open, negotiate};

use super::collision::{self, Direction, Keep};
use super::timers::{IdleHoldBackoff, Jitter};
use crate::config::{PeerAsn, PeerKind};

/// Identifies one TCP connection of the peer; chosen by the driver, unique per peer.
pub type ConnId = u64;

/// Hold time used while waiting for the peer's OPEN (RFC 4271 §8.2.2: "a large value ... A
/// HoldTimer value of 4 minutes is suggested").
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// The FSM states (RFC 4271 §8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Refusing connections; waiting for a start event or the IdleHold timer.
    Idle,
    /// Waiting for an outgoing TCP connection to complete.
    Connect,
    /// Listening for the peer's connection (and retrying ours when the timer fires).
    Active,
    /// Our OPEN is sent; waiting for the peer's.
    OpenSent,
    /// OPENs exchanged; waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// The session is up.
    Established,
}

impl State {
    /// The RFC's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }

    /// All states, for metrics.
    pub const ALL: [State; 6] = [
        State::Idle,
        State::Connect,
        State::Active,
        State::OpenSent,
        State::OpenConfirm,
        State::Established,
    ];
}

/// The FSM's timers (RFC 4271 §8.1.3 and §8.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// ConnectRetryTimer (event 9 on expiry).
    ConnectRetry,
    /// HoldTimer (event 10).
    Hold,
    /// KeepaliveTimer (event 11).
    Keepalive,
    /// DelayOpenTimer (event 12).
    DelayOpen,
    /// IdleHoldTimer (event 13).
    IdleHold,
}

const TIMERS: [Timer; 5] = [
    Timer::ConnectRetry,
    Timer::Hold,
    Timer::Keepalive,
    Timer::DelayOpen,
    Timer::IdleHold,
];

/// What happens to the FSM. Each variant lists the RFC 4271 §8.1 events it carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Events 1 ManualStart, 3 AutomaticStart, 4/5 ..._with_PassiveTcpEstablishment (passive
    /// mode comes from [`FsmConfig::passive`]).
    Start,
    /// Event 2 ManualStop: send `notification` (an RFC 8203 Cease by default) and stay Idle until
    /// the next [`Input::Start`].
    Stop {
        /// The NOTIFICATION to send if a connection is open.
        notification: Notification,
    },
    /// Event 8 AutomaticStop (max prefixes, BFD down, configuration change): send `notification`,
    /// go Idle and start again after the IdleHold back-off.
    Reset {
        /// The NOTIFICATION to send if a connection is open.
        notification: Notification,
        /// Why, for logs and the CLI.
        reason: String,
    },
    /// Events 9–13 (timer expiries; 6/7 AutomaticStart_with_DampPeerOscillations are the
    /// IdleHold timer firing).
    TimerExpired(Timer),
    /// Events 14 TcpConnection_Valid, 16 Tcp_CR_Acked, 17 TcpConnectionConfirmed: a connection
    /// to or from the configured peer is up. (Event 15 Tcp_CR_Invalid never reaches the FSM: the
    /// listener resets connections from unknown addresses.)
    Connected(ConnId, Direction),
    /// Event 18 TcpConnectionFails on an established connection.
    Disconnected(ConnId),
    /// Event 18 for our outgoing attempt, which failed before a connection existed.
    ConnectFailed,
    /// Events 19 BGPOpen, 20 BGPOpen with DelayOpenTimer running, 23 OpenCollisionDump (decided
    /// internally), 24 NotifMsgVerErr, 25 NotifMsg, 26 KeepAliveMsg, 27 UpdateMsg, and
    /// ROUTE-REFRESH: a well-formed message from the peer.
    Received(ConnId, Message),
    /// Events 21 BGPHeaderErr, 22 BGPOpenMsgErr, 28 UpdateMsgErr: the codec rejected a message
    /// and this NOTIFICATION must be sent before closing.
    Malformed(ConnId, Notification),
}

/// Why a session left Established (or failed to get there).
#[derive(Debug, Clone, PartialEq)]
pub enum DownReason {
    /// Stopped by configuration (ManualStop) or AutomaticStop; the NOTIFICATION we sent.
    Stopped(Notification),
    /// We reset the session for a protocol error, hold timer expiry, FSM error.
    NotificationSent(Notification),
    /// The peer sent a NOTIFICATION.
    NotificationReceived(Notification),
    /// The TCP connection failed without a NOTIFICATION.
    ConnectionLost,
}

impl DownReason {
    /// Whether a BGP NOTIFICATION was exchanged (RFC 4724 graceful restart does not apply then,
    /// unless RFC 8538 is negotiated).
    pub fn notification(&self) -> Option<&Notification> {
        match self {
            DownReason::Stopped(n)
            | DownReason::NotificationSent(n)
            | DownReason::NotificationReceived(n) => Some(n),
            DownReason::ConnectionLost => None,
        }
    }

    /// A one-line description for logs and the CLI.
    pub fn describe(&self) -> String {
        let note = |n: &Notification| {
            let text = n
                .shutdown_communication()
                .map(|m| format!(" \"{}\"", crate::sanitize::printable(m)))
                .unwrap_or_default();
            // RFC 8538 §3: a Hard Reset carries the code and subcode it stands for.
            let wrapped = match (n.cease_subcode(), n.data.as_slice()) {
                (Some(CeaseSubcode::HardReset), [code, subcode, ..]) => {
                    format!(" (hard reset: {code}/{subcode})")
                }
                _ => String::new(),
            };
            format!("{}/{}{text}{wrapped}", u8::from(n.code), n.subcode)
        };
        match self {
            DownReason::Stopped(n) => format!("stopped (sent {})", note(n)),
            DownReason::NotificationSent(n) => format!("sent NOTIFICATION {}", note(n)),
            DownReason::NotificationReceived(n) => format!("received NOTIFICATION {}", note(n)),
            DownReason::ConnectionLost => "connection lost".to_owned(),
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open an outgoing TCP connection; report [`Input::Connected`] or [`Input::ConnectFailed`].
    Connect,
    /// Abandon the outgoing attempt, if any.
    AbortConnect,
    /// Send a message on a connection.
    Send(ConnId, Message),
    /// Close a connection after sending what was queued.
    Close(ConnId),
    /// The session reached Established on `conn`.
    Established {
        /// The connection.
        conn: ConnId,
        /// What the OPENs negotiated.
        negotiated: Box<Negotiated>,
    },
    /// An UPDATE or ROUTE-REFRESH received in Established, for the session layer.
    Received(Message),
    /// The session left Established.
    Down {
        /// Why.
        reason: DownReason,
        /// How long it had been Established.
        established_for: Duration,
    },
    /// The state changed.
    StateChange {
        /// Old state.
        from: State,
        /// New state.
        to: State,
    },
}

/// Configuration of one peer's FSM.
#[derive(Debug, Clone, PartialEq)]
pub struct FsmConfig {
    /// Our AS.
    pub local_asn: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// What the peer's AS must be.
    pub peer_asn: PeerAsn,
    /// Hold time we propose, seconds (0 or ≥ 3).
    pub hold_time: u16,
    /// Keepalive interval, seconds; `None` = a third of the negotiated hold time.
    pub keepalive_time: Option<u16>,
    /// ConnectRetryTime (jittered).
    pub connect_retry: Duration,
    /// Never connect out (PassiveTcpEstablishment).
    pub passive: bool,
    /// DelayOpen: wait this long for the peer's OPEN before sending ours.
    pub delay_open: Option<Duration>,
    /// Capabilities we advertise (4-octet AS is added by the FSM).
    pub capabilities: Vec<Capability>,
    /// IdleHoldTime back-off: first wait.
    pub idle_hold_base: Duration,
    /// IdleHoldTime back-off: longest wait.
    pub idle_hold_max: Duration,
    /// An Established period this long resets the back-off.
    pub idle_hold_stable: Duration,
    /// Seed of the jitter PRNG.
    pub jitter_seed: u64,
}

impl FsmConfig {
    /// Defaults suited to the given identities (90 s hold, 5 s connect retry, 1–120 s back-off).
    pub fn new(local_asn: u32, router_id: Ipv4Addr, peer_asn: PeerAsn) -> Self {
        Self {
            local_asn,
            router_id,
            peer_asn,
            hold_time: 90,
            keepalive_time: None,
            connect_retry: Duration::from_secs(5),
            passive: false,
            delay_open: None,
            capabilities: Vec::new(),
            idle_hold_base: Duration::from_secs(1),
            idle_hold_max: Duration::from_secs(120),
            idle_hold_stable: Duration::from_secs(60),
            jitter_seed: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conn {
    id: ConnId,
    direction: Direction,
}

/// The FSM of one peer.
#[derive(Debug, Clone)]
pub struct Fsm {
    config: FsmConfig,
    state: State,
    primary: Option<Conn>,
    /// A second connection during OpenSent/OpenConfirm (a possible collision): our OPEN is sent
    /// on it and its OPEN decides which connection survives.
    secondary: Option<Conn>,
    local_open: Open,
    remote_open: Option<Open>,
    negotiated: Option<Negotiated>,
    deadlines: Deadlines,
    hold: Duration,
    keepalive: Duration,
    jitter: Jitter,
    backoff: IdleHoldBackoff,
    connect_retry_counter: u32,
    established_at: Option<Instant>,
    admin_down: bool,
    last_error: Option<String>,
    transitions: u64,
}

/// One deadline per [`Timer`] (`None`: not armed).
#[derive(Debug, Clone, Copy, Default)]
struct Deadlines {
    connect_retry: Option<Instant>,
    hold: Option<Instant>,
    keepalive: Option<Instant>,
    delay_open: Option<Instant>,
    idle_hold: Option<Instant>,
}

impl Deadlines {
    fn slot(&mut self, timer: Timer) -> &mut Option<Instant> {
        match timer {
            Timer::ConnectRetry => &mut self.connect_retry,
            Timer::Hold => &mut self.hold,
            Timer::Keepalive => &mut self.keepalive,
            Timer::DelayOpen => &mut self.delay_open,
            Timer::IdleHold => &mut self.idle_hold,
        }
    }

    fn get(&self, timer: Timer) -> Option<Instant> {
        match timer {
            Timer::ConnectRetry => self.connect_retry,
            Timer::Hold => self.hold,
            Timer::Keepalive => self.keepalive,
            Timer::DelayOpen => self.delay_open,
            Timer::IdleHold => self.idle_hold,
        }
    }
}

fn fsm_error(subcode: u8) -> Notification {
    // RFC 6608 §4: subcodes 1/2/3 = unexpected message in OpenSent/OpenConfirm/Established.
    Notification::new(ErrorCode::Fsm, subcode)
}

impl Fsm {
    /// A new FSM in Idle. Nothing happens until [`Input::Start`].
    pub fn new(config: FsmConfig) -> Self {
        let local_open = Self::build_open(&config);
        Self {
            jitter: Jitter::new(config.jitter_seed),
            backoff: IdleHoldBackoff::new(
                config.idle_hold_base,
                config.idle_hold_max,
                config.idle_hold_stable,
            ),
            config,
            state: State::Idle,
            primary: None,
            secondary: None,
            local_open,
            remote_open: None,
            negotiated: None,
            deadlines: Deadlines::default(),
            hold: OPEN_HOLD_TIME,
            keepalive: Duration::ZERO,
            connect_retry_counter: 0,
            established_at: None,
            admin_down: true,
            last_error: None,
            transitions: 0,
        }
    }

    fn build_open(config: &FsmConfig) -> Open {
        let mut caps = config.capabilities.clone();
        if !caps.iter().any(|c| matches!(c, Capability::FourOctetAs(_))) {
            caps.push(Capability::FourOctetAs(config.local_asn));
        }
        Open::new(config.local_asn, config.hold_time, config.router_id, caps)
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &FsmConfig {
        &self.config
    }

    /// Replaces the configuration of a running FSM with one whose peering parameters are equal
    /// (the caller resets the session otherwise). Takes effect on the next OPEN.
    pub fn update_config(&mut self, config: FsmConfig) {
        self.local_open = Self::build_open(&config);
        self.config = config;
    }

    /// The OPEN we send.
    pub fn local_open(&self) -> &Open {
        &self.local_open
    }

    /// The peer's OPEN of the current (or last) session.
    pub fn remote_open(&self) -> Option<&Open> {
        self.remote_open.as_ref()
    }

    /// What the current session negotiated (from OpenConfirm on).
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The connection carrying the session, if any.
    pub fn connection(&self) -> Option<ConnId> {
        self.primary.map(|c| c.id)
    }

    /// When the session reached Established, if it is.
    pub fn established_at(&self) -> Option<Instant> {
        self.established_at
    }

    /// The negotiated hold time and keepalive interval (valid from OpenConfirm on).
    pub fn timers(&self) -> (Duration, Duration) {
        (self.hold, self.keepalive)
    }

    /// The last error, for the CLI.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Number of state changes so far.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// The ConnectRetryCounter (RFC 4271 §8.1.1).
    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// Whether the FSM was stopped administratively (no automatic restart).
    pub fn is_admin_down(&self) -> bool {
        self.admin_down
    }

    /// The earliest armed timer and its deadline.
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        TIMERS
            .iter()
            .filter_map(|t| self.deadlines.get(*t).map(|d| (d, *t)))
            .min()
    }

    /// The deadline of one timer, if armed.
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.deadlines.get(timer)
    }

    fn arm(&mut self, timer: Timer, at: Instant) {
        *self.deadlines.slot(timer) = Some(at);
    }

    fn disarm(&mut self, timer: Timer) {
        *self.deadlines.slot(timer) = None;
    }

    fn disarm_all(&mut self) {
        self.deadlines = Deadlines::default();
    }

    fn arm_connect_retry(&mut self, now: Instant) {
        let wait = self.jitter.apply(self.config.connect_retry);
        self.arm(Timer::ConnectRetry, now + wait);
    }

    fn arm_hold(&mut self, now: Instant) {
        if self.hold.is_zero() {
            self.disarm(Timer::Hold);
        } else {
            self.arm(Timer::Hold, now + self.hold);
        }
    }

    fn arm_keepalive(&mut self, now: Instant) {
        if self.keepalive.is_zero() {
            self.disarm(Timer::Keepalive);
        } else {
            let wait = self.jitter.apply(self.keepalive);
            self.arm(Timer::Keepalive, now + wait);
        }
    }

    fn goto(&mut self, to: State, out: &mut Vec<Output>) {
        if self.state != to {
            out.push(Output::StateChange {
                from: self.state,
                to,
            });
            self.state = to;
            self.transitions += 1;
        }
    }

    /// Feeds one input at time `now`; returns what the driver must do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.on_start(now, true, &mut out),
            Input::Stop { notification } => {
                self.admin_down = true;
                self.connect_retry_counter = 0;
                self.stop(now, DownReason::Stopped(notification), false, &mut out);
            }
            Input::Reset {
                notification,
                reason,
            } => {
                if self.state != State::Idle {
                    self.last_error = Some(format!(
                        "{reason}: {}",
                        DownReason::Stopped(notification.clone()).describe()
                    ));
                    self.stop(now, DownReason::Stopped(notification), true, &mut out);
                }
            }
            Input::TimerExpired(timer) => self.on_timer(now, timer, &mut out),
            Input::Connected(id, direction) => {
                self.on_connected(now, Conn { id, direction }, &mut out)
            }
            Input::Disconnected(id) => self.on_disconnected(now, id, &mut out),
            Input::ConnectFailed => self.on_connect_failed(now, &mut out),
            Input::Received(id, message) => self.on_message(now, id, message, &mut out),
            Input::Malformed(id, notification) => {
                if self.is_secondary(id) {
                    out.push(Output::Send(id, Message::Notification(notification)));
                    out.push(Output::Close(id));
                    self.secondary = None;
                } else if self.is_primary(id) {
                    self.fail_with(now, notification, &mut out);
                }
            }
        }
        out
    }

    fn is_primary(&self, id: ConnId) -> bool {
        self.primary.is_some_and(|c| c.id == id)
    }

    fn is_secondary(&self, id: ConnId) -> bool {
        self.secondary.is_some_and(|c| c.id == id)
    }

    fn on_start(&mut self, now: Instant, manual: bool, out: &mut Vec<Output>) {
        if self.state != State::Idle {
            // RFC 4271 §8.2.2: start events in any other state are ignored.
            return;
        }
        if manual {
            self.admin_down = false;
            self.backoff.reset();
        } else if self.admin_down {
            return;
        }
        self.disarm(Timer::IdleHold);
        self.connect_retry_counter = 0;
        if self.config.passive {
            // Events 4/5: "the local system ... listens for a connection ... and changes its
            // state to Active". No ConnectRetryTimer: a passive peer never connects.
            self.goto(State::Active, out);
        } else {
            self.arm_connect_retry(now);
            out.push(Output::Connect);
            self.goto(State::Connect, out);
        }
    }

    fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut Vec<Output>) {
        match self.deadlines.get(timer) {
            Some(deadline) if deadline <= now => self.disarm(timer),
            // Not armed or not yet due: a stale wake-up.
            _ => return,
        }
        match (self.state, timer) {
            (State::Idle, Timer::IdleHold) => self.on_start(now, false, out),
            (State::Connect | State::Active, Timer::ConnectRetry) => {
                // Event 9: "drops the TCP connection, restarts the ConnectRetryTimer, ...
                // initiates a TCP connection to the other BGP peer".
                out.push(Output::AbortConnect);
                self.arm_connect_retry(now);
                out.push(Output::Connect);
                self.goto(State::Connect, out);
            }
            (State::Connect | State::Active, Timer::DelayOpen) => {
                // Event 12: "sends an OPEN message to its peer, sets the HoldTimer to a large
                // value, and changes its state to OpenSent".
                if let Some(conn) = self.primary {
                    out.push(Output::Send(
                        conn.id,
                        Message::Open(self.local_open.clone()),
                    ));
                    self.hold = OPEN_HOLD_TIME;
                    self.arm_hold(now);
                    self.goto(State::OpenSent, out);
                }
            }
            (State::OpenSent | State::OpenConfirm | State::Established, Timer::Hold) => {
                // Event 10: "sends a NOTIFICATION message with the error code Hold Timer
                // Expired".
                self.fail_with(now, Notification::hold_timer_expired(), out);
            }
            (State::OpenConfirm | State::Established, Timer::Keepalive) => {
                if let Some(conn) = self.primary {
                    out.push(Output::Send(conn.id, Message::Keepalive));
                }
                self.arm_keepalive(now);
            }
            // A timer that does not belong to the state (cleared on every transition anyway).
            _ => {}
        }
    }

    fn on_connected(&mut self, now: Instant, conn: Conn, out: &mut Vec<Output>) {
        match self.state {
            State::Idle => {
                // "In this state, BGP FSM refuses all incoming BGP connections".
                out.push(Output::Close(conn.id));
            }
            State::Connect | State::Active => {
                if let Some(old) = self.primary.take() {
                    // A second connection while DelayOpen runs on the first: keep the newer.
                    out.push(Output::Close(old.id));
                }
                if conn.direction == Direction::Inbound {
                    out.push(Output::AbortConnect);
                }
                self.disarm(Timer::ConnectRetry);
                self.primary = Some(conn);
                if let Some(delay) = self.config.delay_open {
                    // Events 16/17 with DelayOpen: "starts the DelayOpenTimer".
                    self.arm(Timer::DelayOpen, now + delay);
                } else {
                    out.push(Output::Send(
                        conn.id,
                        Message::Open(self.local_open.clone()),
                    ));
                    self.hold = OPEN_HOLD_TIME;
                    self.arm_hold(now);
                    self.goto(State::OpenSent, out);
                }
            }
            State::OpenSent | State::OpenConfirm => {
                let same_direction = self.primary.is_some_and(|p| p.direction == conn.direction);
                if self.secondary.is_some() || same_direction {
                    out.push(Output::Close(conn.id));
                } else {
                    // Possible collision: answer with our OPEN and let the peer's OPEN decide.
                    out.push(Output::Send(
                        conn.id,
                        Message::Open(self.local_open.clone()),
                    ));
                    if conn.direction == Direction::Inbound {
                        out.push(Output::AbortConnect);
                    }
                    self.secondary = Some(conn);
                }
            }
            State::Established => {
                // RFC 4271 §6.8: "a connection collision with an existing BGP connection that
                // is in the Established state causes closing of the newly created connection."
                let cease = Notification::cease(CeaseSubcode::ConnectionCollisionResolution);
                out.push(Output::Send(conn.id, Message::Notification(cease)));
                out.push(Output::Close(conn.id));
            }
        }
    }

    fn on_disconnected(&mut self, now: Instant, id: ConnId, out: &mut Vec<Output>) {
        if self.is_secondary(id) {
            self.secondary = None;
            return;
        }
        if !self.is_primary(id) {
            return;
        }
        match self.state {
            State::Connect | State::Active if self.deadline(Timer::DelayOpen).is_some() => {
                // Event 18 with DelayOpen running: "restarts the ConnectRetryTimer, stops the
                // DelayOpenTimer ... continues to listen ... changes its state to Active".
                self.primary = None;
                self.disarm(Timer::DelayOpen);
                self.arm_connect_retry(now);
                self.goto(State::Active, out);
            }
            State::OpenSent => {
                // Event 18 in OpenSent: "closes the BGP connection, restarts the
                // ConnectRetryTimer, continues to listen ... changes its state to Active."
                self.primary = None;
                out.push(Output::Close(id));
                self.disarm_all();
                if !self.config.passive {
                    self.arm_connect_retry(now);
                }
                self.last_error = Some("connection closed in OpenSent".into());
                self.goto(State::Active, out);
            }
            _ => self.fail(now, DownReason::ConnectionLost, out),
        }
    }

    fn on_connect_failed(&mut self, _now: Instant, out: &mut Vec<Output>) {
        if self.state == State::Connect && self.primary.is_none() {
            // Our attempt failed; keep listening and retry when ConnectRetryTimer fires (the
            // timer keeps running, as in Active).
            self.goto(State::Active, out);
        }
    }

    fn on_message(&mut self, now: Instant, id: ConnId, message: Message, out: &mut Vec<Output>) {
        if self.is_secondary(id) {
            self.on_secondary_message(now, id, message, out);
            return;
        }
        if !self.is_primary(id) {
            return;
        }
        match message {
            Message::Notification(n) => {
                // Events 24/25: in every state but Idle, the connection is dropped and the FSM
                // goes to Idle.
                self.last_error = Some(DownReason::NotificationReceived(n.clone()).describe());
                self.fail(now, DownReason::NotificationReceived(n), out);
            }
            Message::Open(open) => self.on_open(now, id, open, out),
            Message::Keepalive => match self.state {
                State::OpenConfirm => {
                    // Event 26 in OpenConfirm: "restarts the HoldTimer and changes its state to
                    // Established."
                    self.arm_hold(now);
                    self.established_at = Some(now);
                    self.last_error = None;
                    self.goto(State::Established, out);
                    if let Some(negotiated) = &self.negotiated {
                        out.push(Output::Established {
                            conn: id,
                            negotiated: Box::new(negotiated.clone()),
                        });
                    }
                }
                State::Established => self.arm_hold(now),
                State::OpenSent => self.fail_with(now, fsm_error(1), out),
                _ => self.fail_with(now, fsm_error(0), out),
            },
            message @ (Message::Update(_) | Message::RouteRefresh(_)) => match self.state {
                State::Established => {
                    // Event 27: "restarts its HoldTimer, if the negotiated HoldTime value is
                    // non-zero".
                    self.arm_hold(now);
                    out.push(Output::Received(message));
                }
                State::OpenSent => self.fail_with(now, fsm_error(1), out),
                State::OpenConfirm => self.fail_with(now, fsm_error(2), out),
                _ => self.fail_with(now, fsm_error(0), out),
            },
        }
    }

    /// Checks the peer's OPEN against the configuration (RFC 4271 §6.2 checks that need it).
    fn check_open(&self, open: &Open) -> Result<(), Notification> {
        let asn = open.asn();
        let local = self.config.local_asn;
        let as_ok = match self.config.peer_asn {
            PeerAsn::Number(expected) => asn == expected,
            PeerAsn::Kind(PeerKind::Internal) => asn == local,
            PeerAsn::Kind(PeerKind::External) => asn != local,
        };
        if !as_ok {
            // "If the Autonomous System field of the OPEN message is unacceptable, then the Error
            // Subcode MUST be set to Bad Peer AS."
            let mut n = Notification::new(ErrorCode::Open, OpenErrorSubcode::BadPeerAs.into());
            n.data = open.my_as.to_be_bytes().to_vec();
            return Err(n);
        }
        // RFC 6286 §2.2: "a BGP speaker ... MUST NOT accept the OPEN ... if the BGP Identifier
        // of the peer is the same as its own" when both are in the same AS.
        if asn == local && open.bgp_id == self.config.router_id {
            let mut n =
                Notification::new(ErrorCode::Open, OpenErrorSubcode::BadBgpIdentifier.into());
            n.data = open.bgp_id.octets().to_vec();
            return Err(n);
        }
        Ok(())
    }

    fn accept_open(&mut self, now: Instant, id: ConnId, open: Open, out: &mut Vec<Output>) {
        if let Err(n) = self.check_open(&open) {
            self.fail_with(now, n, out);
            return;
        }
        let negotiated = negotiate(&self.local_open, &open);
        let remote_has_mp = open
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::Multiprotocol(_)));
        if negotiated.families.is_empty() && remote_has_mp {
            // RFC 5492 §5: a speaker that cannot proceed without a capability "SHOULD send a
            // NOTIFICATION ... Unsupported Capability" listing what it wanted.
            let mut n = Notification::new(
                ErrorCode::Open,
                OpenErrorSubcode::UnsupportedCapability.into(),
            );
            for cap in &self.local_open.capabilities {
                if let Capability::Multiprotocol(f) = cap {
                    n.data.extend_from_slice(&[1, 4]);
                    n.data.extend_from_slice(&u16::from(f.afi).to_be_bytes());
                    n.data.extend_from_slice(&[0, u8::from(f.safi)]);
                }
            }
            self.fail_with(now, n, out);
            return;
        }
        self.hold = Duration::from_secs(u64::from(negotiated.hold_time));
        let keepalive = match self.config.keepalive_time {
            Some(k) if u64::from(k) < self.hold.as_secs() => u64::from(k),
            _ => u64::from(negotiated.keepalive_time()),
        };
        self.keepalive = Duration::from_secs(keepalive);
        self.remote_open = Some(open);
        self.negotiated = Some(negotiated);
        self.disarm(Timer::DelayOpen);
        self.disarm(Timer::ConnectRetry);
        out.push(Output::Send(id, Message::Keepalive));
        self.arm_keepalive(now);
        self.arm_hold(now);
        self.goto(State::OpenConfirm, out);
    }

    fn on_open(&mut self, now: Instant, id: ConnId, open: Open, out: &mut Vec<Output>) {
        match self.state {
            State::Connect | State::Active if self.deadline(Timer::DelayOpen).is_some() => {
                // Event 20: send our OPEN and a KEEPALIVE, go to OpenConfirm.
                out.push(Output::Send(id, Message::Open(self.local_open.clone())));
                self.accept_open(now, id, open, out);
            }
            State::OpenSent => {
                if let Some(secondary) = self.secondary {
                    // The peer's identifier is now known, so §6.8 can be applied in OpenSent.
                    if self.collision_keeps_secondary(&open, secondary) {
                        // Keep waiting, now for the OPEN on the surviving connection.
                        self.dump_primary(secondary, out);
                        return;
                    }
                    let cease = Notification::cease(CeaseSubcode::ConnectionCollisionResolution);
                    out.push(Output::Send(secondary.id, Message::Notification(cease)));
                    out.push(Output::Close(secondary.id));
                    self.secondary = None;
                }
                self.accept_open(now, id, open, out);
            }
            State::OpenConfirm => self.fail_with(now, fsm_error(2), out),
            State::Established => self.fail_with(now, fsm_error(3), out),
            State::Idle | State::Connect | State::Active => self.fail_with(now, fsm_error(0), out),
        }
    }

    fn collision_keeps_secondary(&self, open: &Open, secondary: Conn) -> bool {
        let Some(primary) = self.primary else {
            return true;
        };
        collision::resolve(
            self.config.router_id,
            open.bgp_id,
            self.config.local_asn,
            open.asn(),
            primary.direction,
            secondary.direction,
        ) == Keep::New
    }

    /// Event 23 OpenCollisionDump on the primary connection: Cease/7 it and promote `secondary`.
    fn dump_primary(&mut self, secondary: Conn, out: &mut Vec<Output>) {
        if let Some(primary) = self.primary {
            let cease = Notification::cease(CeaseSubcode::ConnectionCollisionResolution);
            out.push(Output::Send(primary.id, Message::Notification(cease)));
            out.push(Output::Close(primary.id));
        }
        self.primary = Some(secondary);
        self.secondary = None;
    }

    fn on_secondary_message(
        &mut self,
        now: Instant,
        id: ConnId,
        message: Message,
        out: &mut Vec<Output>,
    ) {
        let Some(secondary) = self.secondary else {
            return;
        };
        match message {
            Message::Open(open) => {
                if self.collision_keeps_secondary(&open, secondary) {
                    self.dump_primary(secondary, out);
                    self.negotiated = None;
                    // The survivor continues from OpenSent: its OPEN is processed as event 19.
                    self.state = State::OpenSent;
                    self.accept_open(now, id, open, out);
                } else {
                    let cease = Notification::cease(CeaseSubcode::ConnectionCollisionResolution);
                    out.push(Output::Send(id, Message::Notification(cease)));
                    out.push(Output::Close(id));
                    self.secondary = None;
                }
            }
            _ => {
                // Anything but OPEN on a connection that has not exchanged OPENs: drop it.
                out.push(Output::Close(id));
                self.secondary = None;
            }
        }
    }

    /// Sends `notification` on the session's connection and fails to Idle.
    fn fail_with(&mut self, now: Instant, notification: Notification, out: &mut Vec<Output>) {
        if let Some(conn) = self.primary {
            out.push(Output::Send(
                conn.id,
                Message::Notification(notification.clone()),
            ));
        }
        self.last_error = Some(DownReason::NotificationSent(notification.clone()).describe());
        self.fail(now, DownReason::NotificationSent(notification), out);
    }

    /// Goes to Idle after an error: closes everything, counts the failure and arms IdleHold.
    fn fail(&mut self, now: Instant, reason: DownReason, out: &mut Vec<Output>) {
        if self.last_error.is_none() {
            self.last_error = Some(reason.describe());
        }
        self.connect_retry_counter += 1;
        self.teardown(now, reason, true, out);
    }

    fn stop(&mut self, now: Instant, reason: DownReason, restart: bool, out: &mut Vec<Output>) {
        if let (Some(conn), Some(n)) = (self.primary, reason.notification())
            && matches!(
                self.state,
                State::OpenSent | State::OpenConfirm | State::Established
            )
        {
            out.push(Output::Send(conn.id, Message::Notification(n.clone())));
        }
        self.teardown(now, reason, restart, out);
    }

    fn teardown(&mut self, now: Instant, reason: DownReason, restart: bool, out: &mut Vec<Output>) {
        let established_for = self
            .established_at
            .take()
            .map(|at| now.saturating_duration_since(at));
        for conn in [self.primary.take(), self.secondary.take()]
            .into_iter()
            .flatten()
        {
            out.push(Output::Close(conn.id));
        }
        out.push(Output::AbortConnect);
        self.disarm_all();
        let was = self.state;
        self.goto(State::Idle, out);
        if let (State::Established, Some(up)) = (was, established_for) {
            out.push(Output::Down {
                reason,
                established_for: up,
            });
        }
        if restart && !self.admin_down {
            // DampPeerOscillations: the IdleHoldTimer grows while the peer keeps failing.
            let wait = self.backoff.on_failure(established_for);
            self.arm(Timer::IdleHold, now + wait);
        }
    }
}

#[cfg(test)]
mod tests;

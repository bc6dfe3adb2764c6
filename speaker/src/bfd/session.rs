//! One BFD session in RFC 5880 asynchronous mode, as a pure state machine: the state variables of
//! §6.8.1, the reception rules of §6.8.6, the timer rules of §6.8.2–§6.8.4 and §6.8.7 (including
//! the Poll/Final sequence for timer changes and the slow 1 s transmission while not Up), and
//! administrative control (§6.8.16), and, with [`Session::with_authentication`], RFC 5880 §6.7.4
//! Keyed SHA1 authentication of every packet sent and received ([`crate::bfd::auth`]).
//!
//! Time is an input: [`Session::handle`] and [`Session::handle_timeout`] take `now`, and
//! [`Session::poll_timeout`] says when the driver must call back. Randomness (transmit jitter)
//! comes from a seeded [`Prng`] the caller passes in. No sockets, no clock: the driver in
//! [`crate::bfd::io`] does the I/O.
//!
//! Deliberate choices where the RFC leaves room:
//! - A Poll Sequence is only run while Up. Timer changes while not Up (including the drop from
//!   the slow 1 s rate to the configured rate on reaching Up, which *does* poll) take effect at
//!   once, because the peer is not yet detecting us at the new rate.
//! - Packets go out on the periodic schedule only, apart from Final replies to a Poll, which
//!   §6.8.7 requires "without respect to the transmission timer".

use std::time::{Duration, Instant};

use crate::bfd::auth::{AuthKey, AuthState};
use crate::bfd::packet::{Diagnostic, Repr, State};
use crate::bfd::{Error, Result};
use crate::config::BfdConfig;

/// §6.8.3: "When bfd.SessionState is not Up, the system MUST set bfd.DesiredMinTxInterval to a
/// value of not less than one second (1,000,000 microseconds)."
pub const SLOW_TX_US: u32 = 1_000_000;

/// Validated timers of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    desired_min_tx_us: u32,
    required_min_rx_us: u32,
    detect_mult: u8,
}

impl SessionConfig {
    /// Timers in microseconds; intervals must be non-zero (a zero Required Min RX would tell the
    /// peer not to send at all) and fit the 32-bit fields, the multiplier non-zero.
    pub fn new(
        desired_min_tx: Duration,
        required_min_rx: Duration,
        detect_mult: u8,
    ) -> Result<Self> {
        let us = |d: Duration, what: &str| -> Result<u32> {
            u32::try_from(d.as_micros())
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| Error::InvalidConfig(format!("{what} {d:?} out of range")))
        };
        if detect_mult == 0 {
            return Err(Error::InvalidConfig("detect multiplier is zero".into()));
        }
        Ok(Self {
            desired_min_tx_us: us(desired_min_tx, "desired min tx")?,
            required_min_rx_us: us(required_min_rx, "required min rx")?,
            detect_mult,
        })
    }

    /// Desired Min TX Interval.
    pub fn desired_min_tx(&self) -> Duration {
        Duration::from_micros(self.desired_min_tx_us.into())
    }
    /// Required Min RX Interval.
    pub fn required_min_rx(&self) -> Duration {
        Duration::from_micros(self.required_min_rx_us.into())
    }
    /// Detect Mult.
    pub fn detect_mult(&self) -> u8 {
        self.detect_mult
    }
}

impl TryFrom<&BfdConfig> for SessionConfig {
    type Error = Error;
    fn try_from(c: &BfdConfig) -> Result<Self> {
        Self::new(
            Duration::from_millis(c.min_tx_ms.into()),
            Duration::from_millis(c.min_rx_ms.into()),
            c.multiplier,
        )
    }
}

/// A small seeded pseudo-random generator (SplitMix64) for transmit jitter; seeded by the caller
/// so tests are deterministic and sessions started together do not transmit in lockstep.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    /// A generator with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// What the driver feeds the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A Control packet that passed [`Repr::parse`] and was demultiplexed to this session
    /// (§6.8.6, from "If the A bit is set..." on).
    Received(Repr),
    /// Take the session administratively down (§6.8.16); Diag becomes AdministrativelyDown.
    AdminDown,
    /// Leave AdminDown for Down.
    AdminUp,
    /// New timers (§6.8.3); starts a Poll Sequence while Up.
    SetConfig(SessionConfig),
}

/// What the session asks the driver to do or to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Transmit this Control packet now.
    Send(Repr),
    /// bfd.SessionState changed.
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// bfd.LocalDiag after the change: why it happened.
        diagnostic: Diagnostic,
    },
}

/// One asynchronous-mode BFD session.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    prng: Prng,
    // §6.8.1 state variables.
    state: State,
    remote_state: State,
    local_discr: u32,
    remote_discr: u32,
    local_diag: Diagnostic,
    remote_min_rx_us: u32,
    remote_desired_min_tx_us: u32,
    remote_detect_mult: u8,
    // Timer values in effect, which lag the advertised ones during a Poll Sequence (§6.8.3).
    tx_in_use_us: u32,
    rx_for_detection_us: u32,
    poll_active: bool,
    poll_pending: bool,
    next_tx: Option<Instant>,
    detect_deadline: Option<Instant>,
    // bfd.AuthType and the sequence numbers; `None`: no authentication (bfd.AuthType zero).
    auth: Option<AuthState>,
}

impl Session {
    /// A session in Down with bfd.LocalDiscr `local_discr` (non-zero, unique on the system); the
    /// first packet is due at `now`.
    pub fn new(local_discr: u32, config: SessionConfig, prng: Prng, now: Instant) -> Result<Self> {
        if local_discr == 0 {
            return Err(Error::InvalidConfig("local discriminator is zero".into()));
        }
        let mut session = Self {
            config,
            prng,
            state: State::Down,
            remote_state: State::Down,
            local_discr,
            remote_discr: 0,
            local_diag: Diagnostic::NoDiagnostic,
            // §6.8.1: bfd.RemoteMinRxInterval "MUST be initialized to 1".
            remote_min_rx_us: 1,
            remote_desired_min_tx_us: 0,
            remote_detect_mult: 0,
            tx_in_use_us: 0,
            rx_for_detection_us: config.required_min_rx_us,
            poll_active: false,
            poll_pending: false,
            next_tx: Some(now),
            detect_deadline: None,
            auth: None,
        };
        session.tx_in_use_us = session.advertised_tx_us();
        Ok(session)
    }

    /// Authenticates every packet with `key` (bfd.AuthType non-zero): packets sent are signed,
    /// packets received without a valid signature are discarded (§6.8.6). bfd.XmitAuthSeq starts
    /// at a value drawn from the session's generator.
    pub fn with_authentication(mut self, key: AuthKey) -> Self {
        let initial_seq = (self.prng.next_u64() >> 32) as u32;
        self.auth = Some(AuthState::new(key, initial_seq));
        self
    }

    /// The authentication state (`None` without authentication).
    pub fn authentication(&self) -> Option<&AuthState> {
        self.auth.as_ref()
    }

    /// bfd.SessionState.
    pub fn state(&self) -> State {
        self.state
    }
    /// bfd.RemoteSessionState.
    pub fn remote_state(&self) -> State {
        self.remote_state
    }
    /// bfd.LocalDiag.
    pub fn diagnostic(&self) -> Diagnostic {
        self.local_diag
    }
    /// bfd.LocalDiscr.
    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }
    /// bfd.RemoteDiscr (zero while unknown).
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }
    /// The configured timers.
    pub fn config(&self) -> SessionConfig {
        self.config
    }
    /// Whether a Poll Sequence is in progress.
    pub fn poll_in_progress(&self) -> bool {
        self.poll_active
    }

    /// The periodic transmission interval before jitter (§6.8.7): the larger of the Desired Min
    /// TX in use and bfd.RemoteMinRxInterval; `None` while the remote asks for no packets.
    pub fn tx_interval(&self) -> Option<Duration> {
        (self.remote_min_rx_us != 0)
            .then(|| Duration::from_micros(self.tx_in_use_us.max(self.remote_min_rx_us).into()))
    }

    /// The Detection Time (§6.8.4): the remote Detect Mult times the larger of our Required Min RX
    /// (the old value until a Poll Sequence confirms a decrease) and the remote Desired Min TX.
    /// `None` before the first packet.
    pub fn detection_time(&self) -> Option<Duration> {
        (self.remote_detect_mult != 0).then(|| {
            let interval = u64::from(self.rx_for_detection_us.max(self.remote_desired_min_tx_us));
            Duration::from_micros(interval * u64::from(self.remote_detect_mult))
        })
    }

    /// When [`Self::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.next_tx, self.detect_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// bfd.DesiredMinTxInterval as advertised now (§6.8.3: at least 1 s while not Up).
    fn advertised_tx_us(&self) -> u32 {
        if self.state == State::Up {
            self.config.desired_min_tx_us
        } else {
            self.config.desired_min_tx_us.max(SLOW_TX_US)
        }
    }

    /// Runs expired timers: detection (§6.8.4) and periodic transmission (§6.8.7).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if self.detect_deadline.is_some_and(|d| d <= now) {
            self.detect_deadline = None;
            // §6.8.1: bfd.RemoteDiscr "MUST be set to zero if the Detection Time expires".
            self.remote_discr = 0;
            // §6.8.4: "If a period of a Detection Time passes without the receipt of a valid,
            // authenticated BFD packet from the remote system, ... if bfd.SessionState is Init or
            // Up, the session has gone down -- the local system MUST set bfd.SessionState to Down
            // and bfd.LocalDiag to 1 (Control Detection Time Expired)."
            if matches!(self.state, State::Init | State::Up) {
                self.set_state(
                    now,
                    State::Down,
                    Diagnostic::ControlDetectionTimeExpired,
                    &mut out,
                );
            }
        }
        if self.next_tx.is_some_and(|t| t <= now) {
            out.push(Output::Send(self.packet(now, false)));
            self.next_tx = self.jittered_next(now);
        }
        out
    }

    /// Feeds one input; a received packet that must be discarded is an error and changes nothing.
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<Vec<Output>> {
        let mut out = Vec::new();
        match input {
            Input::Received(repr) => self.on_packet(now, repr, &mut out)?,
            Input::AdminDown => {
                if self.state != State::AdminDown {
                    // §6.8.16: detection stops; packets keep flowing with State AdminDown.
                    self.detect_deadline = None;
                    self.set_state(
                        now,
                        State::AdminDown,
                        Diagnostic::AdministrativelyDown,
                        &mut out,
                    );
                }
            }
            Input::AdminUp => {
                if self.state == State::AdminDown {
                    self.set_state(now, State::Down, Diagnostic::NoDiagnostic, &mut out);
                }
            }
            Input::SetConfig(config) => self.on_config(now, config),
        }
        Ok(out)
    }

    fn on_packet(&mut self, now: Instant, repr: Repr, out: &mut Vec<Output>) -> Result<()> {
        if repr.your_discriminator != 0 && repr.your_discriminator != self.local_discr {
            return Err(Error::UnknownDiscriminator(repr.your_discriminator));
        }
        let forget_after = self.detection_time().map(|d| d.saturating_mul(2));
        match &mut self.auth {
            // "If the A bit is set and no authentication is in use (bfd.AuthType is zero), the
            // packet MUST be discarded."
            None if repr.auth.is_some() => return Err(Error::AuthUnexpected),
            None => {}
            // "If the A bit is clear and authentication is in use (bfd.AuthType is nonzero), the
            // packet MUST be discarded. If the A bit is set, the packet MUST be authenticated
            // under the rules of section 6.7". Nothing below runs for a discarded packet, so it
            // neither restarts the detection timer nor moves the state.
            Some(auth) => auth.verify(now, &repr, self.config.detect_mult, forget_after)?,
        }
        // "Set bfd.RemoteDiscr to the value of My Discriminator. Set bfd.RemoteState to the value
        // of the State (Sta) field. ... Set bfd.RemoteMinRxInterval to the value of Required Min
        // RX Interval."
        self.remote_discr = repr.my_discriminator;
        self.remote_state = repr.state;
        let old_interval = self.tx_interval();
        self.remote_min_rx_us = repr.required_min_rx;
        self.remote_desired_min_tx_us = repr.desired_min_tx;
        self.remote_detect_mult = repr.detect_mult;
        // "If the Final (F) bit is set and the local system has sent a Poll Sequence, terminate
        // the Poll Sequence."
        if repr.final_ && self.poll_active {
            self.finish_poll();
        }
        // "Update the transmit interval as described in section 6.8.2."
        self.on_tx_interval_change(now, old_interval);
        // "Update the Detection Time as described in section 6.8.4."
        self.detect_deadline = self.detection_time().and_then(|d| now.checked_add(d));
        // "If bfd.SessionState is AdminDown, discard the packet."
        if self.state == State::AdminDown {
            self.detect_deadline = None;
            return Ok(());
        }
        match (self.state, repr.state) {
            // "If received state is AdminDown: If bfd.SessionState is not Down, set bfd.LocalDiag
            // to 3 (Neighbor signaled session down) and set bfd.SessionState to Down."
            (State::Down, State::AdminDown) => {}
            (_, State::AdminDown) => {
                self.set_state(
                    now,
                    State::Down,
                    Diagnostic::NeighborSignaledSessionDown,
                    out,
                );
            }
            // "If bfd.SessionState is Down: If received State is Down, set bfd.SessionState to
            // Init. Else if received State is Init, set bfd.SessionState to Up."
            (State::Down, State::Down) => {
                self.set_state(now, State::Init, Diagnostic::NoDiagnostic, out);
            }
            (State::Down, State::Init) => {
                self.set_state(now, State::Up, Diagnostic::NoDiagnostic, out);
            }
            // "Else if bfd.SessionState is Init: If received State is Init or Up, set
            // bfd.SessionState to Up."
            (State::Init, State::Init | State::Up) => {
                self.set_state(now, State::Up, Diagnostic::NoDiagnostic, out);
            }
            // "Else (bfd.SessionState is Up): If received State is Down, set bfd.LocalDiag to 3
            // (Neighbor signaled session down) and set bfd.SessionState to Down."
            (State::Up, State::Down) => {
                self.set_state(
                    now,
                    State::Down,
                    Diagnostic::NeighborSignaledSessionDown,
                    out,
                );
            }
            _ => {}
        }
        // "If the Poll (P) bit is set, send a BFD Control packet to the remote system with the
        // Poll (P) bit clear, and the Final (F) bit set."
        if repr.poll {
            out.push(Output::Send(self.packet(now, true)));
        }
        Ok(())
    }

    fn on_config(&mut self, now: Instant, config: SessionConfig) {
        let old_interval = self.tx_interval();
        self.config = config;
        if self.state == State::Up {
            self.start_poll();
            // §6.8.3: an increased Desired Min TX only takes effect when the Poll Sequence ends;
            // a decrease may take effect at once. The Detection Time keeps a larger old Required
            // Min RX until the Poll Sequence ends.
            self.tx_in_use_us = self.tx_in_use_us.min(self.advertised_tx_us());
            self.rx_for_detection_us = self.rx_for_detection_us.max(config.required_min_rx_us);
        } else {
            self.tx_in_use_us = self.advertised_tx_us();
            self.rx_for_detection_us = config.required_min_rx_us;
        }
        self.on_tx_interval_change(now, old_interval);
    }

    fn start_poll(&mut self) {
        // §6.8.3: "A new Poll Sequence MUST NOT be initiated until the previous one has completed."
        if self.poll_active {
            self.poll_pending = true;
        } else {
            self.poll_active = true;
        }
    }

    fn finish_poll(&mut self) {
        self.poll_active = false;
        self.tx_in_use_us = self.advertised_tx_us();
        self.rx_for_detection_us = self.config.required_min_rx_us;
        if std::mem::take(&mut self.poll_pending) {
            self.poll_active = true;
        }
    }

    fn set_state(
        &mut self,
        now: Instant,
        to: State,
        diagnostic: Diagnostic,
        out: &mut Vec<Output>,
    ) {
        let from = self.state;
        if from == to {
            return;
        }
        let old_interval = self.tx_interval();
        let old_advertised = self.advertised_tx_us();
        self.state = to;
        self.local_diag = diagnostic;
        out.push(Output::StateChanged {
            from,
            to,
            diagnostic,
        });
        if to == State::Up {
            // Leaving the slow rate changes bfd.DesiredMinTxInterval: tell the peer with a Poll.
            // The decrease itself may take effect at once.
            self.tx_in_use_us = self.advertised_tx_us();
            if self.advertised_tx_us() != old_advertised {
                self.start_poll();
            }
        } else {
            // Not Up: no poll to finish, and the slow rate applies at once (the peer is not
            // detecting us at the fast rate any more).
            self.poll_active = false;
            self.poll_pending = false;
            self.tx_in_use_us = self.advertised_tx_us();
            self.rx_for_detection_us = self.config.required_min_rx_us;
        }
        self.on_tx_interval_change(now, old_interval);
    }

    /// Brings the next transmission forward when the interval shrank, so a faster rate (or the
    /// first packet after the remote stops asking for silence) is not delayed by the old one.
    fn on_tx_interval_change(&mut self, now: Instant, old: Option<Duration>) {
        let new = self.tx_interval();
        if new == old {
            return;
        }
        match (self.next_tx, new) {
            (_, None) => self.next_tx = None,
            (None, Some(_)) => self.next_tx = Some(now),
            (Some(t), Some(_)) => {
                if let Some(candidate) = self.jittered_next(now) {
                    self.next_tx = Some(t.min(candidate));
                }
            }
        }
    }

    fn jittered_next(&mut self, now: Instant) -> Option<Instant> {
        let interval = u64::from(self.tx_in_use_us.max(self.remote_min_rx_us));
        if self.remote_min_rx_us == 0 {
            // §6.8.7: "If bfd.RemoteMinRxInterval is zero, the local system MUST NOT periodically
            // transmit BFD Control packets."
            return None;
        }
        // §6.8.7: "The periodic transmission of BFD Control packets MUST be jittered on a
        // per-packet basis by up to 25% ... If bfd.DetectMult is equal to 1, the interval between
        // transmitted BFD Control packets MUST be no more than 90% of the negotiated transmission
        // interval, and MUST be no less than 75%."
        let top = if self.config.detect_mult == 1 {
            900
        } else {
            1000
        };
        let permille = 750 + self.prng.next_u64() % (top - 750 + 1);
        now.checked_add(Duration::from_micros(interval * permille / 1000))
    }

    /// The Control packet the session would send now (periodic form, signed when authenticated);
    /// the driver sends it once more on deregistration so the peer sees AdminDown instead of a
    /// timeout.
    pub fn control_packet(&mut self, now: Instant) -> Repr {
        self.packet(now, false)
    }

    /// A Control packet reflecting the current state; `final_` answers a Poll.
    fn packet(&mut self, now: Instant, final_: bool) -> Repr {
        let mut repr = Repr {
            diagnostic: self.local_diag,
            state: self.state,
            // Never both: a Final reply goes out with Poll clear even during our own Poll.
            poll: self.poll_active && !final_,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx: self.advertised_tx_us(),
            required_min_rx: self.config.required_min_rx_us,
            required_min_echo_rx: 0,
            auth: None,
        };
        if let Some(auth) = &mut self.auth {
            auth.sign(now, &mut repr);
        }
        repr
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

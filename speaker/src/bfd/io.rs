//! The BFD driver: the only part of [`crate::bfd`] that touches sockets or the clock.
//!
//! One owner task holds every [`Session`], runs their timers and demultiplexes received packets;
//! one child task per listening socket (IPv4/IPv6 × single-hop/multihop, bound on first use)
//! only turns datagrams into messages for the owner. The BGP driver talks to it through the
//! [`Bfd`] handle: [`Bfd::register`] returns a [`BfdSession`] that yields every state change as a
//! [`BfdEvent`] the moment the session machine makes it (a Down after Up is never delayed or
//! coalesced) and deregisters the session when dropped.
//!
//! Wire rules applied here:
//! - RFC 5881 single-hop: received on UDP 3784; §5: packets are sent with TTL/Hop Limit 255 and
//!   received ones with any other value are discarded; §4: the source port is in 49152–65535
//!   and unique per session (one bound transmit socket per session).
//! - RFC 5883 multihop: UDP 4784, same source ports, sent with TTL 255, no received-TTL rule.
//! - RFC 5880 §6.8.6 demultiplexing: by Your Discriminator when non-zero, else by the (peer,
//!   local) address pair (a session registered with an unspecified local address matches any).
//!
//! Packets the session's authentication rules discard (§6.7.4, §6.8.6) are counted per session
//! ([`BfdSession::auth_failure_counter`]) and logged with the peer's address, at most once per
//! [`AUTH_LOG_INTERVAL`] per session so a flood of forgeries cannot flood the log.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::bfd::auth::AuthKey;
use crate::bfd::packet::{Diagnostic, Repr, State};
use crate::bfd::session::{Input, Output, Prng, Session, SessionConfig};
use crate::bfd::{Error, Result};
use crate::config::BfdConfig;
use crate::task::AbortOnDrop;

/// RFC 5881 §4: single-hop Control packets go to this UDP port.
pub const SINGLE_HOP_PORT: u16 = 3784;
/// RFC 5883 §5: multihop Control packets go to this UDP port.
pub const MULTIHOP_PORT: u16 = 4784;
/// RFC 5881 §4: "The source port MUST be in the range 49152 through 65535."
const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// RFC 5881 §5 / RFC 5082: the TTL or Hop Limit we send and (single-hop) require.
const TTL: u8 = 255;
/// DSCP CS6 (network control), as routers mark BFD.
const TOS_CS6: u32 = 0xc0;
/// At most one log line per session for packets failing authentication in this period.
pub const AUTH_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the BGP driver asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// The peer's address.
    pub peer: IpAddr,
    /// Our address on the path to the peer (the BGP session's local address); unspecified
    /// (`0.0.0.0`/`::`) lets the kernel choose and accepts packets to any local address.
    pub local: IpAddr,
    /// Interface to bind to (single-hop; required for IPv6 link-local peers).
    pub interface: Option<String>,
    /// Timers and single-hop/multihop choice. Its `authentication` is not read here: the caller
    /// loads the key ([`AuthKey::load`]) and passes it as `auth`.
    pub config: BfdConfig,
    /// RFC 5880 §6.7.4 authentication of every packet; `None`: none (bfd.AuthType zero).
    pub auth: Option<AuthKey>,
}

/// What identifies a registered session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKey {
    /// Peer address.
    pub peer: IpAddr,
    /// Local address (possibly unspecified).
    pub local: IpAddr,
    /// RFC 5883 multihop rather than RFC 5881 single-hop.
    pub multihop: bool,
}

/// A state change of one session, as the BGP driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdEvent {
    /// The peer address the session was registered with.
    pub peer: IpAddr,
    /// The local address it was registered with.
    pub local: IpAddr,
    /// State before the change.
    pub previous: State,
    /// State now.
    pub state: State,
    /// Why (bfd.LocalDiag): e.g. ControlDetectionTimeExpired or NeighborSignaledSessionDown.
    pub diagnostic: Diagnostic,
}

impl BfdEvent {
    /// An Up session failed: the BGP session must go down now.
    pub fn is_failure(&self) -> bool {
        self.previous == State::Up && self.state != State::Up
    }
}

#[derive(Debug)]
enum Command {
    Register {
        spec: SessionSpec,
        reply: oneshot::Sender<Result<Registered>>,
    },
    Deregister {
        key: SessionKey,
    },
    Admin {
        key: SessionKey,
        down: bool,
    },
}

#[derive(Debug)]
struct Registered {
    discriminator: u32,
    events_rx: mpsc::UnboundedReceiver<BfdEvent>,
    state_rx: watch::Receiver<State>,
    auth_failures: AuthFailureCounter,
}

/// Handle on the BFD driver task; dropping it stops the task and every session.
#[derive(Debug)]
pub struct Bfd {
    cmd_tx: mpsc::UnboundedSender<Command>,
    _task: AbortOnDrop,
}

impl Bfd {
    /// Starts the driver on the current tokio runtime (panics outside one, like `tokio::spawn`).
    /// Sockets are opened by the driver task, so they belong to the network namespace of the
    /// runtime's worker threads; listening sockets are bound on the first registration of each
    /// family and kind.
    pub fn spawn() -> Self {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let seed = seed_from_environment();
        let driver = Driver::new(cmd_rx, seed);
        Self {
            cmd_tx,
            _task: AbortOnDrop(tokio::spawn(driver.run())),
        }
    }

    /// Registers a session and starts sending Control packets to the peer.
    pub async fn register(&self, spec: SessionSpec) -> Result<BfdSession> {
        let key = SessionKey {
            peer: spec.peer,
            local: spec.local,
            multihop: spec.config.multihop,
        };
        let (reply, reply_rx) = oneshot::channel();
        self.cmd_tx
            .send(Command::Register { spec, reply })
            .map_err(|_| Error::DriverGone)?;
        let registered = reply_rx.await.map_err(|_| Error::DriverGone)??;
        Ok(BfdSession {
            key,
            discriminator: registered.discriminator,
            events_rx: registered.events_rx,
            state_rx: registered.state_rx,
            auth_failures: registered.auth_failures,
            cmd_tx: self.cmd_tx.clone(),
        })
    }
}

/// Packets one session discarded by the authentication rules; a cheap shared handle for status
/// pages and metrics.
#[derive(Debug, Clone, Default)]
pub struct AuthFailureCounter(Arc<AtomicU64>);

impl AuthFailureCounter {
    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn increment(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// One registered session: its state changes, in order. Deregisters on drop (after telling the
/// peer AdminDown).
#[derive(Debug)]
pub struct BfdSession {
    key: SessionKey,
    discriminator: u32,
    events_rx: mpsc::UnboundedReceiver<BfdEvent>,
    state_rx: watch::Receiver<State>,
    auth_failures: AuthFailureCounter,
    cmd_tx: mpsc::UnboundedSender<Command>,
}

impl BfdSession {
    /// Packets demultiplexed to this session and discarded by the authentication rules (no, the
    /// wrong or an unexpected authentication section, wrong key ID, replayed sequence number,
    /// bad digest) since registration.
    pub fn auth_failures(&self) -> u64 {
        self.auth_failures.get()
    }

    /// A handle on the same count, which outlives this session handle.
    pub fn auth_failure_counter(&self) -> AuthFailureCounter {
        self.auth_failures.clone()
    }

    /// The registration key.
    pub fn key(&self) -> SessionKey {
        self.key
    }

    /// Our discriminator (bfd.LocalDiscr).
    pub fn discriminator(&self) -> u32 {
        self.discriminator
    }

    /// The current state.
    pub fn state(&self) -> State {
        *self.state_rx.borrow()
    }

    /// A watch on the current state (for metrics and status pages).
    pub fn watch_state(&self) -> watch::Receiver<State> {
        self.state_rx.clone()
    }

    /// The next state change; `None` once the driver is gone.
    pub async fn recv(&mut self) -> Option<BfdEvent> {
        self.events_rx.recv().await
    }

    /// The next state change if one is already queued.
    pub fn try_recv(&mut self) -> Option<BfdEvent> {
        self.events_rx.try_recv().ok()
    }

    /// Takes the session administratively down (`true`) or back (`false`), RFC 5880 §6.8.16.
    pub fn set_admin_down(&self, down: bool) -> Result<()> {
        self.cmd_tx
            .send(Command::Admin {
                key: self.key,
                down,
            })
            .map_err(|_| Error::DriverGone)
    }
}

impl Drop for BfdSession {
    fn drop(&mut self) {
        // The driver may already be gone; nothing to undo then.
        let _ = self.cmd_tx.send(Command::Deregister { key: self.key });
    }
}

/// Which listening socket a datagram came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Listener {
    ipv6: bool,
    multihop: bool,
}

impl Listener {
    fn port(self) -> u16 {
        if self.multihop {
            MULTIHOP_PORT
        } else {
            SINGLE_HOP_PORT
        }
    }
}

#[derive(Debug)]
struct Datagram {
    listener: Listener,
    payload: Vec<u8>,
    source: SocketAddr,
    destination: Option<IpAddr>,
    ttl: Option<u8>,
    ifindex: Option<u32>,
}

#[derive(Debug)]
struct Entry {
    key: SessionKey,
    session: Session,
    socket: UdpSocket,
    destination: SocketAddr,
    ifindex: Option<u32>,
    events_tx: mpsc::UnboundedSender<BfdEvent>,
    state_tx: watch::Sender<State>,
    tx_failing: bool,
    auth_failures: AuthFailureCounter,
    /// When the last authentication failure was logged, and how many went unlogged since.
    auth_logged_at: Option<Instant>,
    auth_unlogged: u64,
}

struct Driver {
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    dgram_tx: mpsc::Sender<Datagram>,
    dgram_rx: mpsc::Receiver<Datagram>,
    listeners: BTreeMap<Listener, AbortOnDrop>,
    sessions: BTreeMap<u32, Entry>,
    by_key: BTreeMap<SessionKey, u32>,
    prng: Prng,
}

impl Driver {
    fn new(cmd_rx: mpsc::UnboundedReceiver<Command>, seed: u64) -> Self {
        let (dgram_tx, dgram_rx) = mpsc::channel(1024);
        Self {
            cmd_rx,
            dgram_tx,
            dgram_rx,
            listeners: BTreeMap::new(),
            sessions: BTreeMap::new(),
            by_key: BTreeMap::new(),
            prng: Prng::new(seed),
        }
    }

    async fn run(mut self) {
        loop {
            let deadline = self
                .sessions
                .values()
                .filter_map(|e| e.session.poll_timeout())
                .min();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = self.cmd_rx.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => return,
                },
                Some(datagram) = self.dgram_rx.recv() => self.on_datagram(datagram),
                () = sleep => self.on_timeouts(),
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Register { spec, reply } => {
                let result = self.register(spec);
                // The caller may have given up waiting; its session then deregisters on drop of
                // the receiver halves, which happens when `result` is dropped here.
                let _ = reply.send(result);
            }
            Command::Deregister { key } => self.deregister(key),
            Command::Admin { key, down } => {
                let Some(discr) = self.by_key.get(&key).copied() else {
                    return;
                };
                let input = if down {
                    Input::AdminDown
                } else {
                    Input::AdminUp
                };
                self.feed(discr, input);
            }
        }
    }

    fn register(&mut self, spec: SessionSpec) -> Result<Registered> {
        if spec.peer.is_ipv6() != spec.local.is_ipv6() {
            return Err(Error::MixedFamilies {
                peer: spec.peer,
                local: spec.local,
            });
        }
        let key = SessionKey {
            peer: spec.peer,
            local: spec.local,
            multihop: spec.config.multihop,
        };
        if self.by_key.contains_key(&key) {
            return Err(Error::Duplicate {
                peer: spec.peer,
                local: spec.local,
            });
        }
        let config = SessionConfig::try_from(&spec.config)?;
        let listener = Listener {
            ipv6: spec.peer.is_ipv6(),
            multihop: spec.config.multihop,
        };
        self.ensure_listener(listener)?;
        let ifindex = spec
            .interface
            .as_deref()
            .map(|name| {
                nix::net::if_::if_nametoindex(name).map_err(|e| Error::Io {
                    what: format!("interface {name}"),
                    message: e.to_string(),
                })
            })
            .transpose()?;
        let socket = self.transmit_socket(&spec, ifindex)?;
        let destination = match spec.peer {
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(
                v6,
                listener.port(),
                0,
                // Link-local peers are only reachable through the interface's scope.
                if v6.is_unicast_link_local() {
                    ifindex.unwrap_or(0)
                } else {
                    0
                },
            )),
            IpAddr::V4(_) => SocketAddr::new(spec.peer, listener.port()),
        };
        let discriminator = self.allocate_discriminator();
        let now = now();
        let mut session =
            Session::new(discriminator, config, Prng::new(self.prng.next_u64()), now)?;
        let authenticated = spec.auth.is_some();
        if let Some(key) = spec.auth {
            session = session.with_authentication(key);
        }
        let auth_failures = AuthFailureCounter::default();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(session.state());
        info!(peer = %spec.peer, local = %spec.local, multihop = spec.config.multihop,
            discriminator, authenticated, "BFD session registered");
        self.sessions.insert(
            discriminator,
            Entry {
                key,
                session,
                socket,
                destination,
                ifindex,
                events_tx,
                state_tx,
                tx_failing: false,
                auth_failures: auth_failures.clone(),
                auth_logged_at: None,
                auth_unlogged: 0,
            },
        );
        self.by_key.insert(key, discriminator);
        Ok(Registered {
            discriminator,
            events_rx,
            state_rx,
            auth_failures,
        })
    }

    fn deregister(&mut self, key: SessionKey) {
        let Some(discr) = self.by_key.remove(&key) else {
            return;
        };
        let Some(mut entry) = self.sessions.remove(&discr) else {
            return;
        };
        // Tell the peer we are going away on purpose (AdminDown), rather than letting it time out.
        let now = now();
        if entry.session.handle(now, Input::AdminDown).is_ok() {
            let packet = entry.session.control_packet(now);
            send(&mut entry, &packet);
        }
        info!(peer = %key.peer, local = %key.local, "BFD session deregistered");
    }

    fn allocate_discriminator(&mut self) -> u32 {
        loop {
            // Random, so a restarted speaker does not reuse the discriminators the peer still
            // associates with the old sessions.
            let candidate = (self.prng.next_u64() >> 32) as u32;
            if candidate != 0 && !self.sessions.contains_key(&candidate) {
                return candidate;
            }
        }
    }

    fn ensure_listener(&mut self, listener: Listener) -> Result<()> {
        if self.listeners.contains_key(&listener) {
            return Ok(());
        }
        let socket = listen_socket(listener)?;
        let dgram_tx = self.dgram_tx.clone();
        let task = tokio::spawn(receive_loop(socket, listener, dgram_tx));
        self.listeners.insert(listener, AbortOnDrop(task));
        Ok(())
    }

    fn transmit_socket(&mut self, spec: &SessionSpec, ifindex: Option<u32>) -> Result<UdpSocket> {
        let domain = if spec.peer.is_ipv6() {
            Domain::IPV6
        } else {
            Domain::IPV4
        };
        let what = |s: &str| format!("{s} (BFD to {})", spec.peer);
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
            .map_err(|e| Error::io(what("socket"), &e))?;
        if spec.peer.is_ipv6() {
            socket
                .set_unicast_hops_v6(TTL.into())
                .map_err(|e| Error::io(what("IPV6_UNICAST_HOPS"), &e))?;
            socket
                .set_tclass_v6(TOS_CS6)
                .map_err(|e| Error::io(what("IPV6_TCLASS"), &e))?;
        } else {
            socket
                .set_ttl_v4(TTL.into())
                .map_err(|e| Error::io(what("IP_TTL"), &e))?;
            socket
                .set_tos_v4(TOS_CS6)
                .map_err(|e| Error::io(what("IP_TOS"), &e))?;
        }
        if let Some(interface) = &spec.interface {
            socket
                .bind_device(Some(interface.as_bytes()))
                .map_err(|e| Error::io(what("SO_BINDTODEVICE"), &e))?;
        }
        socket
            .set_nonblocking(true)
            .map_err(|e| Error::io(what("O_NONBLOCK"), &e))?;
        // RFC 5881 §4: a source port in 49152–65535, unique per session: start at a random port
        // and take the first free one.
        let span = u64::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
        let start = self.prng.next_u64() % span;
        let mut last_error = None;
        for i in 0..span {
            let offset = u16::try_from((start + i) % span).unwrap_or(0);
            let port = SOURCE_PORTS.start() + offset;
            let source = match spec.local {
                // A link-local source only exists within its interface's scope.
                IpAddr::V6(v6) if v6.is_unicast_link_local() => {
                    SocketAddr::V6(SocketAddrV6::new(v6, port, 0, ifindex.unwrap_or(0)))
                }
                local => SocketAddr::new(local, port),
            };
            match socket.bind(&source.into()) {
                Ok(()) => {
                    let std_socket: std::net::UdpSocket = socket.into();
                    return UdpSocket::from_std(std_socket)
                        .map_err(|e| Error::io(what("register with tokio"), &e));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last_error = Some(e),
                Err(e) => return Err(Error::io(what(&format!("bind {}", spec.local)), &e)),
            }
        }
        let e = last_error.unwrap_or_else(|| std::io::Error::other("no source port"));
        Err(Error::io(what("bind a source port in 49152-65535"), &e))
    }

    fn on_datagram(&mut self, d: Datagram) {
        match self.demultiplex(&d) {
            Ok((discr, repr)) => self.feed(discr, Input::Received(repr)),
            Err(e) => debug!(source = %d.source, error = %e, "BFD packet discarded"),
        }
    }

    /// RFC 5880 §6.8.6 (session selection) plus RFC 5881/5883 encapsulation checks.
    fn demultiplex(&self, d: &Datagram) -> Result<(u32, Repr)> {
        let repr = Repr::parse_bytes(&d.payload)?;
        // RFC 5881 §5: "If BFD authentication is not in use on a session, all BFD Control
        // packets for the session MUST be sent with a Time to Live (TTL) or Hop Limit value of
        // 255. All received BFD Control packets that are demultiplexed to the session MUST be
        // discarded if the received TTL or Hop Limit is not equal to 255."
        if !d.listener.multihop && d.ttl != Some(TTL) {
            return Err(Error::BadTtl {
                source_addr: d.source,
                ttl: d.ttl.unwrap_or(0),
            });
        }
        let peer = canonical(d.source.ip());
        let discr = if repr.your_discriminator != 0 {
            let entry = self
                .sessions
                .get(&repr.your_discriminator)
                .filter(|e| e.key.multihop == d.listener.multihop)
                .ok_or(Error::UnknownDiscriminator(repr.your_discriminator))?;
            if entry.key.peer != peer {
                return Err(Error::WrongSource {
                    discriminator: repr.your_discriminator,
                    source_addr: peer,
                    peer: entry.key.peer,
                });
            }
            repr.your_discriminator
        } else {
            let exact = d.destination.and_then(|local| {
                self.by_key.get(&SessionKey {
                    peer,
                    local,
                    multihop: d.listener.multihop,
                })
            });
            let any_local = || {
                let unspecified = if peer.is_ipv6() {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                };
                self.by_key.get(&SessionKey {
                    peer,
                    local: unspecified,
                    multihop: d.listener.multihop,
                })
            };
            *exact.or_else(any_local).ok_or(Error::UnknownPeer {
                peer,
                local: d.destination,
            })?
        };
        // A single-hop session bound to an interface only accepts packets arriving on it.
        if let Some(entry) = self.sessions.get(&discr)
            && !d.listener.multihop
            && let (Some(want), Some(got)) = (entry.ifindex, d.ifindex)
            && want != got
        {
            return Err(Error::UnknownPeer {
                peer,
                local: d.destination,
            });
        }
        Ok((discr, repr))
    }

    fn on_timeouts(&mut self) {
        let now = now();
        let due: Vec<u32> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.session.poll_timeout().is_some_and(|t| t <= now))
            .map(|(d, _)| *d)
            .collect();
        for discr in due {
            if let Some(entry) = self.sessions.get_mut(&discr) {
                let outputs = entry.session.handle_timeout(now);
                apply(entry, outputs);
            }
        }
    }

    fn feed(&mut self, discr: u32, input: Input) {
        let Some(entry) = self.sessions.get_mut(&discr) else {
            return;
        };
        let now = now();
        match entry.session.handle(now, input) {
            Ok(outputs) => apply(entry, outputs),
            Err(e) if e.is_auth_failure() => on_auth_failure(entry, now, &e),
            Err(e) => debug!(peer = %entry.key.peer, error = %e, "BFD input discarded"),
        }
    }
}

/// Counts a packet the authentication rules discarded and logs it, rate-limited per session.
fn on_auth_failure(entry: &mut Entry, now: Instant, error: &Error) {
    let total = entry.auth_failures.increment();
    let due = entry
        .auth_logged_at
        .is_none_or(|at| now.saturating_duration_since(at) >= AUTH_LOG_INTERVAL);
    if due {
        warn!(peer = %entry.key.peer, local = %entry.key.local, %error,
            suppressed = entry.auth_unlogged, total,
            "BFD packet failed authentication and was discarded");
        entry.auth_logged_at = Some(now);
        entry.auth_unlogged = 0;
    } else {
        entry.auth_unlogged += 1;
    }
}

/// Carries out a session's outputs: packets to the wire, state changes to the subscriber.
fn apply(entry: &mut Entry, outputs: Vec<Output>) {
    for output in outputs {
        match output {
            Output::Send(repr) => send(entry, &repr),
            Output::StateChanged {
                from,
                to,
                diagnostic,
            } => {
                if from == State::Up || to == State::Up {
                    info!(peer = %entry.key.peer, local = %entry.key.local, %from, %to,
                        %diagnostic, "BFD session state changed");
                } else {
                    debug!(peer = %entry.key.peer, %from, %to, %diagnostic, "BFD state");
                }
                entry.state_tx.send_replace(to);
                // The subscriber may be gone already (deregistration in flight).
                let _ = entry.events_tx.send(BfdEvent {
                    peer: entry.key.peer,
                    local: entry.key.local,
                    previous: from,
                    state: to,
                    diagnostic,
                });
            }
        }
    }
}

fn send(entry: &mut Entry, repr: &Repr) {
    match entry
        .socket
        .try_send_to(&repr.to_bytes(), entry.destination)
    {
        Ok(_) => {
            if std::mem::take(&mut entry.tx_failing) {
                info!(peer = %entry.key.peer, "BFD transmission recovered");
            }
        }
        Err(e) => {
            // Link down or no route: detection will take the session down; say so once.
            if !entry.tx_failing {
                warn!(peer = %entry.key.peer, error = %e, "BFD transmission failing");
                entry.tx_failing = true;
            }
        }
    }
}

/// The session clock: tokio's, so paused-time tests drive it too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Maps IPv4-mapped IPv6 sources to IPv4 (they cannot occur on our v6-only sockets, but keep the
/// key comparison honest).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn seed_from_environment() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

fn listen_socket(listener: Listener) -> Result<UdpSocket> {
    let port = listener.port();
    let (domain, address) = if listener.ipv6 {
        (
            Domain::IPV6,
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
        )
    } else {
        (
            Domain::IPV4,
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
        )
    };
    let what = |s: &str| format!("{s} ({address})");
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| Error::io(what("socket"), &e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| Error::io(what("SO_REUSEADDR"), &e))?;
    let sockopt_error = |name: &str, e: nix::Error| Error::Io {
        what: what(name),
        message: e.to_string(),
    };
    if listener.ipv6 {
        socket
            .set_only_v6(true)
            .map_err(|e| Error::io(what("IPV6_V6ONLY"), &e))?;
        setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true)
            .map_err(|e| sockopt_error("IPV6_RECVHOPLIMIT", e))?;
        setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)
            .map_err(|e| sockopt_error("IPV6_RECVPKTINFO", e))?;
    } else {
        setsockopt(&socket, sockopt::Ipv4RecvTtl, &true)
            .map_err(|e| sockopt_error("IP_RECVTTL", e))?;
        setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)
            .map_err(|e| sockopt_error("IP_PKTINFO", e))?;
    }
    socket
        .set_nonblocking(true)
        .map_err(|e| Error::io(what("O_NONBLOCK"), &e))?;
    socket
        .bind(&address.into())
        .map_err(|e| Error::io(what("bind"), &e))?;
    let std_socket: std::net::UdpSocket = socket.into();
    UdpSocket::from_std(std_socket).map_err(|e| Error::io(what("register with tokio"), &e))
}

/// Child task: datagrams with their TTL, destination and interface to the owner.
async fn receive_loop(socket: UdpSocket, listener: Listener, dgram_tx: mpsc::Sender<Datagram>) {
    loop {
        let received = socket
            .async_io(Interest::READABLE, || receive_one(&socket, listener))
            .await;
        match received {
            Ok(Some(datagram)) => {
                if dgram_tx.send(datagram).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                warn!(port = listener.port(), error = %e, "BFD receive failed");
                // Avoid a hot loop on a persistent error.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

fn receive_one(socket: &UdpSocket, listener: Listener) -> std::io::Result<Option<Datagram>> {
    let mut buffer = [0u8; 512];
    let mut control = nix::cmsg_space!(
        nix::libc::c_int,
        nix::libc::in_pktinfo,
        nix::libc::in6_pktinfo
    );
    let mut iov = [std::io::IoSliceMut::new(&mut buffer)];
    let message = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)?;
    let bytes = message.bytes;
    let source = message.address.and_then(|a| {
        a.as_sockaddr_in()
            .map(|v4| SocketAddr::from(*v4))
            .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6)))
    });
    let mut ttl = None;
    let mut destination = None;
    let mut ifindex = None;
    if let Ok(cmsgs) = message.cmsgs() {
        for cmsg in cmsgs {
            match cmsg {
                ControlMessageOwned::Ipv4Ttl(t) => ttl = u8::try_from(t).ok(),
                ControlMessageOwned::Ipv6HopLimit(h) => ttl = u8::try_from(h).ok(),
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    destination = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        info.ipi_addr.s_addr,
                    ))));
                    ifindex = u32::try_from(info.ipi_ifindex).ok();
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    destination = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                    ifindex = Some(info.ipi6_ifindex);
                }
                _ => {}
            }
        }
    }
    let Some(source) = source else {
        return Ok(None);
    };
    let payload = buffer.get(..bytes).unwrap_or_default().to_vec();
    Ok(Some(Datagram {
        listener,
        payload,
        source,
        destination,
        ttl,
        ifindex,
    }))
}

//! The BGP instance's owner task: one task owns every peer's [`Session`] and runs `select!` over
//! typed channels (commands from the ops surface, accepted connections, connect results, decoded
//! messages) and the sessions' earliest deadline. Child tasks only turn I/O into events: a
//! listener, one connect attempt per peer at most, and a reader plus a writer per connection.
//!
//! The owner's concerns beyond the event loop live in submodules: `reload` (sessions whose
//! peering parameters did not change keep running), `restart_state` (the graceful-restart
//! state file, restart detection for the R bit), `route_server` (fan-out of learned routes to
//! the other peers and the FIB, `speaker routes` rows) and `status` (peer snapshots).
//!
//! I/O boundary: the sockets of [`super::listener`], [`super::connect`] and [`super::codec`], and
//! the state file. Time is tokio's clock, handed to the pure core as `std::time::Instant`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bgp_proto::iana::{CeaseSubcode, ErrorCode, Family as ProtoFamily};
use bgp_proto::{DecodeContext, Message, Notification};
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;

use super::codec::{
    OUTBOUND_LIMIT_BYTES, Outbound, QueueError, ReadEvent, SEND_HOLD_TIMER_EXPIRED, WriteEnd,
    outbound, read_loop, write_loop,
};
use super::connect::{self, SocketOptions, connect};
use super::link_local::link_local_for;
use super::listener;
use crate::advertise::local::is_ebgp;
use crate::advertise::{PeerRoutes, ServiceState, local_routes};
use crate::bfd::{AuthFailureCounter, AuthKey, Bfd, SessionSpec};
use crate::bgp::collision::Direction;
use crate::bgp::fsm::{self, ConnId, FsmConfig};
use crate::bgp::loc_rib::RouteServer;
use crate::bgp::route_rows::{RouteQuery, RouteRow};
use crate::bgp::session::{GrConfig, Output, PeerReset, Session, SessionConfig};
use crate::config::{BgpConfig, Config, Family, PeerConfig};
use crate::error::{Error, Result};
use crate::fib::driver::FibHandle;
use crate::import_policy::PeerInfo;
use crate::task::AbortOnDrop;

mod bmp;
mod reload;
mod restart_state;
mod route_server;
mod status;

pub use reload::ReloadReport;
use restart_state::{detect_restart, state_file, touch_state_file};
pub use status::{PeerStatus, family_name};

/// Requests to the owner task.
#[derive(Debug)]
enum Command {
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    Reload(
        Box<(Config, Option<ServiceState>)>,
        oneshot::Sender<Result<ReloadReport>>,
    ),
    SetServices(Box<ServiceState>),
    Routes(RouteQuery, oneshot::Sender<Vec<RouteRow>>),
    Reset(String, PeerReset, oneshot::Sender<Result<IpAddr>>),
    BfdDown(IpAddr),
    BfdState(IpAddr, String),
    BfdRegistered(IpAddr, AuthFailureCounter),
    Bmp(crate::bmp::collector::Request),
    BmpStatus(oneshot::Sender<Vec<crate::bmp::hub::CollectorStatus>>),
    Shutdown(oneshot::Sender<()>),
}

/// Events from child tasks.
#[derive(Debug)]
enum Event {
    Connected {
        peer: IpAddr,
        attempt: u64,
        result: Result<TcpStream>,
    },
    Read(ConnId, ReadEvent),
    Write(ConnId, WriteEnd),
}

impl From<(ConnId, ReadEvent)> for Event {
    fn from((conn, event): (ConnId, ReadEvent)) -> Self {
        Event::Read(conn, event)
    }
}

impl From<(ConnId, WriteEnd)> for Event {
    fn from((conn, end): (ConnId, WriteEnd)) -> Self {
        Event::Write(conn, end)
    }
}

/// A handle to the running instance; dropping it stops the instance task.
#[derive(Debug)]
pub struct Instance {
    commands: mpsc::Sender<Command>,
    /// Keeps the owner task alive; aborts it on drop.
    _task: AbortOnDrop,
    local_port: Option<u16>,
}

impl Instance {
    /// Starts the instance described by `config` (which must have a `bgp` section), announcing
    /// what its advertisements select among `services`. With `bgp.fibImport`, opens the kernel
    /// table in the calling thread's network namespace.
    pub async fn start(config: Config, services: ServiceState) -> Result<Self> {
        let bgp = config
            .bgp
            .clone()
            .ok_or(Error::NotImplemented("a speaker without a bgp section"))?;
        let restarting = detect_restart(&bgp)?;
        let listener = if bgp.listen.port == 0 {
            None
        } else {
            Some(listener::bind(bgp.listen.address, bgp.listen.port)?)
        };
        let local_port = match &listener {
            Some(l) => Some(
                l.local_addr()
                    .map_err(|e| Error::io("listener address", e))?
                    .port(),
            ),
            None => None,
        };
        let fib = match &bgp.fib_import {
            Some(fib_config) => Some(FibHandle::start(fib_config.value).await?),
            None => None,
        };
        let (commands_tx, commands_rx) = mpsc::channel(64);
        let (events_tx, events_rx) = mpsc::channel(1024);
        let (accepted_tx, accepted_rx) = mpsc::channel(64);
        let accept_task = listener
            .clone()
            .map(|l| AbortOnDrop(tokio::spawn(listener::accept_loop(l, accepted_tx))));
        // BMP sysName: the node's name.
        let sys_name = config.node.name.clone();
        let mut owner = Owner {
            config,
            bgp_config: bgp.clone(),
            listener,
            _accept_task: accept_task,
            peers: BTreeMap::new(),
            conns: HashMap::new(),
            next_conn: 1,
            events_tx,
            restarting,
            local: PeerRoutes::new(),
            services,
            fib_awaiting_eor: fib.as_ref().is_some_and(FibHandle::kept_routes),
            fib,
            bfd: None,
            retiring_bfd: BTreeMap::new(),
            commands_tx: commands_tx.downgrade(),
            pending_changes: BTreeMap::new(),
            bmp: bmp::BmpHub::new(sys_name, commands_tx.downgrade()),
        };
        owner.bmp.configure(&bmp::collectors(&bgp));
        owner.local = local_routes(&owner.config, &owner.services);
        for peer in bgp.peers.clone() {
            owner.add_peer(peer)?;
        }
        let task = tokio::spawn(owner.run(commands_rx, events_rx, accepted_rx));
        Ok(Self {
            commands: commands_tx,
            _task: AbortOnDrop(task),
            local_port,
        })
    }

    /// The port the listener is bound to (useful when configured as an ephemeral port).
    pub fn local_port(&self) -> Option<u16> {
        self.local_port
    }

    /// A cheap clonable handle for the ops surface.
    pub fn handle(&self) -> InstanceHandle {
        InstanceHandle {
            commands: self.commands.clone(),
        }
    }

    /// Stops every session (graceful-restart peers see the TCP connection close without a
    /// NOTIFICATION, so they keep our routes until we are back) and waits for the task.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// A clonable handle to send requests to the instance.
#[derive(Debug, Clone)]
pub struct InstanceHandle {
    commands: mpsc::Sender<Command>,
}

impl InstanceHandle {
    /// Snapshots of every peer.
    pub async fn peers(&self) -> Result<Vec<PeerStatus>> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Peers(tx))
            .await
            .map_err(|_| Error::InstanceGone)?;
        rx.await.map_err(|_| Error::InstanceGone)
    }

    /// Applies a new configuration and, when given, new services in the same step: the peers
    /// get one set of differences, never an intermediate state of new config and old services.
    pub async fn reload(
        &self,
        config: Config,
        services: Option<ServiceState>,
    ) -> Result<ReloadReport> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reload(Box::new((config, services)), tx))
            .await
            .map_err(|_| Error::InstanceGone)?;
        rx.await.map_err(|_| Error::InstanceGone)?
    }

    /// Replaces the services and allocations the advertisements select from; the peers get
    /// the differences.
    pub async fn set_services(&self, services: ServiceState) -> Result<()> {
        self.commands
            .send(Command::SetServices(Box::new(services)))
            .await
            .map_err(|_| Error::InstanceGone)
    }

    /// The BMP collectors and their counters.
    pub async fn bmp_collectors(&self) -> Result<Vec<crate::bmp::hub::CollectorStatus>> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::BmpStatus(tx))
            .await
            .map_err(|_| Error::InstanceGone)?;
        rx.await.map_err(|_| Error::InstanceGone)
    }

    /// Routes advertised to or received from peers.
    pub async fn routes(&self, query: RouteQuery) -> Result<Vec<RouteRow>> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Routes(query, tx))
            .await
            .map_err(|_| Error::InstanceGone)?;
        rx.await.map_err(|_| Error::InstanceGone)
    }

    /// `speaker reset`: resets (or soft-resets) the peer named `peer` (configured name or
    /// address) and returns its address.
    pub async fn reset_peer(&self, peer: String, kind: PeerReset) -> Result<IpAddr> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Reset(peer, kind, tx))
            .await
            .map_err(|_| Error::InstanceGone)?;
        rx.await.map_err(|_| Error::InstanceGone)?
    }

    /// BFD reported the path to `peer` down: the session goes down at once (RFC 9384 Cease
    /// subcode "BFD Down").
    pub async fn bfd_down(&self, peer: IpAddr) -> Result<()> {
        self.commands
            .send(Command::BfdDown(peer))
            .await
            .map_err(|_| Error::InstanceGone)
    }
}

struct ConnSlot {
    peer: IpAddr,
    writer: Outbound,
    context: watch::Sender<DecodeContext>,
    /// Our address and the peer's on this connection (BMP Peer Up).
    addrs: Option<(SocketAddr, SocketAddr)>,
    _reader: AbortOnDrop,
    _writer_task: JoinHandle<()>,
}

struct PeerSlot {
    config: PeerConfig,
    session: Session,
    options: SocketOptions,
    connect_task: Option<AbortOnDrop>,
    attempt: u64,
    /// The BFD session bound to this peer (registration and event relay), if configured.
    bfd_task: Option<AbortOnDrop>,
    bfd_state: Option<String>,
    /// The BFD authentication key the session was registered with (compared on reload, so a
    /// changed key file re-registers the session).
    bfd_key: Option<AuthKey>,
    /// Packets the registered BFD session discarded by its authentication rules.
    bfd_auth_failures: Option<AuthFailureCounter>,
}

struct Owner {
    config: Config,
    /// `config.bgp`, which `Instance::start` and reloads require.
    bgp_config: BgpConfig,
    listener: Option<Arc<TcpListener>>,
    _accept_task: Option<AbortOnDrop>,
    peers: BTreeMap<IpAddr, PeerSlot>,
    conns: HashMap<ConnId, ConnSlot>,
    next_conn: ConnId,
    events_tx: mpsc::Sender<Event>,
    restarting: bool,
    /// What we originate to each peer (from the advertisements and services).
    local: PeerRoutes,
    /// The services and allocations advertisements select from.
    services: ServiceState,
    /// The FIB import task, with `bgp.fibImport`.
    fib: Option<FibHandle>,
    /// The FIB keeps a previous run's routes until every peer has sent End-of-RIB.
    fib_awaiting_eor: bool,
    /// The BFD driver, started with the first peer that asks for BFD.
    bfd: Option<Arc<Bfd>>,
    /// BFD relay tasks of removed peers, aborted but perhaps not yet stopped: a peer added again
    /// (a reset) waits for its old task before registering, see [`Owner::start_bfd`].
    retiring_bfd: BTreeMap<IpAddr, AbortOnDrop>,
    /// For tasks that report back (BFD relays); weak so it does not keep the loop alive.
    commands_tx: mpsc::WeakSender<Command>,
    /// Prefixes whose accepted routes changed, by the peer they came from, not yet passed on
    /// to the route-server clients and the FIB (see [`Owner::flush_route_changes`]).
    pending_changes: BTreeMap<IpAddr, Vec<IpNet>>,
    /// BMP collectors (`bgp.bmp`) and what they were told.
    bmp: bmp::BmpHub,
}

/// Least time between two replays of a family's Adj-RIB-Out for ROUTE-REFRESH requests.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// Most events handled back to back before learned-route changes are passed on: large enough
/// that a burst of one-prefix UPDATEs leaves as a few packed ones, small enough to bound delay.
const EVENT_BATCH: usize = 512;
/// A batch also ends once this many prefixes wait, so full UPDATEs (hundreds of prefixes each)
/// do not pile up the fan-out's intermediate state.
const PENDING_LIMIT: usize = 8192;

/// Most routes named one per line when a batch of routes cannot be sent to a peer; the rest are
/// counted in one line (each route is reported once until it is sent or withdrawn, and the
/// whole list is in `herald bgp peers` / the metrics as a count).
const UNSENT_LOG_LINES: usize = 8;

/// Reports routes that cannot be encoded for a peer: the peer does not have them.
fn log_unsent(peer: IpAddr, name: &str, routes: &[(IpNet, String)]) {
    for (prefix, reason) in routes.iter().take(UNSENT_LOG_LINES) {
        tracing::error!(%peer, name, %prefix, %reason, "route not advertised to the peer: it cannot be encoded for this session");
    }
    if routes.len() > UNSENT_LOG_LINES {
        tracing::error!(%peer, name, more = routes.len() - UNSENT_LOG_LINES, "more routes not advertised to the peer for the same kind of reason");
    }
}

/// The peer's BFD authentication key, read from its file (`None` without authentication).
pub(super) fn bfd_key(peer: &PeerConfig) -> Result<Option<AuthKey>> {
    peer.bfd
        .as_ref()
        .and_then(|bfd| bfd.authentication.as_ref())
        .map(AuthKey::load)
        .transpose()
        .map_err(|source| Error::BfdKey {
            peer: peer.address.value,
            source,
        })
}

fn now_std() -> std::time::Instant {
    TokioInstant::now().into_std()
}

fn proto_family(family: Family) -> ProtoFamily {
    match family {
        Family::Ipv4Unicast => ProtoFamily::IPV4_UNICAST,
        Family::Ipv6Unicast => ProtoFamily::IPV6_UNICAST,
    }
}

impl Owner {
    fn bgp(&self) -> &BgpConfig {
        &self.bgp_config
    }

    /// Recomputes what we originate and sends every peer its differences.
    fn refresh_local_routes(&mut self) {
        self.local = local_routes(&self.config, &self.services);
        let addresses: Vec<IpAddr> = self.peers.keys().copied().collect();
        for address in addresses {
            let routes = self.local.get(&address).cloned().unwrap_or_default();
            if let Some(slot) = self.peers.get_mut(&address) {
                let outputs = slot.session.set_local_routes(routes);
                self.apply(address, outputs);
            }
        }
    }

    /// Who each peer is, for best-path selection.
    fn peer_info(&self, address: IpAddr, slot: &PeerSlot) -> PeerInfo {
        PeerInfo {
            address,
            router_id: slot
                .session
                .fsm()
                .remote_open()
                .map_or(std::net::Ipv4Addr::UNSPECIFIED, |o| o.bgp_id),
            ebgp: is_ebgp(self.bgp().local_asn, slot.config.asn),
            interface: slot
                .config
                .interface_name()
                .and_then(|name| connect::interface_index(name).ok()),
        }
    }

    fn session_config(&self, peer: &PeerConfig) -> SessionConfig {
        let bgp = self.bgp();
        let mut fsm = FsmConfig::new(bgp.local_asn, self.config.node.router_id, peer.asn);
        fsm.hold_time = peer.timers.hold_time_seconds.0;
        fsm.keepalive_time = peer.timers.keepalive_time_seconds;
        fsm.connect_retry =
            Duration::from_secs(u64::from(peer.timers.connect_retry_time_seconds.max(1)));
        fsm.idle_hold_base = Duration::from_secs(u64::from(peer.timers.idle_hold_time_seconds));
        fsm.idle_hold_max = Duration::from_secs(120).max(fsm.idle_hold_base);
        fsm.passive = peer.passive;
        // Different seeds per peer so their timers do not beat in step.
        fsm.jitter_seed = match peer.address.value {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a) as u64,
        } ^ u64::from(u32::from(self.config.node.router_id));
        SessionConfig {
            fsm,
            families: peer
                .effective_families()
                .into_iter()
                .map(proto_family)
                .collect(),
            import: bgp.import_policy.clone(),
            max_prefixes: peer.effective_max_prefixes(),
            soft_reconfiguration_inbound: peer.soft_reconfiguration_inbound,
            refresh_interval: REFRESH_INTERVAL,
            graceful_restart: peer.graceful_restart.enabled.then_some(GrConfig {
                restart_time: peer.graceful_restart.restart_time_seconds.0,
                restarting: self.restarting,
                // RFC 4724 §3: F covers the forwarding state for the routes the peer sent us.
                // With FIB import, that is the kernel routes the FIB found and kept at start;
                // without it, no forwarding depends on received routes, so none was lost.
                forwarding_preserved: self.fib.as_ref().is_none_or(FibHandle::kept_routes),
                long_lived_stale_time: peer
                    .graceful_restart
                    .long_lived
                    .map(|l| l.stale_time_seconds.0),
            }),
            stale_path_time: Duration::from_secs(360),
            extended_next_hop: peer.effective_extended_next_hop(),
        }
    }

    fn add_peer(&mut self, peer: PeerConfig) -> Result<()> {
        let ebgp = is_ebgp(self.bgp().local_asn, peer.asn);
        let options = SocketOptions::for_peer(&peer, ebgp)?;
        let bfd_key = bfd_key(&peer)?;
        self.add_peer_with(peer, options, bfd_key)
    }

    /// Adds a peer whose socket options (password file read) and BFD key are already known.
    fn add_peer_with(
        &mut self,
        peer: PeerConfig,
        options: SocketOptions,
        bfd_key: Option<AuthKey>,
    ) -> Result<()> {
        let address = peer.address.value;
        if let (Some(listener), Some(key)) = (&self.listener, &options.md5_key) {
            listener::set_peer_key(listener, address, key)?;
        }
        let mut session = Session::new(self.session_config(&peer));
        let now = now_std();
        let mut outputs =
            session.set_local_routes(self.local.get(&address).cloned().unwrap_or_default());
        outputs.extend(match &peer.shutdown {
            Some(_) => Vec::new(),
            None => session.handle(now, fsm::Input::Start),
        });
        tracing::info!(peer = %address, name = %peer.display_name(), "peer configured");
        let bfd_task = peer
            .bfd
            .clone()
            .map(|config| self.start_bfd(&peer, config, bfd_key.clone()));
        self.peers.insert(
            address,
            PeerSlot {
                config: peer,
                session,
                options,
                connect_task: None,
                attempt: 0,
                bfd_task,
                bfd_state: None,
                bfd_key,
                bfd_auth_failures: None,
            },
        );
        self.apply(address, outputs);
        if self.bgp().route_server {
            let prefixes = self.learned_prefixes(address);
            let changes = self.learned_changes(address, &prefixes, &mut RouteServer::default());
            self.send_learned(address, changes);
        }
        Ok(())
    }

    /// Registers a BFD session for `peer` and relays its state changes to the owner task: a
    /// failure of an Up session takes the BGP session down at once.
    fn start_bfd(
        &mut self,
        peer: &PeerConfig,
        config: crate::config::BfdConfig,
        auth: Option<AuthKey>,
    ) -> AbortOnDrop {
        let bfd = self
            .bfd
            .get_or_insert_with(|| Arc::new(Bfd::spawn()))
            .clone();
        let address = peer.address.value;
        // The peer's previous BFD task (a reload replacing the session, or a reset re-adding the
        // peer) must be gone before we register: its session deregisters when the task drops it,
        // and registering first would be refused as a duplicate.
        self.retiring_bfd.retain(|_, task| !task.0.is_finished());
        let previous = self
            .peers
            .get_mut(&address)
            .and_then(|slot| slot.bfd_task.take())
            .or_else(|| self.retiring_bfd.remove(&address));
        let local = peer.local_address.unwrap_or(match address {
            IpAddr::V4(_) => IpAddr::from([0u8; 4]),
            IpAddr::V6(_) => IpAddr::from([0u16; 8]),
        });
        let spec = SessionSpec {
            peer: address,
            local,
            interface: None,
            config,
            auth,
        };
        let commands = self.commands_tx.clone();
        AbortOnDrop(tokio::spawn(async move {
            if let Some(mut previous) = previous {
                previous.stop().await;
            }
            let mut session = match bfd.register(spec).await {
                Ok(session) => session,
                Err(error) => {
                    tracing::error!(peer = %address, %error, "BFD registration failed");
                    return;
                }
            };
            if let Some(commands) = commands.upgrade() {
                let counter = session.auth_failure_counter();
                let _ = commands
                    .send(Command::BfdRegistered(address, counter))
                    .await;
            }
            while let Some(event) = session.recv().await {
                let Some(commands) = commands.upgrade() else {
                    return;
                };
                tracing::info!(peer = %address, state = ?event.state, diagnostic = ?event.diagnostic, "BFD state change");
                let _ = commands
                    .send(Command::BfdState(address, format!("{:?}", event.state)))
                    .await;
                if event.is_failure() {
                    let _ = commands.send(Command::BfdDown(address)).await;
                }
            }
        }))
    }

    fn remove_peer(&mut self, address: IpAddr, notification: Notification) {
        let now = now_std();
        if let Some(slot) = self.peers.get_mut(&address) {
            let outputs = slot.session.handle(now, fsm::Input::Stop { notification });
            self.apply(address, outputs);
        }
        if let (Some(listener), Some(slot)) = (&self.listener, self.peers.get(&address))
            && slot.options.md5_key.is_some()
        {
            let _ = listener::set_peer_key(listener, address, &[]);
        }
        if let Some(task) = self.peers.remove(&address).and_then(|slot| slot.bfd_task) {
            task.0.abort();
            self.retiring_bfd.insert(address, task);
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: mpsc::Receiver<Event>,
        mut accepted: mpsc::Receiver<(TcpStream, SocketAddr)>,
    ) {
        let heartbeat_every = Duration::from_secs(10);
        let mut heartbeat = tokio::time::interval(heartbeat_every);
        loop {
            let deadline = self
                .peers
                .values()
                .filter_map(|p| p.session.poll_timeout())
                .min()
                .map(TokioInstant::from_std);
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Shutdown(done)) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(command) => self.on_command(command),
                    None => return,
                },
                Some(event) = events.recv() => {
                    self.on_event(event);
                    // Whatever else is already queued joins this batch.
                    for _ in 1..EVENT_BATCH {
                        if self.pending_len() >= PENDING_LIMIT {
                            break;
                        }
                        match events.try_recv() {
                            Ok(event) => self.on_event(event),
                            Err(_) => break,
                        }
                    }
                }
                Some((stream, peer)) = accepted.recv() => self.on_accepted(stream, peer),
                () = sleep => self.on_timeout(),
                _ = heartbeat.tick() => {
                    if let Some(path) = state_file(self.bgp())
                        && let Err(error) = touch_state_file(&path)
                    {
                        tracing::warn!(%error, "cannot refresh the graceful-restart state file");
                    }
                }
            }
            self.flush_route_changes();
            self.check_end_of_rib();
        }
    }

    /// RFC 4724 §4.1: once every peer has completed its initial update (End-of-RIB for each
    /// negotiated family), the FIB sweeps the previous run's routes not learned again. Peers kept
    /// administratively down are not waited for; peers that never come back are covered by the
    /// FIB's own deferral timer.
    fn check_end_of_rib(&mut self) {
        if !self.fib_awaiting_eor
            || !self
                .peers
                .values()
                .filter(|slot| slot.config.shutdown.is_none())
                .all(|slot| slot.session.initial_update_received())
        {
            return;
        }
        self.fib_awaiting_eor = false;
        if let Some(fib) = &self.fib {
            tracing::info!("End-of-RIB from every peer: sweeping stale FIB routes");
            fib.end_of_rib();
        }
    }

    fn on_timeout(&mut self) {
        let now = now_std();
        let due: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(_, p)| p.session.poll_timeout().is_some_and(|d| d <= now))
            .map(|(a, _)| *a)
            .collect();
        for address in due {
            if let Some(slot) = self.peers.get_mut(&address) {
                let outputs = slot.session.on_timeout(now);
                self.apply(address, outputs);
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Peers(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Reload(change, reply) => {
                let (config, services) = *change;
                let _ = reply.send(self.reload(config, services));
            }
            Command::SetServices(services) => {
                self.services = *services;
                self.refresh_local_routes();
            }
            Command::Routes(query, reply) => {
                let rows = self.route_rows(&query);
                let _ = reply.send(rows);
            }
            Command::Reset(peer, kind, reply) => {
                let _ = reply.send(self.reset_peer(&peer, kind));
            }
            Command::BfdDown(address) => {
                let now = now_std();
                if let Some(slot) = self.peers.get_mut(&address) {
                    tracing::warn!(peer = %address, "BFD down: resetting the BGP session");
                    let outputs = slot.session.handle(
                        now,
                        fsm::Input::Reset {
                            notification: Notification::cease(CeaseSubcode::BfdDown),
                            reason: "BFD session down".into(),
                        },
                    );
                    self.apply(address, outputs);
                }
            }
            Command::BfdState(address, state) => {
                if let Some(slot) = self.peers.get_mut(&address) {
                    slot.bfd_state = Some(state);
                }
            }
            Command::BfdRegistered(address, counter) => {
                if let Some(slot) = self.peers.get_mut(&address) {
                    slot.bfd_auth_failures = Some(counter);
                }
            }
            Command::Bmp(request) => self.on_bmp(request),
            Command::BmpStatus(reply) => {
                let _ = reply.send(self.bmp.status());
            }
            Command::Shutdown(_) => {}
        }
    }

    fn reset_peer(&mut self, peer: &str, kind: PeerReset) -> Result<IpAddr> {
        let address = self
            .peers
            .iter()
            .find(|(_, slot)| slot.config.is_named(peer))
            .map(|(address, _)| *address)
            .ok_or_else(|| Error::Control(format!("no configured peer {peer}")))?;
        let slot = self.peers.get_mut(&address).ok_or(Error::InstanceGone)?;
        tracing::warn!(%address, ?kind, "reset by the operator");
        let outputs = slot
            .session
            .operator_reset(now_std(), kind)
            .map_err(|why| Error::Control(format!("peer {peer}: {why}")))?;
        self.apply(address, outputs);
        Ok(address)
    }

    fn on_event(&mut self, event: Event) {
        let now = now_std();
        match event {
            Event::Connected {
                peer,
                attempt,
                result,
            } => {
                let Some(slot) = self.peers.get_mut(&peer) else {
                    return;
                };
                if slot.attempt != attempt || slot.connect_task.is_none() {
                    // An attempt that was abandoned meanwhile.
                    return;
                }
                slot.connect_task = None;
                match result {
                    Ok(stream) => self.register(peer, stream, Direction::Outbound),
                    Err(error) => {
                        tracing::debug!(%peer, %error, "connect failed");
                        let outputs = slot.session.handle(now, fsm::Input::ConnectFailed);
                        self.apply(peer, outputs);
                    }
                }
            }
            Event::Read(conn, event) => {
                let Some(peer) = self.conns.get(&conn).map(|c| c.peer) else {
                    return;
                };
                let Some(slot) = self.peers.get_mut(&peer) else {
                    return;
                };
                let outputs = match event {
                    ReadEvent::Message(decoded) => {
                        if let Message::Update(update) = &decoded.message {
                            bmp::pre_policy(&mut self.bmp, peer, update);
                        }
                        slot.session.received(now, conn, decoded)
                    }
                    ReadEvent::Malformed(error) => {
                        tracing::warn!(%peer, %error, "malformed message");
                        let notification = error
                            .notification()
                            .cloned()
                            .unwrap_or_else(|| Notification::new(ErrorCode::MessageHeader, 0));
                        slot.session
                            .handle(now, fsm::Input::Malformed(conn, notification))
                    }
                    ReadEvent::Closed(error) => {
                        tracing::debug!(%peer, ?error, "connection closed");
                        self.conns.remove(&conn);
                        slot.session.handle(now, fsm::Input::Disconnected(conn))
                    }
                };
                self.apply(peer, outputs);
            }
            Event::Write(conn, WriteEnd::SendHoldExpired) => {
                let Some(peer) = self.conns.remove(&conn).map(|c| c.peer) else {
                    return;
                };
                let Some(slot) = self.peers.get_mut(&peer) else {
                    return;
                };
                tracing::warn!(%peer, conn, "send hold timer expired: the peer reads nothing");
                // The writer tried the NOTIFICATION itself; dropping the slot closes the socket.
                let notification = Notification::new(ErrorCode::from(SEND_HOLD_TIMER_EXPIRED), 0);
                let outputs = if slot.session.fsm().connection() == Some(conn) {
                    slot.session.handle(
                        now,
                        fsm::Input::Reset {
                            notification,
                            reason: "send hold timer expired (RFC 9687)".into(),
                        },
                    )
                } else {
                    slot.session.handle(now, fsm::Input::Disconnected(conn))
                };
                self.apply(peer, outputs);
            }
        }
    }

    fn on_accepted(&mut self, stream: TcpStream, remote: SocketAddr) {
        let peer = remote.ip();
        let Some(slot) = self.peers.get(&peer) else {
            // Event 15 Tcp_CR_Invalid: not a configured peer.
            tracing::info!(%remote, "connection from an unconfigured address reset");
            listener::reset(stream);
            return;
        };
        // A link-local peer is configured on one link: the same address on another is not it.
        if let (Some(interface), SocketAddr::V6(from)) = (slot.config.interface_name(), remote)
            && connect::interface_index(interface).ok() != Some(from.scope_id())
        {
            tracing::info!(%remote, %interface, "connection from a link-local peer's address on another link reset");
            listener::reset(stream);
            return;
        }
        if let Err(error) = slot.options.apply_to_stream(&stream, remote) {
            tracing::warn!(%peer, %error, "socket options on accepted connection");
        }
        self.register(peer, stream, Direction::Inbound);
    }

    /// Starts reader and writer tasks for a connection and tells the session.
    fn register(&mut self, peer: IpAddr, stream: TcpStream, direction: Direction) {
        let now = now_std();
        let conn = self.next_conn;
        self.next_conn += 1;
        let local = stream
            .local_addr()
            .map(|a| a.ip().to_canonical())
            .unwrap_or(IpAddr::from([0u8; 4]));
        let link_local = link_local_for(local, peer);
        let addrs = stream.local_addr().ok().zip(stream.peer_addr().ok());
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = stream.into_split();
        let (context_tx, context_rx) = watch::channel(DecodeContext::default());
        let (writer_tx, writer_rx) = outbound(OUTBOUND_LIMIT_BYTES);
        let send_hold = self.peers.get(&peer).map_or(Duration::from_secs(480), |p| {
            p.config.effective_send_hold_time()
        });
        let reader = AbortOnDrop(tokio::spawn(read_loop(
            conn,
            read_half,
            context_rx,
            self.events_tx.clone(),
        )));
        let writer_task = tokio::spawn(write_loop(
            conn,
            write_half,
            writer_rx,
            send_hold,
            self.events_tx.clone(),
        ));
        self.conns.insert(
            conn,
            ConnSlot {
                peer,
                writer: writer_tx,
                context: context_tx,
                addrs,
                _reader: reader,
                _writer_task: writer_task,
            },
        );
        tracing::debug!(%peer, conn, ?direction, %local, "connection up");
        let Some(slot) = self.peers.get_mut(&peer) else {
            return;
        };
        let outputs = slot
            .session
            .connected(now, conn, direction, local, link_local);
        self.apply(peer, outputs);
    }

    /// Carries out a session's outputs.
    fn apply(&mut self, peer: IpAddr, outputs: Vec<Output>) {
        let Some(slot) = self.peers.get_mut(&peer) else {
            return;
        };
        // The decode context must be in place before anything we send can trigger the peer's
        // next message (our KEEPALIVE answering its OPEN is followed by its UPDATEs).
        let context = slot.session.decode_context();
        if let Some(conn) = slot.session.fsm().connection()
            && let Some(c) = self.conns.get(&conn)
        {
            c.context.send_if_modified(|old| {
                let changed = *old != context;
                *old = context.clone();
                changed
            });
        }
        let encode = slot.session.encode_context();
        let bmp_going_down = bmp::goes_down(&outputs);
        let mut changed: Vec<IpNet> = Vec::new();
        let mut overflow: Option<ConnId> = None;
        for output in outputs {
            match output {
                Output::Fsm(fsm::Output::Connect) => {
                    slot.attempt += 1;
                    let attempt = slot.attempt;
                    let events = self.events_tx.clone();
                    let options = slot.options.clone();
                    let port = slot.config.port;
                    let interface = slot.config.interface_name().map(str::to_owned);
                    let local = slot.config.local_address;
                    let timeout = Duration::from_secs(u64::from(
                        slot.config.timers.connect_retry_time_seconds.max(1),
                    ));
                    slot.connect_task = Some(AbortOnDrop(tokio::spawn(async move {
                        let result = match connect::target(peer, port, interface.as_deref()) {
                            Ok(target) => connect(target, local, &options, timeout).await,
                            Err(e) => Err(e),
                        };
                        let _ = events
                            .send(Event::Connected {
                                peer,
                                attempt,
                                result,
                            })
                            .await;
                    })));
                }
                Output::Fsm(fsm::Output::AbortConnect) => slot.connect_task = None,
                Output::Fsm(fsm::Output::Send(conn, message)) => {
                    let Some(c) = self.conns.get(&conn) else {
                        continue;
                    };
                    if let Message::Notification(n) = &message {
                        tracing::warn!(%peer, code = u8::from(n.code), subcode = n.subcode, "sending NOTIFICATION");
                    }
                    if overflow == Some(conn) {
                        continue;
                    }
                    match message.to_bytes(&encode) {
                        Ok(bytes) => {
                            if c.writer.send(bytes.freeze()) == Err(QueueError::Full) {
                                overflow = Some(conn);
                            }
                        }
                        Err(error) => tracing::error!(%peer, %error, "cannot encode message"),
                    }
                }
                Output::Fsm(fsm::Output::Close(conn)) => {
                    if let Some(c) = self.conns.remove(&conn) {
                        c.writer.close();
                    }
                }
                Output::Fsm(fsm::Output::Established { negotiated, conn }) => {
                    tracing::info!(%peer, remote_asn = negotiated.remote_asn, hold = negotiated.hold_time, "session established");
                    let addrs = self.conns.get(&conn).and_then(|c| c.addrs);
                    bmp::peer_up(&mut self.bmp, peer, &slot.session, addrs);
                    if let Some(gr) = slot.session.config().graceful_restart
                        && gr.restarting
                    {
                        // The R bit belongs to the first session after the restart only.
                        let mut config = slot.session.config().clone();
                        config.graceful_restart = Some(GrConfig {
                            restarting: false,
                            ..gr
                        });
                        slot.session.update_config(config);
                    }
                }
                Output::Fsm(fsm::Output::Down { reason, .. }) => {
                    tracing::warn!(%peer, reason = %reason.describe(), "session down");
                    bmp::peer_down(&mut self.bmp, peer, &reason);
                }
                Output::Fsm(fsm::Output::StateChange { from, to }) => {
                    tracing::debug!(%peer, from = from.name(), to = to.name(), "state change");
                }
                Output::Fsm(fsm::Output::Received(_)) => {}
                Output::Routes { updated, withdrawn } => {
                    tracing::debug!(%peer, updated = updated.len(), withdrawn = withdrawn.len(), "accepted routes changed");
                    if !bmp_going_down {
                        bmp::post_policy(&mut self.bmp, peer, &updated, &withdrawn);
                    }
                    changed.extend(updated.into_iter().map(|(p, _)| p));
                    changed.extend(withdrawn);
                }
                Output::Unsent { routes } => log_unsent(peer, &slot.config.display_name(), &routes),
            }
        }
        if !changed.is_empty() {
            self.pending_changes
                .entry(peer)
                .or_default()
                .extend(changed);
        }
        if let Some(conn) = overflow {
            self.on_queue_full(peer, conn);
        }
    }

    /// A connection's outbound queue is full: the peer does not take our messages as fast as
    /// we produce them. The connection is dropped at once (its writer aborted, so the queue is
    /// freed) and the session reset with Cease / Out of Resources, rather than buffering on.
    fn on_queue_full(&mut self, peer: IpAddr, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            c._writer_task.abort();
        }
        let Some(slot) = self.peers.get_mut(&peer) else {
            return;
        };
        tracing::warn!(%peer, conn, limit = OUTBOUND_LIMIT_BYTES, "outbound queue full: dropping the connection");
        let now = now_std();
        let outputs = if slot.session.fsm().connection() == Some(conn) {
            slot.session.handle(
                now,
                fsm::Input::Reset {
                    notification: Notification::cease(CeaseSubcode::OutOfResources),
                    reason: format!("outbound queue over {OUTBOUND_LIMIT_BYTES} bytes"),
                },
            )
        } else {
            slot.session.handle(now, fsm::Input::Disconnected(conn))
        };
        self.apply(peer, outputs);
    }

    async fn shutdown(&mut self) {
        let now = now_std();
        let addresses: Vec<IpAddr> = self.peers.keys().copied().collect();
        for address in addresses {
            let Some(slot) = self.peers.get_mut(&address) else {
                continue;
            };
            let graceful = slot
                .session
                .fsm()
                .negotiated()
                .is_some_and(|n| n.graceful_restart.is_some())
                && slot.session.config().graceful_restart.is_some();
            if graceful {
                // Close without a NOTIFICATION: the peer keeps our routes as stale until we
                // are back (RFC 4724 §4.2), which is what an agent upgrade needs.
                if let Some(conn) = slot.session.fsm().connection()
                    && let Some(c) = self.conns.remove(&conn)
                {
                    c.writer.close();
                }
            } else {
                let notification = Notification::shutdown(
                    CeaseSubcode::AdministrativeShutdown,
                    "speaker stopping",
                )
                .unwrap_or_else(|_| Notification::cease(CeaseSubcode::AdministrativeShutdown));
                let outputs = slot.session.handle(now, fsm::Input::Stop { notification });
                self.apply(address, outputs);
            }
        }
        // Collectors get the Peer Downs above, then a Termination.
        self.bmp.stop(Duration::from_secs(1)).await;
        // Let the writers flush their last messages.
        let writers: Vec<JoinHandle<()>> = self
            .conns
            .drain()
            .map(|(_, c)| {
                c.writer.close();
                c._writer_task
            })
            .collect();
        let _ = tokio::time::timeout(Duration::from_secs(2), futures_join(writers)).await;
        if let Some(fib) = &self.fib {
            fib.shutdown().await;
        }
    }
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

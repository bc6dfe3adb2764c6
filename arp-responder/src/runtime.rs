//! The tokio driver: one owner task holds the election, the link table, the led-VIP set and the
//! counters, and `select!`s over received frames, the heartbeat tick, election deadlines, store
//! renewals, link events and commands. Per-interface reader tasks only turn AF_PACKET frames into
//! messages. The speaker embeds this through [`L2Responder::start`] and reads [`L2Handle::status`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{L2Config, NodeSpec, ServiceSpec, StoreConfig};
use crate::decide::{Decision, DropReason, InterfaceInfo, decide};
use crate::election::{
    Election, FileStore, HeartbeatAuth, Membership, MembershipStore, Rejected, StaticStore,
    VipSpec, vip_table,
};
use crate::error::{Error, Result};
use crate::io::mcast::SolicitedNodeGroups;
use crate::io::netlink::LinkEvents;
use crate::io::packet::PacketSocket;
use crate::io::select::{InterfaceSelector, Link, list_links};
use crate::status::{InterfaceStatus, Status, VipStatus};
use crate::takeover::{Schedule, announcement_frames};
use crate::wire::ethernet::{self, EtherType, EthernetAddress, EthernetRepr, Frame};
use crate::wire::heartbeat::{HeartbeatKey, HeartbeatRepr, cluster_id};

/// Lease used with the static store, which never expires leases.
const STATIC_LEASE: Duration = Duration::from_secs(24 * 3600);
const STATIC_RENEW: Duration = Duration::from_secs(1);

/// Builds the store the configuration names.
pub fn store_from_config(cfg: &L2Config) -> Result<Arc<dyn MembershipStore>> {
    match &cfg.store {
        StoreConfig::Static => Ok(Arc::new(StaticStore::new(
            cfg.nodes.iter().map(|n| n.name.clone()),
        ))),
        StoreConfig::File { dir, .. } => Ok(Arc::new(FileStore::new(dir.clone()))),
        StoreConfig::Kubernetes { .. } => Err(Error::NotImplemented(
            "Kubernetes Lease store outside the speaker (it needs a kube client)",
        )),
    }
}

/// Lease, renew period and outage grace of the configured store.
fn store_timing(cfg: &L2Config) -> (Duration, Duration, Duration) {
    match &cfg.store {
        StoreConfig::File {
            lease_ms,
            renew_ms,
            outage_grace_ms,
            ..
        }
        | StoreConfig::Kubernetes {
            lease_ms,
            renew_ms,
            outage_grace_ms,
            ..
        } => (
            Duration::from_millis(*lease_ms),
            Duration::from_millis(*renew_ms),
            Duration::from_millis(*outage_grace_ms),
        ),
        StoreConfig::Static => (STATIC_LEASE, STATIC_RENEW, Duration::ZERO),
    }
}

enum Command {
    Services(Vec<ServiceSpec>),
    Nodes(Vec<NodeSpec>),
    Shutdown(oneshot::Sender<()>),
}

/// A running announcer. Dropping it stops the tasks (without releasing the store lease; call
/// [`L2Handle::shutdown`] for a clean handover).
#[derive(Debug)]
pub struct L2Handle {
    status_rx: watch::Receiver<Status>,
    cmd_tx: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

impl L2Handle {
    /// The latest status snapshot.
    pub fn status(&self) -> Status {
        self.status_rx.borrow().clone()
    }

    /// A receiver that sees every new snapshot.
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status_rx.clone()
    }

    /// Replaces the announced services.
    pub async fn set_services(&self, services: Vec<ServiceSpec>) -> Result<()> {
        self.cmd_tx
            .send(Command::Services(services))
            .await
            .map_err(|_| Error::Store("announcer stopped".into()))
    }

    /// Replaces the cluster's nodes (and their labels), which decide eligibility, without
    /// restarting the election: in Kubernetes mode nodes join and leave while it runs.
    pub async fn set_nodes(&self, nodes: Vec<NodeSpec>) -> Result<()> {
        self.cmd_tx
            .send(Command::Nodes(nodes))
            .await
            .map_err(|_| Error::Store("announcer stopped".into()))
    }

    /// Stops answering, releases the store lease and ends the tasks.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd_tx.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

impl Drop for L2Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Entry point.
#[derive(Debug)]
pub struct L2Responder;

impl L2Responder {
    /// Validates `cfg` and starts the announcer on the current runtime, with unauthenticated
    /// heartbeats (see [`L2Responder::start_with_auth`]).
    pub fn start(cfg: L2Config, store: Arc<dyn MembershipStore>) -> Result<L2Handle> {
        Self::start_with_auth(cfg, store, HeartbeatAuth::default())
    }

    /// Validates `cfg` and starts the announcer on the current runtime; heartbeats are tagged
    /// and checked with `auth`'s key (from [`crate::config::AuthConfig::load`]). Without a key a
    /// cluster of more than one node logs a warning once and reports `heartbeat_auth: "none"`.
    pub fn start_with_auth(
        cfg: L2Config,
        store: Arc<dyn MembershipStore>,
        auth: HeartbeatAuth,
    ) -> Result<L2Handle> {
        cfg.validate()?;
        if auth.key.is_none() && cfg.nodes.len() > 1 {
            warn!(
                cluster = %cfg.cluster,
                "L2 heartbeats are unauthenticated: any host on the segment can forge or replay \
                 them and keep VIPs dark; set auth.keyFile"
            );
        }
        let selector = InterfaceSelector::new(&cfg.interfaces)?;
        let events = LinkEvents::subscribe()?;
        let (status_tx, status_rx) = watch::channel(Status {
            node: cfg.node.clone(),
            ..Status::default()
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let (frame_tx, frame_rx) = mpsc::channel(1024);
        let now = Instant::now();
        let incarnation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let key = auth.key.clone();
        let (lease, renew_every, outage_grace) = store_timing(&cfg);
        let mut election = Election::new(
            cfg.node.clone(),
            cluster_id(&cfg.cluster),
            cfg.timing.election(),
            now.into_std(),
        )
        .with_auth(auth)
        .with_outage_grace(outage_grace);
        election.set_known_nodes(cfg.nodes.iter().map(|n| n.name.clone()));
        let vips = vip_table(&cfg.services, &cfg.nodes, &cfg.node_selector);
        let driver = Driver {
            schedule: Schedule::new(cfg.timing.announce()),
            cluster: cluster_id(&cfg.cluster),
            cfg,
            selector,
            store,
            lease,
            renew_every,
            election,
            vips,
            incarnation,
            key,
            seq: 0,
            links: BTreeMap::new(),
            led: BTreeSet::new(),
            leaders: BTreeMap::new(),
            quorum: false,
            lease_valid: false,
            store_outage: false,
            groups: SolicitedNodeGroups::default(),
            counters: BTreeMap::new(),
            drops: BTreeMap::new(),
            hb_sent: 0,
            hb_received: 0,
            hb_rejected: BTreeMap::new(),
            frame_tx,
            status_tx,
        };
        let task = tokio::spawn(driver.run(events, frame_rx, cmd_rx));
        Ok(L2Handle {
            status_rx,
            cmd_tx,
            task,
        })
    }
}

struct LinkState {
    link: Link,
    selected: bool,
    socket: Option<Arc<PacketSocket>>,
    reader: Option<JoinHandle<()>>,
}

impl Drop for LinkState {
    fn drop(&mut self) {
        if let Some(r) = self.reader.take() {
            r.abort();
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Counters {
    replies: u64,
    garps: u64,
}

struct Driver {
    cfg: L2Config,
    selector: InterfaceSelector,
    store: Arc<dyn MembershipStore>,
    lease: Duration,
    renew_every: Duration,
    election: Election,
    vips: Vec<VipSpec>,
    cluster: u32,
    incarnation: u64,
    key: Option<HeartbeatKey>,
    seq: u64,
    links: BTreeMap<u32, LinkState>,
    led: BTreeSet<IpAddr>,
    leaders: BTreeMap<IpAddr, Option<String>>,
    quorum: bool,
    lease_valid: bool,
    store_outage: bool,
    schedule: Schedule,
    groups: SolicitedNodeGroups,
    counters: BTreeMap<IpAddr, Counters>,
    drops: BTreeMap<DropReason, u64>,
    hb_sent: u64,
    hb_received: u64,
    hb_rejected: BTreeMap<Rejected, u64>,
    frame_tx: mpsc::Sender<(u32, Vec<u8>)>,
    status_tx: watch::Sender<Status>,
}

type RenewResult = (std::time::Instant, Result<Membership>);

impl Driver {
    async fn run(
        mut self,
        events: LinkEvents,
        mut frame_rx: mpsc::Receiver<(u32, Vec<u8>)>,
        mut cmd_rx: mpsc::Receiver<Command>,
    ) {
        self.rescan();
        let mut hb = tokio::time::interval(self.election.timing().heartbeat_interval);
        hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renew_tick = tokio::time::interval(self.renew_every);
        renew_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (renew_tx, mut renew_rx) = mpsc::channel::<RenewResult>(4);
        let mut renewing = false;
        // The store's last error, so a store that keeps failing (RBAC, no API server) is
        // reported once rather than on every renewal.
        let mut store_error: Option<String> = None;
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                Some(cmd) = cmd_rx.recv() => match cmd {
                    Command::Services(s) => {
                        self.vips = vip_table(&s, &self.cfg.nodes, &self.cfg.node_selector);
                        self.cfg.services = s;
                        self.evaluate();
                    }
                    Command::Nodes(n) => {
                        self.vips = vip_table(&self.cfg.services, &n, &self.cfg.node_selector);
                        self.election.set_known_nodes(n.iter().map(|n| n.name.clone()));
                        self.cfg.nodes = n;
                        self.evaluate();
                    }
                    Command::Shutdown(done) => {
                        self.led.clear();
                        self.send_heartbeats();
                        if let Err(e) = self.store.release(&self.cfg.node).await {
                            warn!(error = %e, "releasing lease");
                        }
                        let _ = done.send(());
                        return;
                    }
                },
                _ = hb.tick() => {
                    self.evaluate();
                    self.send_heartbeats();
                    self.publish();
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.evaluate();
                }
                _ = renew_tick.tick(), if !renewing => {
                    renewing = true;
                    let store = Arc::clone(&self.store);
                    let (node, lease, tx) = (self.cfg.node.clone(), self.lease, renew_tx.clone());
                    tokio::spawn(async move {
                        let started = std::time::Instant::now();
                        let r = store.renew(&node, lease).await;
                        let _ = tx.send((started, r)).await;
                    });
                }
                Some((started, r)) = renew_rx.recv() => {
                    renewing = false;
                    match r {
                        Ok(m) => {
                            if store_error.take().is_some() {
                                info!("store renewal works again");
                            }
                            self.election.on_membership(started, m.members, self.lease);
                        }
                        Err(e) => {
                            let error = e.to_string();
                            if store_error.as_ref() != Some(&error) {
                                warn!(%error, "store renewal failed; retrying every renew period");
                                store_error = Some(error);
                            } else {
                                debug!(%error, "store renewal still failing");
                            }
                        }
                    }
                    self.evaluate();
                }
                r = events.changed() => {
                    if let Err(e) = r {
                        warn!(error = %e, "link events");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    self.rescan();
                    self.evaluate();
                }
                // Frames come last: a flood of requests must not delay heartbeats or deadlines
                // (biased select), or peers would declare this node dead.
                Some((ifindex, frame)) = frame_rx.recv() => {
                    self.on_frame(ifindex, &frame);
                }
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let now = std::time::Instant::now();
        let mut t = self.election.next_deadline(now);
        if let Some(a) = self.schedule.next_due() {
            t = t.min(a);
        }
        Instant::from_std(t)
    }

    /// Re-enumerates links; opens sockets on newly selected ones and closes the rest.
    fn rescan(&mut self) {
        let links = match list_links() {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "listing links");
                return;
            }
        };
        let present: BTreeSet<u32> = links.iter().map(|l| l.ifindex).collect();
        let gone: Vec<u32> = self
            .links
            .keys()
            .copied()
            .filter(|i| !present.contains(i))
            .collect();
        for ifindex in gone {
            if let Some(st) = self.links.remove(&ifindex) {
                info!(interface = %st.link.name, "link removed");
                self.schedule.stop_interface(&st.link.name);
            }
        }
        let now = std::time::Instant::now();
        for link in links {
            let selected = self.selector.selects(&link.name);
            let usable = selected && link.up;
            let st = self.links.entry(link.ifindex).or_insert_with(|| LinkState {
                link: link.clone(),
                selected,
                socket: None,
                reader: None,
            });
            let renamed_or_new_mac = st.link.name != link.name || st.link.mac != link.mac;
            st.link = link;
            st.selected = selected;
            if (!usable || renamed_or_new_mac) && st.socket.is_some() {
                info!(interface = %st.link.name, "closing socket (down, deselected or changed)");
                st.socket = None;
                if let Some(r) = st.reader.take() {
                    r.abort();
                }
                let name = st.link.name.clone();
                self.schedule.stop_interface(&name);
                continue;
            }
            if usable && st.socket.is_none() {
                match PacketSocket::open(&st.link) {
                    Ok(sock) => {
                        info!(interface = %st.link.name, mac = %st.link.mac, "listening");
                        let sock = Arc::new(sock);
                        st.reader = Some(tokio::spawn(read_loop(
                            Arc::clone(&sock),
                            st.link.ifindex,
                            self.frame_tx.clone(),
                        )));
                        st.socket = Some(sock);
                        // VIPs led already are announced on the interface that just came up.
                        let name = st.link.name.clone();
                        for vip in &self.led {
                            self.schedule.start(now, *vip, &name);
                        }
                    }
                    Err(e) => warn!(interface = %st.link.name, error = %e, "cannot open socket"),
                }
            }
        }
        self.sync_groups();
    }

    fn on_frame(&mut self, ifindex: u32, frame: &[u8]) {
        let Some(st) = self.links.get(&ifindex) else {
            return;
        };
        let Some(sock) = st.socket.clone() else {
            return;
        };
        let eth = Frame::new_unchecked(frame);
        if frame.len() >= ethernet::HEADER_LEN && eth.ethertype() == EtherType::Heartbeat {
            if eth.src_addr() == st.link.mac {
                return;
            }
            let now = std::time::Instant::now();
            match self.election.on_heartbeat(now, wall_ms(), eth.payload()) {
                Ok(()) => {
                    self.hb_received += 1;
                    self.evaluate();
                }
                Err(reason) => {
                    let n = self.hb_rejected.entry(reason).or_default();
                    *n += 1;
                    let (iface, src, reason) = (&st.link.name, eth.src_addr(), reason.as_str());
                    // Once per reason at warn (a flood must not flood the log), then debug.
                    // Other clusters sharing the segment are normal, not worth a warning.
                    if *n == 1 && reason != Rejected::OtherCluster.as_str() {
                        warn!(interface = %iface, %src, reason,
                              "heartbeat rejected (further rejections are counted in the status)");
                    } else {
                        debug!(interface = %iface, %src, reason, "heartbeat rejected");
                    }
                }
            }
            return;
        }
        let iface = InterfaceInfo {
            name: st.link.name.clone(),
            mac: st.link.mac,
            selected: st.selected,
        };
        match decide(frame, &iface, &self.led) {
            Decision::Reply { frame: reply, vip } => match sock.send(&reply) {
                Ok(()) => {
                    self.counters.entry(vip).or_default().replies += 1;
                    debug!(interface = %iface.name, %vip, "answered");
                }
                Err(e) => warn!(interface = %iface.name, %vip, error = %e, "sending reply"),
            },
            Decision::Drop(reason) => *self.drops.entry(reason).or_default() += 1,
        }
    }

    /// Re-runs the election and applies the result: start/stop answering, announcements,
    /// multicast groups.
    fn evaluate(&mut self) {
        let now = std::time::Instant::now();
        let outcome = self.election.evaluate(now, &self.vips, &self.led);
        let new_led = outcome.led();
        for vip in self.led.difference(&new_led) {
            info!(%vip, "stopped answering");
            self.schedule.stop(*vip);
        }
        let usable: Vec<String> = self
            .links
            .values()
            .filter(|s| s.socket.is_some())
            .map(|s| s.link.name.clone())
            .collect();
        for vip in new_led.difference(&self.led) {
            info!(%vip, interfaces = ?usable, "took over");
            for name in &usable {
                self.schedule.start(now, *vip, name);
            }
        }
        let changed = new_led != self.led;
        self.led = new_led;
        self.quorum = outcome.quorum;
        self.lease_valid = outcome.lease_valid;
        if outcome.store_outage != self.store_outage {
            if outcome.store_outage {
                warn!(
                    "lease ran out with the store unreachable: answering on wire quorum of the last membership for the outage grace"
                );
            } else {
                info!("store outage ride-through over");
            }
        }
        self.store_outage = outcome.store_outage;
        self.leaders = outcome
            .vips
            .into_iter()
            .map(|(ip, o)| (ip, o.leader))
            .collect();
        if changed {
            self.sync_groups();
            // Tell peers at once that claims changed rather than at the next tick.
            self.send_heartbeats();
        }
        self.send_due_announcements(now);
        if changed {
            self.publish();
        }
    }

    fn send_due_announcements(&mut self, now: std::time::Instant) {
        for (vip, iface) in self.schedule.due(now) {
            if !self.led.contains(&vip) {
                continue;
            }
            let Some(st) = self.links.values().find(|s| s.link.name == iface) else {
                continue;
            };
            let Some(sock) = &st.socket else { continue };
            for f in announcement_frames(st.link.mac, vip) {
                match sock.send(&f) {
                    Ok(()) => self.counters.entry(vip).or_default().garps += 1,
                    Err(e) => debug!(interface = %iface, %vip, error = %e, "sending announcement"),
                }
            }
        }
    }

    fn sync_groups(&mut self) {
        let want: BTreeSet<_> = self
            .led
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V6(v6) => Some(*v6),
                IpAddr::V4(_) => None,
            })
            .flat_map(|v6| {
                self.links
                    .values()
                    .filter(|s| s.socket.is_some())
                    .map(move |s| (v6, s.link.ifindex))
            })
            .collect();
        for e in self.groups.sync(&want) {
            warn!(error = %e, "solicited-node multicast");
        }
    }

    fn send_heartbeats(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        let claims: Vec<IpAddr> = self.led.iter().copied().collect();
        let chunks = HeartbeatRepr::chunked(
            self.cluster,
            &self.cfg.node,
            (self.incarnation, self.seq, wall_ms()),
            &claims,
        );
        for st in self.links.values() {
            let Some(sock) = &st.socket else { continue };
            for c in &chunks {
                let mut frame = vec![0u8; ethernet::HEADER_LEN];
                EthernetRepr {
                    src_addr: st.link.mac,
                    dst_addr: EthernetAddress::BROADCAST,
                    ethertype: EtherType::Heartbeat,
                }
                .emit(&mut Frame::new_unchecked(&mut frame[..]));
                if let Err(e) = c.emit(self.key.as_ref(), &mut frame) {
                    warn!(error = %e, "encoding heartbeat");
                    return;
                }
                if frame.len() < crate::frames::MIN_FRAME_LEN {
                    frame.resize(crate::frames::MIN_FRAME_LEN, 0);
                }
                match sock.send(&frame) {
                    Ok(()) => self.hb_sent += 1,
                    Err(e) => debug!(interface = %st.link.name, error = %e, "sending heartbeat"),
                }
            }
        }
    }

    fn publish(&self) {
        let now = std::time::Instant::now();
        let usable: Vec<String> = self
            .links
            .values()
            .filter(|s| s.socket.is_some())
            .map(|s| s.link.name.clone())
            .collect();
        let status = Status {
            node: self.cfg.node.clone(),
            quorum: self.quorum,
            lease_valid: self.lease_valid,
            store_outage: self.store_outage,
            members: self.election_members(),
            alive_peers: self
                .election
                .alive_peers(now)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            interfaces: self
                .links
                .values()
                .map(|s| InterfaceStatus {
                    name: s.link.name.clone(),
                    ifindex: s.link.ifindex,
                    mac: s.link.mac.to_string(),
                    selected: s.selected,
                })
                .collect(),
            vips: self
                .vips
                .iter()
                .map(|v| {
                    let c = self.counters.get(&v.vip).copied().unwrap_or_default();
                    let led = self.led.contains(&v.vip);
                    VipStatus {
                        vip: v.vip,
                        services: v.services.clone(),
                        eligible: v.eligible.iter().cloned().collect(),
                        leader: self.leaders.get(&v.vip).cloned().flatten(),
                        led_by_me: led,
                        interfaces: if led { usable.clone() } else { Vec::new() },
                        replies_sent: c.replies,
                        garps_sent: c.garps,
                    }
                })
                .collect(),
            drops: self
                .drops
                .iter()
                .map(|(r, n)| (format!("{r:?}"), *n))
                .collect(),
            heartbeats_sent: self.hb_sent,
            heartbeats_received: self.hb_received,
            heartbeat_auth: if self.key.is_some() {
                "hmac-sha256"
            } else {
                "none"
            }
            .to_owned(),
            heartbeats_rejected: self
                .hb_rejected
                .iter()
                .map(|(r, n)| (r.as_str().to_owned(), *n))
                .collect(),
            peers_tracked: self.election.peers_tracked() as u64,
        };
        self.status_tx.send_replace(status);
    }

    fn election_members(&self) -> Vec<String> {
        self.cfg
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .filter(|n| self.election.is_member(n))
            .collect()
    }
}

/// This node's wall clock in ms since the Unix epoch (heartbeat timestamps).
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn read_loop(sock: Arc<PacketSocket>, ifindex: u32, tx: mpsc::Sender<(u32, Vec<u8>)>) {
    let mut buf = vec![0u8; 2048];
    loop {
        match sock.recv(&mut buf).await {
            Ok(n) => {
                // `recv` reads into `buf`, so `n` never exceeds its length.
                let frame = buf.get(..n).unwrap_or_default().to_vec();
                if tx.send((ifindex, frame)).await.is_err() {
                    return;
                }
            }
            Err(e) if e.raw_os_error() == Some(100) => {
                // ENETDOWN: the link went down; the link watcher closes this socket.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                warn!(interface = %sock.name(), error = %e, "receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

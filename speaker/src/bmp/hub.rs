//! The BMP collectors of one BGP instance: starts one [`collector`](super::collector) task per
//! configured collector (and stops or restarts them on reload), remembers which peers are up
//! (their Peer Up message, replayed to collectors that connect later), and fans each message
//! out to the connected collectors' queues. A queue that is full means the collector does not
//! keep up: its connection is dropped and counted, and it is resynchronised when it is back.
//!
//! The hub never waits: it is called from the instance's owner task, and pushing into a
//! collector's queue either succeeds at once or gives up on that collector.
//!
//! I/O boundary: none directly (it spawns the collector tasks); the clock is read for the
//! per-peer header timestamps.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bgp_proto::Open;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::collector::{self, CollectorCounters, CollectorId, MAX_BACKOFF, MIN_BACKOFF, Request};
use super::message::{self, PeerHeader, TerminationReason};
use crate::bgp::io::codec::{Outbound, QueueError};
use crate::config::bmp::{CollectorConfig, RouteMonitoringConfig};
use crate::task::AbortOnDrop;

/// Which collectors a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every collector (Initiation, Peer Up/Down, statistics, Termination).
    All,
    /// Collectors that asked for pre-policy Route Monitoring.
    PrePolicy,
    /// Collectors that asked for post-policy Route Monitoring.
    PostPolicy,
}

impl View {
    fn wanted(self, config: &RouteMonitoringConfig) -> bool {
        match self {
            View::All => true,
            View::PrePolicy => config.pre_inbound_policy,
            View::PostPolicy => config.post_inbound_policy,
        }
    }
}

/// One collector as `herald bgp bmp` and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectorStatus {
    /// Configured name or `address:port`.
    pub name: String,
    /// Where it is.
    pub address: SocketAddr,
    /// A connection is up.
    pub connected: bool,
    /// Connections established so far.
    pub connects: u64,
    /// BMP messages queued for it.
    pub messages: u64,
    /// Bytes written to it.
    pub bytes: u64,
    /// Connections dropped because it did not keep up.
    pub drops: u64,
    /// Bytes waiting in its queue.
    pub queued_bytes: u64,
}

struct Slot {
    id: CollectorId,
    config: CollectorConfig,
    counters: Arc<CollectorCounters>,
    sink: Option<Outbound>,
    _task: AbortOnDrop,
}

/// A peer that is up, as collectors learn about it.
struct UpPeer {
    open: Open,
    peer_up: Bytes,
}

/// The collectors and what they have been told.
pub struct Hub<T> {
    sys_name: String,
    requests: mpsc::WeakSender<T>,
    collectors: BTreeMap<SocketAddr, Slot>,
    up: BTreeMap<IpAddr, UpPeer>,
    next_id: CollectorId,
}

impl<T> std::fmt::Debug for Hub<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("collectors", &self.collectors.keys().collect::<Vec<_>>())
            .field("up", &self.up.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// How long a removed collector's task may take to write its Termination.
const RETIRE_GRACE: Duration = Duration::from_secs(5);

/// Ends a collector: a connected one gets a Termination and its task ends once it has written
/// its queue (aborted after [`RETIRE_GRACE`]); an unconnected one is stopped at once.
fn retire(slot: Slot, why: &str) {
    let Some(sink) = &slot.sink else {
        return;
    };
    let _ = sink.send(message::termination(
        TerminationReason::AdministrativelyClosed,
        why,
    ));
    sink.close();
    let mut task = slot._task;
    tokio::spawn(async move {
        // Dropping `task` when the grace time is over aborts it.
        let _ = tokio::time::timeout(RETIRE_GRACE, &mut task.0).await;
    });
}

/// Now, as a BMP timestamp (time since the Unix epoch).
pub fn timestamp() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

impl<T: From<Request> + Send + 'static> Hub<T> {
    /// A hub without collectors; `sys_name` goes into every Initiation message, `requests`
    /// carries the collector tasks' requests to the owner.
    pub fn new(sys_name: String, requests: mpsc::WeakSender<T>) -> Self {
        Self {
            sys_name,
            requests,
            collectors: BTreeMap::new(),
            up: BTreeMap::new(),
            next_id: 1,
        }
    }

    /// Whether any collector is configured (callers skip building messages otherwise).
    pub fn is_active(&self) -> bool {
        !self.collectors.is_empty()
    }

    /// Whether the peer is up for BMP (its Peer Up was sent).
    pub fn is_up(&self, peer: IpAddr) -> bool {
        self.up.contains_key(&peer)
    }

    /// The collectors become `configs`: new ones start, removed ones stop (with a
    /// Termination), changed ones restart. Returns the names of those added and removed.
    pub fn configure(&mut self, configs: &[CollectorConfig]) -> (Vec<String>, Vec<String>) {
        let mut added = Vec::new();
        let mut removed = Vec::new();
        let wanted: BTreeMap<SocketAddr, &CollectorConfig> =
            configs.iter().map(|c| (c.socket_addr(), c)).collect();
        let gone: Vec<SocketAddr> = self
            .collectors
            .iter()
            .filter(|(addr, slot)| wanted.get(addr).is_none_or(|c| **c != slot.config))
            .map(|(addr, _)| *addr)
            .collect();
        for addr in gone {
            if let Some(slot) = self.collectors.remove(&addr) {
                removed.push(slot.config.display_name());
                retire(slot, "collector removed from the configuration");
            }
        }
        for (addr, config) in wanted {
            if !self.collectors.contains_key(&addr) {
                added.push(config.display_name());
                self.start(config.clone(), Arc::default(), Duration::ZERO);
            }
        }
        (added, removed)
    }

    fn start(
        &mut self,
        config: CollectorConfig,
        counters: Arc<CollectorCounters>,
        delay: Duration,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let task = tokio::spawn(collector::run(
            id,
            config.clone(),
            self.requests.clone(),
            counters.clone(),
            delay,
        ));
        self.collectors.insert(
            config.socket_addr(),
            Slot {
                id,
                config,
                counters,
                sink: None,
                _task: AbortOnDrop(task),
            },
        );
    }

    /// A collector task connected: `sink` becomes its queue, and the Initiation and the Peer Up
    /// of every peer that is up are queued. Returns false if the task is no longer ours (or the
    /// queue overflowed already); the caller then skips the dump.
    pub fn attach(&mut self, collector: CollectorId, sink: Outbound) -> bool {
        let Some(addr) = self.address_of(collector) else {
            return false;
        };
        if let Some(slot) = self.collectors.get_mut(&addr) {
            slot.sink = Some(sink);
        }
        let descr = format!("herald {}", env!("CARGO_PKG_VERSION"));
        if !self.send_to(
            collector,
            View::All,
            message::initiation(&self.sys_name, &descr),
        ) {
            return false;
        }
        let ups: Vec<Bytes> = self.up.values().map(|p| p.peer_up.clone()).collect();
        ups.into_iter()
            .all(|bytes| self.send_to(collector, View::All, bytes))
    }

    fn address_of(&self, collector: CollectorId) -> Option<SocketAddr> {
        self.collectors
            .iter()
            .find(|(_, s)| s.id == collector)
            .map(|(a, _)| *a)
    }

    /// Whether `collector` wants messages of `view`.
    pub fn wants(&self, collector: CollectorId, view: View) -> bool {
        self.collectors
            .values()
            .any(|s| s.id == collector && view.wanted(&s.config.route_monitoring))
    }

    /// Queues one message for one collector, if it wants the view; false once the collector
    /// is not connected (anymore).
    pub fn send_to(&mut self, collector: CollectorId, view: View, bytes: Bytes) -> bool {
        let Some(addr) = self.address_of(collector) else {
            return false;
        };
        self.push(addr, view, bytes)
    }

    /// Queues one message for every connected collector that wants its view.
    pub fn broadcast(&mut self, view: View, bytes: Bytes) {
        let addrs: Vec<SocketAddr> = self.collectors.keys().copied().collect();
        for addr in addrs {
            self.push(addr, view, bytes.clone());
        }
    }

    fn push(&mut self, addr: SocketAddr, view: View, bytes: Bytes) -> bool {
        let Some(slot) = self.collectors.get_mut(&addr) else {
            return false;
        };
        if !view.wanted(&slot.config.route_monitoring) {
            return slot.sink.is_some();
        }
        let Some(sink) = &slot.sink else {
            return false;
        };
        match sink.send(bytes) {
            Ok(()) => {
                slot.counters.messages.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(QueueError::Closed) => {
                slot.sink = None;
                false
            }
            Err(QueueError::Full) => {
                // The collector does not keep up: drop the connection (the task is aborted, so
                // the queue is freed) and start over; it gets a full resync when it is back.
                tracing::warn!(
                    collector = %slot.config.display_name(),
                    limit = slot.config.queue_limit_bytes,
                    "BMP collector queue full: dropping the connection"
                );
                slot.counters.drops.fetch_add(1, Ordering::Relaxed);
                slot.counters.connected.store(false, Ordering::Relaxed);
                let config = slot.config.clone();
                let counters = slot.counters.clone();
                // Each drop costs a full dump on reconnect: a collector that keeps falling
                // behind waits longer each time (1 s doubling, up to the longest backoff).
                let drops = counters.drops.load(Ordering::Relaxed);
                let delay = MIN_BACKOFF
                    .saturating_mul(1 << drops.min(5))
                    .min(MAX_BACKOFF);
                self.collectors.remove(&addr);
                self.start(config, counters, delay);
                false
            }
        }
    }

    /// A peer reached Established: its Peer Up goes to every collector and is remembered for
    /// collectors that connect later.
    pub fn peer_up(
        &mut self,
        peer: IpAddr,
        sent_open: &Open,
        received_open: &Open,
        local: SocketAddr,
        remote_port: u16,
    ) {
        let header = super::feed::header(peer, received_open, false, timestamp());
        match message::peer_up(&header, local, remote_port, sent_open, received_open) {
            Ok(bytes) => {
                self.up.insert(
                    peer,
                    UpPeer {
                        open: received_open.clone(),
                        peer_up: bytes.clone(),
                    },
                );
                self.broadcast(View::All, bytes);
            }
            Err(error) => tracing::warn!(%peer, %error, "BMP Peer Up does not encode"),
        }
    }

    /// A peer left Established.
    pub fn peer_down(&mut self, peer: IpAddr, reason: &message::PeerDownReason) {
        let Some(up) = self.up.remove(&peer) else {
            return;
        };
        let header = super::feed::header(peer, &up.open, false, timestamp());
        match message::peer_down(&header, reason) {
            Ok(bytes) => self.broadcast(View::All, bytes),
            Err(error) => tracing::warn!(%peer, %error, "BMP Peer Down does not encode"),
        }
    }

    /// The per-peer header of a peer that is up, stamped now.
    pub fn header(&self, peer: IpAddr, post_policy: bool) -> Option<PeerHeader> {
        self.up
            .get(&peer)
            .map(|up| super::feed::header(peer, &up.open, post_policy, timestamp()))
    }

    /// The agent stops: every connected collector gets a Termination and its queue is closed
    /// (the task writes what is queued, then shuts the connection down).
    pub fn terminate(&mut self) {
        for slot in self.collectors.values_mut() {
            if let Some(sink) = slot.sink.take() {
                let _ = sink.send(message::termination(
                    TerminationReason::AdministrativelyClosed,
                    "agent stopping",
                ));
                sink.close();
            }
        }
    }

    /// Sends every collector a Termination and waits (at most `grace`) until the tasks have
    /// written their queues, so a clean stop reaches the collectors.
    pub async fn stop(&mut self, grace: Duration) {
        self.terminate();
        let deadline = tokio::time::Instant::now() + grace;
        while self
            .collectors
            .values()
            .any(|s| s.counters.connected.load(Ordering::Relaxed))
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.collectors.clear();
    }

    /// The collectors' state and counters.
    pub fn status(&self) -> Vec<CollectorStatus> {
        self.collectors
            .iter()
            .map(|(addr, slot)| CollectorStatus {
                name: slot.config.display_name(),
                address: *addr,
                connected: slot.counters.connected.load(Ordering::Relaxed),
                connects: slot.counters.connects.load(Ordering::Relaxed),
                messages: slot.counters.messages.load(Ordering::Relaxed),
                bytes: slot.counters.bytes.load(Ordering::Relaxed),
                drops: slot.counters.drops.load(Ordering::Relaxed),
                queued_bytes: slot.sink.as_ref().map_or(0, |s| s.queued() as u64),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    fn collector(port: u16) -> CollectorConfig {
        CollectorConfig {
            address: IpAddr::from([127, 0, 0, 1]),
            port,
            name: None,
            statistics_interval_seconds: 0,
            route_monitoring: RouteMonitoringConfig::default(),
            queue_limit_bytes: 64 << 10,
        }
    }

    async fn connected(rx: &mut mpsc::Receiver<Request>) -> (CollectorId, Outbound) {
        match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
            Ok(Some(Request::Connected { collector, sink })) => (collector, sink),
            other => panic!("expected a connection, got {other:?}"),
        }
    }

    /// A collector that accepts and never reads: once its queue is full the hub drops the
    /// connection, counts it, and the collector's new task connects again.
    #[tokio::test]
    async fn full_queue_drops_the_connection_counts_it_and_reconnects() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (tx, mut rx) = mpsc::channel::<Request>(8);
        let mut hub: Hub<Request> = Hub::new("n1".into(), tx.downgrade());
        let (added, removed) = hub.configure(&[collector(port)]);
        assert_eq!(added, [format!("127.0.0.1:{port}")]);
        assert!(removed.is_empty());
        let (first, sink) = connected(&mut rx).await;
        let (_held, _) = listener.accept().await.expect("accept");
        assert!(hub.attach(first, sink), "Initiation queued");
        let chunk = Bytes::from(vec![0u8; 16 << 10]);
        let mut pushed = 0;
        while hub.status().first().is_some_and(|c| c.drops == 0) && pushed < 100_000 {
            hub.broadcast(View::All, chunk.clone());
            pushed += 1;
            tokio::task::yield_now().await;
        }
        let status = hub.status();
        assert_eq!(status.first().map(|c| c.drops), Some(1), "{status:?}");
        assert!(
            !hub.send_to(first, View::All, chunk.clone()),
            "old task is gone"
        );
        let (second, _sink) = connected(&mut rx).await;
        assert_ne!(first, second, "a new task reconnected");
        let (added, removed) = hub.configure(&[]);
        assert!(added.is_empty());
        assert_eq!(removed, [format!("127.0.0.1:{port}")]);
        assert!(!hub.is_active());
    }

    /// The view filter: a collector that only wants post-policy gets no pre-policy messages.
    #[tokio::test]
    async fn views_follow_the_route_monitoring_settings() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (tx, mut rx) = mpsc::channel::<Request>(8);
        let mut hub: Hub<Request> = Hub::new("n1".into(), tx.downgrade());
        let mut config = collector(port);
        config.route_monitoring.pre_inbound_policy = false;
        hub.configure(&[config]);
        let (id, sink) = connected(&mut rx).await;
        assert!(hub.attach(id, sink));
        assert!(!hub.wants(id, View::PrePolicy));
        assert!(hub.wants(id, View::PostPolicy));
        let before = hub.status().first().map(|c| c.messages);
        hub.broadcast(View::PrePolicy, Bytes::from_static(b"pre"));
        assert_eq!(hub.status().first().map(|c| c.messages), before);
        hub.broadcast(View::PostPolicy, Bytes::from_static(b"post"));
        assert_eq!(
            hub.status().first().map(|c| c.messages),
            before.map(|n| n + 1)
        );
    }
}

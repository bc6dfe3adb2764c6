//! The election state of one node: what it has heard from its peers (liveness, claims), the
//! membership and own-lease validity from the fencing store, and the pure rule that turns them
//! into "the IPs I answer for now". Time is always a parameter; nothing here reads a clock.
//!
//! It is also where a received heartbeat is judged ([`Election::on_heartbeat`]): other cluster,
//! missing or wrong tag, unknown sender, stale timestamp or replayed sequence number are rejected
//! with a [`Rejected`] reason (the replay rules are explained in [`crate::wire::heartbeat`]).
//! The per-sender state is bounded: only configured or member nodes are tracked, at most
//! [`MAX_PEERS`] of them, and a sender silent for [`Election::prune_after`] is forgotten.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::eligibility::VipSpec;
use super::rank::rank_winner;
use crate::wire::HeartbeatRepr;
use crate::wire::heartbeat::{HeartbeatKey, Packet};

/// Most senders tracked at once; heartbeats from further names are rejected.
pub const MAX_PEERS: usize = 4096;

/// Default bound on the difference between a heartbeat's timestamp and our wall clock.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(2);

/// How heartbeats are authenticated.
#[derive(Clone, Debug)]
pub struct HeartbeatAuth {
    /// The cluster's shared key; `None` sends and accepts only untagged heartbeats (and checks
    /// neither timestamps nor sequence numbers, which anyone could forge anyway).
    pub key: Option<HeartbeatKey>,
    /// Largest accepted difference between a heartbeat's timestamp and our wall clock.
    pub max_clock_skew: Duration,
}

impl Default for HeartbeatAuth {
    fn default() -> Self {
        HeartbeatAuth {
            key: None,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
        }
    }
}

/// Why a received heartbeat was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rejected {
    /// Not a well-formed heartbeat.
    Malformed,
    /// Another cluster's heartbeat (a different cluster id).
    OtherCluster,
    /// No tag, a wrong tag, or a tag while we have no key (a mixed cluster behaves like a
    /// partition, which the quorum rule makes safe, rather than like an asymmetric one).
    BadAuth,
    /// Carries this node's own name.
    OwnName,
    /// A name neither configured nor in the membership.
    UnknownNode,
    /// Timestamp further from our clock than the skew bound.
    Stale,
    /// A sequence number (or incarnation) already superseded: a replay.
    Replay,
    /// [`MAX_PEERS`] senders are tracked already.
    TooManyPeers,
}

impl Rejected {
    /// A short name for logs, status and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::Malformed => "malformed",
            Rejected::OtherCluster => "other_cluster",
            Rejected::BadAuth => "bad_auth",
            Rejected::OwnName => "own_name",
            Rejected::UnknownNode => "unknown_node",
            Rejected::Stale => "stale",
            Rejected::Replay => "replay",
            Rejected::TooManyPeers => "too_many_peers",
        }
    }
}

/// Election timers. The defaults give failover in about 300–500 ms after a leader dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElectionTiming {
    /// How often heartbeats are sent.
    pub heartbeat_interval: Duration,
    /// A peer unheard for this long is dead and its IPs move.
    pub dead_interval: Duration,
    /// A node that has not heard a majority within this window stops answering. Must be shorter
    /// than `dead_interval` by more than one heartbeat interval, so that the minority side of a
    /// partition steps down before the majority side takes over.
    pub quorum_window: Duration,
    /// After start, a node answers nothing for this long, to learn its peers' claims first.
    pub startup_grace: Duration,
}

impl Default for ElectionTiming {
    fn default() -> Self {
        ElectionTiming {
            heartbeat_interval: Duration::from_millis(100),
            dead_interval: Duration::from_millis(400),
            quorum_window: Duration::from_millis(250),
            startup_grace: Duration::from_millis(500),
        }
    }
}

impl ElectionTiming {
    /// Checks the ordering the split-brain argument relies on.
    pub fn validate(&self) -> crate::Result<()> {
        if self.heartbeat_interval.is_zero() {
            return Err(crate::Error::Config(
                "heartbeat interval must be positive".into(),
            ));
        }
        if self.quorum_window + self.heartbeat_interval > self.dead_interval {
            return Err(crate::Error::Config(format!(
                "quorum window ({:?}) + heartbeat interval ({:?}) must not exceed the dead interval ({:?})",
                self.quorum_window, self.heartbeat_interval, self.dead_interval
            )));
        }
        if self.quorum_window < self.heartbeat_interval {
            return Err(crate::Error::Config(
                "quorum window must be at least one heartbeat interval".into(),
            ));
        }
        if self.startup_grace < self.dead_interval {
            return Err(crate::Error::Config(
                "startup grace must be at least the dead interval".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Peer {
    incarnation: u64,
    last_seen: Instant,
    claims: BTreeSet<IpAddr>,
    pending_seq: u64,
    pending_chunks: BTreeMap<u8, Vec<IpAddr>>,
    /// Highest sequence number accepted in `incarnation`, and which of its chunks were seen.
    seq: u64,
    chunks_seen: ChunkSet,
    /// Latest timestamp accepted from this sender, in any incarnation.
    last_timestamp_ms: u64,
}

/// The chunk indexes (0..=255) heard for one heartbeat round, one bit each.
#[derive(Clone, Copy, Debug, Default)]
struct ChunkSet {
    /// Chunks 0..=127.
    low: u128,
    /// Chunks 128..=255.
    high: u128,
}

impl ChunkSet {
    /// The word holding `chunk`'s bit, and the bit.
    fn slot(&mut self, chunk: u8) -> (&mut u128, u128) {
        let bit = 1u128 << (chunk % 128);
        if chunk < 128 {
            (&mut self.low, bit)
        } else {
            (&mut self.high, bit)
        }
    }

    fn contains(mut self, chunk: u8) -> bool {
        let (word, bit) = self.slot(chunk);
        *word & bit != 0
    }

    fn insert(&mut self, chunk: u8) {
        let (word, bit) = self.slot(chunk);
        *word |= bit;
    }
}

/// Per-VIP result of an evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipOutcome {
    /// The node that answers (or will answer) for the IP, as far as this node can tell: a node
    /// that claims it, else the ranking winner. `None` if no eligible node is alive.
    pub leader: Option<String>,
    /// Whether this node answers for it now.
    pub led_by_me: bool,
}

/// Result of [`Election::evaluate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether this node hears a majority of the membership.
    pub quorum: bool,
    /// Whether this node's fencing lease is valid.
    pub lease_valid: bool,
    /// Whether it rides out a store outage: the lease ran out less than the outage grace ago
    /// (renewals failing, not refused), and it answers on wire quorum of the last membership.
    pub store_outage: bool,
    /// Per IP.
    pub vips: BTreeMap<IpAddr, VipOutcome>,
}

impl Outcome {
    /// The IPs this node answers for.
    pub fn led(&self) -> BTreeSet<IpAddr> {
        self.vips
            .iter()
            .filter(|(_, o)| o.led_by_me)
            .map(|(ip, _)| *ip)
            .collect()
    }
}

/// One node's view of the election.
#[derive(Clone, Debug)]
pub struct Election {
    me: String,
    cluster: u32,
    timing: ElectionTiming,
    auth: HeartbeatAuth,
    started: Instant,
    peers: BTreeMap<String, Peer>,
    /// Configured node names; heartbeats from names neither here nor in `members` are ignored.
    known: BTreeSet<String>,
    members: BTreeSet<String>,
    lease_valid_until: Option<Instant>,
    /// How long after the lease ran out the last membership still stands (store outage).
    outage_grace: Duration,
    /// Since when this node has held quorum without interruption.
    quorum_since: Option<Instant>,
}

impl Election {
    /// A node named `me` in `cluster`, started at `now`.
    pub fn new(me: impl Into<String>, cluster: u32, timing: ElectionTiming, now: Instant) -> Self {
        Election {
            me: me.into(),
            cluster,
            timing,
            auth: HeartbeatAuth::default(),
            started: now,
            peers: BTreeMap::new(),
            known: BTreeSet::new(),
            members: BTreeSet::new(),
            lease_valid_until: None,
            outage_grace: Duration::ZERO,
            quorum_since: None,
        }
    }

    /// This node's name.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The timers.
    pub fn timing(&self) -> ElectionTiming {
        self.timing
    }

    /// Sets how heartbeats are authenticated (none by default).
    pub fn with_auth(mut self, auth: HeartbeatAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the store outage grace (none by default). While the store cannot be reached — the
    /// lease ran out because renewals fail, not because the store dropped this node — the node
    /// keeps answering for up to `grace` more, on the last membership the store gave and only
    /// with a wire quorum of it, and yields any IP another member claims (a node that still
    /// reaches the store may have taken it over). A store that is down for every node thus
    /// takes no address dark; a node cut off alone hands its addresses over as before.
    pub fn with_outage_grace(mut self, grace: Duration) -> Self {
        self.outage_grace = grace;
        self
    }

    /// The heartbeat key, if any.
    pub fn key(&self) -> Option<&HeartbeatKey> {
        self.auth.key.as_ref()
    }

    /// Replaces the configured node names (the senders worth tracking besides the members).
    pub fn set_known_nodes(&mut self, names: impl IntoIterator<Item = String>) {
        self.known = names.into_iter().collect();
    }

    /// How long a silent sender's state (claims, sequence numbers) is kept: twice the clock-skew
    /// bound plus the dead interval, so that anything it sent before falling silent is stale
    /// once its counters are forgotten.
    pub fn prune_after(&self) -> Duration {
        2 * self.auth.max_clock_skew + self.timing.dead_interval
    }

    /// Senders currently tracked.
    pub fn peers_tracked(&self) -> usize {
        self.peers.len()
    }

    /// Judges a heartbeat payload (after the Ethernet header) received at `now`, our wall clock
    /// reading `wall_ms` (ms since the Unix epoch), and records it if it is accepted. Checks run
    /// cheapest first: structure, cluster, tag, sender name, timestamp, sequence number.
    pub fn on_heartbeat(
        &mut self,
        now: Instant,
        wall_ms: u64,
        payload: &[u8],
    ) -> Result<(), Rejected> {
        let packet = Packet::new_checked(payload).map_err(|_| Rejected::Malformed)?;
        if packet.cluster() != self.cluster {
            return Err(Rejected::OtherCluster);
        }
        match (&self.auth.key, packet.is_authenticated()) {
            (Some(key), true) if packet.verify(key) => {}
            (None, false) => {}
            _ => return Err(Rejected::BadAuth),
        }
        let hb = HeartbeatRepr::parse(&packet).map_err(|_| Rejected::Malformed)?;
        self.on_verified(now, wall_ms, &hb)
    }

    /// Records a heartbeat chunk whose tag (if we have a key) has been verified.
    fn on_verified(
        &mut self,
        now: Instant,
        wall_ms: u64,
        hb: &HeartbeatRepr,
    ) -> Result<(), Rejected> {
        if hb.cluster != self.cluster {
            return Err(Rejected::OtherCluster);
        }
        if hb.node == self.me {
            return Err(Rejected::OwnName);
        }
        if !self.known.contains(&hb.node) && !self.members.contains(&hb.node) {
            return Err(Rejected::UnknownNode);
        }
        let checked = self.auth.key.is_some();
        let skew = u64::try_from(self.auth.max_clock_skew.as_millis()).unwrap_or(u64::MAX);
        if checked && wall_ms.abs_diff(hb.timestamp_ms) > skew {
            return Err(Rejected::Stale);
        }
        if !self.peers.contains_key(&hb.node) && self.peers.len() >= MAX_PEERS {
            return Err(Rejected::TooManyPeers);
        }
        let peer = self.peers.entry(hb.node.clone()).or_insert_with(|| Peer {
            incarnation: hb.incarnation,
            last_seen: now,
            claims: BTreeSet::new(),
            pending_seq: hb.seq,
            pending_chunks: BTreeMap::new(),
            seq: hb.seq,
            chunks_seen: ChunkSet::default(),
            last_timestamp_ms: hb.timestamp_ms,
        });
        if checked {
            let replay = if peer.incarnation == hb.incarnation {
                hb.seq < peer.seq || (hb.seq == peer.seq && peer.chunks_seen.contains(hb.chunk))
            } else {
                // A restart is believed only if it is newer than anything heard before.
                hb.timestamp_ms <= peer.last_timestamp_ms
            };
            if replay {
                return Err(Rejected::Replay);
            }
        }
        if peer.incarnation != hb.incarnation {
            // A restarted process: forget what the old one claimed.
            peer.incarnation = hb.incarnation;
            peer.claims.clear();
            peer.pending_chunks.clear();
            peer.chunks_seen = ChunkSet::default();
        }
        if peer.seq != hb.seq {
            peer.seq = hb.seq;
            peer.chunks_seen = ChunkSet::default();
        }
        peer.chunks_seen.insert(hb.chunk);
        peer.last_timestamp_ms = peer.last_timestamp_ms.max(hb.timestamp_ms);
        peer.last_seen = now;
        if hb.chunks == 1 {
            peer.claims = hb.claims.iter().copied().collect();
            peer.pending_chunks.clear();
            return Ok(());
        }
        if peer.pending_seq != hb.seq {
            peer.pending_seq = hb.seq;
            peer.pending_chunks.clear();
        }
        peer.pending_chunks.insert(hb.chunk, hb.claims.clone());
        if peer.pending_chunks.len() == usize::from(hb.chunks) {
            peer.claims = std::mem::take(&mut peer.pending_chunks)
                .into_values()
                .flatten()
                .collect();
        }
        Ok(())
    }

    /// Forgets senders silent for longer than [`Election::prune_after`] and names no longer
    /// configured nor members.
    pub fn prune(&mut self, now: Instant) {
        let keep = self.prune_after();
        let (known, members) = (&self.known, &self.members);
        self.peers.retain(|name, p| {
            now.saturating_duration_since(p.last_seen) <= keep
                && (known.contains(name) || members.contains(name))
        });
    }

    /// Records a successful store renewal started at `renew_started`: the membership it returned
    /// and our lease duration. Our lease counts from when the renewal was *sent*, so a slow store
    /// shortens it rather than extending it.
    pub fn on_membership(
        &mut self,
        renew_started: Instant,
        members: BTreeSet<String>,
        lease: Duration,
    ) {
        self.members = members;
        self.lease_valid_until = Some(renew_started + lease);
    }

    /// Whether `node` is in the membership last reported by the store.
    pub fn is_member(&self, node: &str) -> bool {
        self.members.contains(node)
    }

    /// Nodes heard within the dead interval (excluding this node).
    pub fn alive_peers(&self, now: Instant) -> BTreeSet<&str> {
        self.peers
            .iter()
            .filter(|(_, p)| {
                now.saturating_duration_since(p.last_seen) <= self.timing.dead_interval
            })
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Whether this node hears a strict majority of the membership within the quorum window, or
    /// exactly half including the smallest member name (the tie-break both halves agree on).
    pub fn has_quorum(&self, now: Instant) -> bool {
        if !self.members.contains(&self.me) {
            return false;
        }
        let heard = |n: &str| {
            n == self.me
                || self.peers.get(n).is_some_and(|p| {
                    now.saturating_duration_since(p.last_seen) <= self.timing.quorum_window
                })
        };
        let count = self.members.iter().filter(|n| heard(n)).count();
        let total = self.members.len();
        2 * count > total || (2 * count == total && self.members.first().is_some_and(|n| heard(n)))
    }

    /// Decides, for each VIP, who leads and whether this node answers for it now.
    /// `currently_led` is what this node answers for at the moment (it keeps an IP a peer also
    /// claims only if it already holds it and outranks the peer).
    ///
    /// A node takes nothing until it has held quorum for the startup grace, after starting and
    /// after every loss of quorum (its link was down, say): by then it has heard every live peer's
    /// claims, so it cannot take an IP a peer it has not heard from yet still answers for.
    pub fn evaluate(
        &mut self,
        now: Instant,
        vips: &[VipSpec],
        currently_led: &BTreeSet<IpAddr>,
    ) -> Outcome {
        self.prune(now);
        let quorum = self.has_quorum(now);
        if !quorum {
            self.quorum_since = None;
        } else if self.quorum_since.is_none() {
            self.quorum_since = Some(now);
        }
        let grace = self.timing.startup_grace;
        let lease_valid = self.lease_valid_until.is_some_and(|t| now < t);
        let store_outage = !lease_valid
            && !self.outage_grace.is_zero()
            && self
                .lease_valid_until
                .is_some_and(|t| now < t + self.outage_grace);
        let ready = now.saturating_duration_since(self.started) >= grace
            && self
                .quorum_since
                .is_some_and(|q| now.saturating_duration_since(q) >= grace);
        let alive = self.alive_peers(now);
        let mut out = BTreeMap::new();
        for spec in vips {
            let candidates = spec
                .eligible
                .iter()
                .map(String::as_str)
                .filter(|n| self.members.contains(*n))
                .filter(|n| *n == self.me || alive.contains(n));
            let winner = rank_winner(spec.vip, candidates);
            let claimant = alive
                .iter()
                .copied()
                // A claim counts only from a current member: a node the store has dropped (or
                // never admitted) cannot hold an IP dark.
                .filter(|n| self.members.contains(*n))
                .filter(|n| {
                    self.peers
                        .get(*n)
                        .is_some_and(|p| p.claims.contains(&spec.vip))
                })
                .find(|n| Some(*n) != winner);
            let i_win = winner == Some(self.me.as_str());
            let unchallenged = if lease_valid {
                claimant.is_none() || currently_led.contains(&spec.vip)
            } else {
                store_outage && claimant.is_none()
            };
            let led_by_me = i_win && quorum && ready && unchallenged;
            let leader = if led_by_me {
                Some(self.me.clone())
            } else {
                claimant.or(winner).map(str::to_owned)
            };
            out.insert(spec.vip, VipOutcome { leader, led_by_me });
        }
        Outcome {
            quorum,
            lease_valid,
            store_outage,
            vips: out,
        }
    }

    /// The earliest time at which the outcome can change without new input (a peer going dead, the
    /// quorum window or the lease running out, the startup grace ending).
    pub fn next_deadline(&self, now: Instant) -> Instant {
        let mut t = now + self.timing.heartbeat_interval;
        for start in [Some(self.started), self.quorum_since]
            .into_iter()
            .flatten()
        {
            let grace = start + self.timing.startup_grace;
            if grace > now {
                t = t.min(grace);
            }
        }
        for p in self.peers.values() {
            for d in [self.timing.quorum_window, self.timing.dead_interval] {
                let at = p.last_seen + d + Duration::from_millis(1);
                if at > now {
                    t = t.min(at);
                }
            }
        }
        if let Some(l) = self.lease_valid_until {
            for end in [l, l + self.outage_grace] {
                if end > now {
                    t = t.min(end);
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Wall clock of the tests' senders and receivers (ms since the Unix epoch).
    const WALL: u64 = 1_800_000_000_000;

    fn hb(node: &str, inc: u64, seq: u64, claims: &[IpAddr]) -> HeartbeatRepr {
        HeartbeatRepr {
            cluster: 7,
            node: node.into(),
            incarnation: inc,
            seq,
            timestamp_ms: WALL,
            chunk: 0,
            chunks: 1,
            claims: claims.to_vec(),
        }
    }

    /// Encodes `hb` as its sender would (tagged with `key`) and hands the bytes to `e`, whose
    /// wall clock reads `wall`.
    fn try_hear_at(
        e: &mut Election,
        now: Instant,
        wall: u64,
        key: Option<&HeartbeatKey>,
        hb: &HeartbeatRepr,
    ) -> Result<(), Rejected> {
        let mut out = Vec::new();
        hb.emit(key, &mut out).expect("emit");
        e.on_heartbeat(now, wall, &out)
    }

    fn try_hear(e: &mut Election, now: Instant, hb: &HeartbeatRepr) -> Result<(), Rejected> {
        let key = e.key().cloned();
        try_hear_at(e, now, hb.timestamp_ms, key.as_ref(), hb)
    }

    fn hear(e: &mut Election, now: Instant, hb: &HeartbeatRepr) {
        try_hear(e, now, hb).expect("heartbeat accepted");
    }

    fn spec(ip: IpAddr, eligible: &[&str]) -> VipSpec {
        VipSpec {
            vip: ip,
            eligible: eligible.iter().map(|s| (*s).to_owned()).collect(),
            services: vec![],
        }
    }

    fn members(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A VIP whose rendezvous winner among a, b, c is `want`.
    fn vip_won_by(want: &str) -> IpAddr {
        (1..=255u8)
            .map(|i| IpAddr::from([10, 0, 0, i]))
            .find(|ip| rank_winner(*ip, ["a", "b", "c"]) == Some(want))
            .expect("some VIP ranks each node first")
    }

    /// Node `me` with peers b/c (or a/c) heard at `t0`, membership a, b, c, lease valid.
    fn setup(me: &str, t0: Instant) -> Election {
        let mut e = Election::new(me, 7, ElectionTiming::default(), t0);
        e.on_membership(t0, members(&["a", "b", "c"]), Duration::from_secs(10));
        e
    }

    #[test]
    fn default_timing_satisfies_its_own_rules() {
        assert!(ElectionTiming::default().validate().is_ok());
        let bad = ElectionTiming {
            quorum_window: Duration::from_millis(350),
            ..ElectionTiming::default()
        };
        assert!(bad.validate().is_err());
    }

    /// Peers send heartbeats every 100 ms over [from, to] and `e` evaluates after each round.
    fn warm(
        e: &mut Election,
        peers: &[(&str, &[IpAddr])],
        vips: &[VipSpec],
        from: Instant,
        to: Instant,
    ) {
        let mut t = from;
        let mut seq = 1;
        while t <= to {
            for (p, claims) in peers {
                hear(e, t, &hb(p, 1, seq, claims));
            }
            e.evaluate(t, vips, &BTreeSet::new());
            seq += 1;
            t += 100 * MS;
        }
    }

    #[test]
    fn exactly_one_node_leads_each_vip_when_views_agree() {
        let t0 = Instant::now();
        let now = t0 + 600 * MS;
        let vips: Vec<VipSpec> = (1..=30u8)
            .map(|i| spec(IpAddr::from([10, 0, 1, i]), &["a", "b", "c"]))
            .collect();
        let mut led_count: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for me in ["a", "b", "c"] {
            let mut e = setup(me, t0);
            let peers: Vec<(&str, &[IpAddr])> = ["a", "b", "c"]
                .into_iter()
                .filter(|p| *p != me)
                .map(|p| (p, &[][..]))
                .collect();
            warm(&mut e, &peers, &vips, t0, now);
            for ip in e.evaluate(now, &vips, &BTreeSet::new()).led() {
                *led_count.entry(ip).or_default() += 1;
            }
        }
        assert_eq!(led_count.len(), 30);
        assert!(led_count.values().all(|&n| n == 1));
    }

    #[test]
    fn vip_moves_after_dead_interval_not_before() {
        let t0 = Instant::now();
        let vip = vip_won_by("a");
        let vips = [spec(vip, &["a", "b", "c"])];
        let mut b = setup("b", t0);
        let last = t0 + 600 * MS;
        warm(&mut b, &[("a", &[vip]), ("c", &[])], &vips, t0, last);
        warm(
            &mut b,
            &[("c", &[])],
            &vips,
            last + 100 * MS,
            last + 300 * MS,
        );
        let before = b.evaluate(last + 399 * MS, &vips, &BTreeSet::new());
        assert!(!before.vips[&vip].led_by_me);
        assert_eq!(before.vips[&vip].leader.as_deref(), Some("a"));
        let after_rank = rank_winner(vip, ["b", "c"]);
        let after = b.evaluate(last + 401 * MS, &vips, &BTreeSet::new());
        assert_eq!(after.vips[&vip].led_by_me, after_rank == Some("b"));
        assert_eq!(after.vips[&vip].leader.as_deref(), after_rank);
    }

    #[test]
    fn minority_steps_down_before_majority_takes_over() {
        let t0 = Instant::now();
        let vip = vip_won_by("a");
        let vips = [spec(vip, &["a", "b", "c"])];
        let mut a = setup("a", t0);
        let mut b = setup("b", t0);
        let mut c = setup("c", t0);
        // Steady state, then a partition isolates a at `cut` (last heartbeats exchanged then).
        let cut = t0 + 700 * MS;
        warm(&mut a, &[("b", &[]), ("c", &[])], &vips, t0, cut);
        warm(&mut b, &[("a", &[vip]), ("c", &[])], &vips, t0, cut);
        warm(&mut c, &[("a", &[vip]), ("b", &[])], &vips, t0, cut);
        let held = BTreeSet::from([vip]);
        assert!(a.evaluate(cut, &vips, &held).vips[&vip].led_by_me);
        // b and c keep hearing each other.
        let mut step_down = None;
        let mut take_over = None;
        for ms in 1..1000u64 {
            let now = cut + Duration::from_millis(ms);
            if ms % 100 == 0 {
                hear(&mut b, now, &hb("c", 1, 100 + ms, &[]));
                hear(&mut c, now, &hb("b", 1, 100 + ms, &[]));
            }
            if step_down.is_none() && !a.evaluate(now, &vips, &held).vips[&vip].led_by_me {
                step_down = Some(ms);
            }
            let by_b = b.evaluate(now, &vips, &BTreeSet::new()).vips[&vip].led_by_me;
            let by_c = c.evaluate(now, &vips, &BTreeSet::new()).vips[&vip].led_by_me;
            if take_over.is_none() && (by_b || by_c) {
                take_over = Some(ms);
            }
        }
        let (down, up) = (
            step_down.expect("a steps down"),
            take_over.expect("b or c takes over"),
        );
        assert!(
            down < up,
            "a stepped down at {down} ms, takeover at {up} ms"
        );
        assert!(up <= 450, "takeover at {up} ms");
    }

    #[test]
    fn handover_waits_for_previous_holder_to_drop_its_claim() {
        let t0 = Instant::now();
        let vip = vip_won_by("a");
        let vips = [spec(vip, &["a", "b", "c"])];
        // a restarted; b still holds the IP from when a was away.
        let mut a = setup("a", t0);
        let now = t0 + 600 * MS;
        warm(&mut a, &[("b", &[vip]), ("c", &[])], &vips, t0, now);
        let o = a.evaluate(now, &vips, &BTreeSet::new());
        assert!(!o.vips[&vip].led_by_me);
        assert_eq!(o.vips[&vip].leader.as_deref(), Some("b"));
        hear(&mut a, now + 50 * MS, &hb("b", 1, 99, &[]));
        assert!(a.evaluate(now + 50 * MS, &vips, &BTreeSet::new()).vips[&vip].led_by_me);
    }

    #[test]
    fn nothing_is_led_during_startup_grace_or_without_lease_or_membership() {
        let t0 = Instant::now();
        let vip = vip_won_by("a");
        let vips = [spec(vip, &["a", "b", "c"])];
        let mut a = setup("a", t0);
        // Quorum from t0 + 100 ms: nothing before t0 + 600 ms.
        warm(&mut a, &[("b", &[])], &vips, t0 + 100 * MS, t0 + 500 * MS);
        assert!(!a.evaluate(t0 + 550 * MS, &vips, &BTreeSet::new()).vips[&vip].led_by_me);
        hear(&mut a, t0 + 600 * MS, &hb("b", 1, 50, &[]));
        assert!(a.evaluate(t0 + 600 * MS, &vips, &BTreeSet::new()).vips[&vip].led_by_me);
        // Lease runs out.
        a.on_membership(t0, members(&["a", "b", "c"]), Duration::from_millis(610));
        let o = a.evaluate(t0 + 610 * MS, &vips, &BTreeSet::new());
        assert!(!o.lease_valid && !o.vips[&vip].led_by_me);
        // Not a member.
        a.on_membership(t0 + 610 * MS, members(&["b", "c"]), Duration::from_secs(5));
        assert!(!a.evaluate(t0 + 610 * MS, &vips, &BTreeSet::new()).vips[&vip].led_by_me);
    }

    #[test]
    fn a_store_outage_is_ridden_out_on_wire_quorum_for_the_grace_only() {
        let t0 = Instant::now();
        let vip = vip_won_by("a");
        let vips = [spec(vip, &["a", "b", "c"])];
        let mut a = Election::new("a", 7, ElectionTiming::default(), t0)
            .with_outage_grace(Duration::from_secs(5));
        // The last renewal that worked was at t0 (1 s lease); every later one fails.
        a.on_membership(t0, members(&["a", "b", "c"]), Duration::from_secs(1));
        warm(&mut a, &[("b", &[]), ("c", &[])], &vips, t0, t0 + 700 * MS);
        let led = BTreeSet::from([vip]);
        assert!(a.evaluate(t0 + 700 * MS, &vips, &led).vips[&vip].led_by_me);
        // Lease gone, store unreachable, b and c heard: a keeps answering.
        warm(
            &mut a,
            &[("b", &[]), ("c", &[])],
            &vips,
            t0 + 800 * MS,
            t0 + 3000 * MS,
        );
        let o = a.evaluate(t0 + 3000 * MS, &vips, &led);
        assert!(
            !o.lease_valid && o.store_outage && o.vips[&vip].led_by_me,
            "{o:?}"
        );
        assert_eq!(a.next_deadline(t0 + 3000 * MS), t0 + 3100 * MS);
        // Without wire quorum it does not.
        let o = a.evaluate(t0 + 3500 * MS, &vips, &led);
        assert!(!o.quorum && !o.vips[&vip].led_by_me, "{o:?}");
        // Quorum back: another member's claim (it may reach the store) is yielded to.
        warm(
            &mut a,
            &[("b", &[vip]), ("c", &[])],
            &vips,
            t0 + 3600 * MS,
            t0 + 4200 * MS,
        );
        let o = a.evaluate(t0 + 4200 * MS, &vips, &led);
        assert!(o.store_outage && !o.vips[&vip].led_by_me, "{o:?}");
        assert_eq!(o.vips[&vip].leader.as_deref(), Some("b"));
        // Unchallenged again, until the grace (lease end + 5 s) is over.
        warm(
            &mut a,
            &[("b", &[]), ("c", &[])],
            &vips,
            t0 + 4300 * MS,
            t0 + 5900 * MS,
        );
        assert!(a.evaluate(t0 + 5900 * MS, &vips, &led).vips[&vip].led_by_me);
        warm(
            &mut a,
            &[("b", &[]), ("c", &[])],
            &vips,
            t0 + 6000 * MS,
            t0 + 6100 * MS,
        );
        let o = a.evaluate(t0 + 6100 * MS, &vips, &led);
        assert!(!o.store_outage && !o.vips[&vip].led_by_me, "{o:?}");
    }

    #[test]
    fn without_an_outage_grace_the_lease_end_stops_answering() {
        let t0 = Instant::now();
        let vip = vip_won_by("a");
        let vips = [spec(vip, &["a", "b", "c"])];
        let mut a = Election::new("a", 7, ElectionTiming::default(), t0);
        a.on_membership(t0, members(&["a", "b", "c"]), Duration::from_secs(1));
        warm(&mut a, &[("b", &[]), ("c", &[])], &vips, t0, t0 + 1200 * MS);
        let o = a.evaluate(t0 + 1200 * MS, &vips, &BTreeSet::from([vip]));
        assert!(!o.store_outage && !o.vips[&vip].led_by_me, "{o:?}");
    }

    #[test]
    fn regaining_quorum_waits_the_grace_before_taking_anything() {
        let t0 = Instant::now();
        let vip = vip_won_by("a");
        let vips = [spec(vip, &["a", "b", "c"])];
        let mut a = setup("a", t0);
        warm(&mut a, &[("b", &[]), ("c", &[])], &vips, t0, t0 + 700 * MS);
        assert!(a.evaluate(t0 + 700 * MS, &vips, &BTreeSet::new()).vips[&vip].led_by_me);
        // a's link goes down for a second: quorum lost.
        assert!(!a.evaluate(t0 + 1000 * MS, &vips, &BTreeSet::new()).quorum);
        // Back: c is heard first; b (which took the IP meanwhile) only 100 ms later. a must not
        // take the IP before it could have heard b's claim.
        let back = t0 + 1700 * MS;
        hear(&mut a, back, &hb("c", 1, 90, &[]));
        assert!(!a.evaluate(back, &vips, &BTreeSet::new()).vips[&vip].led_by_me);
        hear(&mut a, back + 100 * MS, &hb("b", 1, 91, &[vip]));
        let o = a.evaluate(back + 100 * MS, &vips, &BTreeSet::new());
        assert!(!o.vips[&vip].led_by_me);
        assert_eq!(o.vips[&vip].leader.as_deref(), Some("b"));
    }

    #[test]
    fn even_split_is_won_by_the_half_with_the_smallest_name() {
        let t0 = Instant::now();
        let now = t0 + 600 * MS;
        let all = members(&["a", "b", "c", "d"]);
        let mut a = Election::new("a", 7, ElectionTiming::default(), t0);
        a.on_membership(t0, all.clone(), Duration::from_secs(10));
        hear(&mut a, now, &hb("b", 1, 1, &[]));
        let mut c = Election::new("c", 7, ElectionTiming::default(), t0);
        c.on_membership(t0, all, Duration::from_secs(10));
        hear(&mut c, now, &hb("d", 1, 1, &[]));
        assert!(a.has_quorum(now));
        assert!(!c.has_quorum(now));
    }

    #[test]
    fn chunked_claims_replace_the_set_only_when_complete() {
        let t0 = Instant::now();
        let mut a = setup("a", t0);
        let ips: Vec<IpAddr> = (1..=4u8).map(|i| IpAddr::from([10, 9, 9, i])).collect();
        hear(&mut a, t0, &hb("b", 1, 1, &ips[..1]));
        let mut part = hb("b", 1, 2, &ips[1..3]);
        part.chunks = 2;
        hear(&mut a, t0, &part);
        assert_eq!(a.peers["b"].claims, ips[..1].iter().copied().collect());
        part.chunk = 1;
        part.claims = ips[3..].to_vec();
        hear(&mut a, t0, &part);
        assert_eq!(a.peers["b"].claims, ips[1..].iter().copied().collect());
    }

    #[test]
    fn other_clusters_are_ignored() {
        let t0 = Instant::now();
        let mut a = setup("a", t0);
        let mut other = hb("b", 1, 1, &[]);
        other.cluster = 8;
        assert_eq!(try_hear(&mut a, t0, &other), Err(Rejected::OtherCluster));
        assert!(a.alive_peers(t0).is_empty());
    }

    fn key(b: u8) -> HeartbeatKey {
        HeartbeatKey::new(&[b; 32]).expect("key")
    }

    /// `me` in a, b, c with heartbeats authenticated by `key(1)`, membership from t0.
    fn keyed(me: &str, t0: Instant) -> Election {
        let mut e = Election::new(me, 7, ElectionTiming::default(), t0).with_auth(HeartbeatAuth {
            key: Some(key(1)),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
        });
        e.set_known_nodes(["a", "b", "c"].map(String::from));
        e.on_membership(t0, members(&["a", "b", "c"]), Duration::from_secs(3600));
        e
    }

    /// The bytes `node` sends in round `round` (one per 100 ms from t0), tagged with `k`.
    fn frame(
        node: &str,
        inc: u64,
        round: u64,
        claims: &[IpAddr],
        k: Option<&HeartbeatKey>,
    ) -> Vec<u8> {
        let mut h = hb(node, inc, round + 1, claims);
        h.timestamp_ms = WALL + 100 * round;
        let mut out = Vec::new();
        h.emit(k, &mut out).expect("emit");
        out
    }

    fn at(t0: Instant, round: u64) -> (Instant, u64) {
        (t0 + Duration::from_millis(100 * round), WALL + 100 * round)
    }

    #[test]
    fn forged_heartbeats_claiming_every_vip_are_rejected() {
        let t0 = Instant::now();
        let vips: Vec<VipSpec> = (1..=20u8)
            .map(|i| spec(IpAddr::from([10, 0, 2, i]), &["a", "b", "c"]))
            .collect();
        let all: Vec<IpAddr> = vips.iter().map(|v| v.vip).collect();
        let mut b = keyed("b", t0);
        for round in 0..=10 {
            let (t, wall) = at(t0, round);
            for n in ["a", "c"] {
                b.on_heartbeat(t, wall, &frame(n, 1, round, &[], Some(&key(1))))
                    .expect("genuine heartbeat");
            }
            // The attacker, with the wrong key or none, claims every VIP in a's and c's names.
            for k in [Some(key(2)), None] {
                for n in ["a", "c"] {
                    let forged = frame(n, 1, round + 1000, &all, k.as_ref());
                    assert_eq!(b.on_heartbeat(t, wall, &forged), Err(Rejected::BadAuth));
                }
            }
            b.evaluate(t, &vips, &BTreeSet::new());
        }
        let (t, _) = at(t0, 10);
        let o = b.evaluate(t, &vips, &BTreeSet::new());
        for v in &vips {
            let winner = rank_winner(v.vip, ["a", "b", "c"]);
            assert_eq!(o.vips[&v.vip].leader.as_deref(), winner, "{}", v.vip);
            assert_eq!(o.vips[&v.vip].led_by_me, winner == Some("b"));
        }
    }

    #[test]
    fn replayed_heartbeats_of_a_dead_leader_do_not_keep_it_alive() {
        let t0 = Instant::now();
        let vip = vip_won_by("a");
        let vips = [spec(vip, &["a", "b", "c"])];
        let k = key(1);
        let mut b = keyed("b", t0);
        let mut recorded = Vec::new();
        for round in 0..=7 {
            let (t, wall) = at(t0, round);
            let fa = frame("a", 1, round, &[vip], Some(&k));
            b.on_heartbeat(t, wall, &fa).expect("a");
            recorded.push(fa);
            b.on_heartbeat(t, wall, &frame("c", 1, round, &[], Some(&k)))
                .expect("c");
            b.evaluate(t, &vips, &BTreeSet::new());
        }
        // a is killed after round 7; c lives on; an attacker replays a's recorded frames, one per
        // 100 ms, over and over.
        let mut led = BTreeSet::new();
        let mut took_over = None;
        for round in 8..=40 {
            let (t, wall) = at(t0, round);
            b.on_heartbeat(t, wall, &frame("c", 1, round, &[], Some(&k)))
                .expect("c");
            let i = (round - 8) % recorded.len() as u64;
            // Rejected as a replay by the counters; once older than the skew bound, as stale.
            let want = if wall - (WALL + 100 * i) > 2000 {
                Rejected::Stale
            } else {
                Rejected::Replay
            };
            assert_eq!(b.on_heartbeat(t, wall, &recorded[i as usize]), Err(want));
            let o = b.evaluate(t, &vips, &led);
            led = o.led();
            if took_over.is_none() && o.vips[&vip].leader.as_deref() != Some("a") {
                took_over = Some(round);
            }
        }
        // The dead interval (400 ms) after a's last genuine heartbeat, as without the attack.
        assert_eq!(took_over, Some(12));
        let (t, _) = at(t0, 40);
        assert!(!b.alive_peers(t).contains("a"));
        assert_eq!(
            b.evaluate(t, &vips, &led).vips[&vip].leader.as_deref(),
            rank_winner(vip, ["b", "c"])
        );
        // Once a's counters are pruned (4.4 s after its last heartbeat), the same frames are stale.
        let (t, wall) = at(t0, 52);
        b.evaluate(t, &vips, &led);
        assert_eq!(b.peers_tracked(), 1, "a's state was pruned, c's kept");
        assert_eq!(b.on_heartbeat(t, wall, &recorded[7]), Err(Rejected::Stale));
    }

    #[test]
    fn without_a_key_replays_are_accepted_which_is_why_the_key_matters() {
        let t0 = Instant::now();
        let mut b = setup("b", t0);
        let old = frame("a", 1, 0, &[], None);
        b.on_heartbeat(t0, WALL, &frame("a", 1, 5, &[], None))
            .expect("a");
        let later = t0 + Duration::from_secs(1);
        b.on_heartbeat(later, WALL + 1000, &old).expect("accepted");
        assert!(b.alive_peers(later).contains("a"));
        // And tagged heartbeats are not accepted by a node without a key (nor the reverse).
        let tagged = frame("a", 1, 6, &[], Some(&key(1)));
        assert_eq!(b.on_heartbeat(later, WALL, &tagged), Err(Rejected::BadAuth));
    }

    #[test]
    fn a_restart_is_accepted_but_an_older_incarnation_is_not_replayed_over_it() {
        let t0 = Instant::now();
        let vip = vip_won_by("a");
        let k = key(1);
        let mut b = keyed("b", t0);
        let (t, wall) = at(t0, 0);
        let before = frame("a", 1, 0, &[vip], Some(&k));
        b.on_heartbeat(t, wall, &before).expect("a, incarnation 1");
        // a restarts (new incarnation, sequence numbers from 1 again, later timestamp).
        let (t, wall) = at(t0, 3);
        let mut h = hb("a", 2, 1, &[]);
        h.timestamp_ms = wall;
        try_hear_at(&mut b, t, wall, Some(&k), &h).expect("restart");
        assert!(b.peers["a"].claims.is_empty());
        // The old incarnation's frame, still within the skew bound, is a replay.
        assert_eq!(b.on_heartbeat(t, wall, &before), Err(Rejected::Replay));
        assert!(b.peers["a"].claims.is_empty());
        // A second chunk of an already-seen sequence number is new; the same chunk again is not.
        let mut c0 = hb("a", 2, 2, &[]);
        c0.timestamp_ms = wall;
        c0.chunks = 2;
        try_hear_at(&mut b, t, wall, Some(&k), &c0).expect("chunk 0");
        let mut c1 = c0.clone();
        c1.chunk = 1;
        c1.claims = vec![vip];
        try_hear_at(&mut b, t, wall, Some(&k), &c1).expect("chunk 1");
        assert_eq!(
            try_hear_at(&mut b, t, wall, Some(&k), &c1),
            Err(Rejected::Replay)
        );
        assert_eq!(b.peers["a"].claims, BTreeSet::from([vip]));
    }

    #[test]
    fn heartbeats_outside_the_clock_skew_bound_are_stale() {
        let t0 = Instant::now();
        let k = key(1);
        let mut b = keyed("b", t0);
        let mut h = hb("a", 1, 1, &[]);
        h.timestamp_ms = WALL - 2001;
        assert_eq!(
            try_hear_at(&mut b, t0, WALL, Some(&k), &h),
            Err(Rejected::Stale)
        );
        h.timestamp_ms = WALL + 2001;
        assert_eq!(
            try_hear_at(&mut b, t0, WALL, Some(&k), &h),
            Err(Rejected::Stale)
        );
        h.timestamp_ms = WALL + 1999;
        assert_eq!(try_hear_at(&mut b, t0, WALL, Some(&k), &h), Ok(()));
    }

    #[test]
    fn a_flood_of_random_names_is_ignored_and_state_stays_bounded() {
        let t0 = Instant::now();
        let vip = vip_won_by("b");
        let vips = [spec(vip, &["a", "b", "c"])];
        let k = key(1);
        let mut keyed_b = keyed("b", t0);
        let mut open_b = setup("b", t0);
        for i in 0..20_000u32 {
            let name = format!("x{i:x}");
            let (t, wall) = at(t0, u64::from(i / 1000));
            // Even with the right key (a compromised host), unknown names are not tracked.
            assert_eq!(
                keyed_b.on_heartbeat(t, wall, &frame(&name, 1, 0, &[vip], Some(&k))),
                Err(Rejected::UnknownNode)
            );
            assert_eq!(
                open_b.on_heartbeat(t, wall, &frame(&name, 1, 0, &[vip], None)),
                Err(Rejected::UnknownNode)
            );
        }
        assert_eq!(keyed_b.peers_tracked(), 0);
        assert_eq!(open_b.peers_tracked(), 0);
        for (e, key) in [(&mut keyed_b, Some(&k)), (&mut open_b, None)] {
            for round in 20..=30 {
                let (t, wall) = at(t0, round);
                for n in ["a", "c"] {
                    e.on_heartbeat(t, wall, &frame(n, 1, round, &[], key))
                        .expect("member");
                }
                e.evaluate(t, &vips, &BTreeSet::new());
            }
            let (t, _) = at(t0, 30);
            assert!(e.evaluate(t, &vips, &BTreeSet::new()).vips[&vip].led_by_me);
        }
    }

    #[test]
    fn silent_peers_are_pruned_and_removed_names_forgotten() {
        let t0 = Instant::now();
        let mut b = setup("b", t0);
        b.set_known_nodes(["a", "b", "c"].map(String::from));
        hear(&mut b, t0, &hb("a", 1, 1, &[]));
        hear(&mut b, t0, &hb("c", 1, 1, &[]));
        let t = t0 + b.prune_after();
        b.prune(t);
        assert_eq!(b.peers_tracked(), 2);
        hear(&mut b, t, &hb("c", 1, 2, &[]));
        b.prune(t + 2 * MS);
        assert_eq!(b.peers_tracked(), 1);
        b.set_known_nodes(["a", "b"].map(String::from));
        b.on_membership(t, members(&["a", "b"]), Duration::from_secs(10));
        b.prune(t + 2 * MS);
        assert_eq!(b.peers_tracked(), 0);
    }

    #[test]
    fn a_claim_counts_only_from_a_current_member() {
        let t0 = Instant::now();
        let vip = vip_won_by("a");
        let vips = [spec(vip, &["a", "b", "c"])];
        let mut b = setup("b", t0);
        b.set_known_nodes(["a", "b", "c"].map(String::from));
        // The store dropped a (its lease expired), but a still sends heartbeats claiming the VIP.
        b.on_membership(t0, members(&["b", "c"]), Duration::from_secs(10));
        warm(
            &mut b,
            &[("a", &[vip]), ("c", &[])],
            &vips,
            t0,
            t0 + 700 * MS,
        );
        let o = b.evaluate(t0 + 700 * MS, &vips, &BTreeSet::new());
        let winner = rank_winner(vip, ["b", "c"]);
        assert_eq!(o.vips[&vip].leader.as_deref(), winner);
        assert_eq!(o.vips[&vip].led_by_me, winner == Some("b"));
    }
}

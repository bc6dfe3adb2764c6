//! The election state of one node: what it has heard from its peers (liveness, claims), the
//! membership and own-lease validity from the fencing store, and the pure rule that turns them
//! into "the IPs I answer for now". Time is always a parameter; nothing here reads a clock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::eligibility::VipSpec;
use super::rank::rank_winner;
use crate::wire::HeartbeatRepr;

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
    pending_seq: u32,
    pending_chunks: BTreeMap<u8, Vec<IpAddr>>,
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
    started: Instant,
    peers: BTreeMap<String, Peer>,
    members: BTreeSet<String>,
    lease_valid_until: Option<Instant>,
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
            started: now,
            peers: BTreeMap::new(),
            members: BTreeSet::new(),
            lease_valid_until: None,
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

    /// Records a heartbeat chunk received on any selected segment.
    pub fn on_heartbeat(&mut self, now: Instant, hb: &HeartbeatRepr) {
        if hb.cluster != self.cluster || hb.node == self.me {
            return;
        }
        let peer = self.peers.entry(hb.node.clone()).or_insert_with(|| Peer {
            incarnation: hb.incarnation,
            last_seen: now,
            claims: BTreeSet::new(),
            pending_seq: hb.seq,
            pending_chunks: BTreeMap::new(),
        });
        if peer.incarnation != hb.incarnation {
            // A restarted process: forget what the old one claimed.
            peer.incarnation = hb.incarnation;
            peer.claims.clear();
            peer.pending_chunks.clear();
        }
        peer.last_seen = now;
        if hb.chunks == 1 {
            peer.claims = hb.claims.iter().copied().collect();
            peer.pending_chunks.clear();
            return;
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
        let quorum = self.has_quorum(now);
        if !quorum {
            self.quorum_since = None;
        } else if self.quorum_since.is_none() {
            self.quorum_since = Some(now);
        }
        let grace = self.timing.startup_grace;
        let lease_valid = self.lease_valid_until.is_some_and(|t| now < t);
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
                .filter(|n| {
                    self.peers
                        .get(*n)
                        .is_some_and(|p| p.claims.contains(&spec.vip))
                })
                .find(|n| Some(*n) != winner);
            let i_win = winner == Some(self.me.as_str());
            let led_by_me = i_win
                && quorum
                && lease_valid
                && ready
                && (claimant.is_none() || currently_led.contains(&spec.vip));
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
        if let Some(l) = self.lease_valid_until.filter(|l| *l > now) {
            t = t.min(l);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn hb(node: &str, inc: u64, seq: u32, claims: &[IpAddr]) -> HeartbeatRepr {
        HeartbeatRepr {
            cluster: 7,
            node: node.into(),
            incarnation: inc,
            seq,
            chunk: 0,
            chunks: 1,
            claims: claims.to_vec(),
        }
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
                e.on_heartbeat(t, &hb(p, 1, seq, claims));
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
                b.on_heartbeat(now, &hb("c", 1, 100 + ms as u32, &[]));
                c.on_heartbeat(now, &hb("b", 1, 100 + ms as u32, &[]));
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
        a.on_heartbeat(now + 50 * MS, &hb("b", 1, 99, &[]));
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
        a.on_heartbeat(t0 + 600 * MS, &hb("b", 1, 50, &[]));
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
        a.on_heartbeat(back, &hb("c", 1, 90, &[]));
        assert!(!a.evaluate(back, &vips, &BTreeSet::new()).vips[&vip].led_by_me);
        a.on_heartbeat(back + 100 * MS, &hb("b", 1, 91, &[vip]));
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
        a.on_heartbeat(now, &hb("b", 1, 1, &[]));
        let mut c = Election::new("c", 7, ElectionTiming::default(), t0);
        c.on_membership(t0, all, Duration::from_secs(10));
        c.on_heartbeat(now, &hb("d", 1, 1, &[]));
        assert!(a.has_quorum(now));
        assert!(!c.has_quorum(now));
    }

    #[test]
    fn chunked_claims_replace_the_set_only_when_complete() {
        let t0 = Instant::now();
        let mut a = setup("a", t0);
        let ips: Vec<IpAddr> = (1..=4u8).map(|i| IpAddr::from([10, 9, 9, i])).collect();
        a.on_heartbeat(t0, &hb("b", 1, 1, &ips[..1]));
        let mut part = hb("b", 1, 2, &ips[1..3]);
        part.chunks = 2;
        a.on_heartbeat(t0, &part);
        assert_eq!(a.peers["b"].claims, ips[..1].iter().copied().collect());
        part.chunk = 1;
        part.claims = ips[3..].to_vec();
        a.on_heartbeat(t0, &part);
        assert_eq!(a.peers["b"].claims, ips[1..].iter().copied().collect());
    }

    #[test]
    fn other_clusters_are_ignored() {
        let t0 = Instant::now();
        let mut a = setup("a", t0);
        let mut other = hb("b", 1, 1, &[]);
        other.cluster = 8;
        a.on_heartbeat(t0, &other);
        assert!(a.alive_peers(t0).is_empty());
    }
}

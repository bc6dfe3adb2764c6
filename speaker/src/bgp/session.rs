//! One peer's session above the FSM: UPDATE processing into the Adj-RIB-In (import policy,
//! RFC 7606 treat-as-withdraw, max-prefix), the Adj-RIB-Out (initial advertisement, End-of-RIB,
//! differences on change, route refresh and enhanced route refresh replays), and graceful restart
//! (our R/F bits as restarting speaker; as helper, stale routes kept across a peer's restart and
//! swept on End-of-RIB or when its restart / stale-path time runs out), extended by RFC 8538 to
//! sessions ended by a NOTIFICATION other than Hard Reset, which we send where RFC 8538 §5 asks,
//! and by RFC 9494 long-lived graceful restart (`session/llgr.rs`).
//!
//! Sans-IO like the FSM: inputs carry the time, outputs are FSM outputs for the driver plus
//! route changes for the Loc-RIB.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp_proto::capability::{GracefulRestart, GracefulRestartFamily};
use bgp_proto::iana::{CeaseSubcode, Family, RouteRefreshSubtype};
use bgp_proto::{
    AttrValue, Capability, DecodeContext, Decoded, EncodeContext, Ipv4Nlri, Ipv6Nlri, Message,
    MpNlri, MpUnreach, Negotiated, NextHop, Notification, PathAttribute, Rfc7606, RouteRefresh,
    Update,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::collision::Direction;
use super::fsm::{self, ConnId, DownReason, Fsm, FsmConfig, State};
use super::rib::{AdjRibIn, PathAttrs, RibInEntry, family_of};
use super::rib_out::{Change, LearnedChange, NextHops, RibOut};
use crate::advertise::RouteAttributes;
use crate::advertise::packing::{self, AdjRibOut, OutRoute};
use crate::import_policy::ImportPolicy;

mod admin;
mod extended_next_hop;
mod llgr;

pub use admin::PeerReset;

/// Estimated bytes per route in the Adj-RIB-Out (prefix key, route, B-tree overhead).
const RIB_OUT_ROUTE_BYTES: usize = 96;

/// Restart State (R) bit of the graceful restart flags (RFC 4724 §3).
const GR_RESTART_STATE: u8 = 0x8;
/// Graceful Notification (N) bit of the graceful restart flags (RFC 8538 §2).
const GR_NOTIFICATION: u8 = 0x4;

/// Wraps `inner` in a Cease/Hard Reset NOTIFICATION. RFC 8538 §3.1 (paraphrased): the Hard
/// Reset's data carries the error code and subcode of the NOTIFICATION it replaces, then that
/// NOTIFICATION's data, so the peer still learns the real cause.
pub fn hard_reset(inner: &Notification) -> Notification {
    let mut n = Notification::cease(CeaseSubcode::HardReset);
    n.data.push(inner.code.into());
    n.data.push(inner.subcode);
    n.data.extend_from_slice(&inner.data);
    n
}

/// Whether `n` is a Cease/Hard Reset (RFC 8538), which ends graceful restart for good.
pub fn is_hard_reset(n: &Notification) -> bool {
    n.cease_subcode() == Some(CeaseSubcode::HardReset)
}

/// Whether RFC 8538 §5 wants this Cease sent as a Hard Reset when the N bit is negotiated:
/// Maximum Number of Prefixes Reached, Administrative Shutdown and Peer De-configured are "Hard
/// Reset"; Administrative Reset is "Provide user control" (see [`Session::admin_reset`]); the
/// rest (Connection Rejected, Other Configuration Change, Connection Collision Resolution, Out
/// of Resources, BFD Down) are "Graceful Cease" and go out unchanged.
fn wants_hard_reset(n: &Notification) -> bool {
    matches!(
        n.cease_subcode(),
        Some(
            CeaseSubcode::MaxPrefixes
                | CeaseSubcode::AdministrativeShutdown
                | CeaseSubcode::PeerDeconfigured
        )
    )
}

/// Our graceful restart settings (RFC 4724).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrConfig {
    /// Restart time we advertise, seconds (≤ 4095).
    pub restart_time: u16,
    /// We are restarting: set the Restart State (R) bit.
    pub restarting: bool,
    /// The forwarding state for the peer's routes survived the restart (with FIB import: the FIB
    /// found and kept its routes): with `restarting`, set the Forwarding State (F) bits.
    pub forwarding_preserved: bool,
    /// Long-lived graceful restart (RFC 9494): the long-lived stale time we advertise, seconds
    /// (≤ 16777215); `None` advertises no LLGR capability and gives no LLGR help.
    pub long_lived_stale_time: Option<u32>,
}

/// Configuration of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// The FSM's configuration; its capabilities are filled from the fields below.
    pub fsm: FsmConfig,
    /// Families we negotiate.
    pub families: BTreeSet<Family>,
    /// Import policy.
    pub import: ImportPolicy,
    /// Reset the session when the peer's routes stored for one family exceed this.
    pub max_prefixes: Option<u32>,
    /// Keep the routes the import policy rejects in the Adj-RIB-In, so a policy change can be
    /// applied without asking the peer again (soft reconfiguration inbound). Off, they are
    /// dropped on arrival and a policy change sends the peer a ROUTE-REFRESH.
    pub soft_reconfiguration_inbound: bool,
    /// Least time between two replays of the Adj-RIB-Out for one family on ROUTE-REFRESH;
    /// requests within it are coalesced into one replay when it ends.
    pub refresh_interval: Duration,
    /// Graceful restart, if enabled.
    pub graceful_restart: Option<GrConfig>,
    /// How long stale routes wait for End-of-RIB once the restarted peer is back.
    pub stale_path_time: Duration,
    /// Offer extended next hop (RFC 8950) for IPv4 unicast with IPv6 next hops.
    pub extended_next_hop: bool,
}

impl SessionConfig {
    /// The capabilities we advertise (without 4-octet AS, which the FSM adds).
    pub fn capabilities(&self) -> Vec<Capability> {
        let mut caps: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        caps.push(Capability::RouteRefresh);
        caps.push(Capability::EnhancedRouteRefresh);
        caps.extend(extended_next_hop::capability(
            self.extended_next_hop,
            &self.families,
        ));
        if let Some(gr) = self.graceful_restart {
            // RFC 4724 §3: Restart State bit "set to 1 ... to indicate that the BGP speaker has
            // restarted"; per family, the Forwarding State bit says forwarding was preserved.
            // Set only when the FIB really kept the previous run's routes: a peer that sees F
            // keeps forwarding to us on the routes it learned from us, and without kept routes
            // that traffic would follow whatever the kernel now holds.
            let family_flags = if gr.restarting && gr.forwarding_preserved {
                0x80
            } else {
                0
            };
            // RFC 8538 §2: the N bit says the speaker supports NOTIFICATION-triggered graceful
            // restart; we always do when GR is on.
            let restart = if gr.restarting { GR_RESTART_STATE } else { 0 };
            caps.push(Capability::GracefulRestart(GracefulRestart {
                flags: restart | GR_NOTIFICATION,
                restart_time: gr.restart_time.min(4095),
                families: self
                    .families
                    .iter()
                    .map(|f| GracefulRestartFamily {
                        family: *f,
                        flags: family_flags,
                    })
                    .collect(),
            }));
            if let Some(stale_time) = gr.long_lived_stale_time {
                caps.push(llgr::capability(&self.families, family_flags, stale_time));
            }
        }
        caps
    }

    /// The FSM configuration with our capabilities filled in.
    pub fn fsm_config(&self) -> FsmConfig {
        let mut fsm = self.fsm.clone();
        fsm.capabilities = self.capabilities();
        fsm
    }
}

/// What the driver must do, and what the Loc-RIB must learn.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// An FSM output (never [`fsm::Output::Received`]: the session consumes those).
    Fsm(fsm::Output),
    /// Accepted routes changed.
    Routes {
        /// New or changed accepted routes.
        updated: Vec<(IpNet, Arc<PathAttrs>)>,
        /// Accepted routes that went away.
        withdrawn: Vec<IpNet>,
    },
    /// Routes of the Adj-RIB-Out that newly could not be sent to the peer (each reported once,
    /// until it is sent or withdrawn), with why. The peer does not have them.
    Unsent {
        /// Prefix and reason.
        routes: Vec<(IpNet, String)>,
    },
}

/// Message and route counters for the CLI and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// UPDATEs received.
    pub updates_in: u64,
    /// UPDATEs sent.
    pub updates_out: u64,
    /// NOTIFICATIONs received.
    pub notifications_in: u64,
    /// NOTIFICATIONs sent.
    pub notifications_out: u64,
    /// UPDATEs handled as withdrawals under RFC 7606.
    pub treat_as_withdraw: u64,
    /// Route refresh requests answered.
    pub refreshes_answered: u64,
    /// Route refresh requests folded into a pending replay by the rate limit.
    pub refreshes_coalesced: u64,
}

/// One peer's session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    fsm: Fsm,
    rib_in: AdjRibIn,
    rib_out: RibOut,
    /// Prefixes of the Adj-RIB-Out the peer does not have because their route cannot be encoded
    /// for this session, with why; emptied when the session goes down.
    unsent: BTreeMap<IpNet, String>,
    /// Our address on each connection, and the link-local address of its interface.
    local_addrs: BTreeMap<ConnId, (IpAddr, Option<Ipv6Addr>)>,
    peer_gr: Option<GracefulRestart>,
    stale_deadline: Option<Instant>,
    /// Long-lived graceful restart state of the helper side (RFC 9494).
    llgr: llgr::Helper,
    /// Families whose End-of-RIB the peer has sent in the current session.
    end_of_rib_in: BTreeSet<Family>,
    /// When the Adj-RIB-Out of each family was last replayed for a ROUTE-REFRESH.
    last_refresh: BTreeMap<Family, Instant>,
    /// Families whose ROUTE-REFRESH waits for the rate limit.
    pending_refresh: BTreeSet<Family>,
    counters: Counters,
}

fn ipv4(n: &Ipv4Nlri) -> Option<IpNet> {
    Ipv4Net::new(n.prefix.addr(), n.prefix.len())
        .ok()
        .map(IpNet::V4)
}

fn ipv6(n: &Ipv6Nlri) -> Option<IpNet> {
    Ipv6Net::new(n.prefix.addr(), n.prefix.len())
        .ok()
        .map(IpNet::V6)
}

fn mp_prefixes(nlri: &MpNlri) -> Vec<IpNet> {
    match nlri {
        MpNlri::Ipv4(v) => v.iter().filter_map(ipv4).collect(),
        MpNlri::Ipv6(v) => v.iter().filter_map(ipv6).collect(),
        MpNlri::Raw(_) => Vec::new(),
    }
}

/// Rewrites an UPDATE per RFC 7606 treat-as-withdraw: every prefix it announces becomes a
/// withdrawal; withdrawals keep their meaning.
///
/// RFC 7606 §2: "the 'treat-as-withdraw' approach ... MUST be handled as though all of the routes
/// contained in an UPDATE message ... had been withdrawn just as if they had been listed in the
/// WITHDRAWN ROUTES field (or in the MP_UNREACH_NLRI attribute if appropriate)".
pub fn treat_as_withdraw(update: Update) -> Update {
    let mut out = Update {
        withdrawn: update.withdrawn,
        ..Update::default()
    };
    out.withdrawn.extend(update.nlri);
    for attr in update.attributes {
        match attr.value {
            AttrValue::MpReach(reach) => {
                out.attributes
                    .push(PathAttribute::new(AttrValue::MpUnreach(MpUnreach {
                        family: reach.family,
                        withdrawn: reach.nlri,
                    })))
            }
            AttrValue::MpUnreach(_) => out.attributes.push(attr),
            _ => {}
        }
    }
    out
}

impl Session {
    /// A session in Idle.
    pub fn new(config: SessionConfig) -> Self {
        Self {
            fsm: Fsm::new(config.fsm_config()),
            config,
            rib_in: AdjRibIn::default(),
            rib_out: RibOut::default(),
            unsent: BTreeMap::new(),
            local_addrs: BTreeMap::new(),
            peer_gr: None,
            stale_deadline: None,
            llgr: llgr::Helper::default(),
            end_of_rib_in: BTreeSet::new(),
            last_refresh: BTreeMap::new(),
            pending_refresh: BTreeSet::new(),
            counters: Counters::default(),
        }
    }

    /// The FSM (read-only).
    pub fn fsm(&self) -> &Fsm {
        &self.fsm
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Replaces settings that do not affect the peering (import policy, max prefixes, GR restart
    /// time); the caller resets the session for anything else.
    pub fn update_config(&mut self, config: SessionConfig) {
        self.fsm.update_config(config.fsm_config());
        self.config = config;
    }

    /// The Adj-RIB-In.
    pub fn rib_in(&self) -> &AdjRibIn {
        &self.rib_in
    }

    /// The Adj-RIB-Out: what the peer holds from us (empty unless Established).
    pub fn rib_out(&self) -> &RibOut {
        &self.rib_out
    }

    /// The routes the peer really holds from us: the Adj-RIB-Out without the routes that could
    /// not be encoded for it (see [`Session::unsent`]).
    pub fn advertised(&self) -> AdjRibOut {
        let mut routes = self.rib_out.routes();
        if !self.unsent.is_empty() {
            routes.retain(|p, _| !self.unsent.contains_key(p));
        }
        routes
    }

    /// Number of routes in [`Session::advertised`].
    pub fn advertised_len(&self) -> usize {
        self.rib_out.len().saturating_sub(self.unsent.len())
    }

    /// Routes of the Adj-RIB-Out the peer does not have because they cannot be encoded for this
    /// session (attributes too large for the negotiated message size, ...), with why.
    pub fn unsent(&self) -> &BTreeMap<IpNet, String> {
        &self.unsent
    }

    /// Counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The context to decode the peer's messages with.
    pub fn decode_context(&self) -> DecodeContext {
        self.fsm
            .negotiated()
            .filter(|_| matches!(self.fsm.state(), State::OpenConfirm | State::Established))
            .map(Negotiated::decode_context)
            .unwrap_or_default()
    }

    /// The context to encode our messages with.
    pub fn encode_context(&self) -> EncodeContext {
        self.fsm
            .negotiated()
            .filter(|_| matches!(self.fsm.state(), State::OpenConfirm | State::Established))
            .map(Negotiated::encode_context)
            .unwrap_or_default()
    }

    /// When the driver must call [`Session::on_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.fsm.poll_timeout().map(|(at, _)| at),
            self.stale_deadline,
            self.llgr.deadline(),
            self.refresh_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When the earliest coalesced ROUTE-REFRESH may be answered.
    fn refresh_deadline(&self) -> Option<Instant> {
        self.pending_refresh
            .iter()
            .filter_map(|f| self.last_refresh.get(f))
            .map(|at| *at + self.config.refresh_interval)
            .min()
    }

    /// An estimate of the memory this peer's tables hold, in bytes (Adj-RIB-In and
    /// Adj-RIB-Out, from their sizes).
    pub fn memory_estimate(&self) -> usize {
        self.rib_in.memory_estimate() + self.rib_out.len() * RIB_OUT_ROUTE_BYTES
    }

    /// Fires whatever timers are due at `now`.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        while let Some((at, timer)) = self.fsm.poll_timeout() {
            if at > now {
                break;
            }
            let outputs = self.fsm.handle(now, fsm::Input::TimerExpired(timer));
            self.process(now, outputs, &mut out);
        }
        let due: Vec<Family> = self
            .pending_refresh
            .iter()
            .copied()
            .filter(|f| {
                self.last_refresh
                    .get(f)
                    .is_none_or(|at| *at + self.config.refresh_interval <= now)
            })
            .collect();
        for family in due {
            self.pending_refresh.remove(&family);
            if self.fsm.state() == State::Established {
                self.replay_family(now, family, &mut out);
            }
        }
        if self.stale_deadline.is_some_and(|d| d <= now) {
            // RFC 4724 §4.2: "If the session does not get re-established within the 'Restart
            // Time' ... the Receiving Speaker MUST delete all the stale routes"; likewise when
            // End-of-RIB does not come in time.
            // RFC 9494 §4.2: while the peer is away, the families it asked LLGR for start
            // their long-lived stale period instead.
            self.stale_deadline = None;
            self.on_restart_time_expired(now, &mut out);
        }
        self.on_llgr_timeout(now, &mut out);
        out
    }

    /// Feeds an FSM input. A stop or reset whose Cease RFC 8538 §5 marks "Hard Reset" goes out
    /// as one when the N bit is negotiated.
    pub fn handle(&mut self, now: Instant, input: fsm::Input) -> Vec<Output> {
        let input = self.with_hard_reset(input);
        let mut out = Vec::new();
        let outputs = self.fsm.handle(now, input);
        self.process(now, outputs, &mut out);
        out
    }

    /// A TCP connection is up; `local` is our address on it (the next hop we announce) and
    /// `link_local` the IPv6 link-local address of its interface, when the peer is directly
    /// connected (sent as the second IPv6 next hop, RFC 2545 §3).
    pub fn connected(
        &mut self,
        now: Instant,
        conn: ConnId,
        direction: Direction,
        local: IpAddr,
        link_local: Option<Ipv6Addr>,
    ) -> Vec<Output> {
        self.local_addrs.insert(conn, (local, link_local));
        self.handle(now, fsm::Input::Connected(conn, direction))
    }

    /// A message arrived (decoded with [`Session::decode_context`]).
    pub fn received(&mut self, now: Instant, conn: ConnId, decoded: Decoded) -> Vec<Output> {
        let message = match (decoded.message, decoded.rfc7606) {
            (Message::Update(update), Rfc7606::TreatAsWithdraw { errors }) => {
                self.counters.treat_as_withdraw += 1;
                tracing::warn!(?errors, "UPDATE treated as withdraw (RFC 7606)");
                Message::Update(treat_as_withdraw(update))
            }
            (message, Rfc7606::AttributeDiscard { errors }) => {
                tracing::warn!(?errors, "attributes discarded (RFC 7606)");
                message
            }
            (message, _) => message,
        };
        if matches!(message, Message::Notification(_)) {
            self.counters.notifications_in += 1;
        }
        self.handle(now, fsm::Input::Received(conn, message))
    }

    /// Replaces the routes we originate to this peer (attributes built for it by
    /// [`crate::advertise::desired()`]; the next hop is ours on the session). Sends the
    /// differences if Established.
    pub fn set_local_routes(&mut self, routes: BTreeMap<IpNet, RouteAttributes>) -> Vec<Output> {
        let changes = self.rib_out.set_local(routes);
        let mut out = Vec::new();
        self.send_changes(changes, &mut out);
        out
    }

    /// Route-server mode: changes to the routes learned from other peers that this peer should
    /// get (attributes and next hop unchanged). Sends the differences if Established.
    pub fn update_learned_routes(&mut self, changes: Vec<LearnedChange>) -> Vec<Output> {
        let changes = self.rib_out.update_learned(changes);
        let mut out = Vec::new();
        self.send_changes(changes, &mut out);
        out
    }

    /// Re-applies the import policy to every stored route (after a policy change, no session
    /// reset). With soft reconfiguration inbound the Adj-RIB-In holds everything the peer sent;
    /// without it, only accepted routes are here, so the peer is also asked for its routes
    /// again (ROUTE-REFRESH) when it supports that. Returns the changes and requests.
    pub fn reevaluate_import(&mut self) -> Vec<Output> {
        let mut out = self.reevaluate_stored();
        let ask = !self.config.soft_reconfiguration_inbound
            && self.fsm.state() == State::Established
            && self.fsm.negotiated().is_some_and(|n| n.route_refresh);
        if ask {
            for family in self.negotiated_families() {
                self.send(
                    Message::RouteRefresh(RouteRefresh::new(family, RouteRefreshSubtype::Normal)),
                    &mut out,
                );
            }
        }
        out
    }

    fn reevaluate_stored(&mut self) -> Vec<Output> {
        let mut updated = Vec::new();
        let mut withdrawn = Vec::new();
        let prefixes: Vec<IpNet> = self.rib_in.iter().map(|(p, _)| p).collect();
        for prefix in prefixes {
            let Some(entry) = self.rib_in.get(&prefix).cloned() else {
                continue;
            };
            let accepted = self.config.import.accepts(&prefix, &entry.attrs.attributes);
            if accepted == entry.accepted {
                continue;
            }
            let attrs = entry.attrs.clone();
            if accepted || self.config.soft_reconfiguration_inbound {
                self.rib_in.insert(prefix, RibInEntry { accepted, ..entry });
            } else {
                self.rib_in.remove(&prefix);
            }
            if accepted {
                updated.push((prefix, attrs));
            } else {
                withdrawn.push(prefix);
            }
        }
        if updated.is_empty() && withdrawn.is_empty() {
            return Vec::new();
        }
        vec![Output::Routes { updated, withdrawn }]
    }

    fn negotiated_families(&self) -> BTreeSet<Family> {
        self.fsm
            .negotiated()
            .map(|n| n.families.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Our next hops on the current connection.
    fn next_hops(&self) -> NextHops {
        match self
            .fsm
            .connection()
            .and_then(|c| self.local_addrs.get(&c))
            .copied()
        {
            Some((local, link_local)) => {
                let mut hops = NextHops::from_local(local, link_local, None);
                if hops.v4.is_none()
                    && self
                        .fsm
                        .negotiated()
                        .is_some_and(extended_next_hop::ipv4_over_ipv6)
                {
                    hops.v4.clone_from(&hops.v6);
                }
                hops
            }
            None => NextHops::default(),
        }
    }

    fn send(&mut self, message: Message, out: &mut Vec<Output>) {
        if let Some(conn) = self.fsm.connection() {
            match &message {
                Message::Update(_) => self.counters.updates_out += 1,
                Message::Notification(_) => self.counters.notifications_out += 1,
                _ => {}
            }
            out.push(Output::Fsm(fsm::Output::Send(conn, message)));
        }
    }

    /// Sends per-prefix changes of the Adj-RIB-Out (withdrawals and announcements).
    fn send_changes(&mut self, changes: Vec<Change>, out: &mut Vec<Output>) {
        if changes.is_empty() {
            return;
        }
        let mut diff = packing::Diff::default();
        let mut announced: Vec<(IpNet, OutRoute)> = Vec::new();
        for (prefix, route) in changes {
            match route {
                Some(route) => announced.push((prefix, route)),
                None => diff.withdraw.push(prefix),
            }
        }
        diff.announce = announced.iter().map(|(p, r)| (*p, r)).collect();
        self.send_diff(&diff, true, out);
    }

    /// Sends a whole table (initial advertisement, route refresh replay).
    fn send_table(&mut self, table: &AdjRibOut, out: &mut Vec<Output>) {
        let diff = packing::Diff {
            withdraw: Vec::new(),
            announce: table.iter().map(|(p, r)| (*p, r)).collect(),
        };
        self.send_diff(&diff, false, out);
    }

    /// Sends a diff. A route that cannot be encoded skips only itself: the rest goes out, the
    /// route is recorded in [`Session::unsent`] and reported once. When `replaces` (a change,
    /// not a whole table), the peer may still hold the path the skipped route replaces, so
    /// that prefix is withdrawn: the peer then holds nothing rather than a stale path.
    fn send_diff(&mut self, diff: &packing::Diff<'_>, replaces: bool, out: &mut Vec<Output>) {
        let enh = self
            .fsm
            .negotiated()
            .is_some_and(extended_next_hop::ipv4_over_ipv6);
        let (sendable, refused) = extended_next_hop::refuse_unnegotiated(diff, enh);
        let packing::Packed {
            updates,
            mut skipped,
        } = packing::pack(sendable.as_ref().unwrap_or(diff), &self.encode_context());
        skipped.extend(refused);
        for update in updates {
            self.send(Message::Update(update), out);
        }
        if self.unsent.is_empty() && skipped.is_empty() {
            return;
        }
        for prefix in &diff.withdraw {
            self.unsent.remove(prefix);
        }
        let skipped_prefixes: BTreeSet<IpNet> = skipped.iter().map(|(p, _)| *p).collect();
        for (prefix, _) in &diff.announce {
            if !skipped_prefixes.contains(prefix) {
                self.unsent.remove(prefix);
            }
        }
        let mut stale = Vec::new();
        let mut newly = Vec::new();
        for (prefix, error) in skipped {
            let reason = error.to_string();
            if self.unsent.insert(prefix, reason.clone()).is_none() {
                if replaces {
                    stale.push(prefix);
                }
                newly.push((prefix, reason));
            }
        }
        if !stale.is_empty() {
            let withdraw = packing::Diff {
                withdraw: stale,
                announce: Vec::new(),
            };
            for update in packing::pack(&withdraw, &self.encode_context()).updates {
                self.send(Message::Update(update), out);
            }
        }
        if !newly.is_empty() {
            out.push(Output::Unsent { routes: newly });
        }
    }

    /// Runs FSM outputs through the session layer.
    fn process(&mut self, now: Instant, outputs: Vec<fsm::Output>, out: &mut Vec<Output>) {
        let mut queue: std::collections::VecDeque<fsm::Output> = outputs.into();
        while let Some(output) = queue.pop_front() {
            match output {
                fsm::Output::Received(Message::Update(update)) => {
                    if let Some(reset) = self.on_update(now, update, out) {
                        let reset = self.with_hard_reset(reset);
                        queue.extend(self.fsm.handle(now, reset));
                    }
                }
                fsm::Output::Received(Message::RouteRefresh(rr)) => {
                    self.on_route_refresh(now, rr, out)
                }
                fsm::Output::Received(_) => {}
                fsm::Output::Established { conn, negotiated } => {
                    out.push(Output::Fsm(fsm::Output::Established {
                        conn,
                        negotiated: negotiated.clone(),
                    }));
                    self.on_established(now, &negotiated, out);
                }
                fsm::Output::Down {
                    reason,
                    established_for,
                } => {
                    self.on_down(now, &reason, out);
                    out.push(Output::Fsm(fsm::Output::Down {
                        reason,
                        established_for,
                    }));
                }
                fsm::Output::Close(conn) => {
                    self.local_addrs.remove(&conn);
                    out.push(Output::Fsm(fsm::Output::Close(conn)));
                }
                fsm::Output::Send(conn, message) => {
                    if matches!(message, Message::Notification(_)) {
                        self.counters.notifications_out += 1;
                    }
                    out.push(Output::Fsm(fsm::Output::Send(conn, message)));
                }
                other => out.push(Output::Fsm(other)),
            }
        }
    }

    fn on_established(&mut self, now: Instant, negotiated: &Negotiated, out: &mut Vec<Output>) {
        // Helper side: the restarted peer's new OPEN decides what happens to its stale routes.
        // RFC 4724 §4.2: "If the Graceful Restart Capability ... is not received in the re-
        // established session, or ... the 'Forwarding State' bit ... is not set, the Receiving
        // Speaker MUST immediately remove all the stale routes from the peer that it is
        // retaining for that address family."
        let peer_gr = negotiated.graceful_restart.clone();
        self.end_of_rib_in.clear();
        let mut withdrawn = Vec::new();
        for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
            // RFC 9494 §4.2: routes in their long-lived stale period follow the F bit of the
            // new session's LLGR capability instead.
            let keeps = if self.llgr.in_long_lived_period(family) {
                llgr::forwarding_preserved(negotiated, family)
            } else {
                peer_gr.as_ref().is_some_and(|gr| {
                    gr.families
                        .iter()
                        .any(|f| f.family == family && f.forwarding_preserved())
                })
            };
            if !keeps {
                withdrawn.extend(self.rib_in.sweep_stale(Some(family)));
            }
        }
        if !withdrawn.is_empty() {
            out.push(Output::Routes {
                updated: Vec::new(),
                withdrawn,
            });
        }
        self.stale_deadline = (self.rib_in.stale() > 0).then(|| now + self.config.stale_path_time);
        self.peer_gr = peer_gr;
        self.llgr.established(negotiated);

        // Initial advertisement, then End-of-RIB for every family (RFC 4724 §2: "the End-of-RIB
        // marker ... MUST be sent ... after it completes the initial update").
        self.unsent.clear();
        let table = self
            .rib_out
            .open(self.next_hops(), self.negotiated_families());
        self.send_table(&table, out);
        for family in self.negotiated_families() {
            self.send(Message::Update(Update::end_of_rib(family)), out);
        }
    }

    fn on_down(&mut self, now: Instant, reason: &DownReason, out: &mut Vec<Output>) {
        self.rib_out.close();
        self.unsent.clear();
        self.end_of_rib_in.clear();
        self.pending_refresh.clear();
        self.last_refresh.clear();
        let peer_gr = self.peer_gr.take();
        // RFC 4724 §4.2: "When the Receiving Speaker detects termination of the TCP session for a
        // BGP session with a peer that has advertised the Graceful Restart Capability, it MUST
        // retain the routes received from the peer for all the address families that were
        // previously received in the Graceful Restart Capability and MUST mark them as stale".
        // RFC 8538 §4 (paraphrased): with the N bit exchanged, sending or receiving any
        // NOTIFICATION other than Hard Reset is handled like the TCP failure above; without
        // it, a NOTIFICATION ends the session for good.
        let notification_gr = self.config.graceful_restart.is_some()
            && peer_gr.as_ref().is_some_and(GracefulRestart::notification);
        let graceful = match reason.notification() {
            None => true,
            Some(n) => notification_gr && !is_hard_reset(n),
        };
        self.retain_on_down(now, graceful, peer_gr.as_ref(), out);
    }

    /// Applies an UPDATE to the Adj-RIB-In; returns an AutomaticStop if max-prefix is exceeded.
    fn on_update(
        &mut self,
        _now: Instant,
        mut update: Update,
        out: &mut Vec<Output>,
    ) -> Option<fsm::Input> {
        self.counters.updates_in += 1;
        let four_octet = self.fsm.negotiated().is_some_and(|n| n.four_octet_as);
        if !four_octet {
            update.merge_as4();
        }
        if let Some(family) = update.end_of_rib_family() {
            self.end_of_rib_in.insert(family);
            // RFC 4724 §4.2: "Once the End-of-RIB marker for an address family is received from
            // the peer, it MUST immediately remove any routes from the peer that are still marked
            // as stale for that address family."
            let withdrawn = self.rib_in.sweep_stale(Some(family));
            if self.rib_in.stale() == 0 {
                self.stale_deadline = None;
            }
            if !withdrawn.is_empty() {
                out.push(Output::Routes {
                    updated: Vec::new(),
                    withdrawn,
                });
            }
            return None;
        }
        let families = self.negotiated_families();
        let mut withdrawn = Vec::new();
        let mut gone: Vec<IpNet> = update.withdrawn.iter().filter_map(ipv4).collect();
        if let Some(unreach) = update.mp_unreach() {
            gone.extend(mp_prefixes(&unreach.withdrawn));
        }
        for prefix in gone {
            if self.rib_in.remove(&prefix).is_some_and(|e| e.accepted) {
                withdrawn.push(prefix);
            }
        }

        let base: Vec<PathAttribute> = update
            .attributes
            .iter()
            .filter(|a| {
                !matches!(
                    a.value,
                    AttrValue::MpReach(_) | AttrValue::MpUnreach(_) | AttrValue::NextHop(_)
                )
            })
            .cloned()
            .collect();
        // RFC 4271 §9.1.2: "If the AS_PATH attribute of a BGP route contains an AS loop, the BGP
        // route should be excluded from the Phase 2 decision function" — such as our own routes
        // reflected back by an eBGP peer. Kept in the Adj-RIB-In, never accepted.
        let local_asn = self.config.fsm.local_asn;
        let as_loop = base
            .iter()
            .any(|a| matches!(&a.value, AttrValue::AsPath(path) if path.contains(local_asn)));
        let mut announced: Vec<(IpNet, NextHop)> = Vec::new();
        if let Some(nh) = update.next_hop() {
            announced.extend(
                update
                    .nlri
                    .iter()
                    .filter_map(ipv4)
                    .map(|p| (p, NextHop::Ipv4(nh))),
            );
        }
        if let Some(reach) = update.mp_reach() {
            announced.extend(
                mp_prefixes(&reach.nlri)
                    .into_iter()
                    .map(|p| (p, reach.next_hop.clone())),
            );
        }
        let mut updated = Vec::new();
        let mut shared: Option<Arc<PathAttrs>> = None;
        for (prefix, next_hop) in announced {
            if !families.contains(&family_of(&prefix)) {
                continue;
            }
            let attrs = match &shared {
                Some(a) if a.next_hop == next_hop => a.clone(),
                _ => {
                    let a = Arc::new(PathAttrs {
                        attributes: base.clone(),
                        next_hop,
                    });
                    shared = Some(a.clone());
                    a
                }
            };
            let accepted = !as_loop && self.config.import.accepts(&prefix, &attrs.attributes);
            // A rejected route is kept only for soft reconfiguration inbound: a peer leaking
            // a full table at a speaker that imports nothing must not cost its memory.
            let old = if accepted || self.config.soft_reconfiguration_inbound {
                self.rib_in.insert(
                    prefix,
                    RibInEntry {
                        attrs: attrs.clone(),
                        accepted,
                        stale: false,
                    },
                )
            } else {
                self.rib_in.remove(&prefix)
            };
            if accepted {
                updated.push((prefix, attrs));
            } else if old.is_some_and(|o| o.accepted) {
                withdrawn.push(prefix);
            }
        }
        if !updated.is_empty() || !withdrawn.is_empty() {
            out.push(Output::Routes { updated, withdrawn });
        }
        let max = self.config.max_prefixes?;
        // RFC 4486 §4: "If a BGP speaker decides to terminate its peering with a neighbor because
        // the number of address prefixes received from the neighbor exceeds a locally configured
        // upper bound ..., then the speaker MUST send to the neighbor a NOTIFICATION message with
        // the Error Code Cease and the Error Subcode 'Maximum Number of Prefixes Reached'." The
        // bound applies per family to what the Adj-RIB-In stores, which is what costs memory.
        let over = families
            .iter()
            .copied()
            .find(|f| self.rib_in.len_family(*f) > max as usize);
        match over {
            Some(family) => {
                // RFC 4486 §4: "The message MAY optionally include the Address Family
                // Identifier (2 octets), Subsequent Address Family Identifier (1 octet), and the
                // Upper bound on the number of prefixes received (4 octets)".
                let mut notification = Notification::cease(CeaseSubcode::MaxPrefixes);
                notification
                    .data
                    .extend_from_slice(&u16::from(family.afi).to_be_bytes());
                notification.data.push(family.safi.into());
                notification.data.extend_from_slice(&max.to_be_bytes());
                Some(fsm::Input::Reset {
                    notification,
                    reason: format!(
                        "peer sent more than {max} {} prefixes",
                        crate::bgp::io::instance::family_name(family)
                    ),
                })
            }
            None => None,
        }
    }

    fn on_route_refresh(&mut self, now: Instant, rr: RouteRefresh, out: &mut Vec<Output>) {
        let family = rr.family();
        if !self.negotiated_families().contains(&family) {
            return;
        }
        match rr.subtype {
            RouteRefreshSubtype::BeginningOfRefresh => {
                // RFC 7313 §4: "the receiving speaker MUST ... mark all the routes ... as stale".
                self.rib_in.mark_stale(family);
            }
            RouteRefreshSubtype::EndOfRefresh => {
                // "Upon receipt of an EoRR message, it MUST immediately remove all the routes
                // ... that are still marked as stale for that address family."
                let withdrawn = self.rib_in.sweep_stale(Some(family));
                if !withdrawn.is_empty() {
                    out.push(Output::Routes {
                        updated: Vec::new(),
                        withdrawn,
                    });
                }
            }
            _ => {
                // A peer asking again and again must not make us queue a table per request:
                // at most one replay per family per `refresh_interval`; requests in between
                // are coalesced into one replay when it ends (the peer gets the same table).
                let limited = self
                    .last_refresh
                    .get(&family)
                    .is_some_and(|at| now < *at + self.config.refresh_interval);
                if limited {
                    self.counters.refreshes_coalesced += 1;
                    self.pending_refresh.insert(family);
                    return;
                }
                self.replay_family(now, family, out);
            }
        }
    }

    /// Answers a ROUTE-REFRESH for `family` with the whole Adj-RIB-Out of that family.
    fn replay_family(&mut self, now: Instant, family: Family, out: &mut Vec<Output>) {
        self.last_refresh.insert(family, now);
        // RFC 2918 §4: the speaker "SHOULD re-advertise to that peer the Adj-RIB-Out";
        // RFC 7313 §4 brackets the replay with BoRR and EoRR when both support it.
        self.counters.refreshes_answered += 1;
        let enhanced = self
            .fsm
            .negotiated()
            .is_some_and(|n| n.enhanced_route_refresh);
        if enhanced {
            self.send(
                Message::RouteRefresh(RouteRefresh::new(
                    family,
                    RouteRefreshSubtype::BeginningOfRefresh,
                )),
                out,
            );
        }
        let mut table = self.rib_out.routes();
        table.retain(|p, _| family_of(p) == family);
        self.send_table(&table, out);
        if enhanced {
            self.send(
                Message::RouteRefresh(RouteRefresh::new(family, RouteRefreshSubtype::EndOfRefresh)),
                out,
            );
        }
    }

    /// Whether both sides advertised the RFC 8538 N bit on the current session.
    pub fn notification_gr(&self) -> bool {
        self.config.graceful_restart.is_some()
            && matches!(self.fsm.state(), State::OpenConfirm | State::Established)
            && self
                .fsm
                .negotiated()
                .and_then(|n| n.graceful_restart.as_ref())
                .is_some_and(GracefulRestart::notification)
    }

    /// RFC 8538 §5: sends the stop/reset's Cease as a Hard Reset where its table says so. No
    /// Hard Reset goes to a peer that did not send the N bit (RFC 8538 §3: SHOULD NOT), so
    /// nothing changes without it.
    fn with_hard_reset(&self, input: fsm::Input) -> fsm::Input {
        if !self.notification_gr() {
            return input;
        }
        match input {
            fsm::Input::Stop { notification } if wants_hard_reset(&notification) => {
                fsm::Input::Stop {
                    notification: hard_reset(&notification),
                }
            }
            fsm::Input::Reset {
                notification,
                reason,
            } if wants_hard_reset(&notification) => fsm::Input::Reset {
                notification: hard_reset(&notification),
                reason,
            },
            other => other,
        }
    }

    /// The peer's graceful restart capability of the current (or last) session.
    pub fn peer_graceful_restart(&self) -> Option<&GracefulRestart> {
        self.peer_gr.as_ref()
    }

    /// Whether the session is Established and the peer has sent End-of-RIB for every negotiated
    /// family: its initial update is complete (RFC 4724 §2).
    pub fn initial_update_received(&self) -> bool {
        self.fsm.state() == fsm::State::Established
            && self
                .negotiated_families()
                .iter()
                .all(|f| self.end_of_rib_in.contains(f))
    }

    /// When stale routes will be swept if no End-of-RIB arrives.
    pub fn stale_deadline(&self) -> Option<Instant> {
        self.stale_deadline
    }
}

#[cfg(test)]
mod tests;

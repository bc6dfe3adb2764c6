//! Long-lived graceful restart (RFC 9494) for one session: the capability we advertise, and the
//! helper side — when a peer that negotiated LLGR goes away, its routes of the families it
//! asked for are kept through the graceful restart time (RFC 4724, as before), then for its
//! long-lived stale time tagged LLGR_STALE (routes tagged NO_LLGR are dropped instead). Best-path
//! selection ranks such routes last and the route server passes them only to LLGR peers
//! ([`crate::import_policy`], [`crate::bgp::loc_rib`]).
//!
//! Pure, like the rest of the session: the time comes in as an argument.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp_proto::capability::{GracefulRestart, LLGR_FORWARDING_STATE, LlgrFamily};
use bgp_proto::iana::Family;
use bgp_proto::{Capability, Negotiated};
use ipnet::IpNet;

use super::{Output, Session};
use crate::bgp::fsm::State;
use crate::bgp::rib::PathAttrs;

/// The families a unicast session can retain routes for.
const FAMILIES: [Family; 2] = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];

/// Our LLGR capability: every family we negotiate, with the F bit as in our GR capability.
pub(super) fn capability(families: &BTreeSet<Family>, flags: u8, stale_time: u32) -> Capability {
    Capability::LongLivedGracefulRestart(
        families
            .iter()
            .map(|family| LlgrFamily {
                family: *family,
                flags: flags & LLGR_FORWARDING_STATE,
                stale_time,
            })
            .collect(),
    )
}

/// Whether the new session's LLGR capability has the F bit for `family`.
pub(super) fn forwarding_preserved(negotiated: &Negotiated, family: Family) -> bool {
    negotiated
        .long_lived_graceful_restart
        .as_ref()
        .is_some_and(|v| {
            v.iter()
                .any(|f| f.family == family && f.flags & LLGR_FORWARDING_STATE != 0)
        })
}

/// Helper-side LLGR state of one session.
#[derive(Debug, Default)]
pub(super) struct Helper {
    /// The peer's LLGR families of the current (or last) session, when both sides sent the
    /// capability.
    peer: Option<Vec<LlgrFamily>>,
    /// While the peer is away in its graceful restart time: the long-lived stale time of each
    /// family that moves on to LLGR when that time runs out.
    pending: BTreeMap<Family, Duration>,
    /// Families in their long-lived stale period, with when it ends.
    deadlines: BTreeMap<Family, Instant>,
}

impl Helper {
    /// When the earliest long-lived stale period ends.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    /// Whether `family`'s stale routes are in their long-lived stale period.
    pub(super) fn in_long_lived_period(&self, family: Family) -> bool {
        self.deadlines.contains_key(&family)
    }

    /// The peer is back: its new capability replaces the old one, and the stale routes left are
    /// swept by End-of-RIB or the stale-path time like any other.
    pub(super) fn established(&mut self, negotiated: &Negotiated) {
        self.peer = negotiated.long_lived_graceful_restart.clone();
        self.pending.clear();
        self.deadlines.clear();
    }
}

impl Session {
    /// The long-lived stale time the peer asked for `family`, if LLGR applies to it: both sides
    /// sent the capability (we only when configured) and its stale time is not zero.
    fn peer_llgr_time(peer: Option<&[LlgrFamily]>, family: Family) -> Option<Duration> {
        peer?
            .iter()
            .find(|f| f.family == family && f.stale_time > 0)
            .map(|f| Duration::from_secs(u64::from(f.stale_time)))
    }

    /// The session went down; `graceful` when graceful restart applies to how it ended (a TCP
    /// failure, or with the N bit any NOTIFICATION but Hard Reset).
    pub(super) fn retain_on_down(
        &mut self,
        now: Instant,
        graceful: bool,
        peer_gr: Option<&GracefulRestart>,
        out: &mut Vec<Output>,
    ) {
        let peer_llgr = self.llgr.peer.take().filter(|_| graceful);
        let gr = peer_gr.filter(|gr| graceful && gr.restart_time > 0);
        self.llgr.pending.clear();
        self.llgr.deadlines.clear();
        let mut updated = Vec::new();
        let mut withdrawn = Vec::new();
        for family in FAMILIES {
            let long_lived = Self::peer_llgr_time(peer_llgr.as_deref(), family);
            let restart = gr.is_some_and(|gr| gr.families.iter().any(|f| f.family == family));
            if restart {
                // RFC 4724 §4.2: "it MUST retain the routes received from the peer for all the
                // address families that were previously received in the Graceful Restart
                // Capability and MUST mark them as stale".
                self.rib_in.mark_stale(family);
                if let Some(time) = long_lived {
                    self.llgr.pending.insert(family, time);
                }
            } else if let Some(time) = long_lived {
                // RFC 9494 §4.2 (paraphrased): without GR for the family, or with a restart time
                // of zero, the long-lived stale period starts at once.
                self.rib_in.mark_stale(family);
                self.enter_long_lived(now, family, time, &mut updated, &mut withdrawn);
            } else {
                withdrawn.extend(self.rib_in.sweep_family(family));
            }
        }
        self.stale_deadline = gr.map(|gr| now + Duration::from_secs(u64::from(gr.restart_time)));
        push_routes(out, updated, withdrawn);
    }

    /// The graceful restart time (or, with the peer back, the stale-path time) ran out.
    pub(super) fn on_restart_time_expired(&mut self, now: Instant, out: &mut Vec<Output>) {
        let mut updated = Vec::new();
        let mut withdrawn = Vec::new();
        let pending = std::mem::take(&mut self.llgr.pending);
        if self.fsm.state() == State::Established {
            // The peer is back but sent no End-of-RIB in time: RFC 4724 §4.2, every stale
            // route goes, long-lived ones too.
            self.llgr.deadlines.clear();
            withdrawn = self.rib_in.sweep_stale(None);
        } else {
            for family in FAMILIES {
                match pending.get(&family) {
                    // RFC 9494 §4.2 (paraphrased): when the restart time expires, the routes of
                    // the families with LLGR are kept for the long-lived stale time.
                    Some(time) => {
                        self.enter_long_lived(now, family, *time, &mut updated, &mut withdrawn)
                    }
                    // RFC 4724 §4.2: "If the session does not get re-established within the
                    // 'Restart Time' ... the Receiving Speaker MUST delete all the stale routes".
                    None if !self.llgr.in_long_lived_period(family) => {
                        withdrawn.extend(self.rib_in.sweep_stale(Some(family)))
                    }
                    None => {}
                }
            }
        }
        push_routes(out, updated, withdrawn);
    }

    /// Ends the long-lived stale periods due at `now`: their stale routes go.
    pub(super) fn on_llgr_timeout(&mut self, now: Instant, out: &mut Vec<Output>) {
        let due: Vec<Family> = self
            .llgr
            .deadlines
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(f, _)| *f)
            .collect();
        let mut withdrawn = Vec::new();
        for family in due {
            self.llgr.deadlines.remove(&family);
            // RFC 9494 §4.2 (paraphrased): when the long-lived stale time expires, the stale
            // routes of that family are deleted.
            withdrawn.extend(self.rib_in.sweep_stale(Some(family)));
        }
        push_routes(out, Vec::new(), withdrawn);
    }

    /// Starts `family`'s long-lived stale period.
    fn enter_long_lived(
        &mut self,
        now: Instant,
        family: Family,
        time: Duration,
        updated: &mut Vec<(IpNet, Arc<PathAttrs>)>,
        withdrawn: &mut Vec<IpNet>,
    ) {
        // RFC 9494 §4.2 (paraphrased): routes carrying NO_LLGR are deleted; the others are
        // kept, with the LLGR_STALE community attached, for the long-lived stale time.
        let marked = self.rib_in.mark_llgr_stale(family);
        tracing::info!(
            ?family,
            kept = marked.updated.len(),
            dropped_no_llgr = marked.withdrawn.len(),
            seconds = time.as_secs(),
            "long-lived stale period started (RFC 9494)"
        );
        updated.extend(marked.updated);
        withdrawn.extend(marked.withdrawn);
        self.llgr.deadlines.insert(family, now + time);
    }

    /// When the long-lived stale period of `family` ends, if it is in one.
    pub fn llgr_deadline(&self, family: Family) -> Option<Instant> {
        self.llgr.deadlines.get(&family).copied()
    }

    /// Whether the peer sent the LLGR capability on the current (or last) session and we did
    /// too: routes tagged LLGR_STALE may be sent to it (RFC 9494 §4.5).
    pub fn peer_supports_llgr(&self) -> bool {
        self.config
            .graceful_restart
            .is_some_and(|g| g.long_lived_stale_time.is_some())
            && self
                .fsm
                .negotiated()
                .is_some_and(|n| n.long_lived_graceful_restart.is_some())
    }
}

fn push_routes(
    out: &mut Vec<Output>,
    updated: Vec<(IpNet, Arc<PathAttrs>)>,
    withdrawn: Vec<IpNet>,
) {
    if !updated.is_empty() || !withdrawn.is_empty() {
        out.push(Output::Routes { updated, withdrawn });
    }
}

#[cfg(test)]
mod tests;

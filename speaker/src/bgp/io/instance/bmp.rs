//! The owner's side of BMP: the session events the collectors hear about (Peer Up when a
//! session is established, Peer Down when it goes, pre-policy Route Monitoring for every
//! UPDATE received, post-policy for every change of accepted routes) and the requests of the
//! collector tasks (the dump a newly connected collector gets, statistics). The hub and the
//! messages are [`crate::bmp`]'s; this module only reads the sessions' state for them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bgp_proto::Update;
use ipnet::IpNet;

use super::{Command, Owner};
use crate::bgp::fsm::{self, DownReason};
use crate::bgp::rib::PathAttrs;
use crate::bgp::session::{Output, Session};
use crate::bmp::collector::Request;
use crate::bmp::feed;
use crate::bmp::hub::{Hub, View};
use crate::config::BgpConfig;
use crate::config::bmp::CollectorConfig;

/// The hub the owner feeds.
pub(super) type BmpHub = Hub<Command>;

impl From<Request> for Command {
    fn from(request: Request) -> Self {
        Command::Bmp(request)
    }
}

/// The collectors `bgp.bmp` lists.
pub(super) fn collectors(bgp: &BgpConfig) -> Vec<CollectorConfig> {
    bgp.bmp
        .as_ref()
        .map(|b| b.value.collectors.iter().map(|c| c.value.clone()).collect())
        .unwrap_or_default()
}

/// The session is established on a connection between `addrs` (ours, the peer's). Recorded
/// even without collectors, so one added by a reload learns about the peers already up.
pub(super) fn peer_up(
    hub: &mut BmpHub,
    peer: IpAddr,
    session: &Session,
    addrs: Option<(SocketAddr, SocketAddr)>,
) {
    let (Some(received), Some((local, remote))) = (session.fsm().remote_open(), addrs) else {
        return;
    };
    hub.peer_up(
        peer,
        session.fsm().local_open(),
        received,
        local,
        remote.port(),
    );
}

/// The session left Established.
pub(super) fn peer_down(hub: &mut BmpHub, peer: IpAddr, reason: &DownReason) {
    hub.peer_down(peer, &feed::down_reason(reason));
}

/// Whether these outputs take the session down: its accepted routes are then withdrawn, which
/// collectors learn from the Peer Down itself (RFC 7854 §4.9), not as post-policy withdrawals.
pub(super) fn goes_down(outputs: &[Output]) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, Output::Fsm(fsm::Output::Down { .. })))
}

/// An UPDATE as the peer sent it (pre-policy Route Monitoring).
pub(super) fn pre_policy(hub: &mut BmpHub, peer: IpAddr, update: &Update) {
    if !hub.is_active() {
        return;
    }
    if let Some(header) = hub.header(peer, false) {
        for bytes in feed::route_monitoring(&header, std::slice::from_ref(update)) {
            hub.broadcast(View::PrePolicy, bytes);
        }
    }
}

/// Accepted routes changed (post-policy Route Monitoring).
pub(super) fn post_policy(
    hub: &mut BmpHub,
    peer: IpAddr,
    updated: &[(IpNet, Arc<PathAttrs>)],
    withdrawn: &[IpNet],
) {
    if !hub.is_active() {
        return;
    }
    if let Some(header) = hub.header(peer, true) {
        let routes: Vec<(IpNet, &Arc<PathAttrs>)> = updated.iter().map(|(p, a)| (*p, a)).collect();
        for bytes in feed::route_monitoring(&header, &feed::updates(&routes, withdrawn)) {
            hub.broadcast(View::PostPolicy, bytes);
        }
    }
}

impl Owner {
    /// A collector task's request.
    pub(super) fn on_bmp(&mut self, request: Request) {
        match request {
            Request::Connected { collector, sink } => {
                if !self.bmp.attach(collector, sink) {
                    return;
                }
                // RFC 7854 §5: after the Peer Ups, each peer's Adj-RIB-In, ended by End-of-RIB.
                for (address, slot) in &self.peers {
                    let families = slot
                        .session
                        .fsm()
                        .negotiated()
                        .map(|n| n.families.clone())
                        .unwrap_or_default();
                    for (view, post) in [(View::PrePolicy, false), (View::PostPolicy, true)] {
                        if !self.bmp.wants(collector, view) {
                            continue;
                        }
                        let Some(header) = self.bmp.header(*address, post) else {
                            continue;
                        };
                        for bytes in feed::dump(&header, slot.session.rib_in(), &families) {
                            if !self.bmp.send_to(collector, view, bytes) {
                                return;
                            }
                        }
                    }
                }
            }
            Request::Statistics { collector } => {
                for (address, slot) in &self.peers {
                    let Some(header) = self.bmp.header(*address, false) else {
                        continue;
                    };
                    let bytes = feed::statistics(
                        &header,
                        slot.session.rib_in(),
                        slot.session.counters().treat_as_withdraw,
                    );
                    if !self.bmp.send_to(collector, View::All, bytes) {
                        return;
                    }
                }
            }
        }
    }
}

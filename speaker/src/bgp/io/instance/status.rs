//! What the instance reports about its peers: [`PeerStatus`] snapshots for the CLI, metrics and
//! `BGPNodeStatus`, with negotiated capabilities spelled out.

use std::net::IpAddr;

use bgp_proto::iana::Family as ProtoFamily;
use serde::{Deserialize, Serialize};

use super::{Owner, now_std};
use crate::bgp::fsm::State;
use crate::config::{PeerAsn, PeerKind};

/// A snapshot of one peer for the CLI and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Configured name (or the address).
    pub name: String,
    /// The peer's address.
    pub address: IpAddr,
    /// FSM state.
    pub state: String,
    /// Seconds since Established.
    pub uptime_seconds: Option<u64>,
    /// Our AS.
    pub local_asn: u32,
    /// The peer's AS as configured (`internal`/`external` or a number).
    pub configured_asn: String,
    /// The peer's AS from its OPEN.
    pub remote_asn: Option<u32>,
    /// The peer's BGP identifier.
    pub remote_id: Option<String>,
    /// Negotiated hold time, seconds.
    pub hold_time: Option<u64>,
    /// Keepalive interval in use, seconds.
    pub keepalive_time: Option<u64>,
    /// Negotiated capabilities.
    pub capabilities: Vec<String>,
    /// Negotiated families.
    pub families: Vec<String>,
    /// Routes in the Adj-RIB-In (before import policy).
    pub prefixes_received: usize,
    /// Routes the import policy accepted.
    pub prefixes_accepted: usize,
    /// Stale routes kept for a restarting peer.
    pub prefixes_stale: usize,
    /// Routes in the Adj-RIB-Out that the peer holds.
    pub prefixes_sent: usize,
    /// Routes of the Adj-RIB-Out not sent because they cannot be encoded for this peer.
    #[serde(default)]
    pub prefixes_unsent: usize,
    /// UPDATEs received / sent.
    pub updates_in: u64,
    /// UPDATEs sent.
    pub updates_out: u64,
    /// NOTIFICATIONs received.
    pub notifications_in: u64,
    /// NOTIFICATIONs sent.
    pub notifications_out: u64,
    /// State changes since start.
    pub transitions: u64,
    /// Administratively down (`shutdown:` set).
    pub admin_down: bool,
    /// The last error.
    pub last_error: Option<String>,
    /// State of the bound BFD session, if BFD is configured.
    #[serde(default)]
    pub bfd_state: Option<String>,
    /// BFD packets from the peer discarded by the authentication rules (RFC 5880 §6.7.4):
    /// forged, replayed or signed with another key; `None` without a registered BFD session.
    #[serde(default)]
    pub bfd_auth_failures: Option<u64>,
    /// Estimated memory held for this peer, bytes: its Adj-RIB-In and Adj-RIB-Out (from their
    /// sizes) and the bytes queued for its connections' writers.
    #[serde(default)]
    pub memory_bytes: u64,
    /// Bytes queued for its connections' writers.
    #[serde(default)]
    pub outbound_queued_bytes: u64,
}

/// The name of a family as the CLI shows it.
pub fn family_name(family: ProtoFamily) -> String {
    match family {
        ProtoFamily::IPV4_UNICAST => "ipv4-unicast".into(),
        ProtoFamily::IPV6_UNICAST => "ipv6-unicast".into(),
        other => format!("afi{}/safi{}", u16::from(other.afi), u8::from(other.safi)),
    }
}

pub(super) fn describe_capabilities(n: &bgp_proto::Negotiated) -> Vec<String> {
    let mut caps = Vec::new();
    for f in &n.families {
        caps.push(format!("multiprotocol {}", family_name(*f)));
    }
    if n.four_octet_as {
        caps.push("4-octet-as".into());
    }
    if n.route_refresh {
        caps.push("route-refresh".into());
    }
    if n.enhanced_route_refresh {
        caps.push("enhanced-route-refresh".into());
    }
    if n.extended_message {
        caps.push("extended-message".into());
    }
    for e in &n.extended_next_hop {
        caps.push(format!(
            "extended-next-hop (afi {} safi {}, next hop afi {})",
            u16::from(e.afi),
            e.safi,
            u16::from(e.next_hop_afi)
        ));
    }
    if let Some(gr) = &n.graceful_restart {
        caps.push(format!(
            "graceful-restart (peer restart time {} s{})",
            gr.restart_time,
            if gr.restart_state() {
                ", restarting"
            } else {
                ""
            }
        ));
    }
    if let Some(families) = &n.long_lived_graceful_restart {
        let times: Vec<String> = families
            .iter()
            .map(|f| format!("{} {} s", family_name(f.family), f.stale_time))
            .collect();
        caps.push(format!(
            "long-lived-graceful-restart (peer stale time {})",
            times.join(", ")
        ));
    }
    caps
}

impl Owner {
    pub(super) fn status(&self) -> Vec<PeerStatus> {
        let now = now_std();
        let local_asn = self.bgp().local_asn;
        self.peers
            .iter()
            .map(|(address, slot)| {
                let fsm = slot.session.fsm();
                let counters = slot.session.counters();
                let up = matches!(fsm.state(), State::OpenConfirm | State::Established);
                let negotiated = fsm.negotiated().filter(|_| up);
                let (hold, keepalive) = fsm.timers();
                let queued: usize = self
                    .conns
                    .values()
                    .filter(|c| c.peer == *address)
                    .map(|c| c.writer.queued())
                    .sum();
                PeerStatus {
                    name: slot.config.display_name(),
                    address: *address,
                    state: fsm.state().name().to_owned(),
                    uptime_seconds: fsm
                        .established_at()
                        .map(|at| now.saturating_duration_since(at).as_secs()),
                    local_asn,
                    configured_asn: match slot.config.asn {
                        PeerAsn::Number(n) => n.to_string(),
                        PeerAsn::Kind(PeerKind::Internal) => "internal".into(),
                        PeerAsn::Kind(PeerKind::External) => "external".into(),
                    },
                    remote_asn: negotiated.map(|n| n.remote_asn),
                    remote_id: fsm
                        .remote_open()
                        .filter(|_| up)
                        .map(|o| o.bgp_id.to_string()),
                    hold_time: negotiated.map(|_| hold.as_secs()),
                    keepalive_time: negotiated.map(|_| keepalive.as_secs()),
                    capabilities: negotiated.map(describe_capabilities).unwrap_or_default(),
                    families: negotiated
                        .map(|n| n.families.iter().map(|f| family_name(*f)).collect())
                        .unwrap_or_default(),
                    prefixes_received: slot.session.rib_in().len(),
                    prefixes_accepted: slot.session.rib_in().accepted(),
                    prefixes_stale: slot.session.rib_in().stale(),
                    prefixes_sent: slot.session.advertised_len(),
                    prefixes_unsent: slot.session.unsent().len(),
                    updates_in: counters.updates_in,
                    updates_out: counters.updates_out,
                    notifications_in: counters.notifications_in,
                    notifications_out: counters.notifications_out,
                    transitions: fsm.transitions(),
                    admin_down: fsm.is_admin_down(),
                    last_error: fsm.last_error().map(str::to_owned),
                    bfd_state: slot.bfd_state.clone(),
                    bfd_auth_failures: slot.bfd_auth_failures.as_ref().map(|c| c.get()),
                    memory_bytes: (slot.session.memory_estimate() + queued) as u64,
                    outbound_queued_bytes: queued as u64,
                }
            })
            .collect()
    }
}

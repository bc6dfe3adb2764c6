//! What the BGP instance's events become in BMP: per-peer headers from the peer's OPEN, Peer
//! Down reasons from the session's, Route Monitoring UPDATEs for accepted-route changes (packed
//! like an Adj-RIB-Out diff, so routes sharing attributes share a message), the dump of a
//! peer's Adj-RIB-In for a newly connected collector (RFC 7854 §5, each view ending with an
//! End-of-RIB per family) and a peer's statistics.
//!
//! The import policy only accepts or rejects routes, never rewrites them, so a route's
//! attributes are the same before and after policy: the pre-policy view is every route the
//! Adj-RIB-In keeps (with soft reconfiguration inbound, also the rejected ones; without it,
//! rejected routes are dropped on arrival and only live UPDATEs show them pre-policy), the
//! post-policy view the accepted ones.
//!
//! Pure: no I/O; timestamps are passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bgp_proto::iana::Family;
use bgp_proto::{Open, Update};
use bytes::Bytes;
use ipnet::IpNet;

use super::message::{self, PeerDownReason, PeerHeader, Stat};
use crate::advertise::packing::{self, Diff, OutRoute};
use crate::bgp::fsm::DownReason;
use crate::bgp::rib::{AdjRibIn, PathAttrs};

/// The per-peer header for a peer whose OPEN we received.
pub fn header(peer: IpAddr, open: &Open, post_policy: bool, timestamp: Duration) -> PeerHeader {
    PeerHeader {
        address: peer,
        asn: open.asn(),
        bgp_id: open.bgp_id,
        post_policy,
        timestamp,
    }
}

/// The Peer Down reason (RFC 7854 §4.9) for why the session left Established.
pub fn down_reason(reason: &DownReason) -> PeerDownReason {
    match reason {
        DownReason::Stopped(n) | DownReason::NotificationSent(n) => {
            PeerDownReason::LocalNotification(n.clone())
        }
        DownReason::NotificationReceived(n) => PeerDownReason::RemoteNotification(n.clone()),
        DownReason::ConnectionLost => PeerDownReason::RemoteNoNotification,
    }
}

/// UPDATEs announcing `updated` and withdrawing `withdrawn`, withdrawals first, announcements
/// grouped by identical attributes.
pub fn updates(updated: &[(IpNet, &Arc<PathAttrs>)], withdrawn: &[IpNet]) -> Vec<Update> {
    // One shared attribute list per distinct attribute set, as the Adj-RIB-In shares them.
    let mut shared: HashMap<*const PathAttrs, Arc<Vec<bgp_proto::PathAttribute>>> = HashMap::new();
    let routes: Vec<(IpNet, OutRoute)> = updated
        .iter()
        .map(|(prefix, attrs)| {
            let attributes = shared
                .entry(Arc::as_ptr(attrs))
                .or_insert_with(|| Arc::new(attrs.attributes.clone()))
                .clone();
            (
                *prefix,
                OutRoute {
                    attributes,
                    next_hop: attrs.next_hop.clone(),
                },
            )
        })
        .collect();
    let diff = Diff {
        withdraw: withdrawn.to_vec(),
        announce: routes.iter().map(|(p, r)| (*p, r)).collect(),
    };
    let packed = packing::pack(&diff, &message::pdu_context());
    for (prefix, error) in packed.skipped.iter().take(4) {
        tracing::warn!(%prefix, %error, "route not reported to BMP collectors: it does not encode");
    }
    packed.updates
}

/// Route Monitoring messages for a list of UPDATEs; UPDATEs that do not encode are logged and
/// left out.
pub fn route_monitoring(header: &PeerHeader, updates: &[Update]) -> Vec<Bytes> {
    updates
        .iter()
        .filter_map(
            |update| match message::route_monitoring(header, update) {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    tracing::warn!(peer = %header.address, %error, "UPDATE not reported to BMP collectors");
                    None
                }
            },
        )
        .collect()
}

/// One view of a peer's Adj-RIB-In as Route Monitoring messages, then an End-of-RIB for each
/// of `families` (RFC 7854 §5: the initial dump ends with End-of-RIB markers).
pub fn dump(header: &PeerHeader, rib: &AdjRibIn, families: &[Family]) -> Vec<Bytes> {
    let routes: Vec<(IpNet, &Arc<PathAttrs>)> = rib
        .iter()
        .filter(|(_, entry)| entry.accepted || !header.post_policy)
        .map(|(prefix, entry)| (prefix, &entry.attrs))
        .collect();
    let mut out = route_monitoring(header, &updates(&routes, &[]));
    let markers: Vec<Update> = families.iter().map(|f| Update::end_of_rib(*f)).collect();
    out.extend(route_monitoring(header, &markers));
    out
}

/// A peer's Statistics Report: routes the Adj-RIB-In keeps (type 7; the rejected ones only
/// with soft reconfiguration inbound), the peer's accepted routes, which are its candidates in
/// the Loc-RIB (type 8), and UPDATEs treated as withdraw (type 11).
pub fn statistics(header: &PeerHeader, rib: &AdjRibIn, treat_as_withdraw: u64) -> Bytes {
    message::statistics(
        header,
        &[
            Stat::AdjRibIn(rib.len() as u64),
            Stat::LocRib(rib.accepted() as u64),
            Stat::TreatAsWithdraw(u32::try_from(treat_as_withdraw).unwrap_or(u32::MAX)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use bgp_proto::{AttrValue, NextHop, PathAttribute};

    use super::*;
    use crate::bgp::rib::RibInEntry;

    fn attrs() -> Arc<PathAttrs> {
        Arc::new(PathAttrs {
            attributes: vec![PathAttribute::new(AttrValue::Origin(
                bgp_proto::iana::Origin::Igp,
            ))],
            next_hop: NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 1)),
        })
    }

    fn prefix(s: &str) -> IpNet {
        s.parse().expect("prefix")
    }

    fn hdr(post_policy: bool) -> PeerHeader {
        let open = Open::new(65001, 90, Ipv4Addr::new(192, 0, 2, 1), Vec::new());
        header(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            &open,
            post_policy,
            Duration::from_secs(1),
        )
    }

    fn rib() -> AdjRibIn {
        let mut rib = AdjRibIn::default();
        let a = attrs();
        for (p, accepted) in [("10.1.0.0/24", true), ("10.2.0.0/24", false)] {
            rib.insert(
                prefix(p),
                RibInEntry {
                    attrs: a.clone(),
                    accepted,
                    stale: false,
                },
            );
        }
        rib
    }

    /// The NLRI announced by the UPDATE inside a Route Monitoring message.
    fn announced(bytes: &Bytes) -> Vec<IpNet> {
        let pdu = bytes.get(48..).expect("a PDU");
        match bgp_proto::Message::decode(pdu, &bgp_proto::DecodeContext::default()) {
            Ok(decoded) => match decoded.message {
                bgp_proto::Message::Update(u) => u
                    .nlri
                    .iter()
                    .map(|n| IpNet::new(IpAddr::V4(n.prefix.addr()), n.prefix.len()).expect("net"))
                    .collect(),
                other => panic!("not an UPDATE: {other:?}"),
            },
            Err(e) => panic!("PDU does not decode: {e}"),
        }
    }

    #[test]
    fn routes_sharing_attributes_share_one_update() {
        let a = attrs();
        let routes = [(prefix("10.1.0.0/24"), &a), (prefix("10.2.0.0/24"), &a)];
        let updates = updates(&routes, &[prefix("10.3.0.0/24")]);
        assert_eq!(updates.len(), 2, "one withdrawal, one announcement");
        assert_eq!(updates.first().map(|u| u.withdrawn.len()), Some(1));
        assert_eq!(updates.get(1).map(|u| u.nlri.len()), Some(2));
    }

    #[test]
    fn pre_policy_dump_has_rejected_routes_post_policy_only_accepted() {
        let rib = rib();
        let pre = dump(&hdr(false), &rib, &[Family::IPV4_UNICAST]);
        let post = dump(&hdr(true), &rib, &[Family::IPV4_UNICAST]);
        assert_eq!(pre.len(), 2, "routes and End-of-RIB");
        assert_eq!(
            pre.first().map(announced),
            Some(vec![prefix("10.1.0.0/24"), prefix("10.2.0.0/24")])
        );
        assert_eq!(
            post.first().map(announced),
            Some(vec![prefix("10.1.0.0/24")])
        );
        assert_eq!(post.first().and_then(|b| b.get(7)), Some(&0x40), "L flag");
        assert_eq!(post.last().map(announced), Some(vec![]), "End-of-RIB last");
    }

    #[test]
    fn down_reasons_map_to_rfc_7854_codes() {
        use bgp_proto::Notification;
        use bgp_proto::iana::CeaseSubcode;
        let n = Notification::cease(CeaseSubcode::AdministrativeShutdown);
        let cases = [
            (
                DownReason::Stopped(n.clone()),
                PeerDownReason::LocalNotification(n.clone()),
            ),
            (
                DownReason::NotificationSent(n.clone()),
                PeerDownReason::LocalNotification(n.clone()),
            ),
            (
                DownReason::NotificationReceived(n.clone()),
                PeerDownReason::RemoteNotification(n),
            ),
            (
                DownReason::ConnectionLost,
                PeerDownReason::RemoteNoNotification,
            ),
        ];
        for (reason, want) in cases {
            assert_eq!(down_reason(&reason), want, "{reason:?}");
        }
    }

    #[test]
    fn statistics_count_both_views() {
        let bytes = statistics(&hdr(false), &rib(), 0);
        // Type 7 (2 routes), then type 8 (1 accepted).
        assert_eq!(
            bytes.get(52..64),
            Some(&[0, 7, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2][..])
        );
        assert_eq!(
            bytes.get(64..76),
            Some(&[0, 8, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1][..])
        );
    }
}

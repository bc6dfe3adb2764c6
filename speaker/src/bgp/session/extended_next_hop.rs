//! Extended next hop (RFC 8950) for one session: the capability we advertise (IPv4 unicast NLRI
//! with IPv6 next hops) and whether the peer agreed, which gives our IPv4 routes on an IPv6
//! session the session's IPv6 next hop (global, plus link-local on a shared segment, RFC 2545 §3).
//!
//! Receiving needs no switch: an MP_REACH_NLRI for IPv4 unicast whose next hop is 16 or 32 octets
//! long decodes to an IPv6 next hop, and the FIB installs it as `via inet6` (RTA_VIA).
//!
//! Pure, like the rest of the session.

use std::collections::BTreeSet;

use bgp_proto::capability::ExtendedNextHopFamily;
use bgp_proto::iana::{Afi, Family};
use bgp_proto::{Capability, Negotiated, NextHop};
use ipnet::IpNet;

use crate::advertise::packing::Diff;
use crate::error::Error;

/// The one combination we use: IPv4 unicast NLRI, IPv6 next hop.
const IPV4_OVER_IPV6: ExtendedNextHopFamily = ExtendedNextHopFamily {
    afi: Afi::Ipv4,
    safi: 1,
    next_hop_afi: Afi::Ipv6,
};

/// Our capability, when enabled and IPv4 unicast is among the session's families.
///
/// RFC 8950 §3: "the BGP speaker MUST use the Capability Advertisement procedures ... with the
/// Extended Next Hop Encoding capability to determine whether its peer supports this".
pub(super) fn capability(enabled: bool, families: &BTreeSet<Family>) -> Option<Capability> {
    (enabled && families.contains(&Family::IPV4_UNICAST))
        .then(|| Capability::ExtendedNextHop(vec![IPV4_OVER_IPV6]))
}

/// Whether both sides advertised IPv4 unicast with IPv6 next hops, so ours may be sent.
pub(super) fn ipv4_over_ipv6(negotiated: &Negotiated) -> bool {
    negotiated.extended_next_hop.contains(&IPV4_OVER_IPV6)
}

/// Whether a route needs the peer's extended next hop: an IPv4 prefix with an IPv6 next hop
/// (a route-server route learned over an RFC 8950 session).
fn needs_it(prefix: &IpNet, next_hop: &NextHop) -> bool {
    matches!((prefix, next_hop), (IpNet::V4(_), NextHop::Ipv6 { .. }))
}

/// Without extended next hop negotiated, the announcements that need it are taken out of `diff`
/// and returned as refused (RFC 8950 §3: such routes are sent only to peers that advertised the
/// capability). `None`: `diff` is sendable as it is (the common case: no copy).
pub(super) fn refuse_unnegotiated<'a>(
    diff: &Diff<'a>,
    negotiated: bool,
) -> (Option<Diff<'a>>, Vec<(IpNet, Error)>) {
    if negotiated || !diff.announce.iter().any(|(p, r)| needs_it(p, &r.next_hop)) {
        return (None, Vec::new());
    }
    let mut refused = Vec::new();
    let announce = diff
        .announce
        .iter()
        .filter(|(p, r)| {
            let needs = needs_it(p, &r.next_hop);
            if needs {
                refused.push((
                    *p,
                    Error::Unencodable {
                        prefix: *p,
                        reason: "an IPv6 next hop for an IPv4 prefix needs extended next hop \
                                 (RFC 8950), which the peer did not negotiate",
                    },
                ));
            }
            !needs
        })
        .copied()
        .collect();
    let sendable = Diff {
        withdraw: diff.withdraw.clone(),
        announce,
    };
    (Some(sendable), refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_next_hops_for_ipv4_prefixes_go_only_to_peers_that_negotiated_it() {
        let attributes = std::sync::Arc::new(Vec::new());
        let v6_hop = crate::advertise::packing::OutRoute {
            attributes: attributes.clone(),
            next_hop: NextHop::Ipv6 {
                global: "fd00::2".parse().expect("ip"),
                link_local: None,
            },
        };
        let v4_hop = crate::advertise::packing::OutRoute {
            attributes,
            next_hop: NextHop::Ipv4("10.0.0.2".parse().expect("ip")),
        };
        let p4: IpNet = "192.0.2.0/24".parse().expect("net");
        let q4: IpNet = "198.51.100.0/24".parse().expect("net");
        let diff = Diff {
            withdraw: Vec::new(),
            announce: vec![(p4, &v6_hop), (q4, &v4_hop)],
        };
        let (kept, refused) = refuse_unnegotiated(&diff, true);
        assert!(kept.is_none() && refused.is_empty());
        let (kept, refused) = refuse_unnegotiated(&diff, false);
        assert_eq!(kept.expect("filtered").announce, vec![(q4, &v4_hop)]);
        assert_eq!(refused.len(), 1);
        assert!(refused.iter().all(|(p, _)| *p == p4));
    }

    #[test]
    fn capability_only_with_ipv4_unicast_and_enabled() {
        let both = BTreeSet::from([Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
        let v6 = BTreeSet::from([Family::IPV6_UNICAST]);
        assert_eq!(
            capability(true, &both),
            Some(Capability::ExtendedNextHop(vec![IPV4_OVER_IPV6]))
        );
        assert_eq!(capability(false, &both), None);
        assert_eq!(capability(true, &v6), None);
    }
}

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
use bgp_proto::{Capability, Negotiated};

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

#[cfg(test)]
mod tests {
    use super::*;

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

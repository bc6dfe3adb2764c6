//! Connection collision detection (RFC 4271 §6.8): which of two connections to the same peer
//! survives. Pure decision over BGP identifiers and connection directions.

use std::net::Ipv4Addr;

/// Who opened a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the peer.
    Outbound,
    /// The peer connected to us.
    Inbound,
}

/// The connection to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The connection that already existed.
    Existing,
    /// The connection whose OPEN just arrived.
    New,
}

/// Decides a collision between the `existing` connection and a `new` one in the other direction.
///
/// RFC 4271 §6.8: "1) The BGP Identifier of the local system is compared to the BGP Identifier of
/// the remote system (as specified in the OPEN message). Comparing BGP Identifiers is done by
/// converting them to host byte order and treating them as 4-octet unsigned integers.
/// 2) If the value of the local BGP Identifier is less than the remote one, the local system
/// closes the BGP connection that already exists (the one that is already in the OpenConfirm
/// state), and accepts the BGP connection initiated by the remote system.
/// 3) Otherwise, the local system closes the newly created BGP connection (the one associated with
/// the newly received OPEN message), and continues to use the existing one".
///
/// Read with the rest of §6.8 ("the connection initiated by the BGP speaker with the higher-valued
/// BGP Identifier is retained"), the survivor is the connection opened by the higher identifier.
/// Equal identifiers (possible between eBGP peers, RFC 6286 §2.1) fall back to the larger AS.
pub fn resolve(
    local_id: Ipv4Addr,
    remote_id: Ipv4Addr,
    local_asn: u32,
    remote_asn: u32,
    existing: Direction,
    new: Direction,
) -> Keep {
    if existing == new {
        // Two connections in the same direction are no collision to arbitrate: the newer one
        // replaces a stale attempt only if the caller decides so; keep what works.
        return Keep::Existing;
    }
    let local_wins = match u32::from(local_id).cmp(&u32::from(remote_id)) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        // RFC 6286 §2.3: "If the BGP Identifiers of the peers involved in the connection
        // collision are identical, then the connection initiated by the BGP speaker with the
        // larger AS number is preserved."
        std::cmp::Ordering::Equal => local_asn > remote_asn,
    };
    let survivor = if local_wins {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    if existing == survivor {
        Keep::Existing
    } else {
        Keep::New
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const HIGH: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn collision_table() {
        use Direction::{Inbound, Outbound};
        // (local id, remote id, local AS, remote AS, existing, new, expected)
        let table = [
            (LOW, HIGH, 1, 2, Outbound, Inbound, Keep::New),
            (LOW, HIGH, 1, 2, Inbound, Outbound, Keep::Existing),
            (HIGH, LOW, 1, 2, Outbound, Inbound, Keep::Existing),
            (HIGH, LOW, 1, 2, Inbound, Outbound, Keep::New),
            (LOW, LOW, 5, 2, Outbound, Inbound, Keep::Existing),
            (LOW, LOW, 1, 2, Outbound, Inbound, Keep::New),
            (LOW, HIGH, 1, 2, Inbound, Inbound, Keep::Existing),
        ];
        for (local, remote, las, ras, existing, new, expected) in table {
            assert_eq!(
                resolve(local, remote, las, ras, existing, new),
                expected,
                "{local} vs {remote}, AS {las} vs {ras}, existing {existing:?}"
            );
        }
    }

    #[test]
    fn both_sides_agree_on_the_survivor() {
        // Each side sees its own outbound connection as the other's inbound one.
        for (a, b) in [(LOW, HIGH), (HIGH, LOW)] {
            let at_a = resolve(a, b, 1, 2, Direction::Outbound, Direction::Inbound);
            let at_b = resolve(b, a, 2, 1, Direction::Inbound, Direction::Outbound);
            // Both see A→B as existing and B→A as new: they must keep the same one.
            assert_eq!(at_a, at_b);
        }
    }
}

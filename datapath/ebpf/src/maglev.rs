//! Backend selection: the Cilium-compatible packet hash into the service's active Maglev table.

use datapath_common::{
    FAMILY_V4, SVC_F_AFFINITY, ServiceValue,
    hash::{packet_hash_v4, packet_hash_v6},
};

use crate::{maps::MAGLEV, parse::Headers};

/// The flow hash (VIP excluded; client port zeroed under session affinity).
#[inline(always)]
pub fn flow_hash(h: &Headers, svc: &ServiceValue, seed_v4: u32, seed_v6: u32) -> u32 {
    let sport = if svc.flags & SVC_F_AFFINITY != 0 {
        [0, 0]
    } else {
        h.sport
    };
    if h.family == FAMILY_V4 {
        packet_hash_v4(
            [h.saddr[0], h.saddr[1], h.saddr[2], h.saddr[3]],
            sport,
            h.dport,
            h.proto,
            seed_v4,
        )
    } else {
        packet_hash_v6(h.saddr, sport, h.dport, h.proto, seed_v6)
    }
}

/// The backend id in slot `hash % m` of the service's active table.
#[inline(always)]
pub fn select(svc: &ServiceValue, hash: u32, m: u32) -> Option<u32> {
    if m == 0 {
        return None;
    }
    let index = svc.table.checked_mul(m)?.checked_add(hash % m)?;
    let pair = MAGLEV.get(index / 2)?;
    Some(if index & 1 == 0 { pair[0] } else { pair[1] })
}

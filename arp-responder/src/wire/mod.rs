//! Wire formats for L2 announcements: Ethernet, 802.1Q, ARP, IPv6, ICMPv6 neighbor discovery and
//! Herald's own L2 heartbeat. Each format has a zero-copy `Packet<T>` view with checked
//! constructors and an owned `Repr` with `parse`/`emit`/`buffer_len`. No I/O here; decoders never
//! panic on any input.
//!
//! Every decoder here reads untrusted bytes from the segment, so arithmetic that could overflow is
//! denied in this module and its children: lengths are compared, not added.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

pub mod arp;
pub mod ethernet;
pub mod heartbeat;
pub mod ipv6;
pub mod ndisc;
pub mod vlan;

pub use arp::{ArpOperation, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetRepr};
pub use heartbeat::HeartbeatRepr;
pub use ipv6::Ipv6Repr;
pub use ndisc::NdiscRepr;
pub use vlan::VlanRepr;

/// Reads a big-endian u16 at `at` (zero if out of range; callers have checked the length).
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(array(b, at))
}

/// Writes a big-endian u16 at `at`; callers have checked the length.
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<2>) {
        *s = v.to_be_bytes();
    }
}

/// Copies `N` bytes at `at` into an array (zeroes if out of range; callers check lengths first).
pub(crate) fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..)
        .and_then(<[u8]>::first_chunk::<N>)
        .copied()
        .unwrap_or([0; N])
}

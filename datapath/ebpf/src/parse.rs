//! Bounds-checked packet access and header parsing (Ethernet, 802.1Q, IPv4, IPv6, TCP/UDP ports)
//! over `[data, data_end)`. Every read goes through [`ptr_at`], which the verifier can follow.

use datapath_common::{
    ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, FAMILY_V4, FAMILY_V6, IPPROTO_TCP, IPPROTO_UDP,
};

/// A pointer to `T` at `offset` if `T` fits before `end`.
#[inline(always)]
pub fn ptr_at<T>(start: usize, end: usize, offset: usize) -> Option<*mut T> {
    let len = core::mem::size_of::<T>();
    if start + offset + len > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// Reads `N` bytes at `offset`.
#[inline(always)]
pub fn read<const N: usize>(start: usize, end: usize, offset: usize) -> Option<[u8; N]> {
    let p = ptr_at::<[u8; N]>(start, end, offset)?;
    // SAFETY: `ptr_at` checked that N bytes at `offset` lie inside the packet.
    Some(unsafe { core::ptr::read_unaligned(p) })
}

/// Writes `N` bytes at `offset`; false if they would not fit.
#[inline(always)]
pub fn write<const N: usize>(start: usize, end: usize, offset: usize, v: [u8; N]) -> bool {
    match ptr_at::<[u8; N]>(start, end, offset) {
        Some(p) => {
            // SAFETY: `ptr_at` checked that N bytes at `offset` lie inside the packet.
            unsafe { core::ptr::write_unaligned(p, v) };
            true
        }
        None => false,
    }
}

/// What the parser learnt about a packet. The addresses come first and the struct is 8-byte
/// aligned, so they are filled and copied with aligned word stores (the verifier rejects
/// misaligned stack accesses, and a zeroed `[u8; 16]` tail otherwise becomes a `memset` call).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Headers {
    /// Source address (IPv4 in the first 4 bytes, the rest zero).
    pub saddr: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
    /// Length of the L2 header (14, or 18 with one VLAN tag).
    pub l2_len: usize,
    /// Offset of the IP header.
    pub l3: usize,
    /// Offset of the L4 header.
    pub l4: usize,
    /// `FAMILY_V4` or `FAMILY_V6`.
    pub family: u8,
    /// L4 protocol.
    pub proto: u8,
    /// Source port, wire bytes.
    pub sport: [u8; 2],
    /// Destination port, wire bytes.
    pub dport: [u8; 2],
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
}

/// Why a packet was not parsed into [`Headers`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not IP, or not TCP/UDP: none of our business.
    Other,
    /// IP fragment or IPv6 extension header: passed, not load-balanced.
    Unsupported,
    /// Claims to be IP/TCP/UDP but is cut short or inconsistent.
    Malformed,
}

/// An IPv4 address in the 16-byte form (first 4 bytes, the rest zero), built as two 64-bit
/// words so it is stored with two aligned stores rather than a byte-wise `memset` of the tail.
#[inline(always)]
pub fn v4_addr(a: [u8; 4]) -> [u8; 16] {
    // `from_le` keeps the address bytes first in memory whatever the target's byte order.
    let w: [u64; 2] = [u64::from_le(u64::from(u32::from_le_bytes(a))), 0];
    // SAFETY: `[u64; 2]` and `[u8; 16]` have the same size and every bit pattern is valid for
    // both.
    unsafe { core::mem::transmute::<[u64; 2], [u8; 16]>(w) }
}

/// Parses Ethernet (+ one 802.1Q tag) at `base`, IPv4/IPv6 and the TCP/UDP ports. Offsets in
/// the result are from the packet start.
#[inline(always)]
pub fn parse(start: usize, end: usize, base: usize) -> Result<Headers, Skip> {
    let eth_type = read::<2>(start, end, base + 12).ok_or(Skip::Other)?;
    let mut ether = u16::from_be_bytes(eth_type);
    let mut l2_len = 14;
    if ether == ETH_P_8021Q {
        ether = u16::from_be_bytes(read::<2>(start, end, base + 16).ok_or(Skip::Other)?);
        l2_len = 18;
    }
    let l3 = base + l2_len;
    let mut h = Headers {
        saddr: [0; 16],
        daddr: [0; 16],
        l2_len,
        l3,
        l4: 0,
        family: 0,
        proto: 0,
        sport: [0; 2],
        dport: [0; 2],
        tcp_flags: 0,
    };
    if ether == ETH_P_IP {
        let ip = read::<20>(start, end, l3).ok_or(Skip::Malformed)?;
        if ip[0] >> 4 != 4 {
            return Err(Skip::Malformed);
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ihl < 20 {
            return Err(Skip::Malformed);
        }
        h.proto = ip[9];
        if h.proto != IPPROTO_TCP && h.proto != IPPROTO_UDP {
            return Err(Skip::Other);
        }
        // More-fragments set or a non-zero offset: only the first fragment has ports.
        if (u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff) != 0 {
            return Err(Skip::Unsupported);
        }
        h.family = FAMILY_V4;
        h.saddr = v4_addr([ip[12], ip[13], ip[14], ip[15]]);
        h.daddr = v4_addr([ip[16], ip[17], ip[18], ip[19]]);
        h.l4 = l3 + ihl;
    } else if ether == ETH_P_IPV6 {
        let ip = read::<40>(start, end, l3).ok_or(Skip::Malformed)?;
        if ip[0] >> 4 != 6 {
            return Err(Skip::Malformed);
        }
        h.proto = ip[6];
        if h.proto != IPPROTO_TCP && h.proto != IPPROTO_UDP {
            return Err(Skip::Unsupported);
        }
        h.family = FAMILY_V6;
        h.saddr.copy_from_slice(&ip[8..24]);
        h.daddr.copy_from_slice(&ip[24..40]);
        h.l4 = l3 + 40;
    } else {
        return Err(Skip::Other);
    }
    if h.proto == IPPROTO_TCP {
        let tcp = read::<20>(start, end, h.l4).ok_or(Skip::Malformed)?;
        h.sport = [tcp[0], tcp[1]];
        h.dport = [tcp[2], tcp[3]];
        h.tcp_flags = tcp[13];
    } else {
        let udp = read::<8>(start, end, h.l4).ok_or(Skip::Malformed)?;
        h.sport = [udp[0], udp[1]];
        h.dport = [udp[2], udp[3]];
    }
    Ok(h)
}

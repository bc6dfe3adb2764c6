//! Geneve with Cilium's DSR option: encapsulation on the LB node (XDP) and option parsing on the
//! backend node (TC). Wire layout (RFC 8926): 8-byte base header, then TLV options; the DSR option
//! is class 0x014B, type 0x81, payload {service address, port (be16), 2 bytes pad}.
//!
//! The outer header is IPv4 or IPv6, after the backend's node underlay address; the inner
//! frame (the client's, IPv4 or IPv6) is independent of it.
//!
//! UDP checksum over IPv6. RFC 8200 §8.1 makes it mandatory, except for tunnel protocols under
//! RFC 6935/6936, which RFC 8926 §3.3 allows for Geneve. We send zero: the only receiver of
//! Herald's Geneve is Herald's own TC ingress program (these kernels have no Geneve device),
//! which does not verify UDP checksums, and it applies RFC 6936 §5's safeguards for zero
//! checksums itself: the outer destination must be this node's underlay address and the source
//! a known load-balancer node, and the inner packet is parsed as strictly as any other (its own
//! L4 checksum still covers the payload end to end). Computing it would mean summing the whole
//! frame in XDP on every packet (a variable-length `bpf_csum_diff` over up to the MTU), the
//! hot path's largest cost, to protect against corruption the inner checksum already detects.

use datapath_common::{
    ETH_P_IP, ETH_P_IPV6, ETH_P_TEB, FAMILY_V4, GENEVE_OPT_CLASS_CILIUM, GENEVE_OPT_DSR_LEN_V4,
    GENEVE_OPT_DSR_LEN_V6, GENEVE_OPT_TYPE_DSR, GENEVE_PORT, IPPROTO_UDP, OUTER_FIXED_V4,
    OUTER_FIXED_V6, csum,
};

use crate::parse::{read, write};

/// Outer IP + UDP + Geneve base header length for an outer family (IPv6 when `outer6`).
#[inline(always)]
pub fn outer_fixed(outer6: bool) -> usize {
    if outer6 {
        OUTER_FIXED_V6
    } else {
        OUTER_FIXED_V4
    }
}

/// Bytes of the DSR option (4-byte option header + payload) for a service family.
#[inline(always)]
pub fn dsr_option_len(family: u8) -> usize {
    if family == FAMILY_V4 {
        4 + 4 * GENEVE_OPT_DSR_LEN_V4 as usize
    } else {
        4 + 4 * GENEVE_OPT_DSR_LEN_V6 as usize
    }
}

/// Everything the encapsulation needs, by value (it is filled in by the balancing step and read
/// after it returns, so no frame of the balancer is live while headers are written).
#[derive(Clone, Copy)]
pub struct Encap {
    /// Length of the original L2 header (14 or 18).
    pub l2_len: usize,
    /// Service family (selects the option length).
    pub family: u8,
    /// Whether the DSR option is added.
    pub with_opt: bool,
    /// The VLAN TCI when the original frame was tagged (`l2_len == 18`); repeated outside.
    pub vlan_tci: [u8; 2],
    /// Outer destination MAC (next hop).
    pub dst_mac: [u8; 6],
    /// Outer source MAC (our uplink).
    pub src_mac: [u8; 6],
    /// Outer source IPv4.
    pub src_ip: [u8; 4],
    /// Outer destination IPv4 (the backend's node).
    pub dst_ip: [u8; 4],
    /// Whether the outer header is IPv6 (the backend's node has an IPv6 underlay address).
    pub outer6: bool,
    /// Outer source IPv6 (when `outer6`).
    pub src_ip6: [u8; 16],
    /// Outer destination IPv6 (when `outer6`).
    pub dst_ip6: [u8; 16],
    /// Original frame length.
    pub inner_len: usize,
    /// Flow hash (outer UDP source port entropy).
    pub hash: u32,
    /// Service address for the option.
    pub vip: [u8; 16],
    /// Service port for the option.
    pub vport: u16,
}

impl Encap {
    /// The L2 header length as a constant the verifier can bound (the field comes from map
    /// memory, which the verifier treats as unknown).
    #[inline(always)]
    pub fn l2(&self) -> usize {
        if self.l2_len == 18 { 18 } else { 14 }
    }

    /// Outer IP + UDP + Geneve base header length.
    #[inline(always)]
    pub fn outer_fixed(&self) -> usize {
        outer_fixed(self.outer6)
    }

    /// Bytes pushed in front of the original frame: outer L2, IP, UDP, Geneve and option.
    #[inline(always)]
    pub fn push_len(&self) -> usize {
        self.l2() + self.outer_fixed() + self.opt_len()
    }

    /// Bytes of option carried.
    #[inline(always)]
    pub fn opt_len(&self) -> usize {
        match (self.with_opt, self.family == FAMILY_V4) {
            (false, _) => 0,
            (true, true) => dsr_option_len(FAMILY_V4),
            (true, false) => dsr_option_len(datapath_common::FAMILY_V6),
        }
    }
}

/// Writes outer Ethernet/IP/UDP/Geneve(+option) at `start` (the new frame start, after
/// `bpf_xdp_adjust_head` made room). Returns false if anything did not fit.
#[inline(always)]
pub fn write_outer(start: usize, end: usize, e: &Encap) -> bool {
    if e.outer6 {
        write_l2(start, end, e, ETH_P_IPV6)
            && write_ip6(start, end, e)
            && write_udp(start, end, e, e.l2() + 40)
    } else {
        write_l2(start, end, e, ETH_P_IP)
            && write_ip4(start, end, e)
            && write_udp(start, end, e, e.l2() + 20)
    }
}

/// Ethernet: to the next hop, from us; the VLAN tag (if any) is repeated outside.
#[inline(always)]
fn write_l2(start: usize, end: usize, e: &Encap, ether: u16) -> bool {
    let mut eth = [0u8; 14];
    eth[..6].copy_from_slice(&e.dst_mac);
    eth[6..12].copy_from_slice(&e.src_mac);
    let t = ether.to_be_bytes();
    if e.l2() == 18 {
        eth[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        write(start, end, 0, eth)
            && write(start, end, 14, [e.vlan_tci[0], e.vlan_tci[1], t[0], t[1]])
    } else {
        eth[12..14].copy_from_slice(&t);
        write(start, end, 0, eth)
    }
}

/// The outer IPv4 header.
#[inline(always)]
fn write_ip4(start: usize, end: usize, e: &Encap) -> bool {
    let ip_total = OUTER_FIXED_V4 + e.opt_len() + e.inner_len;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_total as u16).to_be_bytes());
    // Don't fragment: the MTU check happened before we got here.
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    ip[12..16].copy_from_slice(&e.src_ip);
    ip[16..20].copy_from_slice(&e.dst_ip);
    let c = csum::ipv4_header(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    write(start, end, e.l2(), ip)
}

/// The outer IPv6 header: no extension headers, hop limit 64, and the flow label from the flow
/// hash (RFC 6438), so ECMP that hashes on the label spreads flows as the source port does.
#[inline(always)]
fn write_ip6(start: usize, end: usize, e: &Encap) -> bool {
    let payload = (8 + 8 + e.opt_len() + e.inner_len) as u16;
    let label = e.hash & 0x000f_ffff;
    let p = payload.to_be_bytes();
    let fixed = [
        0x60,
        (label >> 16) as u8,
        (label >> 8) as u8,
        label as u8,
        p[0],
        p[1],
        IPPROTO_UDP,
        64,
    ];
    let l2 = e.l2();
    write(start, end, l2, fixed)
        && write(start, end, l2 + 8, e.src_ip6)
        && write(start, end, l2 + 24, e.dst_ip6)
}

/// UDP, the Geneve base header and the DSR option, at `l4` (after the outer IP header).
#[inline(always)]
fn write_udp(start: usize, end: usize, e: &Encap, l4: usize) -> bool {
    let opt_len = e.opt_len();
    // Source port from the flow hash, in the dynamic range (RFC 8926 §3.3), so ECMP on the way
    // to the backend node spreads flows. Checksum zero: allowed over IPv4, and over IPv6 for
    // tunnels (see the module header).
    let sport = (0xc000u16 | (e.hash as u16 & 0x3fff)).to_be_bytes();
    let dport = GENEVE_PORT.to_be_bytes();
    let ulen = ((8 + 8 + opt_len + e.inner_len) as u16).to_be_bytes();
    let udp = [
        sport[0], sport[1], dport[0], dport[1], ulen[0], ulen[1], 0, 0,
    ];
    if !write(start, end, l4, udp) {
        return false;
    }
    // Version 0, option length in 4-byte words, protocol 0x6558, VNI 0.
    let teb = ETH_P_TEB.to_be_bytes();
    let gnv = [(opt_len / 4) as u8, 0, teb[0], teb[1], 0, 0, 0, 0];
    if !write(start, end, l4 + 8, gnv) {
        return false;
    }
    if !e.with_opt {
        return true;
    }
    let off = l4 + 16;
    let cls = GENEVE_OPT_CLASS_CILIUM.to_be_bytes();
    let p = e.vport.to_be_bytes();
    let vip = e.vip;
    if e.family == FAMILY_V4 {
        let opt: [u8; 12] = [
            cls[0],
            cls[1],
            GENEVE_OPT_TYPE_DSR,
            GENEVE_OPT_DSR_LEN_V4,
            vip[0],
            vip[1],
            vip[2],
            vip[3],
            p[0],
            p[1],
            0,
            0,
        ];
        write(start, end, off, opt)
    } else {
        let hdr: [u8; 4] = [cls[0], cls[1], GENEVE_OPT_TYPE_DSR, GENEVE_OPT_DSR_LEN_V6];
        write(start, end, off, hdr)
            && write(start, end, off + 4, vip)
            && write(start, end, off + 20, [p[0], p[1], 0, 0])
    }
}

/// The DSR option found in a Geneve header, and where the inner frame starts.
pub struct Dsr {
    /// Service address (IPv4 in the first 4 bytes).
    pub vip: [u8; 16],
    /// Service port, host order.
    pub port: u16,
    /// Service family.
    pub family: u8,
}

/// Parses a Geneve header at `off` (after the outer UDP header). Returns the inner frame offset
/// and the DSR option if it is the first option (where Cilium and we put it; walking a variable
/// number of options defeats the verifier's packet-range tracking).
#[inline(always)]
pub fn parse(start: usize, end: usize, off: usize) -> Option<(usize, Option<Dsr>)> {
    let g = read::<8>(start, end, off)?;
    if g[0] >> 6 != 0 || u16::from_be_bytes([g[2], g[3]]) != ETH_P_TEB {
        return None;
    }
    let opt_words = g[0] & 0x3f;
    let inner = off + 8 + usize::from(opt_words) * 4;
    if opt_words == 0 {
        return Some((inner, None));
    }
    let o = off + 8;
    let oh = read::<4>(start, end, o)?;
    let len = oh[3] & 0x1f;
    if u16::from_be_bytes([oh[0], oh[1]]) != GENEVE_OPT_CLASS_CILIUM
        || oh[2] != GENEVE_OPT_TYPE_DSR
        || len + 1 > opt_words
    {
        return Some((inner, None));
    }
    let dsr = if len == GENEVE_OPT_DSR_LEN_V4 {
        let p = read::<8>(start, end, o + 4)?;
        let mut vip = [0u8; 16];
        vip[..4].copy_from_slice(&p[..4]);
        Some(Dsr {
            vip,
            port: u16::from_be_bytes([p[4], p[5]]),
            family: FAMILY_V4,
        })
    } else if len == GENEVE_OPT_DSR_LEN_V6 {
        let p = read::<20>(start, end, o + 4)?;
        let mut vip = [0u8; 16];
        vip.copy_from_slice(&p[..16]);
        Some(Dsr {
            vip,
            port: u16::from_be_bytes([p[16], p[17]]),
            family: datapath_common::FAMILY_V6,
        })
    } else {
        None
    };
    Some((inner, dsr))
}

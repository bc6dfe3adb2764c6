//! Address/port rewriting: DNAT of service packets to a backend (XDP, direct packet access) and
//! the reply source rewrite to VIP:port on the backend node (TC, with the kernel's checksum
//! helpers so offloaded `CHECKSUM_PARTIAL` packets stay right).

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    programs::TcContext,
};
use datapath_common::{FAMILY_V4, IPPROTO_TCP, IPPROTO_UDP, csum};

use crate::{
    csum::{replace_addr, update},
    parse::{Headers, read, write},
};

/// Offset of the L4 checksum for `proto`.
#[inline(always)]
fn l4_csum_off(h: &Headers) -> usize {
    if h.proto == IPPROTO_TCP {
        h.l4 + 16
    } else {
        h.l4 + 6
    }
}

/// Rewrites destination address and port to the backend's; fixes IPv4 and L4 checksums.
#[inline(always)]
pub fn dnat(start: usize, end: usize, h: &Headers, addr: &[u8; 16], port: u16) -> bool {
    let v4 = h.family == FAMILY_V4;
    let port_b = port.to_be_bytes();
    let old_port = u16::from_be_bytes(h.dport);
    if v4 {
        let new4 = [addr[0], addr[1], addr[2], addr[3]];
        let old4 = [h.daddr[0], h.daddr[1], h.daddr[2], h.daddr[3]];
        if !update(start, end, h.l3 + 10, |c| csum::replace32(c, old4, new4)) {
            return false;
        }
        if !write(start, end, h.l3 + 16, new4) {
            return false;
        }
    } else if !write(start, end, h.l3 + 24, *addr) {
        return false;
    }
    let off = l4_csum_off(h);
    let Some(c) = read::<2>(start, end, off) else {
        return false;
    };
    let check = u16::from_be_bytes(c);
    // UDP over IPv4 may carry no checksum (zero); leave it so.
    if !(h.proto == IPPROTO_UDP && v4 && check == 0) {
        let mut n = replace_addr(check, &h.daddr, addr, v4);
        n = csum::replace16(n, old_port, port);
        if h.proto == IPPROTO_UDP && n == 0 {
            n = 0xffff;
        }
        if !write(start, end, off, n.to_be_bytes()) {
            return false;
        }
    }
    write(start, end, h.l4 + 2, port_b)
}

/// Rewrites the source address and port of a reply (TC egress) to the service's.
#[inline(always)]
pub fn snat_tc(ctx: &TcContext, h: &Headers, vip: &[u8; 16], vport: u16) -> Result<(), i64> {
    let v4 = h.family == FAMILY_V4;
    let l4_off = l4_csum_off(h);
    let new_port = vport.to_be_bytes();
    // A zero UDP checksum means "none" and must stay zero.
    let mangled0 = if h.proto == IPPROTO_UDP {
        u64::from(BPF_F_MARK_MANGLED_0)
    } else {
        0
    };
    if v4 {
        let old = u32::from_ne_bytes([h.saddr[0], h.saddr[1], h.saddr[2], h.saddr[3]]);
        let new = u32::from_ne_bytes([vip[0], vip[1], vip[2], vip[3]]);
        ctx.l3_csum_replace(h.l3 + 10, u64::from(old), u64::from(new), 4)?;
        ctx.l4_csum_replace(
            l4_off,
            u64::from(old),
            u64::from(new),
            u64::from(BPF_F_PSEUDO_HDR) | mangled0 | 4,
        )?;
        ctx.store(h.l3 + 12, &[vip[0], vip[1], vip[2], vip[3]], 0)?;
    } else {
        let mut i = 0;
        while i < 16 {
            let old =
                u32::from_ne_bytes([h.saddr[i], h.saddr[i + 1], h.saddr[i + 2], h.saddr[i + 3]]);
            let new = u32::from_ne_bytes([vip[i], vip[i + 1], vip[i + 2], vip[i + 3]]);
            ctx.l4_csum_replace(
                l4_off,
                u64::from(old),
                u64::from(new),
                u64::from(BPF_F_PSEUDO_HDR) | mangled0 | 4,
            )?;
            i += 4;
        }
        ctx.store(h.l3 + 8, vip, 0)?;
    }
    let old_port = u16::from_ne_bytes(h.sport);
    let new_p = u16::from_ne_bytes(new_port);
    ctx.l4_csum_replace(l4_off, u64::from(old_port), u64::from(new_p), mangled0 | 2)?;
    ctx.store(h.l4, &new_port, 0)?;
    Ok(())
}

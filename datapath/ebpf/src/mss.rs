//! TCP MSS clamping of the SYN-ACKs a backend node sends for service flows (TC egress).
//!
//! Why here and not on the load balancer's SYN: with DSR, what the LB node encapsulates is the
//! client's traffic to the service, and the size of the client's segments is set by the MSS the
//! *backend* announces in its SYN-ACK, which leaves the backend node straight to the client and
//! never passes the LB node. Lowering the MSS option in the client's SYN (what the LB sees)
//! only shrinks the backend's segments to the client, which are not encapsulated; Linux does
//! not derive its SYN-ACK MSS from the SYN's. So the backend node's egress program, which
//! already rewrites the SYN-ACK's source to the service address, lowers its MSS option to
//! what fits the underlay once the LB node has added its headers:
//!
//! `MSS ≤ MTU − outer IP/UDP/Geneve (36 over IPv4, 56 over IPv6) − DSR option (12 IPv4, 24 IPv6)
//!        − inner Ethernet (14) − inner IP (20 or 40) − TCP (20)`
//!
//! (1398 for IPv4 on a 1500-byte IPv4 underlay, 1378 over IPv6; IPv6 services 1366 and 1346).
//! `MTU` is this node's `Config::mtu`, i.e. the underlay MTU is assumed to be the same on the
//! LB and backend nodes. The outer family is the one LB nodes use to reach this node: that of
//! its underlay address (`Config::node_addr6` set: IPv6; a node with both counts the larger). The DSR option is
//! counted although only a flow's first packets carry it, so that a flow an LB node has not seen
//! (moved by ECMP mid-flow) still fits; an inner VLAN tag (4 bytes more) is not. TCP options
//! in data segments need no room: senders subtract them from the MSS (RFC 6691).

use aya_ebpf::programs::TcContext;
use datapath_common::{Counter, FAMILY_V4};

use crate::{
    geneve::{dsr_option_len, outer_fixed},
    maps::count,
    parse::Headers,
};

/// TCP option kinds (RFC 9293 §3.2).
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
/// Options looked at before giving up: a SYN-ACK carries at most a handful (Linux writes MSS
/// first), and the verifier wants a bounded loop.
const MAX_OPTIONS: usize = 8;

/// The largest MSS whose segments fit an `mtu`-byte underlay once encapsulated in an outer
/// IPv6 (`outer6`) or IPv4 header, or `None` when the MTU is unknown (0) or too small to mean
/// anything.
#[inline(always)]
pub fn max_mss(mtu: u16, family: u8, outer6: bool) -> Option<u16> {
    let ip = if family == FAMILY_V4 { 20 } else { 40 };
    let overhead = outer_fixed(outer6) + dsr_option_len(family) + 14 + ip + 20;
    let mss = usize::from(mtu).checked_sub(overhead)?;
    if mss == 0 { None } else { Some(mss as u16) }
}

/// Lowers the MSS option of the TCP SYN(-ACK) described by `h` to `max`, fixing the checksum
/// with the kernel helper (right for offloaded `CHECKSUM_PARTIAL` packets too). Packet bytes are
/// read with `bpf_skb_load_bytes`, which takes any offset, so walking the options needs no
/// proof of bounds for the verifier.
#[inline(never)]
pub fn clamp(ctx: &TcContext, h: &Headers, max: u16) -> Result<(), i64> {
    let doff: u8 = ctx.load(h.l4 + 12)?;
    let opt_end = h.l4 + usize::from(doff >> 4) * 4;
    let mut off = h.l4 + 20;
    for _ in 0..MAX_OPTIONS {
        // The MSS option is 4 bytes: none can start later.
        if off + 4 > opt_end {
            return Ok(());
        }
        let kind: u8 = ctx.load(off)?;
        if kind == OPT_END {
            return Ok(());
        }
        if kind == OPT_NOP {
            off += 1;
            continue;
        }
        let opt: [u8; 4] = ctx.load(off)?;
        let len = usize::from(opt[1]);
        if kind == OPT_MSS {
            if len != 4 {
                return Ok(());
            }
            let old = u16::from_be_bytes([opt[2], opt[3]]);
            if old <= max {
                return Ok(());
            }
            let new = max.to_be_bytes();
            ctx.l4_csum_replace(
                h.l4 + 16,
                u64::from(u16::from_ne_bytes([opt[2], opt[3]])),
                u64::from(u16::from_ne_bytes(new)),
                2,
            )?;
            ctx.store(off + 2, &new, 0)?;
            count(Counter::MssClamped);
            return Ok(());
        }
        if len < 2 {
            return Ok(());
        }
        off += len;
    }
    Ok(())
}

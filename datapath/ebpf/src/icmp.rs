//! ICMP "too big" answers from the XDP load balancer: fragmentation-needed (IPv4, RFC 792 /
//! RFC 1191) and packet-too-big (IPv6, RFC 4443 §3.2) from the service address back to the
//! client, for packets that would not fit the underlay once encapsulated. The frame is turned
//! into the reply in place (head grown for the new headers, tail cut after the quote) and sent
//! back out with `XDP_TX`.
//!
//! We answer every oversize IPv4 packet, DF set or not: XDP cannot fragment, and dropping a
//! packet without DF silently black-holes it, whereas a source that gets fragmentation-needed
//! lowers its path MTU (Linux records it for non-DF traffic too) and fragments itself.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_csum_diff, bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use datapath_common::{FAMILY_V4, IPPROTO_ICMP, IPPROTO_ICMPV6, csum};

use crate::{
    lb::frame_len,
    parse::{Headers, ptr_at, read, write},
};

/// Bytes of the original IPv4 packet quoted when its header has no options: the header plus
/// the first 64 bits of its data (RFC 792).
const QUOTE_V4: usize = 20 + 8;
/// Bytes quoted when the header carries options: room for the longest header (60 bytes) plus
/// 64 bits of data. A fixed length keeps the checksum over a constant size the verifier can
/// follow; quoting more than the minimum is allowed (RFC 1812 §4.3.2.3).
const QUOTE_V4_OPTIONS: usize = 60 + 8;
/// Bytes of the original IPv6 packet quoted: the fixed header plus 8 bytes of data (RFC 4443
/// asks for "as much as possible"; this is what the client needs to find its socket).
const QUOTE_V6: usize = 40 + 8;

/// Answers the frame with fragmentation-needed / packet-too-big carrying `mtu`, the largest IP
/// packet that fits once encapsulated. Out of line: its frame is not live at the same time as
/// the balancer's (BPF allows 512 bytes of stack for the whole call chain).
#[inline(never)]
pub fn too_big(ctx: &XdpContext, h: &Headers, mtu: u16) -> u32 {
    if h.family != FAMILY_V4 {
        too_big_v6(ctx, h, mtu)
    } else if h.l4 == h.l3 + 20 {
        too_big_v4::<{ 8 + QUOTE_V4 }>(ctx, h, mtu)
    } else {
        too_big_v4::<{ 8 + QUOTE_V4_OPTIONS }>(ctx, h, mtu)
    }
}

/// Grows the head by `grow` bytes and writes the L2 header back to the sender. Returns the new
/// frame bounds.
#[inline(always)]
fn reply_l2(ctx: &XdpContext, l2_len: usize, grow: i32) -> Option<(usize, usize)> {
    let start = ctx.data();
    let end = ctx.data_end();
    let macs = read::<12>(start, end, 0)?;
    let tag = read::<6>(start, end, 12)?;
    // SAFETY: plain helper call on our own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -grow) } != 0 {
        return None;
    }
    let start = ctx.data();
    let end = ctx.data_end();
    let swapped = [
        macs[6], macs[7], macs[8], macs[9], macs[10], macs[11], macs[0], macs[1], macs[2], macs[3],
        macs[4], macs[5],
    ];
    if !write(start, end, 0, swapped) {
        return None;
    }
    if l2_len == 18 {
        if !write(start, end, 12, tag) {
            return None;
        }
    } else if !write(start, end, 12, [tag[0], tag[1]]) {
        return None;
    }
    Some((start, end))
}

/// The kernel's one's-complement sum (`bpf_csum_diff`) of `N` bytes (a multiple of 4) of packet
/// memory at `off`, added to `seed`. Sums are in the kernel's native-load convention; summing
/// on the stack instead makes LLVM spill past the 512-byte BPF stack.
#[inline(always)]
fn kernel_sum<const N: usize>(start: usize, end: usize, off: usize, seed: u32) -> Option<u32> {
    let p = ptr_at::<[u8; N]>(start, end, off)?;
    // SAFETY: `p` points at N bytes inside the packet (checked by `ptr_at`); the helper only
    // reads them.
    let s = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, p as *mut u32, N as u32, seed) };
    if s < 0 { None } else { Some(s as u32) }
}

/// Folds a native-convention sum and complements it, ready to store with `to_ne_bytes`.
#[inline(always)]
fn finish(sum: u32) -> [u8; 2] {
    (!csum::fold(sum)).to_ne_bytes()
}

/// Cuts the frame to `want` bytes and sends it back.
#[inline(always)]
fn trim_and_tx(ctx: &XdpContext, want: usize) -> u32 {
    let have = frame_len(ctx);
    // SAFETY: plain helper call on our own context.
    if want < have && unsafe { bpf_xdp_adjust_tail(ctx.ctx, want as i32 - have as i32) } != 0 {
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_TX
}

/// IPv4 fragmentation-needed, `MSG` bytes of ICMP message: the 8-byte ICMP header and a quote
/// of the original packet (its header, options included, and at least 64 bits of its data).
#[inline(always)]
fn too_big_v4<const MSG: usize>(ctx: &XdpContext, h: &Headers, mtu: u16) -> u32 {
    let l2 = h.l2_len;
    let Some((start, end)) = reply_l2(ctx, l2, 28) else {
        return xdp_action::XDP_DROP;
    };
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + MSG) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = IPPROTO_ICMP;
    ip[12..16].copy_from_slice(&h.daddr[..4]);
    ip[16..20].copy_from_slice(&h.saddr[..4]);
    let c = csum::ipv4_header(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    // Type 3 (unreachable), code 4 (fragmentation needed and DF set), next-hop MTU (RFC 1191).
    let m = mtu.to_be_bytes();
    let icmp = [3u8, 4, 0, 0, 0, 0, m[0], m[1]];
    if !write(start, end, l2, ip) || !write(start, end, l2 + 20, icmp) {
        return xdp_action::XDP_DROP;
    }
    let Some(sum) = kernel_sum::<MSG>(start, end, l2 + 20, 0) else {
        return xdp_action::XDP_DROP;
    };
    if !write(start, end, l2 + 22, finish(sum)) {
        return xdp_action::XDP_DROP;
    }
    trim_and_tx(ctx, l2 + 20 + MSG)
}

/// IPv6 packet-too-big.
#[inline(always)]
fn too_big_v6(ctx: &XdpContext, h: &Headers, mtu: u16) -> u32 {
    let l2 = h.l2_len;
    let Some((start, end)) = reply_l2(ctx, l2, 48) else {
        return xdp_action::XDP_DROP;
    };
    let qoff = l2 + 48;
    let plen = (8 + QUOTE_V6) as u16;
    let mut ip = [0u8; 8];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&plen.to_be_bytes());
    ip[6] = IPPROTO_ICMPV6;
    ip[7] = 64;
    let m = mtu.to_be_bytes();
    // Type 2 (packet too big), code 0, checksum (below), MTU (32 bits).
    let icmp = [2u8, 0, 0, 0, 0, 0, m[0], m[1]];
    if !write(start, end, l2, ip)
        || !write(start, end, l2 + 8, h.daddr)
        || !write(start, end, l2 + 24, h.saddr)
        || !write(start, end, l2 + 40, icmp)
    {
        return xdp_action::XDP_DROP;
    }
    // Pseudo-header: upper-layer length and next header (as 32-bit network-order words), then
    // the two addresses, then the ICMPv6 message itself.
    let seed = u32::from_ne_bytes(u32::from(plen).to_be_bytes())
        .wrapping_add(u32::from_ne_bytes(u32::from(IPPROTO_ICMPV6).to_be_bytes()));
    let Some(sum) = kernel_sum::<32>(start, end, l2 + 8, seed) else {
        return xdp_action::XDP_DROP;
    };
    let Some(sum) = kernel_sum::<{ 8 + QUOTE_V6 }>(start, end, l2 + 40, sum) else {
        return xdp_action::XDP_DROP;
    };
    if !write(start, end, l2 + 42, finish(sum)) {
        return xdp_action::XDP_DROP;
    }
    trim_and_tx(ctx, qoff + QUOTE_V6)
}

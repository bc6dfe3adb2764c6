//! The XDP load balancer: service lookup, Maglev backend choice, DNAT, Geneve DSR encapsulation
//! and XDP_TX, or DNAT and pass for a local backend; ICMP "too big" (`icmp.rs`) when
//! encapsulation would exceed the uplink MTU.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_xdp_adjust_head, bpf_xdp_get_buff_len},
    programs::XdpContext,
};
use datapath_common::{
    BE_F_LOCAL, BE_F_NODE_V6, BackendValue, Counter, ETH_P_IP, FAMILY_V4, FlowKey, FlowKey4,
    FlowValue, IPPROTO_TCP, IPPROTO_UDP, RevNatValue, ServiceKey, ServiceKey4, ServiceValue,
    svc4_filter_slot,
};

use crate::{
    geneve::{self, Encap},
    icmp, maglev,
    maps::{
        BACKENDS, CONFIG, FLOWS, FLOWS4_TCP, FLOWS4_UDP, REVNAT_NEW, SCRATCH, SERVICES, SERVICES4,
        SVC4_FILTER, count, count_service,
    },
    nat,
    parse::{self, Headers, Skip, read},
};

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// The frame length, from the kernel: the verifier rejects arithmetic on `data_end`, which is
/// what `data_end - data` becomes once LLVM narrows it.
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    // SAFETY: plain helper call on our own context.
    unsafe { bpf_xdp_get_buff_len(ctx.ctx) as usize }
}

/// The backend with id `id`, if that slot is in use. A reference into the array map, not a
/// copy: array values are never freed, and the 32-byte value (2-byte aligned) would otherwise
/// be copied with 16 load/store pairs on every packet. User space rewrites a slot in place, so
/// a packet racing an update may see a mix of both values either way.
#[inline(always)]
fn backend(id: u32) -> Option<&'static BackendValue> {
    BACKENDS.get(id).filter(|b| b.family != 0)
}

/// The service the packet is addressed to. Every IP packet on the uplink pays this lookup.
#[inline(always)]
fn service(h: &Headers) -> Option<ServiceValue> {
    if h.family != FAMILY_V4 {
        return service6(h);
    }
    let key = ServiceKey4 {
        addr: [h.daddr[0], h.daddr[1], h.daddr[2], h.daddr[3]],
        port: u16::from_be_bytes(h.dport),
        proto: h.proto,
        _pad: 0,
    };
    // SAFETY: the value is copied out at once; hash map values are freed by RCU only after this
    // program returns.
    unsafe { SERVICES4.get(&key) }.copied()
}

/// True for untagged IPv4 TCP/UDP frames that `parse` accepts and whose service prefilter
/// bit (`HERALD_SVC4F`) is clear, i.e. frames the service lookup would miss: the common
/// non-service frame leaves after a handful of loads and an inlined array lookup, without
/// building `Headers` and without the kernel's jhash and bucket walk. Anything else (tagged,
/// IPv6, fragments, truncated, a set bit) takes the full path, which classifies it as before;
/// the filter is only ever a shortcut, so the full path does not consult it again.
#[inline(always)]
fn filtered_out_v4(start: usize, end: usize) -> bool {
    let Some(t) = read::<2>(start, end, 12) else {
        return false;
    };
    if u16::from_be_bytes(t) != ETH_P_IP {
        return false;
    }
    let Some(ip) = read::<20>(start, end, 14) else {
        return false;
    };
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || (u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff) != 0 {
        return false;
    }
    let l4 = 14 + ihl;
    let complete = if ip[9] == IPPROTO_TCP {
        read::<20>(start, end, l4).is_some()
    } else if ip[9] == IPPROTO_UDP {
        read::<8>(start, end, l4).is_some()
    } else {
        false
    };
    let Some(dport) = read::<2>(start, end, l4 + 2).filter(|_| complete) else {
        return false;
    };
    let slot = svc4_filter_slot(
        [ip[16], ip[17], ip[18], ip[19]],
        u16::from_be_bytes(dport),
        ip[9],
    );
    SVC4_FILTER
        .get(slot >> 6)
        .is_some_and(|w| w & (1u64 << (slot & 63)) == 0)
}

/// IPv6 service lookup. Out of line so that LLVM cannot merge it with the IPv4 lookup into one
/// call site fed by either map: the verifier inlines a map lookup only when each call site sees
/// a single map.
#[inline(never)]
fn service6(h: &Headers) -> Option<ServiceValue> {
    let key = ServiceKey {
        addr: h.daddr,
        port: u16::from_be_bytes(h.dport),
        proto: h.proto,
        family: h.family,
    };
    // SAFETY: as in `service`.
    unsafe { SERVICES.get(&key) }.copied()
}

/// The IPv4 flow-map key of a packet.
#[inline(always)]
fn flow_key4(h: &Headers) -> FlowKey4 {
    FlowKey4 {
        saddr: [h.saddr[0], h.saddr[1], h.saddr[2], h.saddr[3]],
        daddr: [h.daddr[0], h.daddr[1], h.daddr[2], h.daddr[3]],
        sport: h.sport,
        dport: h.dport,
    }
}

/// The IPv6 flow-map key of a packet.
#[inline(always)]
fn flow_key6(h: &Headers) -> FlowKey {
    FlowKey {
        saddr: h.saddr,
        daddr: h.daddr,
        sport: u16::from_be_bytes(h.sport),
        dport: u16::from_be_bytes(h.dport),
        proto: h.proto,
        family: h.family,
        _pad: [0; 2],
    }
}

/// The backend this node remembers for the packet's flow. IPv4 flows are in per-protocol maps
/// with a 12-byte key (the kernel hashes the whole key on every lookup), IPv6 flows in the
/// 40-byte one. TCP, the common case, is looked up inline; the others out of line, so each call
/// site sees a single map (see `service6`).
#[inline(always)]
fn flow_backend(h: &Headers) -> Option<u32> {
    if h.family != FAMILY_V4 {
        return flow_backend6(h);
    }
    if h.proto != IPPROTO_TCP {
        return flow_backend4_udp(h);
    }
    // SAFETY: the value is copied out at once; LRU values are freed by RCU only after this
    // program returns.
    unsafe { FLOWS4_TCP.get(&flow_key4(h)) }.map(|f| f.backend)
}

/// IPv4 UDP flow lookup (out of line: see `flow_backend`).
#[inline(never)]
fn flow_backend4_udp(h: &Headers) -> Option<u32> {
    // SAFETY: as in `flow_backend`.
    unsafe { FLOWS4_UDP.get(&flow_key4(h)) }.map(|f| f.backend)
}

/// IPv6 flow lookup, out of line so its 40-byte key is not on `balance`'s stack frame (BPF allows
/// 512 bytes for the whole call chain), and so its call site stays apart from the IPv4 ones.
#[inline(never)]
fn flow_backend6(h: &Headers) -> Option<u32> {
    // SAFETY: as in `flow_backend`.
    unsafe { FLOWS.get(&flow_key6(h)) }.map(|f| f.backend)
}

/// Remembers the backend chosen for the packet's flow (best effort: a full LRU evicts). Once
/// per flow, so out of line, off `balance`'s stack frame.
#[inline(never)]
fn remember_flow(h: &Headers, backend: u32) {
    let v = FlowValue { backend };
    let _ = if h.family != FAMILY_V4 {
        FLOWS.insert(&flow_key6(h), &v, 0)
    } else if h.proto == IPPROTO_TCP {
        FLOWS4_TCP.insert(&flow_key4(h), &v, 0)
    } else {
        FLOWS4_UDP.insert(&flow_key4(h), &v, 0)
    };
}

/// Records the reverse-NAT entry for a flow DNATed to a local backend, keyed the way the
/// egress TC program sees the reply (backend → client). Once per flow, so out of line. Into the
/// not-yet-answered map, as for decapsulated flows: the egress program moves it to the
/// established map on the backend's first established reply, so a SYN flood to the service
/// cannot evict established flows' entries.
#[inline(never)]
fn remember_revnat(h: &Headers, be: &BackendValue) {
    let key = FlowKey {
        saddr: be.addr,
        daddr: h.saddr,
        sport: be.port,
        dport: u16::from_be_bytes(h.sport),
        proto: h.proto,
        family: h.family,
        _pad: [0; 2],
    };
    let value = RevNatValue {
        vip: h.daddr,
        port: u16::from_be_bytes(h.dport),
        family: h.family,
        _pad: 0,
    };
    let _ = REVNAT_NEW.insert(&key, &value, 0);
}

/// What the balancing step decided.
enum Plan {
    /// Return this XDP action as is.
    Verdict(u32),
    /// Encapsulate as described in the `Encap` filled in by the step.
    Encap,
    /// Answer with ICMP too-big carrying this MTU.
    TooBig(u16),
}

/// Runs the load balancer on one frame and returns the XDP verdict. The work is split into
/// out-of-line steps whose stack frames are never live at the same time (BPF allows 512 bytes
/// for the whole call chain).
#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    run_pushed(ctx).0
}

/// [`run`], also returning how many bytes the Geneve encapsulation pushed in front of the frame
/// (0 when it did not encapsulate). Only the benchmark twin uses the length; in [`run`] it is
/// dead code and compiled away.
#[inline(always)]
pub fn run_pushed(ctx: &XdpContext) -> (u32, usize) {
    count(Counter::XdpRx);
    if filtered_out_v4(ctx.data(), ctx.data_end()) {
        count(Counter::NotService);
        return (xdp_action::XDP_PASS, 0);
    }
    let h = match parse::parse(ctx.data(), ctx.data_end(), 0) {
        Ok(h) => h,
        Err(Skip::Other) => {
            count(Counter::NotService);
            return (xdp_action::XDP_PASS, 0);
        }
        Err(Skip::Unsupported) => {
            count(Counter::PassUnsupported);
            return (xdp_action::XDP_PASS, 0);
        }
        Err(Skip::Malformed) => {
            count(Counter::Malformed);
            return (xdp_action::XDP_PASS, 0);
        }
    };
    // Every IP packet pays the service lookup; the rest of the balancer (an out-of-line call,
    // which costs a return thunk under SRSO mitigations) runs only for service packets.
    let Some(svc) = service(&h) else {
        count(Counter::NotService);
        return (xdp_action::XDP_PASS, 0);
    };
    // The encapsulation plan lives in a per-CPU scratch slot, not on the stack.
    let Some(e) = SCRATCH.get_ptr_mut(0) else {
        return (xdp_action::XDP_PASS, 0);
    };
    // SAFETY: per-CPU slot owned by this program run; XDP programs do not nest on a CPU.
    let e = unsafe { &mut *e };
    e.l2_len = h.l2_len;
    e.family = h.family;
    e.with_opt = false;
    e.vip = h.daddr;
    e.vport = u16::from_be_bytes(h.dport);
    match balance(ctx, &h, &svc, e) {
        Plan::Verdict(v) => (v, 0),
        Plan::Encap => {
            let v = transmit(ctx, e);
            let pushed = if v == xdp_action::XDP_TX {
                e.push_len()
            } else {
                0
            };
            (v, pushed)
        }
        Plan::TooBig(mtu) => {
            count(Counter::IcmpTooBig);
            (icmp::too_big(ctx, &h, mtu), 0)
        }
    }
}

/// Backend choice, flow memory and DNAT for a packet to `svc`. Fills `e` when the frame is to be
/// encapsulated.
#[inline(never)]
fn balance(ctx: &XdpContext, h: &Headers, svc: &ServiceValue, e: &mut Encap) -> Plan {
    let start = ctx.data();
    let end = ctx.data_end();
    let Some(cfg) = CONFIG.get(0) else {
        return Plan::Verdict(xdp_action::XDP_PASS);
    };
    let hash = maglev::flow_hash(h, svc, cfg.jhash_v4, cfg.jhash_v6);
    // A flow this node has seen keeps its backend while that backend exists, even if the table
    // changed under it; a new flow gets the Maglev choice and is remembered.
    let known = flow_backend(h);
    // One backend lookup per packet: the remembered backend if it still exists (the hot path
    // for established flows), else the Maglev choice.
    let mut seen = false;
    let mut be_id = 0;
    let mut found = None;
    if let Some(id) = known {
        found = backend(id);
        if found.is_some() {
            seen = true;
            be_id = id;
        }
    }
    if !seen {
        match maglev::select(svc, hash, cfg.maglev_m) {
            Some(id) if svc.backends > 0 => be_id = id,
            _ => {
                count(Counter::DropNoBackend);
                return Plan::Verdict(xdp_action::XDP_DROP);
            }
        }
        found = backend(be_id);
    }
    let Some(be) = found else {
        count(Counter::DropNoBackend);
        return Plan::Verdict(xdp_action::XDP_DROP);
    };
    if be.family != h.family {
        count(Counter::DropNoBackend);
        return Plan::Verdict(xdp_action::XDP_DROP);
    }
    let frame_len = frame_len(ctx);
    count_service(svc.id, frame_len as u64);

    if be.flags & BE_F_LOCAL != 0 {
        if !seen {
            remember_flow(h, be_id);
            // The reply leaves this node through the stack: the egress TC program turns its
            // source back into the service address, as it does for decapsulated flows.
            remember_revnat(h, be);
        }
        if !nat::dnat(start, end, h, &be.addr, be.port) {
            count(Counter::Malformed);
            return Plan::Verdict(xdp_action::XDP_PASS);
        }
        count(Counter::Local);
        return Plan::Verdict(xdp_action::XDP_PASS);
    }

    // The DSR option rides on TCP SYNs, every non-TCP packet, and the first packet of a flow this
    // node has not seen (another LB node may have carried its SYN before an ECMP change).
    let syn = h.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    e.with_opt = h.proto != IPPROTO_TCP || syn || !seen;
    // The outer family is the backend node's underlay family.
    e.outer6 = be.flags & BE_F_NODE_V6 != 0;
    let outer = e.outer_fixed() + e.opt_len();
    if outer + frame_len > usize::from(cfg.mtu) {
        let overhead = outer + h.l2_len;
        return Plan::TooBig(usize::from(cfg.mtu).saturating_sub(overhead) as u16);
    }
    if !seen {
        remember_flow(h, be_id);
    }
    if h.l2_len == 18
        && let Some(tci) = read::<2>(start, end, 14)
    {
        e.vlan_tci = tci;
    }
    if !nat::dnat(start, end, h, &be.addr, be.port) {
        count(Counter::Malformed);
        return Plan::Verdict(xdp_action::XDP_PASS);
    }
    e.dst_mac = be.next_hop_mac;
    e.src_mac = cfg.node_mac;
    if e.outer6 {
        e.src_ip6 = cfg.node_addr6;
        e.dst_ip6 = be.node_addr6;
    } else {
        e.src_ip = cfg.node_addr;
        e.dst_ip = be.node_addr;
    }
    e.inner_len = frame_len;
    e.hash = hash;
    Plan::Encap
}

/// Makes room for the outer headers, writes them and bounces the frame out. Inline: its frame
/// is small, and a bpf-to-bpf call costs a return thunk per packet under SRSO mitigations.
#[inline(always)]
fn transmit(ctx: &XdpContext, e: &Encap) -> u32 {
    let opt_len = e.opt_len();
    let push = e.push_len() as i32;
    // SAFETY: plain helper call on our own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -push) } != 0 {
        count(Counter::DropInternal);
        return xdp_action::XDP_DROP;
    }
    if !geneve::write_outer(ctx.data(), ctx.data_end(), e) {
        count(Counter::DropInternal);
        return xdp_action::XDP_DROP;
    }
    count(Counter::Encap);
    if opt_len > 0 {
        count(Counter::DsrOption);
    }
    xdp_action::XDP_TX
}

//! Builders for the frames this crate sends: ARP packets and ICMPv6 NS/NA inside Ethernet, with
//! optional 802.1Q tags, padded to the 60-byte Ethernet minimum. Shared by [`crate::decide`]
//! (replies) and [`crate::takeover`] (gratuitous ARP, unsolicited NA). Pure; no I/O.

use std::net::Ipv6Addr;

use crate::wire::ethernet::{self, EtherType, EthernetAddress, EthernetRepr, Frame};
use crate::wire::ipv6::{self, Ipv6Repr, NEXT_HEADER_ICMPV6};
use crate::wire::vlan::{self, VlanRepr};
use crate::wire::{ArpRepr, NdiscRepr, arp};

/// Minimum Ethernet frame length without the FCS.
pub const MIN_FRAME_LEN: usize = 60;

/// Hop limit of every neighbor discovery message (RFC 4861 §7.1).
pub const NDISC_HOP_LIMIT: u8 = 255;

/// A VLAN tag to put on an outgoing frame: TPID (0x8100 or 0x88A8), priority, DEI and VLAN id.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Tag {
    /// 0x8100 (802.1Q) or 0x88A8 (802.1ad).
    pub tpid: EtherType,
    /// Priority code point.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN id.
    pub vid: u16,
}

/// Writes Ethernet + tags + `ethertype`, returning the buffer with the payload still to append.
fn header(
    src: EthernetAddress,
    dst: EthernetAddress,
    tags: &[Tag],
    ethertype: EtherType,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(MIN_FRAME_LEN);
    let mut eth = [0u8; ethernet::HEADER_LEN];
    let first = tags.first().map_or(ethertype, |t| t.tpid);
    EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype: first,
    }
    .emit(&mut Frame::new_unchecked(&mut eth[..]));
    buf.extend_from_slice(&eth);
    for (i, tag) in tags.iter().enumerate() {
        let inner = tags.get(i + 1).map_or(ethertype, |t| t.tpid);
        let mut t = [0u8; vlan::HEADER_LEN];
        VlanRepr {
            pcp: tag.pcp,
            dei: tag.dei,
            vid: tag.vid,
            ethertype: inner,
        }
        .emit(&mut t);
        buf.extend_from_slice(&t);
    }
    buf
}

fn pad(mut buf: Vec<u8>) -> Vec<u8> {
    if buf.len() < MIN_FRAME_LEN {
        buf.resize(MIN_FRAME_LEN, 0);
    }
    buf
}

/// An ARP packet in an Ethernet frame.
pub fn arp_frame(
    src: EthernetAddress,
    dst: EthernetAddress,
    tags: &[Tag],
    arp: &ArpRepr,
) -> Vec<u8> {
    let mut buf = header(src, dst, tags, EtherType::Arp);
    let mut packet = [0u8; arp::PACKET_LEN];
    arp.emit(&mut packet);
    buf.extend_from_slice(&packet);
    pad(buf)
}

/// An ICMPv6 neighbor discovery message in IPv6 (hop limit 255) in an Ethernet frame.
pub fn ndisc_frame(
    src: EthernetAddress,
    dst: EthernetAddress,
    tags: &[Tag],
    ip_src: Ipv6Addr,
    ip_dst: Ipv6Addr,
    msg: &NdiscRepr,
) -> Vec<u8> {
    let mut buf = header(src, dst, tags, EtherType::Ipv6);
    let mut icmp = vec![0u8; msg.buffer_len()];
    msg.emit(&mut icmp, ip_src, ip_dst);
    let mut ip = [0u8; ipv6::HEADER_LEN];
    Ipv6Repr {
        src_addr: ip_src,
        dst_addr: ip_dst,
        next_header: NEXT_HEADER_ICMPV6,
        payload_len: icmp.len() as u16,
        hop_limit: NDISC_HOP_LIMIT,
    }
    .emit(&mut ip);
    buf.extend_from_slice(&ip);
    buf.extend_from_slice(&icmp);
    pad(buf)
}

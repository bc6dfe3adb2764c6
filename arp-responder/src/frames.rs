//! Builders for the frames this crate sends: ARP packets and ICMPv6 NS/NA inside Ethernet, with
//! optional 802.1Q tags, padded to the 60-byte Ethernet minimum. Shared by [`crate::decide`]
//! (replies) and [`crate::takeover`] (gratuitous ARP, unsolicited NA). Pure; no I/O.

use std::net::Ipv6Addr;

use crate::wire::ethernet::{self, EtherType, EthernetAddress, EthernetRepr, Frame};
use crate::wire::ipv6::{self, Ipv6Repr, NEXT_HEADER_ICMPV6};
use crate::wire::vlan::{self, VlanRepr};
use crate::wire::{ArpRepr, NdiscRepr};

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
    let mut buf = vec![0u8; ethernet::HEADER_LEN + tags.len() * vlan::HEADER_LEN];
    let first = tags.first().map_or(ethertype, |t| t.tpid);
    EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype: first,
    }
    .emit(&mut Frame::new_unchecked(&mut buf[..]));
    for (i, tag) in tags.iter().enumerate() {
        let inner = tags.get(i + 1).map_or(ethertype, |t| t.tpid);
        let at = ethernet::HEADER_LEN + i * vlan::HEADER_LEN;
        VlanRepr {
            pcp: tag.pcp,
            dei: tag.dei,
            vid: tag.vid,
            ethertype: inner,
        }
        .emit(&mut buf[at..]);
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
    let at = buf.len();
    buf.resize(at + arp.buffer_len(), 0);
    arp.emit(&mut buf[at..]);
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
    let at = buf.len();
    let len = msg.buffer_len();
    buf.resize(at + ipv6::HEADER_LEN + len, 0);
    Ipv6Repr {
        src_addr: ip_src,
        dst_addr: ip_dst,
        next_header: NEXT_HEADER_ICMPV6,
        payload_len: len as u16,
        hop_limit: NDISC_HOP_LIMIT,
    }
    .emit(&mut buf[at..]);
    msg.emit(&mut buf[at + ipv6::HEADER_LEN..], ip_src, ip_dst);
    pad(buf)
}

//! The reply decision: given one received frame, the interface it arrived on and the VIPs this
//! node leads there, either build the reply or name why the frame is dropped. A pure function of
//! its inputs: no sockets, no clocks, no shared state. The I/O driver calls it per frame.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::frames::{Tag, arp_frame, ndisc_frame};
use crate::wire::ethernet::{EtherType, EthernetAddress, Frame};
use crate::wire::ipv6::{
    self, ALL_NODES, Ipv6Repr, NEXT_HEADER_ICMPV6, multicast_mac, solicited_node,
};
use crate::wire::ndisc::NeighborFlags;
use crate::wire::vlan::{self, VlanRepr};
use crate::wire::{ArpOperation, ArpRepr, NdiscRepr, arp};

/// Most VLAN tags we look through (802.1ad outer + 802.1Q inner).
const MAX_TAGS: usize = 2;

/// What [`decide`] needs to know about the receiving interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Interface name, for logs.
    pub name: String,
    /// The interface's MAC address: replies carry it.
    pub mac: EthernetAddress,
    /// Whether the interface is selected by the include/exclude rules.
    pub selected: bool,
}

/// Why a frame got no reply.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum DropReason {
    /// The interface is not selected for announcements.
    InterfaceNotSelected,
    /// The frame failed to decode.
    Malformed,
    /// We sent it (our own MAC as source).
    OwnFrame,
    /// Neither ARP nor ICMPv6 (or IPv6 with extension headers before ICMPv6).
    NotNeighborDiscovery,
    /// An ARP reply, an NA or another ICMPv6 type: nothing to answer.
    NotRequest,
    /// A gratuitous ARP (sender and target address equal): an announcement, not a question.
    Gratuitous,
    /// Breaks a validity rule of RFC 4861 §7.1.1 (hop limit, DAD destination or options).
    InvalidNdisc,
    /// A source address that must not be answered (multicast sender).
    BadSource,
    /// The target address is not a VIP this node leads on this interface.
    NotLed,
}

/// The outcome for one received frame.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Decision {
    /// Send these bytes on the same interface; `vip` is the address answered for.
    Reply {
        /// The whole reply frame.
        frame: Vec<u8>,
        /// The VIP answered for.
        vip: IpAddr,
    },
    /// Send nothing.
    Drop(DropReason),
}

/// Decides how to answer `frame`, received on `iface`, given the VIPs this node leads there.
///
/// Answers ARP requests (including RFC 5227 probes from 0.0.0.0) and IPv6 Neighbor Solicitations
/// for led VIPs. DAD probes (source ::) are answered with an NA to all-nodes (RFC 4861 §7.2.4,
/// RFC 4862 §5.4.3); other solicitations with a solicited NA to the sender. A request that
/// arrived with VLAN tags is answered with the same tags.
pub fn decide(frame: &[u8], iface: &InterfaceInfo, led: &BTreeSet<IpAddr>) -> Decision {
    use Decision::Drop;
    if !iface.selected {
        return Drop(DropReason::InterfaceNotSelected);
    }
    let Ok(eth) = Frame::new_checked(frame) else {
        return Drop(DropReason::Malformed);
    };
    if eth.src_addr() == iface.mac {
        return Drop(DropReason::OwnFrame);
    }
    let mut tags: Vec<Tag> = Vec::new();
    let mut ethertype = eth.ethertype();
    let mut payload = eth.payload();
    while matches!(ethertype, EtherType::Vlan | EtherType::QinQ) {
        if tags.len() == MAX_TAGS {
            return Drop(DropReason::NotNeighborDiscovery);
        }
        let Ok(tag) = VlanRepr::parse(&vlan::Packet::new_unchecked(payload)) else {
            return Drop(DropReason::Malformed);
        };
        tags.push(Tag {
            tpid: ethertype,
            pcp: tag.pcp,
            dei: tag.dei,
            vid: tag.vid,
        });
        ethertype = tag.ethertype;
        payload = payload.get(vlan::HEADER_LEN..).unwrap_or(&[]);
    }
    match ethertype {
        EtherType::Arp => decide_arp(payload, eth.src_addr(), &tags, iface, led),
        EtherType::Ipv6 => decide_ndisc(payload, eth.src_addr(), &tags, iface, led),
        _ => Drop(DropReason::NotNeighborDiscovery),
    }
}

fn decide_arp(
    payload: &[u8],
    eth_src: EthernetAddress,
    tags: &[Tag],
    iface: &InterfaceInfo,
    led: &BTreeSet<IpAddr>,
) -> Decision {
    use Decision::Drop;
    let Ok(req) = arp::Packet::new_checked(payload).and_then(|p| ArpRepr::parse(&p)) else {
        return Drop(DropReason::Malformed);
    };
    if req.operation != ArpOperation::Request {
        return Drop(DropReason::NotRequest);
    }
    if req.source_protocol_addr == req.target_protocol_addr {
        return Drop(DropReason::Gratuitous);
    }
    if !req.source_hardware_addr.is_unicast() || !eth_src.is_unicast() {
        return Drop(DropReason::BadSource);
    }
    let vip = IpAddr::V4(req.target_protocol_addr);
    if !led.contains(&vip) {
        return Drop(DropReason::NotLed);
    }
    // Answer the sender hardware address; for an RFC 5227 probe (sender 0.0.0.0) the reply's target
    // protocol address is 0.0.0.0 as well, which tells the prober the address is taken.
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: iface.mac,
        source_protocol_addr: req.target_protocol_addr,
        target_hardware_addr: req.source_hardware_addr,
        target_protocol_addr: req.source_protocol_addr,
    };
    Decision::Reply {
        frame: arp_frame(iface.mac, req.source_hardware_addr, tags, &reply),
        vip,
    }
}

fn decide_ndisc(
    payload: &[u8],
    eth_src: EthernetAddress,
    tags: &[Tag],
    iface: &InterfaceInfo,
    led: &BTreeSet<IpAddr>,
) -> Decision {
    use Decision::Drop;
    let Ok(ip) =
        ipv6::Packet::new_checked(payload).and_then(|p| Ipv6Repr::parse(&p).map(|r| (p, r)))
    else {
        return Drop(DropReason::Malformed);
    };
    let (packet, hdr) = ip;
    if hdr.next_header != NEXT_HEADER_ICMPV6 {
        return Drop(DropReason::NotNeighborDiscovery);
    }
    let icmp = packet.payload();
    if icmp.first() != Some(&crate::wire::ndisc::TYPE_NEIGHBOR_SOLICIT) {
        return Drop(DropReason::NotRequest);
    }
    let Ok(msg) = NdiscRepr::parse(icmp, hdr.src_addr, hdr.dst_addr) else {
        return Drop(DropReason::Malformed);
    };
    let NdiscRepr::NeighborSolicit {
        target_addr,
        lladdr,
    } = msg
    else {
        return Drop(DropReason::NotRequest);
    };
    // RFC 4861 §7.1.1: "The IP Hop Limit field has a value of 255".
    if hdr.hop_limit != 255 {
        return Drop(DropReason::InvalidNdisc);
    }
    if hdr.src_addr.is_multicast() || !eth_src.is_unicast() {
        return Drop(DropReason::BadSource);
    }
    let vip = IpAddr::V6(target_addr);
    if !led.contains(&vip) {
        return Drop(DropReason::NotLed);
    }
    let flags_dad = NeighborFlags {
        router: false,
        solicited: false,
        override_: true,
    };
    if hdr.src_addr.is_unspecified() {
        // RFC 4861 §7.1.1: "If the IP source address is the unspecified address, the IP
        // destination address is a solicited-node multicast address" and "there is no source
        // link-layer address option in the message."
        if hdr.dst_addr != solicited_node(target_addr) || lladdr.is_some() {
            return Drop(DropReason::InvalidNdisc);
        }
        // RFC 4861 §7.2.4: "If the source of the solicitation is the unspecified address, the node
        // MUST set the Solicited flag to zero and multicast the advertisement to the all-nodes
        // address."
        let na = NdiscRepr::NeighborAdvert {
            flags: flags_dad,
            target_addr,
            lladdr: Some(iface.mac),
        };
        let frame = ndisc_frame(
            iface.mac,
            multicast_mac(ALL_NODES),
            tags,
            target_addr,
            ALL_NODES,
            &na,
        );
        return Decision::Reply { frame, vip };
    }
    // "Otherwise, the node MUST set the Solicited flag to one and unicast the advertisement to the
    // Source Address of the solicitation."
    let flags = NeighborFlags {
        router: false,
        solicited: true,
        override_: true,
    };
    let na = NdiscRepr::NeighborAdvert {
        flags,
        target_addr,
        lladdr: Some(iface.mac),
    };
    let dst_mac = lladdr.unwrap_or(eth_src);
    Decision::Reply {
        frame: ndisc_frame(iface.mac, dst_mac, tags, target_addr, hdr.src_addr, &na),
        vip,
    }
}

/// Convenience for callers holding an IPv4 VIP set.
pub fn led_set(vips: impl IntoIterator<Item = IpAddr>) -> BTreeSet<IpAddr> {
    vips.into_iter().collect()
}

/// The IPv4 unspecified address, as ARP probes carry it.
pub const PROBE_SENDER: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

/// Whether `addr` is a usable IPv6 VIP (not multicast, unspecified or loopback).
pub fn is_valid_v6_vip(addr: Ipv6Addr) -> bool {
    !(addr.is_multicast() || addr.is_unspecified() || addr.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::EthernetRepr;
    use crate::wire::ndisc;
    use proptest::prelude::*;

    /// scapy: `Ether(src="02:00:00:00:00:02", dst="33:33:ff:00:00:10")/IPv6(src="fd00::2",
    /// dst="ff02::1:ff00:10")/ICMPv6ND_NS(tgt="fd00::10")/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:02")`
    const SCAPY_NS: &str = "3333ff00001002000000000286dd6000000000203afffd000000000000000000000000000002ff0200000000000000000001ff00001087007d7900000000fd0000000000000000000000000000100101020000000002";
    /// scapy: `Ether(src="02:00:00:00:00:02", dst="ff:ff:ff:ff:ff:ff")/Dot1Q(vlan=100, prio=3)/
    /// ARP(op=1, hwsrc="02:00:00:00:00:02", psrc="10.0.0.2", pdst="10.0.0.1")`
    const SCAPY_TAGGED_ARP: &str = "ffffffffffff02000000000281006064080600010800060400010200000000020a0000020000000000000a000001";

    const CLIENT: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const NODE: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xaa]);

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn iface() -> InterfaceInfo {
        InterfaceInfo {
            name: "eth0".into(),
            mac: NODE,
            selected: true,
        }
    }

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().expect("ipv4"))
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().expect("ipv6"))
    }

    fn arp_request(target: &str) -> Vec<u8> {
        let req = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: CLIENT,
            source_protocol_addr: "10.0.0.2".parse().expect("ipv4"),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target.parse().expect("ipv4"),
        };
        arp_frame(CLIENT, EthernetAddress::BROADCAST, &[], &req)
    }

    fn parse_arp_reply(frame: &[u8], tags: usize) -> (EthernetRepr, ArpRepr) {
        let eth = Frame::new_checked(frame).expect("eth");
        let at = tags * vlan::HEADER_LEN;
        let arp = ArpRepr::parse(&arp::Packet::new_checked(&eth.payload()[at..]).expect("arp"))
            .expect("arp");
        (EthernetRepr::parse(&eth).expect("eth"), arp)
    }

    fn parse_na(frame: &[u8]) -> (EthernetAddress, Ipv6Repr, NdiscRepr) {
        let eth = Frame::new_checked(frame).expect("eth");
        let p = ipv6::Packet::new_checked(eth.payload()).expect("ipv6");
        let hdr = Ipv6Repr::parse(&p).expect("ipv6");
        let na = NdiscRepr::parse(p.payload(), hdr.src_addr, hdr.dst_addr).expect("valid checksum");
        (eth.dst_addr(), hdr, na)
    }

    #[test]
    fn arp_request_for_led_vip_gets_reply_with_our_mac() {
        let d = decide(
            &arp_request("10.0.0.1"),
            &iface(),
            &led_set([v4("10.0.0.1")]),
        );
        let Decision::Reply { frame, vip } = d else {
            panic!("expected reply, got {d:?}")
        };
        assert_eq!(vip, v4("10.0.0.1"));
        assert!(frame.len() >= 60);
        let (eth, arp) = parse_arp_reply(&frame, 0);
        assert_eq!(
            (eth.src_addr, eth.dst_addr, eth.ethertype),
            (NODE, CLIENT, EtherType::Arp)
        );
        assert_eq!(arp.operation, ArpOperation::Reply);
        assert_eq!(arp.source_hardware_addr, NODE);
        assert_eq!(
            arp.source_protocol_addr,
            "10.0.0.1".parse::<Ipv4Addr>().expect("ipv4")
        );
        assert_eq!(arp.target_hardware_addr, CLIENT);
        assert_eq!(
            arp.target_protocol_addr,
            "10.0.0.2".parse::<Ipv4Addr>().expect("ipv4")
        );
    }

    #[test]
    fn arp_request_for_vip_not_led_is_dropped() {
        let d = decide(
            &arp_request("10.0.0.9"),
            &iface(),
            &led_set([v4("10.0.0.1")]),
        );
        assert_eq!(d, Decision::Drop(DropReason::NotLed));
    }

    #[test]
    fn unselected_interface_never_answers() {
        let mut i = iface();
        i.selected = false;
        let d = decide(&arp_request("10.0.0.1"), &i, &led_set([v4("10.0.0.1")]));
        assert_eq!(d, Decision::Drop(DropReason::InterfaceNotSelected));
    }

    #[test]
    fn own_frames_are_ignored() {
        let mut f = arp_request("10.0.0.1");
        f[6..12].copy_from_slice(&NODE.0);
        assert_eq!(
            decide(&f, &iface(), &led_set([v4("10.0.0.1")])),
            Decision::Drop(DropReason::OwnFrame)
        );
    }

    #[test]
    fn gratuitous_arp_is_not_answered() {
        let req = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: CLIENT,
            source_protocol_addr: "10.0.0.1".parse().expect("ipv4"),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: "10.0.0.1".parse().expect("ipv4"),
        };
        let f = arp_frame(CLIENT, EthernetAddress::BROADCAST, &[], &req);
        assert_eq!(
            decide(&f, &iface(), &led_set([v4("10.0.0.1")])),
            Decision::Drop(DropReason::Gratuitous)
        );
    }

    #[test]
    fn vlan_tagged_request_is_answered_with_the_same_tag() {
        let d = decide(
            &unhex(SCAPY_TAGGED_ARP),
            &iface(),
            &led_set([v4("10.0.0.1")]),
        );
        let Decision::Reply { frame, .. } = d else {
            panic!("expected reply, got {d:?}")
        };
        let eth = Frame::new_checked(&frame[..]).expect("eth");
        assert_eq!(eth.ethertype(), EtherType::Vlan);
        let tag =
            VlanRepr::parse(&vlan::Packet::new_checked(eth.payload()).expect("tag")).expect("tag");
        assert_eq!((tag.vid, tag.pcp, tag.ethertype), (100, 3, EtherType::Arp));
        let (_, arp) = parse_arp_reply(&frame, 1);
        assert_eq!(arp.source_hardware_addr, NODE);
    }

    #[test]
    fn neighbor_solicitation_gets_solicited_unicast_na() {
        let d = decide(&unhex(SCAPY_NS), &iface(), &led_set([v6("fd00::10")]));
        let Decision::Reply { frame, vip } = d else {
            panic!("expected reply, got {d:?}")
        };
        assert_eq!(vip, v6("fd00::10"));
        let (dst_mac, hdr, na) = parse_na(&frame);
        assert_eq!(dst_mac, CLIENT);
        assert_eq!(hdr.dst_addr, "fd00::2".parse::<Ipv6Addr>().expect("ipv6"));
        assert_eq!(hdr.hop_limit, 255);
        let NdiscRepr::NeighborAdvert {
            flags,
            target_addr,
            lladdr,
        } = na
        else {
            panic!("not an NA: {na:?}")
        };
        assert!(flags.solicited && flags.override_ && !flags.router);
        assert_eq!(IpAddr::V6(target_addr), vip);
        assert_eq!(lladdr, Some(NODE));
    }

    #[test]
    fn dad_probe_gets_unsolicited_na_to_all_nodes() {
        let target: Ipv6Addr = "fd00::10".parse().expect("ipv6");
        let ns = NdiscRepr::NeighborSolicit {
            target_addr: target,
            lladdr: None,
        };
        let f = ndisc_frame(
            CLIENT,
            multicast_mac(solicited_node(target)),
            &[],
            Ipv6Addr::UNSPECIFIED,
            solicited_node(target),
            &ns,
        );
        let d = decide(&f, &iface(), &led_set([IpAddr::V6(target)]));
        let Decision::Reply { frame, .. } = d else {
            panic!("expected reply, got {d:?}")
        };
        let (dst_mac, hdr, na) = parse_na(&frame);
        assert_eq!(dst_mac, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!(hdr.dst_addr, ALL_NODES);
        let NdiscRepr::NeighborAdvert { flags, .. } = na else {
            panic!("not an NA")
        };
        assert!(!flags.solicited && flags.override_);
    }

    #[test]
    fn dad_probe_to_wrong_destination_or_with_lladdr_is_invalid() {
        let target: Ipv6Addr = "fd00::10".parse().expect("ipv6");
        let ns = NdiscRepr::NeighborSolicit {
            target_addr: target,
            lladdr: None,
        };
        let f = ndisc_frame(
            CLIENT,
            multicast_mac(ALL_NODES),
            &[],
            Ipv6Addr::UNSPECIFIED,
            ALL_NODES,
            &ns,
        );
        assert_eq!(
            decide(&f, &iface(), &led_set([IpAddr::V6(target)])),
            Decision::Drop(DropReason::InvalidNdisc)
        );
        let ns = NdiscRepr::NeighborSolicit {
            target_addr: target,
            lladdr: Some(CLIENT),
        };
        let dst = solicited_node(target);
        let f = ndisc_frame(
            CLIENT,
            multicast_mac(dst),
            &[],
            Ipv6Addr::UNSPECIFIED,
            dst,
            &ns,
        );
        assert_eq!(
            decide(&f, &iface(), &led_set([IpAddr::V6(target)])),
            Decision::Drop(DropReason::InvalidNdisc)
        );
    }

    #[test]
    fn solicitation_with_hop_limit_below_255_is_dropped() {
        let mut f = unhex(SCAPY_NS);
        f[14 + 7] = 64;
        // The hop limit is not covered by the ICMPv6 checksum, so the message still decodes.
        assert_eq!(
            decide(&f, &iface(), &led_set([v6("fd00::10")])),
            Decision::Drop(DropReason::InvalidNdisc)
        );
    }

    #[test]
    fn neighbor_advertisement_is_not_answered() {
        let na = NdiscRepr::NeighborAdvert {
            flags: NeighborFlags::default(),
            target_addr: "fd00::10".parse().expect("ipv6"),
            lladdr: Some(CLIENT),
        };
        let f = ndisc_frame(
            CLIENT,
            multicast_mac(ALL_NODES),
            &[],
            "fd00::2".parse().expect("ipv6"),
            ALL_NODES,
            &na,
        );
        assert_eq!(
            decide(&f, &iface(), &led_set([v6("fd00::10")])),
            Decision::Drop(DropReason::NotRequest)
        );
        assert_eq!(ndisc::TYPE_NEIGHBOR_ADVERT, 136);
    }

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120), et in prop_oneof![Just(0x0806u16), Just(0x86dd), Just(0x8100), Just(0x88a8), any::<u16>()]) {
            let mut b = bytes;
            if b.len() >= 14 {
                b[12..14].copy_from_slice(&et.to_be_bytes());
            }
            let _ = decide(&b, &iface(), &led_set([v4("10.0.0.1"), v6("fd00::10")]));
        }
    }
}

//! Whole received frames: the Ethernet `Frame` view, 802.1Q/802.1ad tags, and `decide`, which
//! walks Ethernet, up to two VLAN tags, ARP or IPv6 + NDP and builds a reply. A reply must itself
//! be a well-formed frame that `decide` never answers (no reply loops between two responders).
#![no_main]

use std::net::IpAddr;

use arp_responder::decide::{Decision, InterfaceInfo, decide, led_set};
use arp_responder::wire::ethernet::{EthernetAddress, EthernetRepr, Frame};
use arp_responder::wire::vlan::{Packet as VlanPacket, VlanRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = Frame::new_unchecked(data);
    let _ = (f.dst_addr(), f.src_addr(), f.ethertype(), f.payload());
    if let Ok(f) = Frame::new_checked(data) {
        let _ = EthernetRepr::parse(&f);
        let tag = VlanPacket::new_unchecked(f.payload());
        let _ = (tag.pcp(), tag.dei(), tag.vid(), tag.ethertype(), tag.payload());
        let _ = VlanRepr::parse(&tag);
    }
    let iface = InterfaceInfo {
        name: "fuzz0".into(),
        mac: EthernetAddress([2, 0, 0, 0, 0, 0xaa]),
        selected: true,
    };
    let led = led_set([
        IpAddr::from([10, 0, 0, 1]),
        "fd00::10".parse().unwrap_or(IpAddr::from([0; 16])),
    ]);
    if let Decision::Reply { frame, .. } = decide(data, &iface, &led) {
        assert!(Frame::new_checked(&frame[..]).is_ok());
        let peer = InterfaceInfo {
            mac: EthernetAddress([2, 0, 0, 0, 0, 0xbb]),
            ..iface
        };
        assert!(matches!(decide(&frame, &peer, &led), Decision::Drop(_)));
    }
});

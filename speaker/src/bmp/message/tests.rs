//! Exact bytes of each BMP message type, computed by hand from RFC 7854 §4.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bgp_proto::iana::{CeaseSubcode, Family};
use bgp_proto::{Notification, Open, Update};

use super::*;

const MARKER: [u8; 16] = [0xff; 16];

fn header(post_policy: bool) -> PeerHeader {
    PeerHeader {
        address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        asn: 65001,
        bgp_id: Ipv4Addr::new(192, 0, 2, 1),
        post_policy,
        timestamp: Duration::from_secs(1000) + Duration::from_micros(500),
    }
}

/// The 42-octet per-peer header of [`header`] with the given flags.
fn header_bytes(flags: u8) -> Vec<u8> {
    let mut v = vec![0, flags];
    v.extend_from_slice(&[0; 8]); // distinguisher
    v.extend_from_slice(&[0; 12]);
    v.extend_from_slice(&[192, 0, 2, 1]); // address
    v.extend_from_slice(&[0, 0, 0xfd, 0xe9]); // AS 65001
    v.extend_from_slice(&[192, 0, 2, 1]); // BGP ID
    v.extend_from_slice(&[0, 0, 0x03, 0xe8]); // 1000 s
    v.extend_from_slice(&[0, 0, 0x01, 0xf4]); // 500 µs
    v
}

fn common(len: u32, kind: u8) -> Vec<u8> {
    let mut v = vec![3];
    v.extend_from_slice(&len.to_be_bytes());
    v.push(kind);
    v
}

#[test]
fn initiation_carries_sys_descr_and_sys_name() {
    let mut expected = common(22, 4);
    expected.extend_from_slice(&[0, 1, 0, 6]);
    expected.extend_from_slice(b"herald");
    expected.extend_from_slice(&[0, 2, 0, 2]);
    expected.extend_from_slice(b"r1");
    assert_eq!(initiation("r1", "herald").as_ref(), expected.as_slice());
}

#[test]
fn termination_carries_string_and_reason() {
    let mut expected = common(19, 5);
    expected.extend_from_slice(&[0, 0, 0, 3]);
    expected.extend_from_slice(b"bye");
    expected.extend_from_slice(&[0, 1, 0, 2, 0, 2]);
    assert_eq!(
        termination(TerminationReason::OutOfResources, "bye").as_ref(),
        expected.as_slice()
    );
}

#[test]
fn route_monitoring_wraps_the_update_with_the_l_flag_for_post_policy() {
    // An IPv4 End-of-RIB: an UPDATE of 23 octets with nothing in it.
    let mut pdu = MARKER.to_vec();
    pdu.extend_from_slice(&[0, 23, 2, 0, 0, 0, 0]);
    for (post, flags) in [(false, 0x00), (true, 0x40)] {
        let mut expected = common(6 + 42 + 23, 0);
        expected.extend_from_slice(&header_bytes(flags));
        expected.extend_from_slice(&pdu);
        let bytes = route_monitoring(&header(post), &Update::end_of_rib(Family::IPV4_UNICAST))
            .expect("encodes");
        assert_eq!(bytes.as_ref(), expected.as_slice(), "post-policy {post}");
    }
}

#[test]
fn ipv6_peer_sets_the_v_flag_and_fills_the_address() {
    let address = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let h = PeerHeader {
        address: IpAddr::V6(address),
        post_policy: true,
        ..header(false)
    };
    let bytes = peer_down(&h, &PeerDownReason::Deconfigured).expect("encodes");
    assert_eq!(bytes.len(), 6 + 42 + 1);
    assert_eq!(
        bytes.get(6..8),
        Some(&[0u8, 0x80][..]),
        "V set, L not in Peer Down"
    );
    assert_eq!(bytes.get(16..32), Some(&address.octets()[..]));
    assert_eq!(bytes.get(48), Some(&5));
}

#[test]
fn peer_down_with_our_notification_carries_the_pdu() {
    let n = Notification::cease(CeaseSubcode::AdministrativeShutdown);
    let mut expected = common(6 + 42 + 1 + 21, 2);
    expected.extend_from_slice(&header_bytes(0));
    expected.push(1);
    expected.extend_from_slice(&MARKER);
    expected.extend_from_slice(&[0, 21, 3, 6, 2]);
    let bytes = peer_down(&header(false), &PeerDownReason::LocalNotification(n)).expect("encodes");
    assert_eq!(bytes.as_ref(), expected.as_slice());
}

#[test]
fn peer_down_reason_codes_and_data() {
    let cases = [
        (PeerDownReason::LocalNoNotification(18), vec![2, 0, 18]),
        (PeerDownReason::RemoteNoNotification, vec![4]),
        (PeerDownReason::Deconfigured, vec![5]),
    ];
    for (reason, tail) in cases {
        let mut expected = common(u32::try_from(48 + tail.len()).expect("small"), 2);
        expected.extend_from_slice(&header_bytes(0));
        expected.extend_from_slice(&tail);
        let bytes = peer_down(&header(false), &reason).expect("encodes");
        assert_eq!(bytes.as_ref(), expected.as_slice(), "{reason:?}");
    }
}

#[test]
fn peer_up_carries_ports_and_both_opens() {
    let sent = Open::new(65000, 90, Ipv4Addr::new(10, 0, 0, 1), Vec::new());
    let received = Open::new(65001, 30, Ipv4Addr::new(192, 0, 2, 1), Vec::new());
    let open_bytes = |asn: u16, hold: u16, id: [u8; 4]| {
        let mut v = MARKER.to_vec();
        v.extend_from_slice(&[0, 29, 1, 4]);
        v.extend_from_slice(&asn.to_be_bytes());
        v.extend_from_slice(&hold.to_be_bytes());
        v.extend_from_slice(&id);
        v.push(0);
        v
    };
    let mut expected = common(6 + 42 + 20 + 29 + 29, 3);
    expected.extend_from_slice(&header_bytes(0));
    expected.extend_from_slice(&[0; 12]);
    expected.extend_from_slice(&[10, 0, 0, 1]);
    expected.extend_from_slice(&[0x80, 0x01]); // local port 32769
    expected.extend_from_slice(&[0, 179]); // remote port
    expected.extend_from_slice(&open_bytes(65000, 90, [10, 0, 0, 1]));
    expected.extend_from_slice(&open_bytes(65001, 30, [192, 0, 2, 1]));
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 32769);
    let bytes = peer_up(&header(true), local, 179, &sent, &received).expect("encodes");
    assert_eq!(bytes.as_ref(), expected.as_slice());
}

#[test]
fn statistics_report_encodes_counters_and_gauges() {
    let mut expected = common(6 + 42 + 4 + 12 + 8 + 12 + 8, 1);
    expected.extend_from_slice(&header_bytes(0));
    expected.extend_from_slice(&[0, 0, 0, 4]);
    expected.extend_from_slice(&[0, 7, 0, 8, 0, 0, 0, 0, 0, 0, 0, 3]);
    expected.extend_from_slice(&[0, 11, 0, 4, 0, 0, 0, 1]);
    expected.extend_from_slice(&[0, 8, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2]);
    expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 1]);
    let stats = [
        Stat::AdjRibIn(3),
        Stat::TreatAsWithdraw(1),
        Stat::LocRib(2),
        Stat::RejectedByPolicy(1),
    ];
    assert_eq!(
        statistics(&header(false), &stats).as_ref(),
        expected.as_slice()
    );
}

//! Unit tests of [`super`]: diff minimality, grouping, fill to the negotiated size, IPv6 and
//! RFC 8950 encodings, ADD-PATH, and the round trip through bgp-proto's encoder and decoder.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bgp_proto::{
    AsPath, AttrValue, Community, DecodeContext, EncodeContext, Message, MpNlri, NextHop, Origin,
    PathAttribute, Update,
};
use ipnet::IpNet;

use super::*;

fn attrs(med: u32) -> RouteAttributes {
    Arc::new(vec![
        PathAttribute::new(AttrValue::Origin(Origin::Igp)),
        PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[64512]))),
        PathAttribute::new(AttrValue::MultiExitDisc(med)),
        PathAttribute::new(AttrValue::Communities(vec![Community::new(65000, 1)])),
    ])
}

fn nh4() -> NextHop {
    NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 10))
}

fn nh6() -> NextHop {
    NextHop::Ipv6 {
        global: "2001:db8::10".parse().expect("addr"),
        link_local: Some("fe80::10".parse().expect("addr")),
    }
}

fn route(a: &RouteAttributes, nh: &NextHop) -> OutRoute {
    OutRoute {
        attributes: a.clone(),
        next_hop: nh.clone(),
    }
}

fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

/// `n` IPv4 /24s from 10.0.0.0 on, all with one route.
fn v4_rib(n: u32, r: &OutRoute) -> AdjRibOut {
    (0..n)
        .map(|i| {
            let a = Ipv4Addr::from(0x0a00_0000 + (i << 8));
            (IpNet::new(a.into(), 24).expect("len"), r.clone())
        })
        .collect()
}

/// The UPDATEs of a packing that skipped nothing.
fn ok(packed: Packed) -> Vec<Update> {
    assert!(packed.skipped.is_empty(), "skipped {:?}", packed.skipped);
    packed.updates
}

fn cx() -> EncodeContext {
    EncodeContext {
        four_octet_as: true,
        ..EncodeContext::default()
    }
}

fn dcx(e: &EncodeContext) -> DecodeContext {
    DecodeContext {
        four_octet_as: e.four_octet_as,
        extended_message: e.extended_message,
        add_path: e.add_path.clone(),
        ebgp: true,
    }
}

/// Encodes each UPDATE, checks the size limit, decodes it back cleanly.
fn wire(updates: &[Update], e: &EncodeContext) -> Vec<(usize, Update)> {
    updates
        .iter()
        .map(|u| {
            let bytes = Message::Update(u.clone()).to_bytes(e).expect("encodes");
            assert!(bytes.len() <= e.max_message_len(), "{} octets", bytes.len());
            let d = Message::decode(&bytes, &dcx(e)).expect("decodes");
            assert!(d.rfc7606.is_clean(), "{:?}", d.rfc7606);
            let Message::Update(mut back) = d.message else {
                panic!("not an UPDATE")
            };
            // The decoder keeps the Extended Length flag it saw; the encoder sets it by size.
            for a in &mut back.attributes {
                a.flags.0 &= !bgp_proto::AttrFlags::EXTENDED_LENGTH;
            }
            assert!(&back == u, "round trip differs");
            (bytes.len(), back)
        })
        .collect()
}

/// Every prefix announced by a list of UPDATEs (NLRI field and MP_REACH_NLRI).
fn announced(updates: &[Update]) -> BTreeSet<IpNet> {
    let mut out = BTreeSet::new();
    for u in updates {
        for n in &u.nlri {
            out.insert(IpNet::new(n.prefix.addr().into(), n.prefix.len()).expect("len"));
        }
        if let Some(m) = u.mp_reach() {
            match &m.nlri {
                MpNlri::Ipv4(v) => v.iter().for_each(|n| {
                    out.insert(IpNet::new(n.prefix.addr().into(), n.prefix.len()).expect("len"));
                }),
                MpNlri::Ipv6(v) => v.iter().for_each(|n| {
                    out.insert(IpNet::new(n.prefix.addr().into(), n.prefix.len()).expect("len"));
                }),
                MpNlri::Raw(_) => panic!("raw NLRI"),
            }
        }
    }
    out
}

fn withdrawn(updates: &[Update]) -> BTreeSet<IpNet> {
    let mut out = BTreeSet::new();
    for u in updates {
        for n in &u.withdrawn {
            out.insert(IpNet::new(n.prefix.addr().into(), n.prefix.len()).expect("len"));
        }
        if let Some(m) = u.mp_unreach() {
            let MpNlri::Ipv6(v) = &m.withdrawn else {
                panic!("IPv6 expected")
            };
            for n in v {
                out.insert(IpNet::new(n.prefix.addr().into(), n.prefix.len()).expect("len"));
            }
        }
    }
    out
}

#[test]
fn unchanged_routes_produce_no_updates() {
    let r = route(&attrs(1), &nh4());
    let rib = v4_rib(100, &r);
    assert!(diff(&rib, &rib).is_empty());
    assert!(ok(updates(&rib, &rib, &cx())).is_empty());
}

#[test]
fn equal_attributes_in_different_allocations_are_not_a_change() {
    let a = v4_rib(10, &route(&attrs(1), &nh4()));
    let b = v4_rib(10, &route(&attrs(1), &nh4()));
    assert!(diff(&a, &b).is_empty());
}

#[test]
fn diff_withdraws_removed_and_announces_new_and_changed_only() {
    let old = route(&attrs(1), &nh4());
    let new = route(&attrs(2), &nh4());
    let mut prev = v4_rib(4, &old);
    prev.insert(net("2001:db8:1::/48"), route(&attrs(1), &nh6()));
    let mut next = prev.clone();
    next.remove(&net("10.0.0.0/24"));
    next.remove(&net("2001:db8:1::/48"));
    next.insert(net("10.0.1.0/24"), new.clone());
    let nh_changed = route(&attrs(1), &NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 11)));
    next.insert(net("10.0.2.0/24"), nh_changed);
    next.insert(net("10.9.0.0/16"), old.clone());
    let d = diff(&prev, &next);
    assert_eq!(d.withdraw, [net("10.0.0.0/24"), net("2001:db8:1::/48")]);
    let ann: Vec<IpNet> = d.announce.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        ann,
        [net("10.0.1.0/24"), net("10.0.2.0/24"), net("10.9.0.0/16")]
    );
    let ups = ok(updates(&prev, &next, &cx()));
    let sent = wire(&ups, &cx());
    assert_eq!(
        withdrawn(&ups),
        BTreeSet::from([net("10.0.0.0/24"), net("2001:db8:1::/48")])
    );
    assert_eq!(announced(&ups), ann.into_iter().collect());
    // Withdrawals first: the first two messages carry no NLRI.
    assert!(sent[0].1.nlri.is_empty() && sent[1].1.mp_reach().is_none());
    // Three distinct (attributes, next hop) pairs → three announcement messages.
    assert_eq!(ups.len(), 2 + 3);
}

#[test]
fn one_attribute_set_fills_each_message_to_4096_octets() {
    let r = route(&attrs(1), &nh4());
    let rib = v4_rib(5000, &r);
    let e = cx();
    let ups = ok(updates(&AdjRibOut::new(), &rib, &e));
    let sent = wire(&ups, &e);
    assert_eq!(announced(&ups).len(), 5000);
    // Every message but the last is full: one more /24 (4 octets) would not fit.
    for (len, _) in &sent[..sent.len() - 1] {
        assert!(len + 4 > 4096, "only {len} octets");
    }
    let per_msg = sent[0].1.nlri.len();
    assert!(per_msg > 1000, "{per_msg} prefixes per UPDATE");
    assert_eq!(ups.len(), 5000usize.div_ceil(per_msg));
}

#[test]
fn extended_message_packs_up_to_65535_octets() {
    let r = route(&attrs(1), &nh4());
    let rib = v4_rib(40_000, &r);
    let e = EncodeContext {
        extended_message: true,
        ..cx()
    };
    let ups = ok(updates(&AdjRibOut::new(), &rib, &e));
    let sent = wire(&ups, &e);
    for (len, _) in &sent[..sent.len() - 1] {
        assert!(*len > 4096 && len + 4 > 65535, "{len}");
    }
    assert_eq!(announced(&ups).len(), 40_000);
}

#[test]
fn interleaved_attribute_sets_are_grouped() {
    let a = route(&attrs(1), &nh4());
    let b = route(&attrs(2), &nh4());
    let rib: AdjRibOut = (0..200u32)
        .map(|i| {
            let p = IpNet::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(), 24).expect("len");
            (p, if i % 2 == 0 { a.clone() } else { b.clone() })
        })
        .collect();
    let ups = ok(updates(&AdjRibOut::new(), &rib, &cx()));
    assert_eq!(ups.len(), 2);
    assert_eq!(ups[0].med(), Some(1));
    assert_eq!(ups[1].med(), Some(2));
    assert!(ups.iter().all(|u| u.nlri.len() == 100));
}

#[test]
fn ipv6_uses_mp_reach_with_global_and_link_local_next_hop() {
    let r = route(&attrs(1), &nh6());
    let rib: AdjRibOut = (0..3000u32)
        .map(|i| {
            let a = Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(i) << 64));
            (IpNet::new(a.into(), 64).expect("len"), r.clone())
        })
        .collect();
    let e = cx();
    let ups = ok(updates(&AdjRibOut::new(), &rib, &e));
    let sent = wire(&ups, &e);
    for (len, u) in &sent {
        assert!(
            u.nlri.is_empty() && u.next_hop().is_none(),
            "no IPv4 fields"
        );
        let m = u.mp_reach().expect("MP_REACH_NLRI");
        assert_eq!(m.family, bgp_proto::Family::IPV6_UNICAST);
        assert_eq!(m.next_hop, nh6());
        assert!(*len <= 4096);
    }
    // /64 NLRI is 9 octets; every message but the last cannot take another.
    for (len, _) in &sent[..sent.len() - 1] {
        assert!(len + 9 > 4096, "{len}");
    }
    assert_eq!(announced(&ups).len(), 3000);
    // Attributes in type-code order: ORIGIN, AS_PATH, MED, COMMUNITIES, MP_REACH_NLRI.
    let codes: Vec<u8> = ups[0]
        .attributes
        .iter()
        .map(|a| a.value.type_code().into())
        .collect();
    assert_eq!(codes, [1, 2, 4, 8, 14]);
    // And withdrawing them all uses MP_UNREACH_NLRI.
    let gone = ok(updates(&rib, &AdjRibOut::new(), &e));
    wire(&gone, &e);
    assert_eq!(withdrawn(&gone).len(), 3000);
    assert!(
        gone.iter()
            .all(|u| u.attributes.len() == 1 && u.mp_unreach().is_some())
    );
}

#[test]
fn ipv6_global_only_next_hop_is_16_octets() {
    let nh = next_hop_self("2001:db8::1".parse().expect("addr"), None);
    assert_eq!(nh.len(), 16);
    let mut rib = AdjRibOut::new();
    rib.insert(net("2001:db8:5::/48"), route(&attrs(1), &nh));
    let ups = ok(updates(&AdjRibOut::new(), &rib, &cx()));
    wire(&ups, &cx());
    assert_eq!(ups[0].mp_reach().expect("mp").next_hop, nh);
}

#[test]
fn ipv4_next_hop_for_ipv6_prefixes_is_ipv4_mapped() {
    let mut rib = AdjRibOut::new();
    rib.insert(net("2001:db8:5::/48"), route(&attrs(1), &nh4()));
    let ups = ok(updates(&AdjRibOut::new(), &rib, &cx()));
    wire(&ups, &cx());
    let m = ups[0].mp_reach().expect("mp");
    assert_eq!(
        m.next_hop,
        NextHop::Ipv6 {
            global: "::ffff:192.0.2.10".parse().expect("addr"),
            link_local: None
        }
    );
}

#[test]
fn ipv4_prefixes_with_ipv6_next_hop_use_rfc8950_mp_reach() {
    let mut rib = AdjRibOut::new();
    rib.insert(net("10.1.0.0/16"), route(&attrs(1), &nh6()));
    let ups = ok(updates(&AdjRibOut::new(), &rib, &cx()));
    wire(&ups, &cx());
    let m = ups[0].mp_reach().expect("mp");
    assert_eq!(m.family, bgp_proto::Family::IPV4_UNICAST);
    assert!(ups[0].nlri.is_empty() && ups[0].next_hop().is_none());
    assert_eq!(announced(&ups), BTreeSet::from([net("10.1.0.0/16")]));
}

#[test]
fn add_path_sessions_carry_path_identifiers() {
    let e = EncodeContext {
        add_path: vec![
            bgp_proto::Family::IPV4_UNICAST,
            bgp_proto::Family::IPV6_UNICAST,
        ],
        ..cx()
    };
    let mut prev = v4_rib(2000, &route(&attrs(1), &nh4()));
    prev.insert(net("2001:db8:9::/48"), route(&attrs(1), &nh6()));
    let ups = ok(updates(&AdjRibOut::new(), &prev, &e));
    let sent = wire(&ups, &e);
    assert!(
        ups.iter()
            .flat_map(|u| &u.nlri)
            .all(|n| n.path_id == Some(ADD_PATH_ID))
    );
    // /24 + path id = 8 octets per prefix.
    for (len, u) in &sent[..sent.len() - 2] {
        assert!(!u.nlri.is_empty() && len + 8 > 4096, "{len}");
    }
    let gone = ok(updates(&prev, &AdjRibOut::new(), &e));
    wire(&gone, &e);
    assert!(
        gone.iter()
            .flat_map(|u| &u.withdrawn)
            .all(|n| n.path_id == Some(ADD_PATH_ID))
    );
    assert_eq!(withdrawn(&gone).len(), 2001);
}

#[test]
fn many_withdrawals_fill_messages() {
    let rib = v4_rib(3000, &route(&attrs(1), &nh4()));
    let ups = ok(updates(&rib, &AdjRibOut::new(), &cx()));
    let sent = wire(&ups, &cx());
    assert_eq!(withdrawn(&ups).len(), 3000);
    for (len, u) in &sent[..sent.len() - 1] {
        assert!(u.attributes.is_empty() && len + 4 > 4096, "{len}");
    }
}

fn huge_attributes() -> RouteAttributes {
    Arc::new(vec![
        PathAttribute::new(AttrValue::Origin(Origin::Igp)),
        PathAttribute::new(AttrValue::AsPath(AsPath::new())),
        PathAttribute::new(AttrValue::Communities(
            (0..1100u32).map(Community).collect(),
        )),
    ])
}

#[test]
fn a_route_whose_attributes_cannot_fit_is_skipped_alone() {
    let mut rib = AdjRibOut::new();
    rib.insert(net("10.0.0.0/24"), route(&huge_attributes(), &nh4()));
    let packed = updates(&AdjRibOut::new(), &rib, &cx());
    assert!(packed.updates.is_empty());
    assert_eq!(packed.skipped.len(), 1);
    let (prefix, err) = &packed.skipped[0];
    assert_eq!(*prefix, net("10.0.0.0/24"));
    assert!(
        matches!(err, crate::Error::RouteTooLarge { max: 4096, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("10.0.0.0/24"), "{err}");
    // With extended messages it fits.
    let e = EncodeContext {
        extended_message: true,
        ..cx()
    };
    let ups = ok(updates(&AdjRibOut::new(), &rib, &e));
    wire(&ups, &e);
}

/// Issue 14 item 6: one route too large for a 4096-octet UPDATE used to fail the whole batch,
/// withdrawals included. Now it skips only itself.
#[test]
fn an_unencodable_route_does_not_hold_back_the_rest_of_the_batch() {
    let small = attrs(1);
    let mut prev = AdjRibOut::new();
    prev.insert(net("10.9.0.0/24"), route(&small, &nh4()));
    prev.insert(net("2001:db8:9::/48"), route(&small, &nh6()));
    let mut next = AdjRibOut::new();
    next.insert(net("10.0.0.0/24"), route(&small, &nh4()));
    next.insert(net("10.0.1.0/24"), route(&huge_attributes(), &nh4()));
    next.insert(net("10.0.2.0/24"), route(&small, &nh4()));
    next.insert(net("2001:db8:1::/48"), route(&huge_attributes(), &nh6()));
    next.insert(net("2001:db8:2::/48"), route(&small, &nh6()));
    let packed = updates(&prev, &next, &cx());
    let skipped: BTreeSet<IpNet> = packed.skipped.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        skipped,
        [net("10.0.1.0/24"), net("2001:db8:1::/48")]
            .into_iter()
            .collect()
    );
    let ups = wire(&packed.updates, &cx());
    let ups: Vec<Update> = ups.into_iter().map(|(_, u)| u).collect();
    assert_eq!(
        announced(&ups),
        [
            net("10.0.0.0/24"),
            net("10.0.2.0/24"),
            net("2001:db8:2::/48")
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        withdrawn(&ups),
        [net("10.9.0.0/24"), net("2001:db8:9::/48")]
            .into_iter()
            .collect()
    );
}

#[test]
fn next_hop_self_follows_the_session_family() {
    assert_eq!(
        next_hop_self("192.0.2.1".parse().expect("a"), None),
        NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 1))
    );
    let ll: Ipv6Addr = "fe80::1".parse().expect("a");
    assert_eq!(
        next_hop_self("2001:db8::1".parse().expect("a"), Some(ll)),
        NextHop::Ipv6 {
            global: "2001:db8::1".parse().expect("a"),
            link_local: Some(ll)
        }
    );
}

/// desired → Adj-RIB-Out → UPDATEs: an eTP=Local service is announced while this node has a ready
/// endpoint and withdrawn by exactly one UPDATE when the last one goes away; nothing else moves.
#[test]
fn last_local_endpoint_leaving_withdraws_only_that_service() {
    use std::collections::BTreeMap;

    use crate::advertise::desired::{
        EndpointView, Inputs, NodeView, PeerFamily, PeerView, ServiceView, TrafficPolicy, desired,
    };
    use crate::advertise::model::Advertisement;
    use crate::config::Family;

    let ads: Vec<Advertisement> =
        serde_saphyr::from_str("- kind: LoadBalancerIP\n- kind: PodCIDR\n").expect("ads");
    let node = NodeView {
        name: "n1".into(),
        pod_cidrs: vec![net("10.244.0.0/24")],
    };
    let peers = [PeerView {
        name: Some("tor".into()),
        address: "192.0.2.1".parse().expect("addr"),
        families: BTreeSet::from([Family::Ipv4Unicast]),
        ebgp: true,
    }];
    let mut local = ServiceView {
        namespace: "web".into(),
        name: "local".into(),
        external_traffic_policy: TrafficPolicy::Local,
        load_balancer_ips: vec!["198.51.100.1".parse().expect("addr")],
        endpoints: vec![EndpointView {
            ip: "10.244.0.7".parse().expect("addr"),
            node_name: Some("n1".into()),
            ready: true,
            ports: Vec::new(),
        }],
        ..ServiceView::default()
    };
    let cluster = ServiceView {
        namespace: "web".into(),
        name: "cluster".into(),
        load_balancer_ips: vec!["198.51.100.2".parse().expect("addr")],
        ..ServiceView::default()
    };
    let allocations = BTreeMap::new();
    let key = PeerFamily {
        peer: peers[0].address,
        family: Family::Ipv4Unicast,
    };
    let rib = |services: &[ServiceView]| {
        let d = desired(&Inputs {
            local_asn: 64512,
            node: &node,
            services,
            allocations: &allocations,
            peers: &peers,
            advertisements: &ads,
            fixed_routes: &[],
        });
        adj_rib_out(&d[&key], &nh4())
    };
    let before = rib(&[local.clone(), cluster.clone()]);
    let first = ok(updates(&AdjRibOut::new(), &before, &cx()));
    assert_eq!(first.len(), 1, "one attribute set, one UPDATE");
    assert_eq!(announced(&first).len(), 3);
    local.endpoints[0].ready = false;
    let after = rib(&[local, cluster]);
    let ups = ok(updates(&before, &after, &cx()));
    wire(&ups, &cx());
    assert_eq!(ups.len(), 1);
    assert_eq!(withdrawn(&ups), BTreeSet::from([net("198.51.100.1/32")]));
    assert!(announced(&ups).is_empty());
}

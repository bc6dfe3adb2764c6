//! Property tests: arbitrary messages survive encode → decode unchanged, and decoded messages
//! re-encode to the same bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_proto::capability::{
    AddPathFamily, AddPathMode, ExtendedNextHopFamily, GracefulRestart, GracefulRestartFamily,
    LlgrFamily,
};
use bgp_proto::iana::{CeaseSubcode, RouteRefreshSubtype};
use bgp_proto::{
    Afi, Aggregator, AsPath, AttrFlags, AttrValue, Capability, CapabilityLayout, Community,
    DecodeContext, EncodeContext, ExtendedCommunity, Family, Ipv4Nlri, Ipv4Prefix,
    Ipv6ExtendedCommunity, Ipv6Nlri, Ipv6Prefix, LargeCommunity, Message, MpNlri, MpReach,
    MpUnreach, NextHop, Nlri, Notification, Open, Origin, PathAttribute, RouteRefresh, Safi,
    SegmentType, Update,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn family() -> impl Strategy<Value = Family> {
    (any::<u16>(), any::<u8>()).prop_map(|(a, s)| Family::new(Afi::from(a), Safi::from(s)))
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        Just(Capability::ExtendedMessage),
        (1u32..).prop_map(Capability::FourOctetAs),
        (0u8..16, 0u16..4096, vec((family(), any::<u8>()), 0..4)).prop_map(|(flags, t, f)| {
            Capability::GracefulRestart(GracefulRestart {
                flags,
                restart_time: t,
                families: f
                    .into_iter()
                    .map(|(family, flags)| GracefulRestartFamily { family, flags })
                    .collect(),
            })
        }),
        vec((family(), 1u8..4), 0..4).prop_map(|v| Capability::AddPath(
            v.into_iter()
                .map(|(family, m)| AddPathFamily {
                    family,
                    mode: AddPathMode(m)
                })
                .collect()
        )),
        vec((any::<u16>(), any::<u16>(), any::<u16>()), 0..4).prop_map(|v| {
            Capability::ExtendedNextHop(
                v.into_iter()
                    .map(|(a, s, n)| ExtendedNextHopFamily {
                        afi: a.into(),
                        safi: s,
                        next_hop_afi: n.into(),
                    })
                    .collect(),
            )
        }),
        vec((family(), any::<u8>(), 0u32..0x0100_0000), 0..4).prop_map(|v| {
            Capability::LongLivedGracefulRestart(
                v.into_iter()
                    .map(|(family, flags, stale_time)| LlgrFamily {
                        family,
                        flags,
                        stale_time,
                    })
                    .collect(),
            )
        }),
        (vec(any::<u8>(), 0..20), vec(any::<u8>(), 0..20))
            .prop_map(|(hostname, domain)| Capability::Fqdn { hostname, domain }),
        (100u8..=127, vec(any::<u8>(), 0..40))
            .prop_map(|(code, data)| Capability::Unknown { code, data }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        1u16..,
        prop_oneof![Just(0u16), 3u16..],
        1u32..,
        vec(capability(), 0..8),
        any::<bool>(),
        0u8..3,
    )
        .prop_map(
            |(my_as, hold_time, id, capabilities, extended_params, layout)| {
                let layout = match layout {
                    0 => CapabilityLayout::OneParameter,
                    1 => CapabilityLayout::OnePerCapability,
                    _ if capabilities.len() >= 2 => {
                        CapabilityLayout::Groups(vec![1, capabilities.len() - 1])
                    }
                    _ => CapabilityLayout::OneParameter,
                };
                // Decoding cannot tell the layouts apart for zero or one capability.
                let layout = if capabilities.len() <= 1 {
                    CapabilityLayout::OneParameter
                } else {
                    layout
                };
                let layout = match (&layout, capabilities.len()) {
                    (CapabilityLayout::Groups(_), 2) => CapabilityLayout::OnePerCapability,
                    _ => layout,
                };
                Open {
                    version: 4,
                    my_as,
                    hold_time,
                    bgp_id: Ipv4Addr::from(id),
                    capabilities,
                    layout,
                    extended_params,
                }
            },
        )
}

fn v4_nlri(add_path: bool) -> impl Strategy<Value = Ipv4Nlri> {
    (any::<u32>(), 0u8..=32, any::<u32>()).prop_map(move |(a, l, id)| Nlri {
        path_id: add_path.then_some(id),
        prefix: Ipv4Prefix::new(Ipv4Addr::from(a), l).expect("len <= 32"),
    })
}

fn v6_nlri(add_path: bool) -> impl Strategy<Value = Ipv6Nlri> {
    (any::<u128>(), 0u8..=128, any::<u32>()).prop_map(move |(a, l, id)| Nlri {
        path_id: add_path.then_some(id),
        prefix: Ipv6Prefix::new(Ipv6Addr::from(a), l).expect("len <= 128"),
    })
}

fn as_path(max_asn: u32, confed: bool) -> impl Strategy<Value = AsPath> {
    let kinds: Vec<u8> = if confed { vec![1, 2, 3, 4] } else { vec![1, 2] };
    vec(
        (proptest::sample::select(kinds), vec(1..=max_asn, 1..6)),
        0..4,
    )
    .prop_map(|segs| {
        let mut p = AsPath::new();
        for (k, asns) in segs {
            p.push_segment(SegmentType::from(k), &asns);
        }
        p
    })
}

/// Attribute values valid under the given context, keyed by type code so the list has no repeats.
fn attr(four: bool, add_path: bool) -> impl Strategy<Value = AttrValue> {
    let max_asn = if four { u32::MAX } else { 0xffff };
    let addr = any::<u32>().prop_map(Ipv4Addr::from);
    let mp_reach = prop_oneof![
        (addr.clone(), vec(v4_nlri(add_path), 0..10)).prop_map(|(nh, n)| MpReach {
            family: Family::IPV4_UNICAST,
            next_hop: NextHop::Ipv4(nh),
            nlri: MpNlri::Ipv4(n),
        }),
        (
            any::<u128>(),
            proptest::option::of(any::<u128>()),
            vec(v6_nlri(add_path), 0..10)
        )
            .prop_map(|(g, l, n)| MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: NextHop::Ipv6 {
                    global: Ipv6Addr::from(g),
                    link_local: l.map(Ipv6Addr::from)
                },
                nlri: MpNlri::Ipv6(n),
            }),
        (vec(any::<u8>(), 12..=12), vec(any::<u8>(), 0..30)).prop_map(|(nh, n)| MpReach {
            family: Family::new(Afi::Ipv4, Safi::MplsVpn),
            next_hop: NextHop::Raw(nh),
            nlri: MpNlri::Raw(n),
        }),
    ];
    let mp_unreach = prop_oneof![
        vec(v4_nlri(add_path), 0..10).prop_map(|n| MpUnreach {
            family: Family::IPV4_UNICAST,
            withdrawn: MpNlri::Ipv4(n)
        }),
        vec(v6_nlri(add_path), 0..10).prop_map(|n| MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: MpNlri::Ipv6(n)
        }),
    ];
    let base = prop_oneof![
        (0u8..3).prop_map(|o| AttrValue::Origin(Origin::from(o))),
        as_path(max_asn, true).prop_map(AttrValue::AsPath),
        addr.clone().prop_map(AttrValue::NextHop),
        any::<u32>().prop_map(AttrValue::MultiExitDisc),
        any::<u32>().prop_map(AttrValue::LocalPref),
        Just(AttrValue::AtomicAggregate),
        (1..=max_asn, addr.clone())
            .prop_map(|(asn, addr)| AttrValue::Aggregator(Aggregator { asn, addr })),
        vec(any::<u32>().prop_map(Community), 1..8).prop_map(AttrValue::Communities),
        addr.clone().prop_map(AttrValue::OriginatorId),
        vec(addr.clone(), 1..4).prop_map(AttrValue::ClusterList),
        mp_reach.prop_map(AttrValue::MpReach),
        mp_unreach.prop_map(AttrValue::MpUnreach),
        vec(any::<[u8; 8]>().prop_map(ExtendedCommunity), 1..5)
            .prop_map(AttrValue::ExtendedCommunities),
        vec(any::<[u8; 20]>().prop_map(Ipv6ExtendedCommunity), 1..3)
            .prop_map(AttrValue::Ipv6ExtendedCommunities),
        vec(
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(global, local1, local2)| {
                LargeCommunity {
                    global,
                    local1,
                    local2,
                }
            }),
            1..5
        )
        .prop_map(AttrValue::LargeCommunities),
        (
            prop_oneof![19u8..=24, 33u8..=40, 100u8..=250],
            vec(any::<u8>(), 0..300)
        )
            .prop_map(|(type_code, data)| AttrValue::Unknown { type_code, data }),
    ];
    if four {
        base.boxed()
    } else {
        prop_oneof![
            8 => base,
            1 => as_path(u32::MAX, false).prop_map(AttrValue::As4Path),
            1 => (1u32.., any::<u32>()).prop_map(|(asn, a)| AttrValue::As4Aggregator(Aggregator { asn, addr: Ipv4Addr::from(a) })),
        ]
        .boxed()
    }
}

fn update(four: bool, add_path: bool) -> impl Strategy<Value = Update> {
    (
        vec(v4_nlri(add_path), 0..20),
        vec((attr(four, add_path), any::<bool>(), any::<bool>()), 0..12),
        vec(v4_nlri(add_path), 0..20),
    )
        .prop_map(move |(withdrawn, attrs, nlri)| {
            let mut seen = std::collections::BTreeSet::new();
            let attributes = attrs
                .into_iter()
                .filter(|(v, _, _)| seen.insert(u8::from(v.type_code())))
                .map(|(value, ext, partial)| {
                    let mut a = PathAttribute::new(value);
                    // The decoder reports the flags as seen on the wire, and the encoder must set
                    // Extended Length for values over 255 octets.
                    if ext || a.value.encoded_len(&contexts(four, add_path).0) > 255 {
                        a.flags.0 |= AttrFlags::EXTENDED_LENGTH;
                    }
                    if partial && a.flags.optional() && a.flags.transitive() {
                        a.flags.0 |= AttrFlags::PARTIAL;
                    }
                    a
                })
                .collect();
            Update {
                withdrawn,
                attributes,
                nlri,
            }
        })
}

fn contexts(four: bool, add_path: bool) -> (EncodeContext, DecodeContext) {
    let fams = if add_path {
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    } else {
        vec![]
    };
    (
        EncodeContext {
            four_octet_as: four,
            extended_message: true,
            add_path: fams.clone(),
        },
        DecodeContext {
            four_octet_as: four,
            extended_message: true,
            add_path: fams,
            ebgp: false,
        },
    )
}

fn message(four: bool, add_path: bool) -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update(four, add_path).prop_map(Message::Update),
        (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..50)).prop_map(|(c, s, data)| {
            Message::Notification(Notification {
                code: c.into(),
                subcode: s,
                data,
            })
        }),
        Just(Message::Keepalive),
        (family(), 0u8..3, vec(any::<u8>(), 0..10)).prop_map(|(f, st, orf)| {
            let mut r = RouteRefresh::new(f, RouteRefreshSubtype::from(st));
            if st == 0 {
                r.orf = orf;
            }
            Message::RouteRefresh(r)
        }),
    ]
}

fn check(msg: &Message, four: bool, add_path: bool) -> Result<(), TestCaseError> {
    let (ecx, dcx) = contexts(four, add_path);
    let wire = msg
        .to_bytes(&ecx)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(bgp_proto::frame_len(&wire), Some(wire.len()));
    let decoded = Message::decode(&wire, &dcx).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded.message, msg);
    let again = decoded
        .message
        .to_bytes(&ecx)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&again[..], &wire[..]);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn messages_round_trip_two_octet(msg in message(false, false)) {
        check(&msg, false, false)?;
    }

    #[test]
    fn messages_round_trip_four_octet_add_path(msg in message(true, true)) {
        check(&msg, true, true)?;
    }

    #[test]
    fn shutdown_communication_round_trips(text in ".{0,100}") {
        let n = Notification::shutdown(CeaseSubcode::AdministrativeShutdown, &text)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let wire = Message::Notification(n).to_bytes(&EncodeContext::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let d = Message::decode(&wire, &DecodeContext::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let Message::Notification(n) = d.message else { return Err(TestCaseError::fail("type")) };
        let expect: String = {
            let mut end = text.len().min(255);
            while !text.is_char_boundary(end) { end -= 1; }
            text[..end].to_string()
        };
        prop_assert_eq!(n.shutdown_communication(), Some(expect.as_str()));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in vec(any::<u8>(), 0..600), ty in 1u8..=5) {
        let mut frame = vec![0xff; 16];
        frame.extend_from_slice(&((body.len() + 19) as u16).to_be_bytes());
        frame.push(ty);
        frame.extend_from_slice(&body);
        for cx in [DecodeContext::default(), contexts(true, true).1] {
            let _ = Message::decode(&frame, &cx);
        }
    }
}

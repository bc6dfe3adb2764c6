//! Session-layer tests: initial advertisement and End-of-RIB, import policy, RFC 7606
//! treat-as-withdraw, max-prefix, graceful restart (helper and restarting speaker), route refresh.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_proto::capability::GracefulRestart;
use bgp_proto::{AsPath, Ipv4Prefix, Open, Origin};

use super::*;
use crate::config::PeerAsn;

pub(super) const CONN: ConnId = 1;
pub(super) const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub(super) fn config(import: ImportPolicy, gr: Option<GrConfig>) -> SessionConfig {
    let mut fsm = FsmConfig::new(65001, Ipv4Addr::new(10, 0, 0, 1), PeerAsn::Number(65002));
    fsm.hold_time = 9;
    SessionConfig {
        fsm,
        families: BTreeSet::from([Family::IPV4_UNICAST, Family::IPV6_UNICAST]),
        import,
        max_prefixes: Some(3),
        soft_reconfiguration_inbound: false,
        refresh_interval: Duration::from_secs(5),
        graceful_restart: gr,
        stale_path_time: Duration::from_secs(30),
        extended_next_hop: false,
    }
}

pub(super) fn peer_open(gr: Option<GracefulRestart>) -> Open {
    let mut caps = vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::Multiprotocol(Family::IPV6_UNICAST),
        Capability::FourOctetAs(65002),
        Capability::RouteRefresh,
        Capability::EnhancedRouteRefresh,
    ];
    if let Some(gr) = gr {
        caps.push(Capability::GracefulRestart(gr));
    }
    Open::new(65002, 30, PEER_ID, caps)
}

pub(super) fn peer_gr(restart_time: u16) -> GracefulRestart {
    GracefulRestart {
        flags: 0,
        restart_time,
        families: vec![GracefulRestartFamily {
            family: Family::IPV4_UNICAST,
            flags: 0x80,
        }],
    }
}

pub(super) fn clean(message: Message) -> Decoded {
    Decoded {
        message,
        rfc7606: Rfc7606::Clean,
    }
}

pub(super) fn established(session: &mut Session, now: Instant, open: Open) -> Vec<Output> {
    let mut out = session.handle(now, fsm::Input::Start);
    out.extend(session.connected(
        now,
        CONN,
        Direction::Outbound,
        "10.0.0.1".parse().expect("ip"),
        None,
    ));
    out.extend(session.received(now, CONN, clean(Message::Open(open))));
    out.extend(session.received(now, CONN, clean(Message::Keepalive)));
    assert_eq!(session.fsm().state(), State::Established);
    out
}

fn sent_updates(out: &[Output]) -> Vec<Update> {
    out.iter()
        .filter_map(|o| match o {
            Output::Fsm(fsm::Output::Send(_, Message::Update(u))) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn announce(prefixes: &[&str]) -> Update {
    Update {
        attributes: vec![
            PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[65002]))),
            PathAttribute::new(AttrValue::NextHop(PEER_ID)),
        ],
        nlri: prefixes
            .iter()
            .map(|p| {
                let net: Ipv4Net = p.parse().expect("prefix");
                Ipv4Nlri::new(Ipv4Prefix::new(net.network(), net.prefix_len()).expect("len"))
            })
            .collect(),
        ..Update::default()
    }
}

pub(super) fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

/// Originated routes with ORIGIN and an empty AS_PATH, one shared attribute set.
fn local(
    prefixes: &[&str],
) -> std::collections::BTreeMap<IpNet, crate::advertise::RouteAttributes> {
    let attrs = std::sync::Arc::new(vec![
        PathAttribute::new(AttrValue::Origin(Origin::Igp)),
        PathAttribute::new(AttrValue::AsPath(AsPath::new())),
    ]);
    prefixes.iter().map(|p| (net(p), attrs.clone())).collect()
}

/// Attributes too large for a 4096-octet UPDATE (1100 communities, 4400 octets).
fn huge_attributes() -> crate::advertise::RouteAttributes {
    std::sync::Arc::new(vec![
        PathAttribute::new(AttrValue::Origin(Origin::Igp)),
        PathAttribute::new(AttrValue::AsPath(AsPath::new())),
        PathAttribute::new(AttrValue::Communities(
            (0..1100u32).map(bgp_proto::Community).collect(),
        )),
    ])
}

fn prefixes_of(updates: &[Update]) -> (BTreeSet<IpNet>, BTreeSet<IpNet>) {
    let mut announced = BTreeSet::new();
    let mut withdrawn = BTreeSet::new();
    for u in updates {
        announced.extend(u.nlri.iter().filter_map(ipv4));
        withdrawn.extend(u.withdrawn.iter().filter_map(ipv4));
    }
    (announced, withdrawn)
}

/// Issue 14 item 6: a route that cannot be encoded for the session skips only itself. The rest
/// of the batch and the withdrawals go out, the Adj-RIB-Out view shows what the peer really
/// holds, the route is reported once, and a path it replaces is withdrawn rather than left
/// stale at the peer.
#[test]
fn an_unencodable_route_skips_only_itself_and_is_not_shown_as_advertised() {
    let now = Instant::now();
    let mut s = Session::new(config(ImportPolicy::reject_all(), None));
    let mut routes = local(&["192.0.2.0/24", "198.51.100.0/24"]);
    routes.insert(net("203.0.113.0/24"), huge_attributes());
    s.set_local_routes(routes);
    let out = established(&mut s, now, peer_open(None));
    let (announced, _) = prefixes_of(&sent_updates(&out));
    assert_eq!(
        announced,
        BTreeSet::from([net("192.0.2.0/24"), net("198.51.100.0/24")])
    );
    let reported: Vec<&(IpNet, String)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Unsent { routes } => Some(routes),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0].0, net("203.0.113.0/24"));
    assert!(reported[0].1.contains("4096"), "{}", reported[0].1);
    assert_eq!(
        s.advertised().keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([net("192.0.2.0/24"), net("198.51.100.0/24")])
    );
    assert_eq!(s.advertised_len(), 2);
    assert_eq!(s.unsent().len(), 1);

    // A batch with a withdrawal, a new route and a route that grows too large: the withdrawal
    // and the new route go, the grown one is withdrawn (the peer must not keep the old path).
    let mut routes = local(&["192.0.2.0/24", "192.0.2.128/25"]);
    routes.insert(net("203.0.113.0/24"), huge_attributes());
    routes.insert(net("192.0.2.0/24"), huge_attributes());
    let out = s.set_local_routes(routes);
    let (announced, withdrawn) = prefixes_of(&sent_updates(&out));
    assert_eq!(announced, BTreeSet::from([net("192.0.2.128/25")]));
    assert_eq!(
        withdrawn,
        BTreeSet::from([net("198.51.100.0/24"), net("192.0.2.0/24")])
    );
    assert_eq!(
        s.advertised().keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([net("192.0.2.128/25")])
    );
    // Only the newly unsendable route is reported; the one already reported is not repeated.
    let reported: Vec<IpNet> = out
        .iter()
        .filter_map(|o| match o {
            Output::Unsent { routes } => Some(routes.iter().map(|(p, _)| *p)),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(reported, vec![net("192.0.2.0/24")]);

    // Once its attributes fit again the route is sent and shown.
    let out = s.set_local_routes(local(&["192.0.2.0/24", "192.0.2.128/25"]));
    let (announced, withdrawn) = prefixes_of(&sent_updates(&out));
    assert_eq!(announced, BTreeSet::from([net("192.0.2.0/24")]));
    assert_eq!(withdrawn, BTreeSet::from([net("203.0.113.0/24")]));
    assert!(s.unsent().is_empty());
    assert_eq!(s.advertised_len(), 2);
}

#[test]
fn established_session_sends_originated_routes_then_end_of_rib_per_family() {
    let now = Instant::now();
    let mut s = Session::new(config(ImportPolicy::reject_all(), None));
    s.set_local_routes(local(&["192.0.2.0/24", "2001:db8::/48"]));
    let updates = sent_updates(&established(&mut s, now, peer_open(None)));
    // The IPv6 route has no next hop on an IPv4 session: only the IPv4 one goes out.
    assert_eq!(updates.len(), 3, "{updates:?}");
    assert_eq!(updates[0].nlri.len(), 1);
    assert_eq!(updates[0].next_hop(), Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(updates[1].end_of_rib_family(), Some(Family::IPV4_UNICAST));
    assert_eq!(updates[2].end_of_rib_family(), Some(Family::IPV6_UNICAST));
    assert_eq!(s.rib_out().len(), 1);

    // A later change sends only the difference.
    let out = s.set_local_routes(local(&["198.51.100.0/24"]));
    let updates = sent_updates(&out);
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].withdrawn.len(), 1);
    assert_eq!(updates[1].nlri.len(), 1);
}

#[test]
fn rejected_routes_are_not_kept_without_soft_reconfiguration() {
    let now = Instant::now();
    let mut s = Session::new(config(ImportPolicy::reject_all(), None));
    established(&mut s, now, peer_open(None));
    let out = s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.1.0.0/16", "10.2.0.0/16"]))),
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Routes { .. })));
    assert_eq!((s.rib_in().len(), s.rib_in().accepted()), (0, 0));
    assert_eq!(s.memory_estimate(), 0);

    // A policy change asks the peer again, since nothing rejected was kept.
    let mut c = s.config().clone();
    c.import = ImportPolicy::accept_all();
    s.update_config(c);
    let out = s.reevaluate_import();
    let asked = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Fsm(fsm::Output::Send(_, Message::RouteRefresh(_)))
            )
        })
        .count();
    assert_eq!(asked, 2, "one ROUTE-REFRESH per family: {out:?}");

    // With soft reconfiguration inbound they are kept, and the policy change needs no refresh.
    let mut c = config(ImportPolicy::reject_all(), None);
    c.soft_reconfiguration_inbound = true;
    let mut s = Session::new(c);
    established(&mut s, now, peer_open(None));
    s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.1.0.0/16", "10.2.0.0/16"]))),
    );
    assert_eq!((s.rib_in().len(), s.rib_in().accepted()), (2, 0));
    assert!(s.memory_estimate() > 0);
    let mut c = s.config().clone();
    c.import = ImportPolicy::accept_all();
    s.update_config(c);
    let out = s.reevaluate_import();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Routes { updated, .. } if updated.len() == 2))
    );
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Fsm(fsm::Output::Send(_, Message::RouteRefresh(_)))
    )));

    let mut s = Session::new(config(ImportPolicy::accept_all(), None));
    established(&mut s, now, peer_open(None));
    let out = s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.1.0.0/16"]))),
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Routes { updated, .. } if updated.len() == 1))
    );
    assert_eq!(s.rib_in().accepted(), 1);
}

#[test]
fn treat_as_withdraw_removes_the_announced_prefixes() {
    let now = Instant::now();
    let mut s = Session::new(config(ImportPolicy::accept_all(), None));
    established(&mut s, now, peer_open(None));
    s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.1.0.0/16", "10.2.0.0/16"]))),
    );
    let broken = Decoded {
        message: Message::Update(announce(&["10.1.0.0/16"])),
        rfc7606: Rfc7606::TreatAsWithdraw { errors: Vec::new() },
    };
    let out = s.received(now, CONN, broken);
    assert!(out.iter().any(
        |o| matches!(o, Output::Routes { withdrawn, .. } if withdrawn == &vec![net("10.1.0.0/16")])
    ));
    assert_eq!(s.rib_in().len(), 1);
    assert_eq!(s.fsm().state(), State::Established, "no session reset");
    assert_eq!(s.counters().treat_as_withdraw, 1);
}

#[test]
fn max_prefix_resets_with_cease_and_backs_off() {
    let now = Instant::now();
    let mut s = Session::new(config(ImportPolicy::accept_all(), None));
    established(&mut s, now, peer_open(None));
    let out = s.received(
        now,
        CONN,
        clean(Message::Update(announce(&[
            "10.1.0.0/16",
            "10.2.0.0/16",
            "10.3.0.0/16",
            "10.4.0.0/16",
        ]))),
    );
    let cease = out.iter().find_map(|o| match o {
        Output::Fsm(fsm::Output::Send(_, Message::Notification(n))) => Some(n.clone()),
        _ => None,
    });
    let cease = cease.expect("NOTIFICATION sent");
    assert_eq!(cease.cease_subcode(), Some(CeaseSubcode::MaxPrefixes));
    assert_eq!(cease.data, vec![0, 1, 1, 0, 0, 0, 3]);
    assert_eq!(s.fsm().state(), State::Idle);
    assert!(
        s.fsm().deadline(fsm::Timer::IdleHold).is_some(),
        "automatic restart armed"
    );
    assert!(
        s.rib_in().is_empty(),
        "routes flushed: a NOTIFICATION ends GR"
    );
}

#[test]
fn max_prefix_counts_each_family_and_names_it_in_the_cease() {
    let now = Instant::now();
    let mut s = Session::new(config(ImportPolicy::accept_all(), None));
    established(&mut s, now, peer_open(None));
    // Three IPv4 routes: at the limit, not over it.
    s.received(
        now,
        CONN,
        clean(Message::Update(announce(&[
            "10.1.0.0/16",
            "10.2.0.0/16",
            "10.3.0.0/16",
        ]))),
    );
    assert_eq!(s.fsm().state(), State::Established);
    // Four IPv6 routes: the IPv6 family goes over its own limit.
    let v6: Vec<Ipv6Nlri> = (1u16..=4)
        .map(|i| {
            Ipv6Nlri::new(
                bgp_proto::Ipv6Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 0), 48)
                    .expect("len"),
            )
        })
        .collect();
    let update = Update {
        attributes: vec![
            PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[65002]))),
            PathAttribute::new(AttrValue::MpReach(bgp_proto::MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: NextHop::Ipv6 {
                    global: "fd00::2".parse().expect("ip"),
                    link_local: None,
                },
                nlri: MpNlri::Ipv6(v6),
            })),
        ],
        ..Update::default()
    };
    let out = s.received(now, CONN, clean(Message::Update(update)));
    let cease = sent_notification(&out);
    assert_eq!(cease.cease_subcode(), Some(CeaseSubcode::MaxPrefixes));
    // AFI 2, SAFI 1, limit 3.
    assert_eq!(cease.data, vec![0, 2, 1, 0, 0, 0, 3]);
    assert_eq!(s.fsm().state(), State::Idle);
    assert!(s.fsm().deadline(fsm::Timer::IdleHold).is_some());
}

#[test]
fn route_refresh_replays_are_rate_limited_and_coalesced() {
    let now = Instant::now();
    let mut s = Session::new(config(ImportPolicy::reject_all(), None));
    s.set_local_routes(local(&["192.0.2.0/24"]));
    established(&mut s, now, peer_open(None));
    let refresh = || {
        clean(Message::RouteRefresh(RouteRefresh::new(
            Family::IPV4_UNICAST,
            RouteRefreshSubtype::Normal,
        )))
    };
    assert_eq!(sent_updates(&s.received(now, CONN, refresh())).len(), 1);
    // A burst within the interval sends nothing now...
    for i in 1..100 {
        let at = now + Duration::from_millis(i * 10);
        assert!(sent_updates(&s.received(at, CONN, refresh())).is_empty());
    }
    assert_eq!(s.counters().refreshes_answered, 1);
    assert_eq!(s.counters().refreshes_coalesced, 99);
    // ...and one replay when the interval ends.
    let due = now + Duration::from_secs(5);
    assert!(s.poll_timeout().is_some_and(|t| t <= due));
    let out = s.on_timeout(due);
    assert_eq!(sent_updates(&out).len(), 1, "{out:?}");
    assert_eq!(s.counters().refreshes_answered, 2);
    assert!(
        s.on_timeout(due + Duration::from_secs(60))
            .iter()
            .all(|o| !matches!(o, Output::Fsm(fsm::Output::Send(_, Message::Update(_)))))
    );
}

#[test]
fn helper_keeps_stale_routes_until_end_of_rib() {
    let now = Instant::now();
    let mut s = Session::new(config(
        ImportPolicy::accept_all(),
        Some(GrConfig {
            restart_time: 120,
            restarting: false,
            forwarding_preserved: false,
            long_lived_stale_time: None,
        }),
    ));
    established(&mut s, now, peer_open(Some(peer_gr(60))));
    s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.1.0.0/16", "10.2.0.0/16"]))),
    );

    // The peer dies without a NOTIFICATION: routes stay, marked stale, restart timer armed.
    let out = s.handle(now, fsm::Input::Disconnected(CONN));
    assert!(
        !out.iter().any(|o| matches!(o, Output::Routes { .. })),
        "{out:?}"
    );
    assert_eq!(s.rib_in().stale(), 2);
    assert_eq!(s.stale_deadline(), Some(now + Duration::from_secs(60)));

    // It comes back (restarting, F bit set), re-announces one route and sends End-of-RIB.
    let later = now + Duration::from_secs(5);
    let mut gr = peer_gr(60);
    gr.flags = 0x8;
    let _ = s.on_timeout(later);
    assert_eq!(
        s.fsm().state(),
        State::Connect,
        "automatic restart after IdleHold"
    );
    s.connected(
        later,
        2,
        Direction::Inbound,
        "10.0.0.1".parse().expect("ip"),
        None,
    );
    s.received(later, 2, clean(Message::Open(peer_open(Some(gr)))));
    s.received(later, 2, clean(Message::Keepalive));
    assert_eq!(s.fsm().state(), State::Established);
    assert_eq!(s.rib_in().stale(), 2, "still waiting for End-of-RIB");
    s.received(later, 2, clean(Message::Update(announce(&["10.1.0.0/16"]))));
    let out = s.received(
        later,
        2,
        clean(Message::Update(Update::end_of_rib(Family::IPV4_UNICAST))),
    );
    assert!(out.iter().any(
        |o| matches!(o, Output::Routes { withdrawn, .. } if withdrawn == &vec![net("10.2.0.0/16")])
    ));
    assert_eq!((s.rib_in().len(), s.rib_in().stale()), (1, 0));
    assert_eq!(s.stale_deadline(), None);
}

#[test]
fn helper_sweeps_stale_routes_when_restart_time_expires() {
    let now = Instant::now();
    let mut s = Session::new(config(
        ImportPolicy::accept_all(),
        Some(GrConfig {
            restart_time: 120,
            restarting: false,
            forwarding_preserved: false,
            long_lived_stale_time: None,
        }),
    ));
    established(&mut s, now, peer_open(Some(peer_gr(10))));
    s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.1.0.0/16"]))),
    );
    s.handle(now, fsm::Input::Disconnected(CONN));
    assert_eq!(s.rib_in().stale(), 1);
    let out = s.on_timeout(now + Duration::from_secs(11));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Routes { withdrawn, .. } if withdrawn.len() == 1))
    );
    assert!(s.rib_in().is_empty());
}

#[test]
fn peer_without_graceful_restart_loses_routes_at_once() {
    let now = Instant::now();
    let mut s = Session::new(config(
        ImportPolicy::accept_all(),
        Some(GrConfig {
            restart_time: 120,
            restarting: false,
            forwarding_preserved: false,
            long_lived_stale_time: None,
        }),
    ));
    established(&mut s, now, peer_open(None));
    s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.1.0.0/16"]))),
    );
    let out = s.handle(now, fsm::Input::Disconnected(CONN));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Routes { withdrawn, .. } if withdrawn.len() == 1))
    );
}

#[test]
fn restarting_speaker_advertises_restart_and_forwarding_bits() {
    let config = config(
        ImportPolicy::reject_all(),
        Some(GrConfig {
            restart_time: 90,
            restarting: true,
            forwarding_preserved: true,
            long_lived_stale_time: None,
        }),
    );
    let s = Session::new(config.clone());
    let gr = s
        .fsm()
        .local_open()
        .capabilities
        .iter()
        .find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        })
        .expect("GR capability");
    assert!(gr.restart_state());
    assert_eq!(gr.restart_time, 90);
    assert!(gr.families.iter().all(|f| f.forwarding_preserved()));
    let mut fresh = config;
    fresh.graceful_restart = Some(GrConfig {
        restart_time: 90,
        restarting: false,
        forwarding_preserved: false,
        long_lived_stale_time: None,
    });
    let caps = fresh.capabilities();
    assert!(caps.iter().any(|c| matches!(c, Capability::GracefulRestart(g) if !g.restart_state() && g.families.iter().all(|f| !f.forwarding_preserved()))));
}

#[test]
fn restarting_speaker_without_kept_forwarding_state_sets_r_but_not_f() {
    let config = config(
        ImportPolicy::reject_all(),
        Some(GrConfig {
            restart_time: 90,
            restarting: true,
            forwarding_preserved: false,
            long_lived_stale_time: None,
        }),
    );
    let gr = config
        .capabilities()
        .into_iter()
        .find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g),
            _ => None,
        })
        .expect("GR capability");
    assert!(gr.restart_state());
    assert!(!gr.families.is_empty());
    assert!(gr.families.iter().all(|f| !f.forwarding_preserved()));
}

#[test]
fn enhanced_route_refresh_replays_adj_rib_out_between_borr_and_eorr() {
    let now = Instant::now();
    let mut s = Session::new(config(ImportPolicy::reject_all(), None));
    s.set_local_routes(local(&["192.0.2.0/24"]));
    established(&mut s, now, peer_open(None));
    let out = s.received(
        now,
        CONN,
        clean(Message::RouteRefresh(RouteRefresh::new(
            Family::IPV4_UNICAST,
            RouteRefreshSubtype::Normal,
        ))),
    );
    let sent: Vec<&Message> = out
        .iter()
        .filter_map(|o| match o {
            Output::Fsm(fsm::Output::Send(_, m)) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(
        matches!(sent[0], Message::RouteRefresh(r) if r.subtype == RouteRefreshSubtype::BeginningOfRefresh)
    );
    assert!(matches!(sent[1], Message::Update(u) if u.nlri.len() == 1));
    assert!(
        matches!(sent[2], Message::RouteRefresh(r) if r.subtype == RouteRefreshSubtype::EndOfRefresh)
    );
    assert_eq!(s.counters().refreshes_answered, 1);
}

#[test]
fn peer_enhanced_refresh_marks_and_sweeps_stale() {
    let now = Instant::now();
    let mut s = Session::new(config(ImportPolicy::accept_all(), None));
    established(&mut s, now, peer_open(None));
    s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.1.0.0/16", "10.2.0.0/16"]))),
    );
    let borr = RouteRefresh::new(
        Family::IPV4_UNICAST,
        RouteRefreshSubtype::BeginningOfRefresh,
    );
    let eorr = RouteRefresh::new(Family::IPV4_UNICAST, RouteRefreshSubtype::EndOfRefresh);
    s.received(now, CONN, clean(Message::RouteRefresh(borr)));
    s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.2.0.0/16"]))),
    );
    let out = s.received(now, CONN, clean(Message::RouteRefresh(eorr)));
    assert!(out.iter().any(
        |o| matches!(o, Output::Routes { withdrawn, .. } if withdrawn == &vec![net("10.1.0.0/16")])
    ));
}

#[test]
fn ipv6_routes_use_mp_reach_on_ipv6_sessions() {
    let now = Instant::now();
    let mut s = Session::new(config(ImportPolicy::accept_all(), None));
    s.set_local_routes(local(&["2001:db8:1::/48"]));
    let mut out = s.handle(now, fsm::Input::Start);
    out.extend(s.connected(
        now,
        CONN,
        Direction::Outbound,
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        None,
    ));
    out.extend(s.received(now, CONN, clean(Message::Open(peer_open(None)))));
    out.extend(s.received(now, CONN, clean(Message::Keepalive)));
    let updates = sent_updates(&out);
    let reach = updates
        .iter()
        .find_map(|u| u.mp_reach())
        .expect("MP_REACH_NLRI");
    assert_eq!(reach.family, Family::IPV6_UNICAST);
    assert!(
        matches!(reach.next_hop, NextHop::Ipv6 { global, .. } if global == Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))
    );
}

// RFC 8538: Notification support for graceful restart.

fn gr_on() -> Option<GrConfig> {
    Some(GrConfig {
        restart_time: 120,
        restarting: false,
        forwarding_preserved: false,
        long_lived_stale_time: None,
    })
}

/// The peer's GR capability with the N bit.
fn peer_gr_n(restart_time: u16) -> GracefulRestart {
    let mut gr = peer_gr(restart_time);
    gr.flags |= 0x4;
    gr
}

/// An Established session (GR on our side) holding two accepted routes from the peer.
fn session_with_routes(now: Instant, peer: Option<GracefulRestart>) -> Session {
    let mut s = Session::new(config(ImportPolicy::accept_all(), gr_on()));
    established(&mut s, now, peer_open(peer));
    s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.1.0.0/16", "10.2.0.0/16"]))),
    );
    assert_eq!(s.rib_in().len(), 2);
    s
}

fn sent_notification(out: &[Output]) -> Notification {
    out.iter()
        .find_map(|o| match o {
            Output::Fsm(fsm::Output::Send(_, Message::Notification(n))) => Some(n.clone()),
            _ => None,
        })
        .expect("a NOTIFICATION was sent")
}

fn flushed(out: &[Output]) -> usize {
    out.iter()
        .map(|o| match o {
            Output::Routes { withdrawn, .. } => withdrawn.len(),
            _ => 0,
        })
        .sum()
}

#[test]
fn graceful_restart_capability_carries_the_notification_bit() {
    let mut c = config(ImportPolicy::reject_all(), gr_on());
    let gr_of = |c: &SessionConfig| {
        c.capabilities()
            .into_iter()
            .find_map(|cap| match cap {
                Capability::GracefulRestart(g) => Some(g),
                _ => None,
            })
            .expect("GR capability")
    };
    let gr = gr_of(&c);
    assert!(gr.notification() && !gr.restart_state());
    c.graceful_restart = Some(GrConfig {
        restart_time: 120,
        restarting: true,
        forwarding_preserved: true,
        long_lived_stale_time: None,
    });
    let gr = gr_of(&c);
    assert!(gr.notification() && gr.restart_state());
    assert_eq!(gr.flags, 0xc);
}

#[test]
fn received_notification_with_n_bit_keeps_routes_stale() {
    let now = Instant::now();
    let mut s = session_with_routes(now, Some(peer_gr_n(60)));
    assert!(s.notification_gr());
    let reset = Notification::shutdown(CeaseSubcode::AdministrativeReset, "maintenance")
        .expect("notification");
    let out = s.received(now, CONN, clean(Message::Notification(reset)));
    assert_eq!(flushed(&out), 0, "{out:?}");
    assert_eq!(s.rib_in().stale(), 2);
    assert_eq!(s.stale_deadline(), Some(now + Duration::from_secs(60)));
    assert_eq!(s.fsm().state(), State::Idle);
}

#[test]
fn sent_notification_with_n_bit_keeps_routes_stale() {
    let now = Instant::now();
    let mut s = session_with_routes(now, Some(peer_gr_n(60)));
    // Our hold timer expires: we send 4/0, which is not a Hard Reset.
    let expiry = s
        .fsm()
        .deadline(fsm::Timer::Hold)
        .expect("hold timer armed");
    let out = s.on_timeout(expiry);
    assert_eq!(sent_notification(&out), Notification::hold_timer_expired());
    assert_eq!(flushed(&out), 0, "{out:?}");
    assert_eq!(s.rib_in().stale(), 2);
}

#[test]
fn received_hard_reset_flushes_routes() {
    let now = Instant::now();
    let mut s = session_with_routes(now, Some(peer_gr_n(60)));
    let hard = hard_reset(&Notification::cease(CeaseSubcode::AdministrativeShutdown));
    assert_eq!(hard.data, vec![6, 2]);
    let out = s.received(now, CONN, clean(Message::Notification(hard)));
    assert_eq!(flushed(&out), 2);
    assert!(s.rib_in().is_empty());
    assert_eq!(s.stale_deadline(), None);
    assert!(
        s.fsm()
            .last_error()
            .is_some_and(|e| e.contains("6/9") && e.contains("hard reset: 6/2")),
        "{:?}",
        s.fsm().last_error()
    );
}

#[test]
fn notification_without_n_bit_flushes_routes() {
    let now = Instant::now();
    let mut s = session_with_routes(now, Some(peer_gr(60)));
    assert!(!s.notification_gr());
    let out = s.received(
        now,
        CONN,
        clean(Message::Notification(Notification::cease(
            CeaseSubcode::AdministrativeReset,
        ))),
    );
    assert_eq!(flushed(&out), 2);
    assert!(s.rib_in().is_empty());
}

#[test]
fn max_prefix_with_n_bit_sends_hard_reset_wrapping_the_cease() {
    let now = Instant::now();
    let mut s = session_with_routes(now, Some(peer_gr_n(60)));
    let out = s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.3.0.0/16", "10.4.0.0/16"]))),
    );
    let sent = sent_notification(&out);
    assert_eq!(sent.cease_subcode(), Some(CeaseSubcode::HardReset));
    // Cease/Max Prefixes with its AFI/SAFI/limit data, behind the Hard Reset code/subcode.
    assert_eq!(sent.data, vec![6, 1, 0, 1, 1, 0, 0, 0, 3]);
    assert!(
        s.rib_in().is_empty(),
        "Hard Reset flushes the peer's routes"
    );
}

#[test]
fn admin_reset_is_soft_unless_hard_is_asked_for() {
    let now = Instant::now();
    let mut soft = session_with_routes(now, Some(peer_gr_n(60)));
    let out = soft.admin_reset(now, false, "soft");
    let sent = sent_notification(&out);
    assert_eq!(
        sent.cease_subcode(),
        Some(CeaseSubcode::AdministrativeReset)
    );
    assert_eq!(sent.shutdown_communication(), Some("soft"));
    assert_eq!(soft.rib_in().stale(), 2, "routes kept as across a restart");
    assert!(soft.fsm().deadline(fsm::Timer::IdleHold).is_some());

    let mut hard = session_with_routes(now, Some(peer_gr_n(60)));
    let out = hard.admin_reset(now, true, "hard");
    let sent = sent_notification(&out);
    assert_eq!(sent.cease_subcode(), Some(CeaseSubcode::HardReset));
    assert_eq!(&sent.data[..3], &[6, 4, 4]);
    assert_eq!(&sent.data[3..], b"hard");
    assert_eq!(flushed(&out), 2);
}

#[test]
fn no_hard_reset_to_a_peer_without_the_n_bit() {
    let now = Instant::now();
    let mut s = session_with_routes(now, Some(peer_gr(60)));
    let out = s.admin_reset(now, true, "hard");
    assert_eq!(
        sent_notification(&out).cease_subcode(),
        Some(CeaseSubcode::AdministrativeReset)
    );
}

#[test]
fn shutdown_is_a_hard_reset_and_bfd_down_a_graceful_cease() {
    let now = Instant::now();
    let mut s = session_with_routes(now, Some(peer_gr_n(60)));
    let out = s.handle(
        now,
        fsm::Input::Stop {
            notification: Notification::cease(CeaseSubcode::AdministrativeShutdown),
        },
    );
    let sent = sent_notification(&out);
    assert_eq!(
        (sent.cease_subcode(), sent.data.as_slice()),
        (Some(CeaseSubcode::HardReset), &[6u8, 2][..])
    );
    assert!(s.rib_in().is_empty());

    let mut s = session_with_routes(now, Some(peer_gr_n(60)));
    let out = s.handle(
        now,
        fsm::Input::Reset {
            notification: Notification::cease(CeaseSubcode::BfdDown),
            reason: "BFD session down".into(),
        },
    );
    assert_eq!(
        sent_notification(&out).cease_subcode(),
        Some(CeaseSubcode::BfdDown)
    );
    assert_eq!(s.rib_in().stale(), 2);
}

#[test]
fn routes_with_our_as_in_the_path_are_never_accepted() {
    let now = Instant::now();
    let mut s = Session::new(config(ImportPolicy::accept_all(), None));
    established(&mut s, now, peer_open(None));
    let mut looped = announce(&["192.0.2.0/24"]);
    looped.attributes[1] =
        PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[65002, 65001])));
    let out = s.received(now, CONN, clean(Message::Update(looped)));
    assert!(
        !out.iter().any(|o| matches!(o, Output::Routes { .. })),
        "{out:?}"
    );
    assert_eq!(s.rib_in().len(), 0, "not kept without soft reconfiguration");
    s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["198.51.100.0/24"]))),
    );
    assert_eq!(s.rib_in().accepted(), 1);
}

#[test]
fn soft_resets_need_an_established_session_and_soft_in_the_refresh_capability() {
    let now = Instant::now();
    let mut idle = Session::new(config(ImportPolicy::accept_all(), None));
    let refused = idle
        .operator_reset(now, PeerReset::SoftOut)
        .expect_err("idle");
    assert!(refused.contains("Established"), "{refused}");

    // A peer without ROUTE-REFRESH: soft-in is refused, soft-out re-sends our routes.
    let mut s = Session::new(config(ImportPolicy::accept_all(), None));
    let mut open = peer_open(None);
    open.capabilities.retain(|c| {
        !matches!(
            c,
            Capability::RouteRefresh | Capability::EnhancedRouteRefresh
        )
    });
    established(&mut s, now, open);
    s.set_local_routes(local(&["192.0.2.0/24"]));
    let refused = s
        .operator_reset(now, PeerReset::SoftIn)
        .expect_err("no refresh");
    assert!(refused.contains("route refresh"), "{refused}");
    let out = s.operator_reset(now, PeerReset::SoftOut).expect("soft out");
    let updates = sent_updates(&out);
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].nlri.len(), 1);
    assert_eq!(s.fsm().state(), State::Established);

    // With the capability, soft-in asks for every negotiated family.
    let mut s = Session::new(config(ImportPolicy::accept_all(), None));
    established(&mut s, now, peer_open(None));
    let out = s.operator_reset(now, PeerReset::SoftIn).expect("soft in");
    let asked: Vec<Family> = out
        .iter()
        .filter_map(|o| match o {
            Output::Fsm(fsm::Output::Send(_, Message::RouteRefresh(rr))) => Some(rr.family()),
            _ => None,
        })
        .collect();
    assert_eq!(asked, [Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
}

// RFC 8950: extended next hop, IPv4 unicast with IPv6 next hops.

const ENH: bgp_proto::capability::ExtendedNextHopFamily =
    bgp_proto::capability::ExtendedNextHopFamily {
        afi: bgp_proto::Afi::Ipv4,
        safi: 1,
        next_hop_afi: bgp_proto::Afi::Ipv6,
    };

/// A session on an IPv6 transport (with a link-local next hop), originating one IPv4 and one
/// IPv6 route, Established with a peer whose OPEN carries `peer_enh`.
fn ipv6_session_with_enh(ours: bool, peer_enh: bool) -> (Session, Vec<Output>) {
    let now = Instant::now();
    let mut cfg = config(ImportPolicy::accept_all(), None);
    cfg.extended_next_hop = ours;
    let mut s = Session::new(cfg);
    s.set_local_routes(local(&["192.0.2.0/24", "2001:db8:1::/48"]));
    let mut out = s.handle(now, fsm::Input::Start);
    out.extend(s.connected(
        now,
        CONN,
        Direction::Outbound,
        "fd00::1".parse().expect("ip"),
        Some("fe80::1".parse().expect("ip")),
    ));
    let mut open = peer_open(None);
    if peer_enh {
        open.capabilities
            .push(Capability::ExtendedNextHop(vec![ENH]));
    }
    out.extend(s.received(now, CONN, clean(Message::Open(open))));
    out.extend(s.received(now, CONN, clean(Message::Keepalive)));
    assert_eq!(s.fsm().state(), State::Established);
    (s, out)
}

fn sent_open(out: &[Output]) -> Open {
    out.iter()
        .find_map(|o| match o {
            Output::Fsm(fsm::Output::Send(_, Message::Open(open))) => Some(open.clone()),
            _ => None,
        })
        .expect("an OPEN was sent")
}

#[test]
fn extended_next_hop_sends_ipv4_routes_with_the_ipv6_next_hops() {
    let (_, out) = ipv6_session_with_enh(true, true);
    assert!(
        sent_open(&out)
            .capabilities
            .contains(&Capability::ExtendedNextHop(vec![ENH])),
        "our OPEN offers IPv4 unicast / IPv6 next hop"
    );
    let updates = sent_updates(&out);
    let v4 = updates
        .iter()
        .filter_map(Update::mp_reach)
        .find(|r| r.family == Family::IPV4_UNICAST)
        .expect("IPv4 routes go in MP_REACH_NLRI");
    assert_eq!(
        v4.next_hop,
        NextHop::Ipv6 {
            global: "fd00::1".parse().expect("ip"),
            link_local: Some("fe80::1".parse().expect("ip")),
        },
        "RFC 8950 §3 with RFC 2545 §3: global plus link-local"
    );
    assert!(
        updates
            .iter()
            .all(|u| u.nlri.is_empty() && u.next_hop().is_none()),
        "no classic NEXT_HOP / NLRI on an extended next hop session"
    );
}

#[test]
fn without_the_peers_extended_next_hop_ipv4_routes_are_not_sent_on_ipv6_sessions() {
    for (ours, peers) in [(true, false), (false, true)] {
        let (s, out) = ipv6_session_with_enh(ours, peers);
        assert_eq!(
            sent_open(&out)
                .capabilities
                .iter()
                .any(|c| matches!(c, Capability::ExtendedNextHop(_))),
            ours
        );
        let updates = sent_updates(&out);
        assert!(
            updates
                .iter()
                .filter_map(Update::mp_reach)
                .all(|r| r.family == Family::IPV6_UNICAST),
            "ours {ours}, peer's {peers}: {updates:?}"
        );
        assert_eq!(s.advertised_len(), 1);
    }
}

#[test]
fn ipv4_routes_with_ipv6_next_hops_are_accepted() {
    let now = Instant::now();
    let (mut s, _) = ipv6_session_with_enh(true, true);
    let next_hop = NextHop::Ipv6 {
        global: "fd00::2".parse().expect("ip"),
        link_local: Some("fe80::2".parse().expect("ip")),
    };
    let update = Update {
        attributes: vec![
            PathAttribute::new(AttrValue::Origin(Origin::Igp)),
            PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[65002]))),
            PathAttribute::new(AttrValue::MpReach(bgp_proto::MpReach {
                family: Family::IPV4_UNICAST,
                next_hop: next_hop.clone(),
                nlri: MpNlri::Ipv4(vec![Ipv4Nlri::new(
                    Ipv4Prefix::new("198.51.100.0".parse().expect("ip"), 24).expect("len"),
                )]),
            })),
        ],
        ..Update::default()
    };
    let out = s.received(now, CONN, clean(Message::Update(update)));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Routes { updated, .. } if updated.iter().any(|(p, _)| *p == net("198.51.100.0/24"))
    )));
    let entry = s.rib_in().get(&net("198.51.100.0/24")).expect("stored");
    assert!(entry.accepted);
    assert_eq!(entry.attrs.next_hop, next_hop);
}

//! Long-lived graceful restart (RFC 9494) on one session, time as input: the capability we
//! advertise, the helper's move from GR-stale to LLGR-stale, NO_LLGR, expiry and the peer's
//! return.

use bgp_proto::Community;
use bgp_proto::capability::{GracefulRestart, LlgrFamily};

use super::super::tests::{
    CONN, PEER_ID, announce, clean, config, established, net, peer_gr, peer_open,
};
use super::*;
use crate::bgp::collision::Direction;
use crate::bgp::fsm;
use crate::bgp::session::GrConfig;
use crate::import_policy::ImportPolicy;
use bgp_proto::{AttrValue, Message, Open, PathAttribute, Update};

const LONG_LIVED: u32 = 100;

fn ours(long_lived: Option<u32>) -> GrConfig {
    GrConfig {
        restart_time: 120,
        restarting: false,
        forwarding_preserved: false,
        long_lived_stale_time: long_lived,
    }
}

fn peer_llgr(stale_time: u32, flags: u8) -> Capability {
    Capability::LongLivedGracefulRestart(vec![
        LlgrFamily {
            family: Family::IPV4_UNICAST,
            flags,
            stale_time,
        },
        LlgrFamily {
            family: Family::IPV6_UNICAST,
            flags,
            stale_time,
        },
    ])
}

fn open_with(gr: Option<GracefulRestart>, llgr: Capability) -> Open {
    let mut caps = peer_open(gr).capabilities;
    caps.push(llgr);
    Open::new(65002, 30, PEER_ID, caps)
}

/// An UPDATE for `prefixes` tagged with `community`.
fn announce_tagged(prefixes: &[&str], community: Community) -> Update {
    let mut update = announce(prefixes);
    update
        .attributes
        .push(PathAttribute::new(AttrValue::Communities(vec![community])));
    update
}

fn routes(out: &[Output]) -> (Vec<IpNet>, Vec<IpNet>) {
    let mut updated = Vec::new();
    let mut withdrawn = Vec::new();
    for o in out {
        if let Output::Routes {
            updated: u,
            withdrawn: w,
        } = o
        {
            updated.extend(u.iter().map(|(p, _)| *p));
            withdrawn.extend(w.iter().copied());
        }
    }
    (updated, withdrawn)
}

fn llgr_stale(s: &Session, prefix: &str) -> bool {
    s.rib_in()
        .get(&net(prefix))
        .is_some_and(|e| crate::bgp::rib::carries(&e.attrs, Community::LLGR_STALE))
}

/// A session with the peer's routes 10.1/16 (plain), 10.2/16 (NO_LLGR) and 10.3/16 (plain),
/// taken down by a TCP failure at `now`.
fn helper_after_failure(
    now: Instant,
    open: Open,
    long_lived: Option<u32>,
) -> (Session, Vec<Output>) {
    let mut s = Session::new(config(ImportPolicy::accept_all(), Some(ours(long_lived))));
    established(&mut s, now, open);
    s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.1.0.0/16", "10.3.0.0/16"]))),
    );
    s.received(
        now,
        CONN,
        clean(Message::Update(announce_tagged(
            &["10.2.0.0/16"],
            Community::NO_LLGR,
        ))),
    );
    let out = s.handle(now, fsm::Input::Disconnected(CONN));
    (s, out)
}

#[test]
fn llgr_capability_is_advertised_only_when_configured() {
    let plain = config(ImportPolicy::accept_all(), Some(ours(None)));
    assert!(
        !plain
            .capabilities()
            .iter()
            .any(|c| matches!(c, Capability::LongLivedGracefulRestart(_)))
    );
    let mut gr = ours(Some(3600));
    gr.restarting = true;
    gr.forwarding_preserved = true;
    let caps = config(ImportPolicy::accept_all(), Some(gr)).capabilities();
    let llgr = caps
        .iter()
        .find_map(|c| match c {
            Capability::LongLivedGracefulRestart(v) => Some(v.clone()),
            _ => None,
        })
        .expect("LLGR capability");
    assert_eq!(llgr.len(), 2);
    assert!(
        llgr.iter()
            .all(|f| f.stale_time == 3600 && f.flags == LLGR_FORWARDING_STATE)
    );
}

#[test]
fn helper_moves_routes_to_llgr_stale_when_restart_time_expires() {
    let now = Instant::now();
    let (mut s, out) = helper_after_failure(
        now,
        open_with(Some(peer_gr(10)), peer_llgr(LONG_LIVED, 0)),
        Some(3600),
    );
    // GR first: everything kept, stale, nothing changed for the Loc-RIB.
    assert_eq!(routes(&out), (vec![], vec![]));
    assert_eq!(s.rib_in().stale(), 3);
    assert!(!llgr_stale(&s, "10.1.0.0/16"));

    // The restart time runs out: NO_LLGR goes, the rest is tagged LLGR_STALE and kept.
    let expiry = now + Duration::from_secs(10);
    assert_eq!(s.poll_timeout().map(|t| t <= expiry), Some(true));
    let out = s.on_timeout(expiry);
    assert_eq!(
        routes(&out),
        (
            vec![net("10.1.0.0/16"), net("10.3.0.0/16")],
            vec![net("10.2.0.0/16")]
        )
    );
    assert!(llgr_stale(&s, "10.1.0.0/16") && llgr_stale(&s, "10.3.0.0/16"));
    let end = expiry + Duration::from_secs(u64::from(LONG_LIVED));
    assert_eq!(s.llgr_deadline(Family::IPV4_UNICAST), Some(end));
    assert!(s.poll_timeout().is_some_and(|t| t <= end));

    // Just before the long-lived stale time ends nothing happens; at its end they go.
    let out = s.on_timeout(end - Duration::from_secs(1));
    assert_eq!(routes(&out), (vec![], vec![]));
    assert_eq!(s.rib_in().len(), 2);
    let out = s.on_timeout(end);
    assert_eq!(
        routes(&out),
        (vec![], vec![net("10.1.0.0/16"), net("10.3.0.0/16")])
    );
    assert!(s.rib_in().is_empty());
    assert_eq!(s.llgr_deadline(Family::IPV4_UNICAST), None);
}

#[test]
fn llgr_without_graceful_restart_time_starts_at_once() {
    let now = Instant::now();
    // The peer's GR restart time is zero: RFC 9494 §4.2, the LLGR period starts immediately.
    let (s, out) = helper_after_failure(
        now,
        open_with(Some(peer_gr(0)), peer_llgr(LONG_LIVED, 0)),
        Some(3600),
    );
    assert_eq!(
        routes(&out),
        (
            vec![net("10.1.0.0/16"), net("10.3.0.0/16")],
            vec![net("10.2.0.0/16")]
        )
    );
    assert!(llgr_stale(&s, "10.3.0.0/16"));
    assert_eq!(s.stale_deadline(), None);
    // Only LLGR, no GR capability at all: same.
    let (s, out) = helper_after_failure(now, open_with(None, peer_llgr(LONG_LIVED, 0)), Some(60));
    assert_eq!(routes(&out).1, vec![net("10.2.0.0/16")]);
    assert_eq!(
        s.llgr_deadline(Family::IPV4_UNICAST),
        Some(now + Duration::from_secs(u64::from(LONG_LIVED)))
    );
}

#[test]
fn llgr_needs_both_sides_and_a_nonzero_stale_time() {
    let now = Instant::now();
    // We did not configure LLGR: the peer's capability is not negotiated, GR expiry sweeps.
    let (mut s, _) = helper_after_failure(
        now,
        open_with(Some(peer_gr(10)), peer_llgr(LONG_LIVED, 0)),
        None,
    );
    let out = s.on_timeout(now + Duration::from_secs(10));
    assert_eq!(routes(&out).1.len(), 3);
    assert!(s.rib_in().is_empty());
    // The peer asks for a stale time of zero: no long-lived period either.
    let (mut s, _) = helper_after_failure(
        now,
        open_with(Some(peer_gr(10)), peer_llgr(0, 0)),
        Some(3600),
    );
    let out = s.on_timeout(now + Duration::from_secs(10));
    assert_eq!(routes(&out).1.len(), 3);
    assert_eq!(s.llgr_deadline(Family::IPV4_UNICAST), None);
}

#[test]
fn hard_reset_ends_long_lived_retention_too() {
    let now = Instant::now();
    let mut s = Session::new(config(ImportPolicy::accept_all(), Some(ours(Some(3600)))));
    // With the N bit, a NOTIFICATION other than Hard Reset would keep the routes.
    let mut with_n = peer_gr(10);
    with_n.flags = 0x4;
    established(
        &mut s,
        now,
        open_with(Some(with_n), peer_llgr(LONG_LIVED, 0)),
    );
    s.received(
        now,
        CONN,
        clean(Message::Update(announce(&["10.1.0.0/16"]))),
    );
    let hard = crate::bgp::session::hard_reset(&bgp_proto::Notification::cease(
        bgp_proto::iana::CeaseSubcode::AdministrativeReset,
    ));
    let out = s.received(now, CONN, clean(Message::Notification(hard)));
    assert_eq!(routes(&out).1, vec![net("10.1.0.0/16")]);
    assert!(s.rib_in().is_empty());
}

#[test]
fn returning_peer_refreshes_llgr_stale_routes_and_end_of_rib_sweeps_the_rest() {
    let now = Instant::now();
    let (mut s, _) = helper_after_failure(
        now,
        open_with(Some(peer_gr(10)), peer_llgr(LONG_LIVED, 0)),
        Some(3600),
    );
    let later = now + Duration::from_secs(30);
    s.on_timeout(now + Duration::from_secs(10));
    assert!(llgr_stale(&s, "10.1.0.0/16"));

    // Back, with the F bit in its LLGR capability: the LLGR-stale routes wait for End-of-RIB.
    let _ = s.on_timeout(later);
    s.connected(
        later,
        2,
        Direction::Inbound,
        "10.0.0.1".parse().expect("ip"),
        None,
    );
    let mut restarted = peer_gr(10);
    restarted.flags = 0x8;
    s.received(
        later,
        2,
        clean(Message::Open(open_with(
            Some(restarted),
            peer_llgr(LONG_LIVED, LLGR_FORWARDING_STATE),
        ))),
    );
    s.received(later, 2, clean(Message::Keepalive));
    assert_eq!(s.fsm().state(), State::Established);
    assert_eq!(s.rib_in().stale(), 2);
    assert_eq!(s.llgr_deadline(Family::IPV4_UNICAST), None);
    assert!(s.peer_supports_llgr());

    // It re-announces 10.1/16 (fresh, untagged) and ends its initial update.
    let out = s.received(later, 2, clean(Message::Update(announce(&["10.1.0.0/16"]))));
    assert_eq!(routes(&out).0, vec![net("10.1.0.0/16")]);
    assert!(!llgr_stale(&s, "10.1.0.0/16"));
    let out = s.received(
        later,
        2,
        clean(Message::Update(Update::end_of_rib(Family::IPV4_UNICAST))),
    );
    assert_eq!(routes(&out).1, vec![net("10.3.0.0/16")]);
    assert_eq!((s.rib_in().len(), s.rib_in().stale()), (1, 0));
}

#[test]
fn returning_peer_without_the_llgr_f_bit_loses_llgr_stale_routes_at_once() {
    let now = Instant::now();
    let (mut s, _) = helper_after_failure(
        now,
        open_with(Some(peer_gr(10)), peer_llgr(LONG_LIVED, 0)),
        Some(3600),
    );
    s.on_timeout(now + Duration::from_secs(10));
    let later = now + Duration::from_secs(30);
    let _ = s.on_timeout(later);
    s.connected(
        later,
        2,
        Direction::Inbound,
        "10.0.0.1".parse().expect("ip"),
        None,
    );
    // Its GR capability has the F bit, its LLGR one not: the LLGR one decides (RFC 9494 §4.2).
    s.received(
        later,
        2,
        clean(Message::Open(open_with(
            Some(peer_gr(10)),
            peer_llgr(LONG_LIVED, 0),
        ))),
    );
    let out = s.received(later, 2, clean(Message::Keepalive));
    assert_eq!(routes(&out).1, vec![net("10.1.0.0/16"), net("10.3.0.0/16")]);
    assert!(s.rib_in().is_empty());
}

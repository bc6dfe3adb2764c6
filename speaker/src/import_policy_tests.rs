//! Unit tests of [`super`]: prefix lists, community matches, maximum length, default deny, and
//! each step of RFC 4271 §9.1.2.2 with the ECMP set.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use bgp_proto::{
    AsPath, AttrValue, Community, ExtendedCommunity, LargeCommunity, Origin, PathAttribute,
};
use ipnet::IpNet;

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

fn policy(yaml: &str) -> ImportPolicy {
    let cfg: ImportPolicyConfig = serde_saphyr::from_str(yaml).expect("policy YAML");
    ImportPolicy::new(cfg).expect("valid policy")
}

fn with_communities(c: &[Community]) -> Vec<PathAttribute> {
    vec![
        PathAttribute::new(AttrValue::Origin(Origin::Igp)),
        PathAttribute::new(AttrValue::Communities(c.to_vec())),
    ]
}

#[test]
fn empty_policy_rejects_everything() {
    let p = ImportPolicy::default();
    assert_eq!(p.evaluate(&net("10.0.0.0/24"), &[]), Verdict::Reject);
    let p = policy("{}");
    assert_eq!(p.evaluate(&net("2001:db8::/32"), &[]), Verdict::Reject);
}

#[test]
fn accept_all_rule_accepts_every_route() {
    let p = policy("rules: [{ action: accept }]");
    assert_eq!(p.evaluate(&net("10.0.0.0/24"), &[]), Verdict::Accept);
    assert_eq!(p.evaluate(&net("2001:db8::/32"), &[]), Verdict::Accept);
}

#[test]
fn prefix_list_exact_ge_le_semantics() {
    let exact = PrefixListEntry {
        prefix: net("10.0.0.0/8"),
        ge: None,
        le: None,
    };
    assert!(exact.matches(&net("10.0.0.0/8")));
    assert!(!exact.matches(&net("10.1.0.0/16")));
    let ge = PrefixListEntry {
        prefix: net("10.0.0.0/8"),
        ge: Some(24),
        le: None,
    };
    assert!(ge.matches(&net("10.1.2.0/24")) && ge.matches(&net("10.1.2.3/32")));
    assert!(!ge.matches(&net("10.1.0.0/16")));
    let le = PrefixListEntry {
        prefix: net("10.0.0.0/8"),
        ge: None,
        le: Some(16),
    };
    assert!(le.matches(&net("10.0.0.0/8")) && le.matches(&net("10.1.0.0/16")));
    assert!(!le.matches(&net("10.1.2.0/24")));
    let both = PrefixListEntry {
        prefix: net("10.0.0.0/8"),
        ge: Some(16),
        le: Some(24),
    };
    assert!(both.matches(&net("10.1.0.0/16")) && both.matches(&net("10.1.2.0/24")));
    assert!(!both.matches(&net("10.0.0.0/8")) && !both.matches(&net("10.1.2.0/25")));
    assert!(
        !both.matches(&net("11.1.0.0/16")),
        "outside the covering prefix"
    );
    let v6 = PrefixListEntry {
        prefix: net("::/0"),
        ge: None,
        le: Some(64),
    };
    assert!(v6.matches(&net("2001:db8::/32")));
    assert!(!v6.matches(&net("10.0.0.0/8")), "no cross-family match");
}

#[test]
fn invalid_prefix_list_bounds_are_rejected() {
    for yaml in [
        "rules: [{ match: { prefixes: [{ prefix: 10.0.0.0/16, ge: 8 }] }, action: accept }]",
        "rules: [{ match: { prefixes: [{ prefix: 10.0.0.0/8, le: 33 }] }, action: accept }]",
        "rules: [{ match: { prefixes: [{ prefix: 10.0.0.0/8, ge: 24, le: 16 }] }, action: accept }]",
        "maxLengthIPv4: 33",
        "maxLengthIPv6: 129",
    ] {
        let cfg: ImportPolicyConfig = serde_saphyr::from_str(yaml).expect("parses");
        assert!(ImportPolicy::new(cfg).is_err(), "{yaml}");
    }
    let bad: std::result::Result<ImportPolicyConfig, _> =
        serde_saphyr::from_str("rules: [{ action: maybe }]");
    assert!(bad.is_err());
}

#[test]
fn first_matching_rule_decides() {
    let p = policy(
        "rules:\n\
         - match: { prefixes: [{ prefix: 10.66.0.0/16, le: 32 }] }\n  action: reject\n\
         - match: { prefixes: [{ prefix: 10.0.0.0/8, le: 32 }] }\n  action: accept\n",
    );
    assert_eq!(p.evaluate(&net("10.66.1.0/24"), &[]), Verdict::Reject);
    assert_eq!(p.evaluate(&net("10.67.1.0/24"), &[]), Verdict::Accept);
    assert_eq!(
        p.evaluate(&net("192.168.0.0/24"), &[]),
        Verdict::Reject,
        "default deny"
    );
}

#[test]
fn max_length_rejects_before_rules() {
    let p = policy("maxLengthIPv4: 24\nmaxLengthIPv6: 48\nrules: [{ action: accept }]");
    assert_eq!(p.evaluate(&net("10.0.0.0/24"), &[]), Verdict::Accept);
    assert_eq!(p.evaluate(&net("10.0.0.0/25"), &[]), Verdict::Reject);
    assert_eq!(p.evaluate(&net("2001:db8::/48"), &[]), Verdict::Accept);
    assert_eq!(p.evaluate(&net("2001:db8::/64"), &[]), Verdict::Reject);
}

#[test]
fn community_match_needs_every_listed_community() {
    let p = policy(
        "rules:\n- match: { communities: { standard: ['65000:1'], wellKnown: [no-export] } }\n  action: accept\n",
    );
    let both = with_communities(&[
        Community::new(65000, 1),
        Community::NO_EXPORT,
        Community::new(1, 1),
    ]);
    assert_eq!(p.evaluate(&net("10.0.0.0/24"), &both), Verdict::Accept);
    let one = with_communities(&[Community::new(65000, 1)]);
    assert_eq!(p.evaluate(&net("10.0.0.0/24"), &one), Verdict::Reject);
    assert_eq!(p.evaluate(&net("10.0.0.0/24"), &[]), Verdict::Reject);
}

#[test]
fn large_and_extended_community_matches() {
    let p = policy(
        "rules:\n- match: { communities: { large: ['64512:1:2'], extended: ['rt:65000:7'] } }\n  action: accept\n",
    );
    let good = vec![
        PathAttribute::new(AttrValue::LargeCommunities(vec![LargeCommunity {
            global: 64512,
            local1: 1,
            local2: 2,
        }])),
        PathAttribute::new(AttrValue::ExtendedCommunities(vec![
            ExtendedCommunity::route_target(65000, 7),
        ])),
    ];
    assert_eq!(p.evaluate(&net("10.0.0.0/24"), &good), Verdict::Accept);
    assert_eq!(p.evaluate(&net("10.0.0.0/24"), &good[..1]), Verdict::Reject);
}

#[test]
fn prefix_and_community_conditions_are_anded() {
    let p = policy(
        "rules:\n- match:\n    prefixes: [{ prefix: 10.0.0.0/8, le: 24 }]\n    communities: { standard: ['65000:1'] }\n  action: accept\n",
    );
    let tagged = with_communities(&[Community::new(65000, 1)]);
    assert_eq!(p.evaluate(&net("10.1.0.0/24"), &tagged), Verdict::Accept);
    assert_eq!(p.evaluate(&net("11.1.0.0/24"), &tagged), Verdict::Reject);
    assert_eq!(p.evaluate(&net("10.1.0.0/24"), &[]), Verdict::Reject);
}

// Best path.

fn peer(n: u8, ebgp: bool) -> PeerInfo {
    PeerInfo {
        address: IpAddr::from([192, 0, 2, n]),
        router_id: Ipv4Addr::new(10, 255, 0, n),
        ebgp,
        interface: None,
    }
}

fn cand(n: u8, path: &[u32]) -> Candidate {
    Candidate {
        peer: peer(n, true),
        next_hop: IpAddr::from([192, 0, 2, n]),
        ifindex: None,
        local_pref: None,
        as_path: AsPath::from_sequence(path),
        origin: Origin::Igp,
        med: None,
        originator_id: None,
        cluster_list_len: 0,
        igp_cost: 0,
        llgr_stale: false,
    }
}

fn best(c: &[Candidate]) -> usize {
    select(c, &BestPathConfig::default())
        .expect("a best path")
        .best
}

#[test]
fn no_candidates_no_selection() {
    assert_eq!(select(&[], &BestPathConfig::default()), None);
}

#[test]
fn highest_local_pref_wins_first() {
    let mut a = cand(1, &[65001]);
    let mut b = cand(2, &[65002, 65003, 65004]);
    a.local_pref = Some(100);
    b.local_pref = Some(200);
    assert_eq!(best(&[a.clone(), b.clone()]), 1);
    b.local_pref = None; // default 100 ties, then the shorter path wins
    assert_eq!(best(&[a, b]), 0);
}

#[test]
fn shortest_as_path_then_lowest_origin() {
    let a = cand(1, &[65001, 65009]);
    let b = cand(2, &[65002]);
    assert_eq!(best(&[a, b.clone()]), 1);
    let mut c = cand(3, &[65003]);
    c.origin = Origin::Incomplete;
    let mut d = cand(4, &[65004]);
    d.origin = Origin::Egp;
    assert_eq!(best(&[c, d]), 1);
    let mut set = AsPath::new();
    set.push_segment(bgp_proto::SegmentType::AsSet, &[1, 2, 3, 4]);
    let mut e = cand(5, &[]);
    e.as_path = set;
    let f = cand(6, &[65006, 65007]);
    assert_eq!(best(&[f, e]), 1, "an AS_SET counts as one");
}

#[test]
fn med_compares_only_within_the_same_neighbour_as() {
    // a and b come from AS 65001: b's lower MED removes a. c comes from AS 65002, so its higher
    // MED is not compared and it stays; b then wins on the lower router id.
    let mut a = cand(1, &[65001, 1]);
    a.med = Some(50);
    let mut b = cand(2, &[65001, 2]);
    b.med = Some(10);
    let mut c = cand(3, &[65002, 3]);
    c.med = Some(100);
    let cfg = BestPathConfig {
        max_paths: 8,
        multipath_relax: true,
        ..BestPathConfig::default()
    };
    let sel = select(&[a.clone(), b.clone(), c.clone()], &cfg).expect("best");
    assert_eq!(sel.best, 1);
    assert_eq!(
        sel.ecmp,
        vec![1, 2],
        "a is out, c stays: different neighbour AS"
    );
    let always = BestPathConfig {
        always_compare_med: true,
        ..cfg
    };
    let sel = select(&[a, b, c], &always).expect("best");
    assert_eq!(sel.ecmp, vec![1]);
}

#[test]
fn missing_med_counts_as_zero() {
    let mut a = cand(1, &[65001]);
    a.med = Some(5);
    let b = cand(2, &[65001]);
    assert_eq!(best(&[a, b]), 1);
}

#[test]
fn ebgp_beats_ibgp_then_lowest_router_id_then_address() {
    let mut a = cand(1, &[65001]);
    a.peer.ebgp = false;
    let b = cand(2, &[65002]);
    assert_eq!(best(&[a, b]), 1);
    let mut c = cand(3, &[65003]);
    let mut d = cand(4, &[65004]);
    c.peer.router_id = Ipv4Addr::new(10, 0, 0, 9);
    d.peer.router_id = Ipv4Addr::new(10, 0, 0, 1);
    assert_eq!(best(&[c.clone(), d.clone()]), 1);
    d.originator_id = Some(Ipv4Addr::new(10, 0, 0, 99));
    assert_eq!(
        best(&[c.clone(), d.clone()]),
        0,
        "ORIGINATOR_ID replaces the router id"
    );
    let mut e = cand(5, &[65005]);
    let mut f = cand(6, &[65006]);
    e.peer.router_id = Ipv4Addr::new(10, 0, 0, 1);
    f.peer.router_id = Ipv4Addr::new(10, 0, 0, 1);
    e.cluster_list_len = 2;
    assert_eq!(best(&[e.clone(), f.clone()]), 1, "shorter CLUSTER_LIST");
    e.cluster_list_len = 0;
    assert_eq!(best(&[f, e]), 1, "lowest peer address last");
}

#[test]
fn lower_igp_cost_wins() {
    let mut a = cand(1, &[65001]);
    a.igp_cost = 10;
    let b = cand(2, &[65002]);
    assert_eq!(best(&[a, b]), 1);
}

#[test]
fn ecmp_needs_identical_as_path_unless_relaxed() {
    let a = cand(1, &[65001]);
    let b = cand(2, &[65001]);
    let c = cand(3, &[65003]);
    let strict = BestPathConfig {
        max_paths: 8,
        ..BestPathConfig::default()
    };
    let sel = select(&[c.clone(), b.clone(), a.clone()], &strict).expect("best");
    assert_eq!(sel.best, 2);
    assert_eq!(sel.ecmp, vec![2, 1]);
    let relax = BestPathConfig {
        multipath_relax: true,
        ..strict
    };
    let sel = select(&[c.clone(), b.clone(), a.clone()], &relax).expect("best");
    assert_eq!(sel.ecmp, vec![2, 1, 0]);
    let two = BestPathConfig {
        max_paths: 2,
        ..relax
    };
    assert_eq!(select(&[c, b, a], &two).expect("best").ecmp, vec![2, 1]);
}

#[test]
fn ecmp_excludes_paths_that_lost_an_earlier_step() {
    let a = cand(1, &[65001]);
    let mut b = cand(2, &[65002]);
    b.origin = Origin::Incomplete;
    let cfg = BestPathConfig {
        max_paths: 8,
        multipath_relax: true,
        ..BestPathConfig::default()
    };
    assert_eq!(select(&[a, b], &cfg).expect("best").ecmp, vec![0]);
}

#[test]
fn ecmp_collapses_duplicate_next_hops() {
    let a = cand(1, &[65001]);
    let mut b = cand(2, &[65001]);
    b.next_hop = a.next_hop;
    let cfg = BestPathConfig {
        max_paths: 8,
        ..BestPathConfig::default()
    };
    assert_eq!(select(&[a, b], &cfg).expect("best").ecmp, vec![0]);
}

#[test]
fn candidate_reads_received_attributes() {
    let attrs = vec![
        PathAttribute::new(AttrValue::Origin(Origin::Egp)),
        PathAttribute::new(AttrValue::AsPath(AsPath::from_sequence(&[65001, 65002]))),
        PathAttribute::new(AttrValue::MultiExitDisc(7)),
        PathAttribute::new(AttrValue::LocalPref(300)),
        PathAttribute::new(AttrValue::OriginatorId(Ipv4Addr::new(1, 2, 3, 4))),
        PathAttribute::new(AttrValue::ClusterList(vec![Ipv4Addr::new(9, 9, 9, 9)])),
    ];
    let c = Candidate::from_attributes(peer(1, false), IpAddr::from([192, 0, 2, 1]), None, &attrs);
    assert_eq!(c.origin, Origin::Egp);
    assert_eq!(c.as_path.path_len(), 2);
    assert_eq!((c.med, c.local_pref), (Some(7), Some(300)));
    assert_eq!(c.originator_id, Some(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(c.cluster_list_len, 1);
}

#[test]
fn fib_routes_carry_the_ecmp_next_hops() {
    let cfg = BestPathConfig {
        max_paths: 4,
        multipath_relax: true,
        ..BestPathConfig::default()
    };
    let mut rib = BTreeMap::new();
    rib.insert(
        net("10.0.0.0/24"),
        vec![cand(1, &[65001]), cand(2, &[65002]), cand(3, &[65003, 1])],
    );
    rib.insert(net("10.0.1.0/24"), vec![cand(2, &[65002])]);
    rib.insert(net("10.0.2.0/24"), vec![]);
    let fib = fib_routes(&rib, &cfg);
    assert_eq!(fib.len(), 2);
    let hops: BTreeSet<IpAddr> = fib[&net("10.0.0.0/24")].iter().map(|h| h.gateway).collect();
    assert_eq!(
        hops,
        BTreeSet::from([IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2])])
    );
    assert_eq!(fib[&net("10.0.1.0/24")].len(), 1);
}

#[test]
fn shorthands_and_rules_deserialize_into_one_policy_type() {
    let prefix = net("10.0.0.0/8");
    let accept: ImportPolicy = serde_saphyr::from_str("accept-all").expect("shorthand");
    let reject: ImportPolicy = serde_saphyr::from_str("reject-all").expect("shorthand");
    assert_eq!(accept, ImportPolicy::accept_all());
    assert!(accept.accepts(&prefix, &[]));
    assert!(!reject.accepts(&prefix, &[]));
    assert!(!ImportPolicy::default().accepts(&prefix, &[]));
    let rules: ImportPolicy = serde_saphyr::from_str(
        "rules:\n  - match: { prefixes: [{ prefix: 10.0.0.0/8 }] }\n    action: accept\n",
    )
    .expect("rules");
    assert!(rules.accepts(&prefix, &[]));
    assert!(!rules.accepts(&net("10.1.0.0/16"), &[]));
    // Validation runs on the YAML path too.
    let bad = serde_saphyr::from_str::<ImportPolicy>("maxLengthIPv4: 40\n");
    assert!(bad.is_err());
    assert!(serde_saphyr::from_str::<ImportPolicy>("accept-some").is_err());
}

#[test]
fn llgr_stale_route_loses_to_any_other_route() {
    // RFC 9494 §4.3: the LLGR-stale route has the higher LOCAL_PREF and the shorter path, yet
    // loses; alone, it is still selected (kept installed as least preferred).
    let mut stale = cand(1, &[65001]);
    stale.local_pref = Some(500);
    stale.llgr_stale = true;
    let fresh = cand(2, &[65002, 65003, 65004]);
    let cfg = BestPathConfig::default();
    let sel = select(&[stale.clone(), fresh], &cfg).expect("best");
    assert_eq!((sel.best, sel.ecmp), (1, vec![1]));
    assert_eq!(select(&[stale], &cfg).map(|s| s.best), Some(0));
    let attrs = [PathAttribute::new(AttrValue::Communities(vec![
        bgp_proto::Community::LLGR_STALE,
    ]))];
    let parsed =
        Candidate::from_attributes(peer(3, true), IpAddr::from([192, 0, 2, 3]), None, &attrs);
    assert!(parsed.llgr_stale);
}

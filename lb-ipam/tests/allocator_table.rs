//! Table of request/pool cases with their expected outcomes, plus stability scenarios for pool
//! edits and releases. Pure allocator; no I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use lb_ipam::{
    Allocator, Block, FamilyPolicy, Held, IpFamily, LabelSelector, Outcome, Pool, PoolSpec,
    PortProto, Protocol, Request, ServiceKey, Sharing, Unsatisfied,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn cidr(s: &str) -> Block {
    Block::Cidr {
        cidr: s.parse().expect("test cidr"),
    }
}

fn spec(blocks: &[&str]) -> PoolSpec {
    PoolSpec {
        blocks: blocks.iter().map(|b| cidr(b)).collect(),
        auto_assign: true,
        ..Default::default()
    }
}

fn pool(name: &str, blocks: &[&str]) -> Pool {
    Pool::new(name, spec(blocks)).expect("test pool")
}

fn pool_with(name: &str, blocks: &[&str], edit: impl FnOnce(&mut PoolSpec)) -> Pool {
    let mut s = spec(blocks);
    edit(&mut s);
    Pool::new(name, s).expect("test pool")
}

fn req(ns: &str, name: &str) -> Request {
    Request::new(ServiceKey::new(ns, name))
}

fn with(mut r: Request, edit: impl FnOnce(&mut Request)) -> Request {
    edit(&mut r);
    r
}

fn shared(r: Request, key: &str, allowed: &[&str], ports: &[u16]) -> Request {
    with(r, |r| {
        r.sharing = Some(Sharing {
            key: key.into(),
            allowed_namespaces: allowed.iter().map(|s| (*s).to_owned()).collect(),
        });
        r.ports = ports
            .iter()
            .map(|&port| PortProto {
                port,
                protocol: Protocol::TCP,
            })
            .collect();
    })
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn addrs(a: &Allocator, ns: &str, name: &str) -> Vec<IpAddr> {
    a.service(&ServiceKey::new(ns, name))
        .map(|v| v.addresses)
        .unwrap_or_default()
}

fn outcome(a: &Allocator, ns: &str, name: &str) -> Outcome {
    a.service(&ServiceKey::new(ns, name))
        .map(|v| v.outcome.clone())
        .expect("service known")
}

/// Expected result of the last request of a case.
enum Want {
    Ips(&'static [&'static str]),
    Fails(fn(&Unsatisfied) -> bool),
}

struct Case {
    name: &'static str,
    pools: Vec<Pool>,
    requests: Vec<Request>,
    want: Want,
}

fn cases() -> Vec<Case> {
    let v4 = || pool("v4", &["10.0.0.0/24"]);
    let v6 = || pool("v6", &["2001:db8::/64"]);
    vec![
        Case {
            name: "first address of a /24 is skipped by default",
            pools: vec![v4()],
            requests: vec![req("a", "s")],
            want: Want::Ips(&["10.0.0.1"]),
        },
        Case {
            name: "allowFirstLastIPs hands out the network address",
            pools: vec![pool_with("p", &["10.0.0.0/24"], |s| {
                s.allow_first_last_ips = true
            })],
            requests: vec![req("a", "s")],
            want: Want::Ips(&["10.0.0.0"]),
        },
        Case {
            name: "pools are tried by name when priorities tie",
            pools: vec![pool("b", &["10.0.1.0/24"]), pool("a", &["10.0.2.0/24"])],
            requests: vec![req("a", "s")],
            want: Want::Ips(&["10.0.2.1"]),
        },
        Case {
            name: "lower priority value wins over name",
            pools: vec![
                pool("a", &["10.0.2.0/24"]),
                pool_with("z", &["10.0.1.0/24"], |s| s.priority = Some(1)),
            ],
            requests: vec![req("a", "s")],
            want: Want::Ips(&["10.0.1.1"]),
        },
        Case {
            name: "exhausted preferred pool falls back to the next",
            pools: vec![
                pool_with("first", &["10.0.1.0/30"], |s| s.priority = Some(1)),
                pool("second", &["10.0.2.0/24"]),
            ],
            requests: vec![req("a", "s1"), req("a", "s2"), req("a", "s3")],
            want: Want::Ips(&["10.0.2.1"]),
        },
        Case {
            name: "exhausted pool is reported",
            pools: vec![pool("p", &["10.0.1.0/31"])],
            requests: vec![req("a", "s1"), req("a", "s2"), req("a", "s3")],
            want: Want::Fails(|u| {
                matches!(
                    u,
                    Unsatisfied::PoolExhausted {
                        family: IpFamily::IPv4
                    }
                )
            }),
        },
        Case {
            name: "disabled pool makes no new allocation",
            pools: vec![pool_with("p", &["10.0.0.0/24"], |s| s.disabled = true)],
            requests: vec![req("a", "s")],
            want: Want::Fails(|u| matches!(u, Unsatisfied::NoMatchingPool { .. })),
        },
        Case {
            name: "autoAssign false pool is skipped without a request",
            pools: vec![pool_with("p", &["10.0.0.0/24"], |s| s.auto_assign = false)],
            requests: vec![req("a", "s")],
            want: Want::Fails(|u| matches!(u, Unsatisfied::NoMatchingPool { .. })),
        },
        Case {
            name: "autoAssign false pool serves a service naming it",
            pools: vec![pool_with("p", &["10.0.0.0/24"], |s| s.auto_assign = false)],
            requests: vec![with(req("a", "s"), |r| r.requested_pool = Some("p".into()))],
            want: Want::Ips(&["10.0.0.1"]),
        },
        Case {
            name: "requested pool is honoured over priority",
            pools: vec![
                pool_with("fast", &["10.0.1.0/24"], |s| s.priority = Some(0)),
                pool("slow", &["10.0.2.0/24"]),
            ],
            requests: vec![with(req("a", "s"), |r| {
                r.requested_pool = Some("slow".into())
            })],
            want: Want::Ips(&["10.0.2.1"]),
        },
        Case {
            name: "service selector on labels",
            pools: vec![
                pool_with("web", &["10.0.1.0/24"], |s| {
                    s.priority = Some(1);
                    s.service_selector = Some(LabelSelector {
                        match_labels: labels(&[("tier", "web")]),
                        ..Default::default()
                    });
                }),
                pool("rest", &["10.0.2.0/24"]),
            ],
            requests: vec![req("a", "x").with_labels(&labels(&[("tier", "web")]))],
            want: Want::Ips(&["10.0.1.1"]),
        },
        Case {
            name: "service selector on the name pseudo-label",
            pools: vec![pool_with("only-dns", &["10.0.1.0/24"], |s| {
                s.service_selector = Some(LabelSelector {
                    match_labels: labels(&[("io.kubernetes.service.name", "dns")]),
                    ..Default::default()
                });
            })],
            requests: vec![req("a", "dns"), req("a", "web")],
            want: Want::Fails(|u| matches!(u, Unsatisfied::NoMatchingPool { .. })),
        },
        Case {
            name: "namespace selector",
            pools: vec![pool_with("prod", &["10.0.1.0/24"], |s| {
                s.namespace_selector = Some(LabelSelector {
                    match_labels: labels(&[("kubernetes.io/metadata.name", "prod")]),
                    ..Default::default()
                });
            })],
            requests: vec![req("dev", "s")],
            want: Want::Fails(|u| matches!(u, Unsatisfied::NoMatchingPool { .. })),
        },
        Case {
            name: "requested address is given",
            pools: vec![v4()],
            requests: vec![with(req("a", "s"), |r| {
                r.requested_ips = vec![ip("10.0.0.77")]
            })],
            want: Want::Ips(&["10.0.0.77"]),
        },
        Case {
            name: "requested address outside pools",
            pools: vec![v4()],
            requests: vec![with(req("a", "s"), |r| {
                r.requested_ips = vec![ip("10.9.9.9")]
            })],
            want: Want::Fails(|u| matches!(u, Unsatisfied::RequestedIpNotInPool { .. })),
        },
        Case {
            name: "requested address taken by a non-sharing service",
            pools: vec![v4()],
            requests: vec![
                req("a", "first"),
                with(req("a", "s"), |r| r.requested_ips = vec![ip("10.0.0.1")]),
            ],
            want: Want::Fails(
                |u| matches!(u, Unsatisfied::RequestedIpTaken { by, .. } if by.name == "first"),
            ),
        },
        Case {
            name: "sharing key with distinct ports shares the address",
            pools: vec![v4()],
            requests: vec![
                shared(req("a", "http"), "k", &[], &[80]),
                shared(req("a", "https"), "k", &[], &[443]),
            ],
            want: Want::Ips(&["10.0.0.1"]),
        },
        Case {
            name: "sharing key with the same port gets its own address",
            pools: vec![v4()],
            requests: vec![
                shared(req("a", "http"), "k", &[], &[80]),
                shared(req("a", "http2"), "k", &[], &[80]),
            ],
            want: Want::Ips(&["10.0.0.2"]),
        },
        Case {
            name: "requested shared address with a port clash is a sharing conflict",
            pools: vec![v4()],
            requests: vec![
                shared(req("a", "http"), "k", &[], &[80]),
                with(shared(req("a", "http2"), "k", &[], &[80]), |r| {
                    r.requested_ips = vec![ip("10.0.0.1")];
                }),
            ],
            want: Want::Fails(|u| matches!(u, Unsatisfied::SharingConflict { .. })),
        },
        Case {
            name: "cross-namespace sharing needs both opt-ins",
            pools: vec![v4()],
            requests: vec![
                shared(req("a", "http"), "k", &["b"], &[80]),
                shared(req("b", "https"), "k", &[], &[443]),
            ],
            want: Want::Ips(&["10.0.0.2"]),
        },
        Case {
            name: "cross-namespace sharing with opt-ins shares",
            pools: vec![v4()],
            requests: vec![
                shared(req("a", "http"), "k", &["b"], &[80]),
                shared(req("b", "https"), "k", &["*"], &[443]),
            ],
            want: Want::Ips(&["10.0.0.1"]),
        },
        Case {
            name: "single stack IPv6",
            pools: vec![v4(), v6()],
            requests: vec![with(req("a", "s"), |r| r.families = vec![IpFamily::IPv6])],
            want: Want::Ips(&["2001:db8::1"]),
        },
        Case {
            name: "dual stack in ipFamilies order",
            pools: vec![v4(), v6()],
            requests: vec![with(req("a", "s"), |r| {
                r.family_policy = FamilyPolicy::RequireDualStack;
                r.families = vec![IpFamily::IPv6, IpFamily::IPv4];
            })],
            want: Want::Ips(&["2001:db8::1", "10.0.0.1"]),
        },
        Case {
            name: "require dual stack without an IPv6 pool gets nothing",
            pools: vec![v4()],
            requests: vec![with(req("a", "s"), |r| {
                r.family_policy = FamilyPolicy::RequireDualStack;
            })],
            want: Want::Fails(|u| {
                matches!(
                    u,
                    Unsatisfied::NoMatchingPool {
                        family: IpFamily::IPv6
                    }
                )
            }),
        },
        Case {
            name: "prefer dual stack settles for one family",
            pools: vec![v4()],
            requests: vec![with(req("a", "s"), |r| {
                r.family_policy = FamilyPolicy::PreferDualStack;
            })],
            want: Want::Ips(&["10.0.0.1"]),
        },
        Case {
            name: "requested address of a family outside ipFamilies is invalid",
            pools: vec![v4(), v6()],
            requests: vec![with(req("a", "s"), |r| {
                r.families = vec![IpFamily::IPv4];
                r.requested_ips = vec![ip("2001:db8::5")];
            })],
            want: Want::Fails(|u| matches!(u, Unsatisfied::InvalidRequest { .. })),
        },
        Case {
            name: "overlapping later pool is conflicting and allocates nothing",
            pools: vec![
                pool_with("old", &["10.0.0.0/30"], |s| s.priority = Some(5)),
                pool_with("new", &["10.0.0.0/24"], |s| s.priority = Some(1)),
            ],
            requests: vec![req("a", "s1"), req("a", "s2"), req("a", "s3")],
            want: Want::Fails(|u| matches!(u, Unsatisfied::PoolExhausted { .. })),
        },
        Case {
            name: "a /64 pool allocates like any other",
            pools: vec![pool_with("big", &["2001:db8:1::/64"], |s| {
                s.allow_first_last_ips = true
            })],
            requests: vec![
                with(req("a", "s1"), |r| r.families = vec![IpFamily::IPv6]),
                with(req("a", "s2"), |r| r.families = vec![IpFamily::IPv6]),
            ],
            want: Want::Ips(&["2001:db8:1::1"]),
        },
    ]
}

#[test]
fn request_pool_table() {
    for case in cases() {
        let mut a = Allocator::new();
        a.set_pools(case.pools).expect(case.name);
        let last = case
            .requests
            .last()
            .map(|r| r.key.clone())
            .expect(case.name);
        for r in case.requests {
            a.upsert(r);
        }
        let view = a.service(&last).expect(case.name);
        match case.want {
            Want::Ips(want) => {
                let want: Vec<IpAddr> = want.iter().map(|s| ip(s)).collect();
                assert_eq!(view.addresses, want, "{}", case.name);
                assert_eq!(*view.outcome, Outcome::Satisfied, "{}", case.name);
            }
            Want::Fails(check) => match view.outcome {
                Outcome::Unsatisfied(u) => assert!(check(u), "{}: got {u:?}", case.name),
                Outcome::Satisfied => panic!(
                    "{}: unexpectedly satisfied with {:?}",
                    case.name, view.addresses
                ),
            },
        }
    }
}

#[test]
fn conflicting_pool_is_reported_with_counts() {
    let mut a = Allocator::new();
    a.set_pools(vec![
        pool("old", &["10.0.0.0/24"]),
        pool("new", &["10.0.0.128/25"]),
    ])
    .expect("pools");
    a.upsert(req("a", "s"));
    let st = a.pool_statuses();
    let new = st.iter().find(|p| p.name == "new").expect("new");
    let old = st.iter().find(|p| p.name == "old").expect("old");
    assert_eq!(new.conflicts_with.as_deref(), Some("old"));
    assert_eq!(old.conflicts_with, None);
    assert_eq!((old.total, old.used, old.available), (254, 1, 253));
}

#[test]
fn huge_pool_counts_are_exact() {
    let mut a = Allocator::new();
    a.set_pools(vec![pool_with("big", &["2001:db8::/48"], |s| {
        s.allow_first_last_ips = true
    })])
    .expect("pools");
    for i in 0..3 {
        a.upsert(with(req("a", &format!("s{i}")), |r| {
            r.families = vec![IpFamily::IPv6]
        }));
    }
    let st = &a.pool_statuses()[0];
    assert_eq!(st.total, 1u128 << 80);
    assert_eq!(st.used, 3);
    assert_eq!(st.available, (1u128 << 80) - 3);
}

#[test]
fn adding_a_preferred_pool_does_not_move_existing_services() {
    let mut a = Allocator::new();
    a.set_pools(vec![pool("b", &["10.0.2.0/24"])])
        .expect("pools");
    a.upsert(req("a", "old"));
    assert_eq!(addrs(&a, "a", "old"), [ip("10.0.2.1")]);
    a.set_pools(vec![
        pool("b", &["10.0.2.0/24"]),
        pool_with("a", &["10.0.1.0/24"], |s| s.priority = Some(0)),
    ])
    .expect("pools");
    a.upsert(req("a", "new"));
    assert_eq!(addrs(&a, "a", "old"), [ip("10.0.2.1")]);
    assert_eq!(addrs(&a, "a", "new"), [ip("10.0.1.1")]);
}

#[test]
fn disabling_a_pool_keeps_allocations() {
    let mut a = Allocator::new();
    a.set_pools(vec![pool("p", &["10.0.0.0/24"])])
        .expect("pools");
    a.upsert(req("a", "s"));
    a.set_pools(vec![pool_with("p", &["10.0.0.0/24"], |s| {
        s.disabled = true
    })])
    .expect("pools");
    assert_eq!(addrs(&a, "a", "s"), [ip("10.0.0.1")]);
    assert_eq!(outcome(&a, "a", "s"), Outcome::Satisfied);
    a.upsert(req("a", "t"));
    assert!(matches!(
        outcome(&a, "a", "t"),
        Outcome::Unsatisfied(Unsatisfied::NoMatchingPool { .. })
    ));
}

#[test]
fn removing_an_address_from_all_pools_reports_instead_of_moving() {
    let mut a = Allocator::new();
    a.set_pools(vec![pool("p", &["10.0.0.0/29"])])
        .expect("pools");
    a.upsert(req("a", "s1"));
    a.upsert(req("a", "s2"));
    assert_eq!(addrs(&a, "a", "s2"), [ip("10.0.0.2")]);
    // Shrink the pool so that 10.0.0.2 leaves it; 10.0.0.3.. are still free.
    a.set_pools(vec![pool_with(
        "p",
        &["10.0.0.0/31", "10.0.0.3/32", "10.0.0.4/30"],
        |s| {
            s.allow_first_last_ips = true;
        },
    )])
    .expect("pools");
    assert_eq!(addrs(&a, "a", "s1"), [ip("10.0.0.1")]);
    assert_eq!(addrs(&a, "a", "s2"), Vec::<IpAddr>::new());
    assert_eq!(
        outcome(&a, "a", "s2"),
        Outcome::Unsatisfied(Unsatisfied::AddressLost {
            ips: vec![ip("10.0.0.2")]
        })
    );
    // Removing an unrelated service frees an address; s2 still is not moved.
    a.remove(&ServiceKey::new("a", "s1"));
    assert_eq!(addrs(&a, "a", "s2"), Vec::<IpAddr>::new());
    // Putting the address back restores it.
    a.set_pools(vec![pool("p", &["10.0.0.0/29"])])
        .expect("pools");
    assert_eq!(addrs(&a, "a", "s2"), [ip("10.0.0.2")]);
    assert_eq!(outcome(&a, "a", "s2"), Outcome::Satisfied);
}

#[test]
fn explicit_request_moves_a_service_that_lost_its_address() {
    let mut a = Allocator::new();
    a.set_pools(vec![
        pool("p", &["10.0.0.0/24"]),
        pool("q", &["10.0.1.0/24"]),
    ])
    .expect("pools");
    a.upsert(req("a", "s"));
    a.set_pools(vec![pool("q", &["10.0.1.0/24"])])
        .expect("pools");
    assert_eq!(addrs(&a, "a", "s"), Vec::<IpAddr>::new());
    a.upsert(with(req("a", "s"), |r| r.requested_pool = Some("q".into())));
    assert_eq!(addrs(&a, "a", "s"), [ip("10.0.1.1")]);
}

#[test]
fn freed_address_goes_to_the_first_waiting_service() {
    let mut a = Allocator::new();
    a.set_pools(vec![pool("p", &["10.0.0.0/31"])])
        .expect("pools");
    for s in ["s1", "s2", "s3", "s4"] {
        a.upsert(req("a", s));
    }
    assert_eq!(addrs(&a, "a", "s3"), Vec::<IpAddr>::new());
    a.remove(&ServiceKey::new("a", "s1"));
    assert_eq!(addrs(&a, "a", "s3"), [ip("10.0.0.0")]);
    assert_eq!(addrs(&a, "a", "s4"), Vec::<IpAddr>::new());
}

#[test]
fn shared_address_is_freed_only_by_its_last_owner() {
    let mut a = Allocator::new();
    a.set_pools(vec![pool("p", &["10.0.0.0/24"])])
        .expect("pools");
    a.upsert(shared(req("a", "http"), "k", &[], &[80]));
    a.upsert(shared(req("a", "https"), "k", &[], &[443]));
    assert_eq!(a.owners_of(ip("10.0.0.1")).len(), 2);
    a.remove(&ServiceKey::new("a", "http"));
    assert_eq!(a.owners_of(ip("10.0.0.1")).len(), 1);
    a.upsert(req("a", "other"));
    assert_eq!(addrs(&a, "a", "other"), [ip("10.0.0.2")]);
    assert_eq!(a.pool_statuses()[0].used, 2);
}

#[test]
fn rejected_request_keeps_its_addresses() {
    let mut a = Allocator::new();
    a.set_pools(vec![pool("p", &["10.0.0.0/24"])])
        .expect("pools");
    a.upsert(req("a", "s"));
    a.reject(&ServiceKey::new("a", "s"), "bad annotation");
    assert_eq!(addrs(&a, "a", "s"), [ip("10.0.0.1")]);
    assert!(matches!(
        outcome(&a, "a", "s"),
        Outcome::Unsatisfied(Unsatisfied::InvalidRequest { .. })
    ));
    a.upsert(req("a", "s"));
    assert_eq!(outcome(&a, "a", "s"), Outcome::Satisfied);
    assert_eq!(addrs(&a, "a", "s"), [ip("10.0.0.1")]);
}

/// Regression (found by `allocator_props`): a `RequireDualStack` service evaluated while its
/// first family still had a free address reported its second family's failure, and kept that
/// reason after another service took the address; a rebuild from the snapshot reported the first
/// family. The reason must be the first failing family against the current state, whatever the
/// order of operations, and a rebuild must report the same.
#[test]
fn unsatisfied_dual_stack_reason_follows_later_claims() {
    let v6 = || vec![pool("v6", &["2001:db8::1/128"])];
    // IPv6 first: the /128 is free until "single" takes it; there is no IPv4 pool at all.
    let dual = with(req("ns", "a-dual"), |r| {
        r.family_policy = FamilyPolicy::RequireDualStack;
        r.families = vec![IpFamily::IPv6, IpFamily::IPv4];
    });
    let single = with(req("ns", "b-single"), |r| r.families = vec![IpFamily::IPv6]);
    let exhausted = Outcome::Unsatisfied(Unsatisfied::PoolExhausted {
        family: IpFamily::IPv6,
    });
    let no_v4_pool = Outcome::Unsatisfied(Unsatisfied::NoMatchingPool {
        family: IpFamily::IPv4,
    });

    // Order 1: "dual" is evaluated, then "single" takes the address it saw free.
    let mut one = Allocator::new();
    one.set_pools(v6()).expect("pools");
    one.upsert(dual.clone());
    assert_eq!(outcome(&one, "ns", "a-dual"), no_v4_pool);
    one.upsert(single.clone());
    // Order 2: both wait for a pool; the pool edit evaluates them in key order ("dual" first).
    let mut two = Allocator::new();
    two.upsert(dual.clone());
    two.upsert(single.clone());
    two.set_pools(v6()).expect("pools");

    for a in [&one, &two] {
        assert_eq!(addrs(a, "ns", "b-single"), [ip("2001:db8::1")]);
        assert_eq!(addrs(a, "ns", "a-dual"), Vec::<IpAddr>::new());
        assert_eq!(outcome(a, "ns", "a-dual"), exhausted);
        let held: BTreeMap<ServiceKey, Held> = a.snapshot().into_iter().collect();
        let inputs = [&dual, &single]
            .map(|r| (r.clone(), held.get(&r.key).cloned().unwrap_or_default()))
            .to_vec();
        let rebuilt = Allocator::rebuild(v6(), inputs).expect("rebuild");
        assert_eq!(outcome(&rebuilt, "ns", "a-dual"), exhausted);
        assert_eq!(addrs(&rebuilt, "ns", "b-single"), [ip("2001:db8::1")]);
    }

    // Freeing the address makes the IPv4 side the first failure again.
    one.remove(&single.key);
    assert_eq!(outcome(&one, "ns", "a-dual"), no_v4_pool);
    assert_eq!(addrs(&one, "ns", "a-dual"), Vec::<IpAddr>::new());
}

/// Regression (found by `allocator_props`): when a holder's ports change so that a waiting
/// service may now share its address, the waiting service joins it at once, as a rebuild would.
#[test]
fn holder_port_change_lets_a_waiting_service_join() {
    let one = || vec![pool("p", &["10.0.0.1/32"])];
    let holder = |port| shared(req("a", "holder"), "k", &[], &[port]);
    let joiner = shared(req("a", "joiner"), "k", &[], &[443]);
    let mut a = Allocator::new();
    a.set_pools(one()).expect("pools");
    a.upsert(holder(443));
    a.upsert(joiner.clone());
    assert_eq!(addrs(&a, "a", "joiner"), Vec::<IpAddr>::new());
    // Automatic allocation reports the exhausted pool (`SharingConflict` is for requested IPs).
    assert_eq!(
        outcome(&a, "a", "joiner"),
        Outcome::Unsatisfied(Unsatisfied::PoolExhausted {
            family: IpFamily::IPv4
        })
    );
    a.upsert(holder(80));
    assert_eq!(addrs(&a, "a", "joiner"), [ip("10.0.0.1")]);
    assert_eq!(outcome(&a, "a", "joiner"), Outcome::Satisfied);
    let held: BTreeMap<ServiceKey, Held> = a.snapshot().into_iter().collect();
    let inputs = [holder(80), joiner]
        .map(|r| {
            let h = held.get(&r.key).cloned().unwrap_or_default();
            (r, h)
        })
        .to_vec();
    let rebuilt = Allocator::rebuild(one(), inputs).expect("rebuild");
    assert_eq!(rebuilt.snapshot(), a.snapshot());
}

#[test]
fn duplicate_pool_names_are_refused() {
    let mut a = Allocator::new();
    assert!(
        a.set_pools(vec![
            pool("p", &["10.0.0.0/24"]),
            pool("p", &["10.0.1.0/24"])
        ])
        .is_err()
    );
}

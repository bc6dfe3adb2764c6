//! Property tests of the allocator's invariants over random operation sequences: no address is
//! given twice (except to services allowed to share it), every address lies in a pool selecting
//! its service, pool edits never move an address (it is kept or reported lost), other services
//! never lose addresses when one service changes, and rebuilding from a snapshot reproduces the
//! exact state. Pure allocator; no I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use lb_ipam::{
    Allocator, Block, FamilyPolicy, Held, IpFamily, LabelSelector, Pool, PoolSpec, PortProto,
    Protocol, Request, ServiceKey, Sharing,
};
use proptest::prelude::*;

/// Small blocks so that pools run out and overlap.
const BLOCKS: [&str; 6] = [
    "10.0.0.0/29",
    "10.0.0.8/29",
    "10.0.0.4/30",
    "2001:db8::/125",
    "2001:db8::8/125",
    "10.0.1.0/30",
];

#[derive(Debug, Clone)]
struct PoolGen {
    name: u8,
    blocks: Vec<usize>,
    disabled: bool,
    first_last: bool,
    auto_assign: bool,
    priority: Option<u32>,
    web_only: bool,
}

#[derive(Debug, Clone)]
struct SvcGen {
    id: u8,
    web: bool,
    sharing: Option<u8>,
    cross: bool,
    ports: u8,
    policy: u8,
    requested_ip: Option<u8>,
    requested_pool: Option<u8>,
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(SvcGen),
    Remove(u8),
    Pools(Vec<PoolGen>),
}

fn pool_gen() -> impl Strategy<Value = PoolGen> {
    (
        0u8..5,
        prop::collection::vec(0..BLOCKS.len(), 1..3),
        prop::bool::weighted(0.2),
        any::<bool>(),
        prop::bool::weighted(0.85),
        prop::option::of(0u32..3),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(name, blocks, disabled, first_last, auto_assign, priority, web_only)| PoolGen {
                name,
                blocks,
                disabled,
                first_last,
                auto_assign,
                priority,
                web_only,
            },
        )
}

fn svc_gen() -> impl Strategy<Value = SvcGen> {
    (
        0u8..10,
        any::<bool>(),
        prop::option::of(0u8..2),
        any::<bool>(),
        0u8..4,
        0u8..4,
        prop::option::weighted(0.2, 0u8..20),
        prop::option::weighted(0.2, 0u8..5),
    )
        .prop_map(
            |(id, web, sharing, cross, ports, policy, requested_ip, requested_pool)| SvcGen {
                id,
                web,
                sharing,
                cross,
                ports,
                policy,
                requested_ip,
                requested_pool,
            },
        )
}

fn op_gen() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => svc_gen().prop_map(Op::Upsert),
        2 => (0u8..10).prop_map(Op::Remove),
        2 => prop::collection::vec(pool_gen(), 0..4).prop_map(Op::Pools),
    ]
}

fn key(id: u8) -> ServiceKey {
    // A service keeps its namespace for life so that ids identify services.
    ServiceKey::new(format!("ns{}", id % 2), format!("svc{id}"))
}

fn build_pools(gens: &[PoolGen]) -> Vec<Pool> {
    let mut out: Vec<Pool> = Vec::new();
    for g in gens {
        let name = format!("pool{}", g.name);
        if out.iter().any(|p| p.name() == name) {
            continue;
        }
        let mut blocks = g.blocks.clone();
        blocks.sort_unstable();
        blocks.dedup();
        let spec = PoolSpec {
            blocks: blocks
                .iter()
                .map(|b| Block::Cidr {
                    cidr: BLOCKS[*b].parse().expect("block"),
                })
                .collect(),
            service_selector: g.web_only.then(|| LabelSelector {
                match_labels: BTreeMap::from([("tier".to_owned(), "web".to_owned())]),
                ..Default::default()
            }),
            namespace_selector: None,
            allow_first_last_ips: g.first_last,
            disabled: g.disabled,
            auto_assign: g.auto_assign,
            priority: g.priority,
        };
        // Pools whose own blocks overlap are invalid; the generator just drops them.
        if let Ok(p) = Pool::new(name, spec) {
            out.push(p);
        }
    }
    out
}

fn build_request(g: &SvcGen) -> Request {
    let mut r = Request::new(key(g.id));
    if g.web {
        r = r.with_labels(&BTreeMap::from([("tier".to_owned(), "web".to_owned())]));
    }
    r.sharing = g.sharing.map(|k| Sharing {
        key: format!("key{k}"),
        allowed_namespaces: if g.cross {
            ["*".to_owned()].into()
        } else {
            Default::default()
        },
    });
    r.ports = [80u16, 443]
        .iter()
        .enumerate()
        .filter(|(i, _)| g.ports & (1 << i) != 0)
        .map(|(_, &port)| PortProto {
            port,
            protocol: Protocol::TCP,
        })
        .collect();
    (r.family_policy, r.families) = match g.policy {
        0 => (FamilyPolicy::SingleStack, vec![IpFamily::IPv4]),
        1 => (FamilyPolicy::SingleStack, vec![IpFamily::IPv6]),
        2 => (
            FamilyPolicy::PreferDualStack,
            vec![IpFamily::IPv4, IpFamily::IPv6],
        ),
        _ => (
            FamilyPolicy::RequireDualStack,
            vec![IpFamily::IPv6, IpFamily::IPv4],
        ),
    };
    if let Some(n) = g.requested_ip {
        let ip: IpAddr = if r.families[0] == IpFamily::IPv4 {
            format!("10.0.0.{n}").parse().expect("ip")
        } else {
            format!("2001:db8::{n:x}").parse().expect("ip")
        };
        r.requested_ips = vec![ip];
    }
    r.requested_pool = g.requested_pool.map(|p| format!("pool{p}"));
    r
}

type Views = BTreeMap<ServiceKey, (Vec<IpAddr>, Vec<IpAddr>, String)>;

fn views(a: &Allocator) -> Views {
    a.services()
        .map(|v| {
            (
                v.key.clone(),
                (
                    v.addresses.clone(),
                    v.lost.clone(),
                    format!("{:?}", v.outcome),
                ),
            )
        })
        .collect()
}

fn check_invariants(a: &Allocator, pools: &[Pool], requests: &BTreeMap<ServiceKey, Request>) {
    let mut holders: BTreeMap<IpAddr, Vec<&ServiceKey>> = BTreeMap::new();
    for v in a.services() {
        let req = &requests[v.key];
        for ip in &v.addresses {
            holders.entry(*ip).or_default().push(v.key);
            assert!(
                pools
                    .iter()
                    .any(|p| p.contains(*ip) && p.selects(&req.labels, &req.namespace_labels)),
                "{} holds {ip} outside every selecting pool",
                v.key
            );
        }
        let mut fams: Vec<IpFamily> = v.addresses.iter().map(|ip| IpFamily::of(*ip)).collect();
        fams.dedup();
        assert_eq!(
            fams.len(),
            v.addresses.len(),
            "{} holds two addresses of a family",
            v.key
        );
    }
    for (ip, keys) in holders {
        assert_eq!(a.owners_of(ip), keys, "owner index disagrees for {ip}");
        for (i, x) in keys.iter().enumerate() {
            for y in &keys[i + 1..] {
                assert!(
                    requests[*x].can_share_with(&requests[*y]),
                    "{ip} given to {x} and {y}, which may not share"
                );
            }
        }
    }
}

fn rebuild(a: &Allocator, pools: &[Pool], requests: &BTreeMap<ServiceKey, Request>) -> Allocator {
    let snapshot: BTreeMap<ServiceKey, Held> = a.snapshot().into_iter().collect();
    let inputs = requests
        .values()
        .map(|r| (r.clone(), snapshot.get(&r.key).cloned().unwrap_or_default()))
        .collect();
    Allocator::rebuild(pools.to_vec(), inputs).expect("rebuild")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn allocator_invariants_hold(ops in prop::collection::vec(op_gen(), 1..40)) {
        let mut a = Allocator::new();
        let mut pools: Vec<Pool> = Vec::new();
        let mut requests: BTreeMap<ServiceKey, Request> = BTreeMap::new();
        for op in ops {
            let before = views(&a);
            let touched = match &op {
                Op::Upsert(g) => {
                    let r = build_request(g);
                    requests.insert(r.key.clone(), r.clone());
                    a.upsert(r);
                    Some(key(g.id))
                }
                Op::Remove(id) => {
                    requests.remove(&key(*id));
                    a.remove(&key(*id));
                    Some(key(*id))
                }
                Op::Pools(gens) => {
                    pools = build_pools(gens);
                    a.set_pools(pools.clone()).expect("unique names");
                    None
                }
            };
            check_invariants(&a, &pools, &requests);
            let after = views(&a);
            for (k, (old, _, _)) in &before {
                if Some(k) == touched.as_ref() {
                    continue;
                }
                let (new, lost, _) = &after[k];
                for ip in old {
                    if touched.is_some() {
                        prop_assert!(new.contains(ip), "{k} lost {ip} when another service changed");
                    } else if !requests[k].requested_ips.is_empty() {
                        // Services asking for addresses only ever hold those.
                        prop_assert!(new.iter().all(|n| requests[k].requested_ips.contains(n)));
                    } else {
                        prop_assert!(
                            new.contains(ip) || lost.contains(ip),
                            "{k} had {ip}; after a pool edit it has {new:?}, lost {lost:?}"
                        );
                        // Never silently moved: a lost family gets no replacement.
                        let fam = IpFamily::of(*ip);
                        if lost.contains(ip) {
                            prop_assert!(!new.iter().any(|n| IpFamily::of(*n) == fam));
                        }
                    }
                }
            }
            let restarted = rebuild(&a, &pools, &requests);
            prop_assert_eq!(views(&restarted), after, "rebuild from snapshot differs");
        }
    }
}
